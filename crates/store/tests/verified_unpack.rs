//! A stored layer is verified as it is unpacked: its blob against the
//! digest, its tar stream against the diff id. For an uncompressed layer
//! both are one hash of the same bytes, taken once; these tests check that
//! taking it once still refuses every lie.

use std::io::Write;

use rbk_store::{unpack_layer, Digest, Error, UnpackOptions};

/// An uncompressed layer holding `hello.txt`.
fn layer_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let body = b"hello from a verified layer\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "hello.txt", &body[..])
        .unwrap();
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Unpacks `blob` as a stored layer claiming `digest` and `diff_id`.
fn unpack(blob: &[u8], digest: Digest, diff_id: Digest) -> rbk_store::Result<String> {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer");
    let options = UnpackOptions::default().verify(digest, blob.len() as u64, diff_id);
    unpack_layer(blob, &dest, &options)?;
    Ok(std::fs::read_to_string(dest.join("hello.txt")).unwrap())
}

fn assert_corrupt(result: rbk_store::Result<String>, digest: Digest) {
    match result {
        Err(Error::CorruptLayer { digest: named, .. }) => assert_eq!(named, digest),
        other => panic!("expected a corrupt layer naming {digest}, got {other:?}"),
    }
}

#[test]
fn an_uncompressed_layer_whose_diff_id_is_its_digest_unpacks() {
    let tar = layer_tar();
    let digest = Digest::sha256_of(&tar);
    assert_eq!(
        unpack(&tar, digest, digest).unwrap(),
        "hello from a verified layer\n"
    );
}

#[test]
fn a_flipped_byte_in_an_uncompressed_layer_fails_naming_it() {
    let tar = layer_tar();
    let digest = Digest::sha256_of(&tar);
    let mut flipped = tar.clone();
    // A byte of the file's content: the tar still parses.
    let at = flipped.windows(5).position(|w| w == b"hello").unwrap();
    flipped[at] ^= 0x20;
    assert_corrupt(unpack(&flipped, digest, digest), digest);
}

#[test]
fn an_uncompressed_layer_claiming_another_diff_id_fails() {
    let tar = layer_tar();
    let digest = Digest::sha256_of(&tar);
    let other = Digest::sha256_of(b"another layer");
    assert_corrupt(unpack(&tar, digest, other), digest);
}

#[test]
fn a_compressed_layer_claiming_its_blob_digest_as_diff_id_fails() {
    // The diff id names the uncompressed stream, which a gzip blob is not:
    // claiming the blob's own digest is a lie the check must still see.
    let blob = gzip(&layer_tar());
    let digest = Digest::sha256_of(&blob);
    assert_corrupt(unpack(&blob, digest, digest), digest);
    // The true diff id passes.
    let diff_id = Digest::sha256_of(&layer_tar());
    assert_eq!(
        unpack(&blob, digest, diff_id).unwrap(),
        "hello from a verified layer\n"
    );
}
