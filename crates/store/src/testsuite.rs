//! Conformance tests for blob store implementations (the `testsuite`
//! feature). Every implementation of [`BlobRead`] + [`BlobWrite`] +
//! [`BlobAdmin`] calls [`run`] from its tests:
//!
//! ```
//! rbk_store::testsuite::run(rbk_store::MemStore::new);
//! ```
//!
//! Failures panic with a message naming the check.

use std::io::{Read, Write};

use crate::{BlobAdmin, BlobRead, BlobWrite, Digest, Error, Ingestion};

/// Runs every check, each against a fresh store from `factory`.
pub fn run<S, F>(factory: F)
where
    S: BlobRead + BlobWrite + BlobAdmin + Sync,
    F: Fn() -> S,
{
    round_trip(&factory());
    missing_blob(&factory());
    wrong_digest_is_discarded(&factory());
    wrong_size_is_discarded(&factory());
    existing_blob_is_success(&factory());
    dropped_ingest_leaves_nothing(&factory());
    walk_and_delete(&factory());
    bounded_reads(&factory());
    concurrent_same_digest(&factory());
}

fn round_trip<S: BlobRead + BlobWrite>(s: &S) {
    let info = s.put_bytes(b"hello").expect("put_bytes");
    assert_eq!(
        info.digest,
        Digest::sha256_of(b"hello"),
        "put returns the content digest"
    );
    assert_eq!(info.size, 5);
    assert_eq!(s.info(&info.digest).expect("info").size, 5);
    assert!(s.exists(&info.digest).expect("exists"));
    let mut out = Vec::new();
    s.open(&info.digest)
        .expect("open")
        .read_to_end(&mut out)
        .expect("read");
    assert_eq!(out, b"hello");
    out.clear();
    s.open_verified(&info.digest)
        .expect("open_verified")
        .read_to_end(&mut out)
        .expect("verified read");
    assert_eq!(out, b"hello");
    // An ingest without a known digest.
    let Ingestion::Write(mut w) = s.ingest(None).expect("ingest") else {
        panic!("ingest(None) must write")
    };
    w.write_all(b"streamed").expect("write");
    assert_eq!(w.written(), 8);
    let info = w.commit(None, Some(8)).expect("commit");
    assert_eq!(info.digest, Digest::sha256_of(b"streamed"));
}

fn missing_blob<S: BlobRead + BlobAdmin>(s: &S) {
    let d = Digest::sha256_of(b"absent");
    assert!(!s.exists(&d).expect("exists"));
    assert!(s
        .info(&d)
        .expect_err("info of a missing blob")
        .is_not_found());
    assert!(s
        .open(&d)
        .err()
        .expect("open of a missing blob")
        .is_not_found());
    assert!(s
        .delete(&d)
        .expect_err("delete of a missing blob")
        .is_not_found());
}

fn wrong_digest_is_discarded<S: BlobRead + BlobWrite + BlobAdmin>(s: &S) {
    let claimed = Digest::sha256_of(b"what the registry promised");
    let err = s
        .put(&mut &b"what it sent"[..], Some((claimed, None)))
        .expect_err("digest mismatch");
    assert!(
        matches!(err, Error::DigestMismatch { expected, .. } if expected == claimed),
        "got {err:?}"
    );
    assert!(!s.exists(&claimed).expect("exists"));
    assert!(!s
        .exists(&Digest::sha256_of(b"what it sent"))
        .expect("exists"));
    assert_eq!(count(s), 0, "nothing committed after a mismatch");
    // The next attempt starts from zero and succeeds.
    let good = Digest::sha256_of(b"what it sent");
    s.put(&mut &b"what it sent"[..], Some((good, Some(12))))
        .expect("retry");
}

fn wrong_size_is_discarded<S: BlobRead + BlobWrite + BlobAdmin>(s: &S) {
    let d = Digest::sha256_of(b"twelve bytes");
    let err = s
        .put(&mut &b"twelve bytes"[..], Some((d, Some(5))))
        .expect_err("size mismatch");
    assert!(err.is_mismatch(), "got {err:?}");
    assert_eq!(count(s), 0);
}

fn existing_blob_is_success<S: BlobRead + BlobWrite>(s: &S) {
    let info = s.put_bytes(b"dup").expect("put");
    match s.ingest(Some(info.digest)).expect("ingest") {
        Ingestion::Exists(i) => assert_eq!(i, info),
        Ingestion::Write(_) => panic!("ingest of a present digest must answer Exists"),
    }
    assert_eq!(s.put_bytes(b"dup").expect("second put"), info);
    let Ingestion::Write(mut w) = s.ingest(None).expect("ingest") else {
        panic!("ingest(None) must write")
    };
    w.write_all(b"dup").expect("write");
    assert_eq!(
        w.commit(Some(info.digest), None)
            .expect("commit of existing content"),
        info
    );
}

fn dropped_ingest_leaves_nothing<S: BlobWrite + BlobAdmin>(s: &S) {
    let d = Digest::sha256_of(b"never finished");
    let Ingestion::Write(mut w) = s.ingest(Some(d)).expect("ingest") else {
        panic!("must write")
    };
    w.write_all(b"never").expect("write");
    drop(w);
    assert_eq!(count(s), 0);
    // The per-digest lock was released: a new ingest does not block.
    assert!(matches!(
        s.ingest(Some(d)).expect("ingest again"),
        Ingestion::Write(_)
    ));
}

fn walk_and_delete<S: BlobRead + BlobWrite + BlobAdmin>(s: &S) {
    let a = s.put_bytes(b"a").expect("put a");
    let b = s.put_bytes(b"bb").expect("put b");
    let mut seen = Vec::new();
    s.walk(&mut |info| {
        seen.push(info);
        Ok(())
    })
    .expect("walk");
    seen.sort_by_key(|i| i.digest);
    let mut want = vec![a, b];
    want.sort_by_key(|i| i.digest);
    assert_eq!(seen, want);
    s.delete(&a.digest).expect("delete");
    assert!(!s.exists(&a.digest).expect("exists"));
    assert!(s.exists(&b.digest).expect("exists"));
}

fn bounded_reads<S: BlobRead + BlobWrite>(s: &S) {
    let info = s.put_bytes(&[7u8; 100]).expect("put");
    assert_eq!(
        s.read_bounded(&info.digest, 100)
            .expect("at the limit")
            .len(),
        100
    );
    let err = s
        .read_bounded(&info.digest, 99)
        .expect_err("over the limit");
    assert!(
        matches!(err, Error::TooLarge { limit: 99, .. }),
        "got {err:?}"
    );
}

fn concurrent_same_digest<S: BlobRead + BlobWrite + BlobAdmin + Sync>(s: &S) {
    let data = vec![42u8; 1 << 20];
    let d = Digest::sha256_of(&data);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let info = s
                    .put(&mut &data[..], Some((d, Some(data.len() as u64))))
                    .expect("concurrent put");
                assert_eq!(info.digest, d);
            });
        }
    });
    assert_eq!(s.read_bounded(&d, 2 << 20).expect("read back"), data);
    assert_eq!(count(s), 1);
}

fn count<S: BlobAdmin>(s: &S) -> usize {
    let mut n = 0;
    s.walk(&mut |_| {
        n += 1;
        Ok(())
    })
    .expect("walk");
    n
}
