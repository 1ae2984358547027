//! rbk's registry client: pull and push images (and any other content a
//! manifest names, such as build-cache manifests) over the OCI distribution
//! protocol, with Docker's credentials.
//!
//! # Where it sits
//!
//! This crate is an addition to the design's map: `cli → registry → store`.
//! It depends on `rbk-store` only (for [`Digest`](rbk_store::Digest),
//! [`Descriptor`](rbk_store::Descriptor), [`Reference`](rbk_store::Reference), the blob traits and
//! the image documents), and nothing but `cli` depends on it. It is a crate
//! of its own rather than a part of `store` or `exec` because it is the
//! workspace's only network code and brings an HTTP stack (tokio, reqwest,
//! rustls) that the store, the graph and the executor must not carry; and
//! the build-cache export and import (`--cache-to/--cache-from`) use it too.
//!
//! # Main types
//!
//! - [`Client`]: [`pull`](Client::pull), [`push`](Client::push),
//!   [`fetch_manifest`](Client::fetch_manifest),
//!   [`fetch_blob`](Client::fetch_blob). Its API is synchronous; it owns a
//!   small tokio runtime that drives the async protocol client.
//! - [`ClientOptions`]: insecure (plain HTTP) registries, the docker config
//!   directory, the platform to pick from indexes.
//! - [`login`] / [`logout`]: `auths` in `config.json`, as `docker login` writes it.
//!
//! # Decisions
//!
//! - The protocol is spoken by the `oci-client` crate (ORAS project): manifest
//!   and blob GET/HEAD/PUT, monolithic streamed blob uploads, cross-repository
//!   mounts, the `WWW-Authenticate` bearer-token flow and basic auth. It is
//!   built with rustls, so no system TLS library is needed.
//! - Trust: every byte that reaches the store goes through the store's
//!   ingest, which checks the expected digest and size on commit; manifests
//!   are hashed here and compared with the digest asked for (the registry's
//!   `Docker-Content-Digest` header is not trusted). A blob body longer than
//!   its descriptor is cut off and fails. Nothing is tagged here: callers tag
//!   after `pull` returns.
//! - Retries: connect errors, timeouts, 5xx, 429 and bodies that break off
//!   are retried with exponential back-off (5 attempts, from 200 ms), then
//!   fail with [`Error::GaveUp`] or [`Error::Unreachable`]. A download that
//!   breaks off resumes from the bytes already ingested. A 429 or 503 with
//!   `Retry-After` waits as long as it asks, up to 60 s; asking for more
//!   fails at once ([`Error::Throttled`]). An upload whose `PUT` is answered
//!   404 or 416 (the registry lost the session) starts again with a new
//!   session ([`Error::UploadLost`], retried like the others).
//! - Plain HTTP for `localhost`, `127.0.0.0/8`, `::1` and the hosts in
//!   [`ClientOptions::insecure_registries`]; HTTPS otherwise.
//! - Credentials: `credHelpers`, then `credsStore`, then `auths` of
//!   `config.json` in the directory the caller names (`$DOCKER_CONFIG` or
//!   `~/.docker`, resolved by the CLI).
//! - Platform: an index is resolved to the first entry matching the
//!   requested (default: host) `os/arch[/variant]`; none is an error that
//!   lists what the index offers.
//! - Parallelism: up to four blobs move at once, per call
//!   ([`ClientOptions::parallel_blobs`] changes it).
//! - Progress: [`Client::pull_reporting`] and [`Client::push_reporting`]
//!   report each blob's [`Outcome`] to a callback as it happens.
//! - A manifest named directly (no index) is checked against the requested
//!   platform by its config's `os`/`architecture` before anything is stored.
//! - Downloads resume: a retry after a body broke off asks for the rest with
//!   a `Range` header, into the same ingest.
//! - Pipelined pushes: [`Client::push_staged`] sends each blob as soon as
//!   the caller has made it (a layer uploads while the next is
//!   compressed), then the manifest.
//! - Cross-repository mounts: when pushing a blob the target repository
//!   lacks, rbk first asks the registry to mount it
//!   (`POST …/blobs/uploads/?mount=&from=`) from repositories of the same
//!   registry that images tagged in the store come from — those whose
//!   stored manifest names the blob first, then up to three others (what
//!   was pushed there may be a compressed form of what the store holds) —
//!   and uploads it when the registry declines.
//!
//! ```no_run
//! use rbk_registry::{Client, ClientOptions};
//! use rbk_store::{Reference, Store};
//!
//! let store = Store::open("/var/lib/rbk".as_ref()).unwrap();
//! let client = Client::new(ClientOptions::default()).unwrap();
//! let reference: Reference = "127.0.0.1:5000/app:1".parse().unwrap();
//! let manifest = client.pull(&store, &reference).unwrap();
//! store.tag(&reference, manifest.clone()).unwrap();
//! let report = client.push(&store, &manifest, &reference).unwrap();
//! assert_eq!(report.uploaded, 0);
//! ```
#![deny(missing_docs)]

mod client;
mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod multi;
mod platform;
mod progress;
mod pull;
mod push;
mod staged;

pub use client::{Client, ClientOptions};
pub use config::{credentials_for, login, logout, Credentials};
pub use error::{Error, Result};
pub use platform::Platform;
pub use progress::{BlobProgress, Outcome, Reporter};
pub use push::PushReport;
pub use staged::BlobQueue;
