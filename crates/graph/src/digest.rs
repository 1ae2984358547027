//! Vertex digests: the identity of an op together with everything below it.
//!
//! A vertex's digest is the sha256 of its op's canonical bytes: a JSON object
//! `{"version":"rbk.vertex.v1","op":…,"inputs":[{"digest":…,"output":…}]}`
//! in which the op is serialised with its `inputs` list emptied and the
//! inputs appear, in order, as the digests of the vertices they point at.
//! JSON from serde's derives is deterministic here: struct fields keep their
//! declaration order and every map in an op is a `BTreeMap`. Metadata
//! ([`crate::OpMetadata`]) is never part of it.
//!
//! Changing `version` (or any op type) changes every digest, which is what
//! a cache key should do.

use serde::Serialize;

use crate::definition::Definition;
use crate::op::Op;
use crate::Digest;

/// Tag mixed into every vertex digest; bump it when the encoding changes.
const VERSION: &str = "rbk.vertex.v1";

#[derive(Serialize)]
struct Canonical<'a> {
    version: &'static str,
    op: &'a Op,
    inputs: Vec<InputRef>,
}

#[derive(Serialize)]
struct InputRef {
    digest: Digest,
    output: u32,
}

/// The canonical bytes of `op` whose inputs resolve to `input_digests`
/// (one per entry of `op.inputs()`, in order). Their sha256 is the vertex
/// digest; `rbk debug` may show them.
///
/// # Panics
/// When `input_digests` does not have one digest per input of `op`.
pub fn canonical_bytes(op: &Op, input_digests: &[Digest]) -> Vec<u8> {
    assert_eq!(
        op.inputs().len(),
        input_digests.len(),
        "one digest per op input"
    );
    let inputs = op
        .inputs()
        .iter()
        .zip(input_digests)
        .map(|(input, digest)| InputRef {
            digest: *digest,
            output: input.output,
        })
        .collect();
    let mut stripped = op.clone();
    match &mut stripped {
        Op::Source(_) => {}
        Op::Exec(e) => e.inputs.clear(),
        Op::File(f) => f.inputs.clear(),
        Op::Merge(m) => m.inputs.clear(),
    }
    let canonical = Canonical {
        version: VERSION,
        op: &stripped,
        inputs,
    };
    // Ops hold only strings, integers, bools, lists and string-keyed maps,
    // which serde_json always serialises.
    serde_json::to_vec(&canonical).expect("ops always serialise to JSON")
}

/// The digest of a vertex running `op` over inputs with `input_digests`
/// (see [`canonical_bytes`]).
///
/// # Panics
/// When `input_digests` does not have one digest per input of `op`.
pub fn op_digest(op: &Op, input_digests: &[Digest]) -> Digest {
    Digest::sha256_of(&canonical_bytes(op, input_digests))
}

/// Digests of the vertices of `def` for which `wanted` is true (`None` for
/// the others). `wanted` must be closed under inputs, and inputs must point
/// at earlier vertices (checked by the caller).
pub(crate) fn digests_where(def: &Definition, wanted: &[bool]) -> Vec<Option<Digest>> {
    let mut out: Vec<Option<Digest>> = Vec::with_capacity(def.len());
    let mut input_digests = Vec::new();
    for (vertex, &want) in def.vertices.iter().zip(wanted) {
        if !want {
            out.push(None);
            continue;
        }
        input_digests.clear();
        for input in vertex.op.inputs() {
            let digest = out[input.node.0 as usize].expect("inputs of wanted vertices are wanted");
            input_digests.push(digest);
        }
        out.push(Some(op_digest(&vertex.op, &input_digests)));
    }
    out
}

impl Definition {
    /// The digest of every vertex, by [`crate::NodeId`] order.
    ///
    /// # Panics
    /// When an input does not point at an earlier vertex, which
    /// [`Definition::push`] rules out.
    pub fn digests(&self) -> Vec<Digest> {
        digests_where(self, &vec![true; self.len()])
            .into_iter()
            .map(|d| d.expect("every vertex is wanted"))
            .collect()
    }
}
