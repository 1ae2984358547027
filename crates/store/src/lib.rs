//! rbk's store: everything rbk keeps on disk, under one root.
//!
//! The store is the leaf of the workspace and depends on no other rbk crate.
//! Today it owns [`Digest`], the validated `sha256:<hex>` content address that
//! the build graph uses for vertex identities and that blobs will be stored
//! under. Blobs, snapshots, the image and cache indexes and GC arrive with the
//! store issue.
//!
//! ```
//! use rbk_store::Digest;
//!
//! let d = Digest::sha256_of(b"hello");
//! assert_eq!(d.to_string(), "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
//! assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
//! ```
#![deny(missing_docs)]

mod digest;

pub use digest::{Digest, DigestError, Sha256Writer};
