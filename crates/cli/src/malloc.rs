//! The C allocator's arenas.
//!
//! glibc gives a thread that finds the allocator's lock taken an arena of
//! its own, up to eight per core, and returns little of an arena's freed
//! memory to the system. A build's scheduler runs 16 threads, and the
//! context scan and the copy allocate on all of them: a one-file edit of
//! the 300,000-file monorepo (issue 19) peaked at 145-192 MiB of RSS for
//! about 100 MiB of heap. One arena per core (two on this machine) put the
//! same edit at 126-139 MiB, with the same wall time and the same no-op
//! rebuild (bench/runs/2026-12-07-vm-s15/notes-scale.md). A value the user
//! set in `MALLOC_ARENA_MAX` is left in force.

use std::ffi::OsStr;

/// Limits the arenas before the process starts its threads; `user` is
/// `MALLOC_ARENA_MAX` as the environment has it.
pub(crate) fn limit_arenas(user: Option<&OsStr>) {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if let Some(max) = arena_max(user, cores) {
        set_arena_max(max);
    }
}

/// The arena limit to set: one per core, at least two, none when the user
/// chose one.
fn arena_max(user: Option<&OsStr>, cores: usize) -> Option<i32> {
    match user {
        Some(_) => None,
        None => Some(i32::try_from(cores.max(2)).unwrap_or(i32::MAX)),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(max: i32) {
    // SAFETY: mallopt takes two integers, is thread-safe, and only tunes
    // the allocator; a value it refuses leaves glibc's default.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, max);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_max: i32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_arena_per_core_and_never_fewer_than_two() {
        assert_eq!(arena_max(None, 1), Some(2));
        assert_eq!(arena_max(None, 2), Some(2));
        assert_eq!(arena_max(None, 64), Some(64));
    }

    #[test]
    fn the_users_setting_is_kept() {
        assert_eq!(arena_max(Some(OsStr::new("8")), 2), None);
        assert_eq!(arena_max(Some(OsStr::new("")), 2), None);
    }
}
