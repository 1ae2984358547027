//! A push whose layers go up while the caller is still making them: the
//! caller compresses layer N+1 while layer N uploads, instead of
//! compressing every layer before the first byte is sent.
//!
//! The caller's `prepare` runs on the calling thread and hands each blob to
//! a [`BlobQueue`] as soon as it is in the store; [`Client::parallel_blobs`]
//! workers take them in order and push each as [`Client::push`] would (the
//! registry is asked first, so a blob it has is neither sent nor counted as
//! sent; a mount is tried before an upload). When `prepare` returns the
//! manifest, the queue is closed, the workers finish, and the manifest is
//! pushed with what it names; the blobs already sent are not asked about
//! again.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use rbk_store::{Descriptor, Digest, Reference, Store};

use crate::progress::{BlobProgress, Reporter};
use crate::push::{mount_sources, Counters, Job};
use crate::{Client, Error, PushReport};

/// Where blobs that are ready go during [`Client::push_staged`].
pub struct BlobQueue<'a> {
    tx: mpsc::Sender<Descriptor>,
    failed: &'a AtomicBool,
}

impl BlobQueue<'_> {
    /// Queues `blob` (in the store) for upload. `false` once an upload has
    /// failed: the push will fail, and the caller may stop making blobs.
    pub fn send(&self, blob: Descriptor) -> bool {
        !self.failed.load(Ordering::Relaxed) && self.tx.send(blob).is_ok()
    }
}

/// The blobs one staged push has settled (sent, found or mounted).
#[derive(Default)]
pub(crate) struct Settled(Mutex<BTreeSet<Digest>>);

impl Settled {
    /// Claims `digest` for this caller: `false` when it was claimed before.
    fn claim(&self, digest: &Digest) -> bool {
        self.0.lock().expect("poisoned").insert(*digest)
    }

    pub(crate) fn has(&self, digest: &Digest) -> bool {
        self.0.lock().expect("poisoned").contains(digest)
    }
}

impl Client {
    /// Pushes what `prepare` makes: each blob it hands to the queue goes
    /// up at once (layers are not reported as configs), then the manifest
    /// or index it returns goes, as [`push_reporting`](Client::push_reporting)
    /// pushes it, under `reference`'s tag. `prepare`'s error wins over an
    /// upload's; `T` is whatever else `prepare` returns.
    pub fn push_staged<T, E: From<Error>>(
        &self,
        store: &Store,
        reference: &Reference,
        report: Reporter<'_>,
        prepare: impl FnOnce(&BlobQueue<'_>) -> std::result::Result<(Descriptor, T), E>,
    ) -> std::result::Result<(PushReport, T), E> {
        let counters = Counters::default();
        let sources = mount_sources(store, reference);
        let settled = Settled::default();
        let job = Job {
            store,
            reference,
            counters: &counters,
            sources: &sources,
            report,
            settled: Some(&settled),
        };
        let (tx, rx) = mpsc::channel::<Descriptor>();
        let rx = Mutex::new(rx);
        let failed = AtomicBool::new(false);
        let first_error = Mutex::new(None);
        let prepared = std::thread::scope(|s| {
            for _ in 0..self.parallel_blobs() {
                s.spawn(|| loop {
                    let Ok(blob) = rx.lock().expect("poisoned").recv() else {
                        return; // the queue is closed and empty
                    };
                    if failed.load(Ordering::Relaxed) || !settled.claim(&blob.digest) {
                        continue;
                    }
                    match self.push_blob(&job, &blob) {
                        Ok(outcome) => report(&BlobProgress {
                            blob,
                            is_config: false,
                            outcome,
                        }),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error.lock().expect("poisoned").get_or_insert(e);
                        }
                    }
                });
            }
            let queue = BlobQueue {
                tx,
                failed: &failed,
            };
            prepare(&queue)
            // The queue drops here: the workers drain it and stop.
        });
        let (manifest, value) = prepared?;
        if let Some(e) = first_error.into_inner().expect("poisoned") {
            return Err(e.into());
        }
        self.push_tree(&job, &manifest, true)?;
        Ok((counters.report(), value))
    }
}
