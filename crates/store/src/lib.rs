//! rbk's store: everything rbk keeps on disk, under one root.
//!
//! The store is the leaf of the workspace and depends on no other rbk crate.
//! Its main types:
//!
//! - [`Digest`], the validated `sha256:<hex>` content address.
//! - [`Store`], the on-disk store: an OCI image layout plus rbk's own
//!   directories (see the [`Store`] docs for the layout), implementing the
//!   blob traits [`BlobRead`], [`BlobWrite`] and [`BlobAdmin`] (with
//!   [`MemStore`] as the in-memory implementation for tests), the image
//!   index ([`Store::tag`], [`Store::resolve`]) keyed by normalised
//!   [`Reference`]s, and flock-based locking ([`FileLock`]).
//! - [`image`], the OCI/Docker manifest, index and config types with strict,
//!   bounded parsing, and [`Store::put_image`] / [`Store::image`].
//! - [`archive`], image import and export: rootfs tarballs, docker-archive
//!   and OCI archives, streamed.
//! - [`unpack_layer`], safe extraction of layer tarballs into snapshot
//!   directories; snapshots by diff id ([`Store::ensure_snapshot`],
//!   [`overlay_mount`]) and the build-cache index ([`Store::cache_get`]).
//! - [`pack`], the deterministic snapshot → OCI layer tar packer, and
//!   [`Store::commit_packed`]: a built layer is stored as its snapshot only,
//!   and its blob is re-packed whenever it is read (so the store's OCI layout
//!   has no file for it until the image is exported — `rbk save`,
//!   `--output`, push — see `packed.rs`).
//! - GC with leases ([`Store::gc`], [`Store::lease`], [`Store::clean_orphans`]),
//!   image removal ([`Store::remove_reference`]), disk usage ([`Store::usage`])
//!   and a consistency check ([`Store::verify`]).
//!
//! Errors: everything public returns [`Error`]. A few private checkers
//! (reference parsing, `verify`'s and the unpacker's checks, packed-blob
//! verification) return `Result<_, String>`: the string is the reason, and
//! their one caller wraps it into the variant that names the input
//! (`Error::InvalidReference`, a `Problem`, `Error::Extract`, …).
//!
//! ```
//! use rbk_store::{BlobRead, BlobWrite, Digest, Reference, Store};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(&dir.path().join("root")).unwrap();
//! let info = store.put_bytes(b"hello").unwrap();
//! assert_eq!(info.digest, Digest::sha256_of(b"hello"));
//! assert!(store.exists(&info.digest).unwrap());
//!
//! let r: Reference = "app".parse().unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/app:latest");
//! ```
#![deny(missing_docs)]

pub mod archive;
mod blob;
mod cache;
mod containers;
mod digest;
mod error;
mod failed_steps;
mod fsblob;
mod fsutil;
mod gc;
pub mod image;
mod index;
mod lock;
mod mem;
pub mod output;
mod overlay_xattrs;
pub mod pack;
mod packed;
mod reference;
mod snapshot;
mod store;
mod summary;
#[cfg(any(test, feature = "testsuite"))]
mod synthetic;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
mod unpack;
mod usage;
mod verify;

pub use blob::{
    read_to_end_bounded, BlobAdmin, BlobInfo, BlobRead, BlobWrite, Ingest, Ingestion,
    VerifyingReader, MAX_DOCUMENT_SIZE,
};
pub use cache::{CacheRecord, CacheRow, Layer, BUSY_TIMEOUT};
pub use containers::{ContainerMount, ContainerRecord, ContainerState, Owner};
pub use digest::{Digest, DigestError, Sha256Writer};
pub use error::{is_disk_full, Error, Result};
pub use failed_steps::{FailedStep, FailedStepMount, FailedStepMountKind};
pub use fsblob::layout_blob_path;
pub use fsutil::write_atomic;
pub use gc::{mount_points, GcReport, LiveSet, OrphanReport, Removal};
pub use index::{looks_like_image_id, Descriptor, FoundImage, ImageList, REF_NAME_ANNOTATION};
pub use lock::FileLock;
pub use mem::MemStore;
pub use overlay_xattrs::{overlay_xattrs, OverlayXattrs};
pub use reference::{Reference, DEFAULT_DOMAIN};
pub use snapshot::{overlay_mount, Mount, WorkDir};
pub use store::Store;
pub use summary::{ImageSummaries, ImageSummary};
#[cfg(any(test, feature = "testsuite"))]
pub use synthetic::{Synthetic, SyntheticSpec};
pub use unpack::{
    check_layer_stream, decompress, is_tar_header, unpack_into, unpack_layer, unpack_layer_onto,
    DevicePolicy, UnpackOptions, UnpackStats, UnpackVerdict, Whiteouts, MAX_PATH_LEN,
};
/// Stack size for threads that walk snapshot trees: tree walks recurse once
/// per directory level, and 2 MiB overflowed at 2,000 levels (the 2026-12
/// probe). Reserved address space, committed only as used.
pub const WALK_STACK: usize = 256 << 20;

pub use usage::{CacheUsage, ImageUsage, Usage};
pub use verify::{Problem, VerifyOptions, VerifyReport};
