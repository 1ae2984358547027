//! What happened to each blob of a pull or a push, reported as it happens
//! so that the CLI can print Docker's per-layer lines. The library never
//! prints; callers pass a callback (see [`Client::pull_reporting`](crate::Client::pull_reporting)).

use rbk_store::Descriptor;

/// One blob's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProgress {
    /// The blob.
    pub blob: Descriptor,
    /// Whether it is a manifest's config (Docker's lines name layers only).
    pub is_config: bool,
    /// What was done with it.
    pub outcome: Outcome,
}

/// What a pull or a push did with one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Pull: fetched from the registry and stored, verified.
    Pulled,
    /// Pull: the store had it; nothing was fetched.
    AlreadyStored,
    /// Push: sent to the registry.
    Pushed,
    /// Push: the registry had it in the repository; nothing was sent.
    AlreadyInRegistry,
    /// Push: mounted from this other repository of the same registry.
    Mounted(String),
}

/// The callback type progress goes to; called from several threads.
pub type Reporter<'a> = &'a (dyn Fn(&BlobProgress) + Sync);

/// A reporter that drops everything.
pub(crate) fn silent(_: &BlobProgress) {}
