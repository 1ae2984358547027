//! Telling whether the process that owns a container still lives: its pid
//! plus its start time and the boot id, so neither a reused pid nor a
//! reboot passes for it.

use rbk_store::Owner;

/// This process, as a container's owner.
pub fn current_owner() -> Owner {
    let pid = std::process::id() as i32;
    Owner {
        pid,
        start_time: start_time(pid).unwrap_or(0),
        boot_id: boot_id(),
    }
}

/// Whether `owner` still runs (the same process: same boot, same start
/// time).
pub fn is_alive(owner: &Owner) -> bool {
    owner.boot_id == boot_id() && start_time(owner.pid) == Some(owner.start_time)
}

/// Field 22 of `/proc/PID/stat`: clock ticks after boot. The command name
/// (field 2) may hold spaces or parentheses, so fields are counted after
/// its last `)`. A zombie counts as gone.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // Fields 3 (state) … 22 (starttime).
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_one_is_not() {
        let me = current_owner();
        assert!(me.start_time > 0);
        assert!(is_alive(&me));
        let reused = Owner {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!is_alive(&reused));
        let rebooted = Owner {
            boot_id: "other".into(),
            ..me
        };
        assert!(!is_alive(&rebooted));
    }
}
