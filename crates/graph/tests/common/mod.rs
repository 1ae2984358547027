//! Builders shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use rbk_graph::{Definition, ExecOp, Input, NodeId, Op, OpMetadata, SourceOp};

/// An image source named `name` (the toy executor's leaf).
pub fn src(def: &mut Definition, name: &str) -> NodeId {
    src_in(def, name, None)
}

/// Like [`src`], in stage `stage`.
pub fn src_in(def: &mut Definition, name: &str, stage: Option<&str>) -> NodeId {
    let op = Op::Source(SourceOp::Image {
        reference: name.to_string(),
        platform: None,
    });
    def.push(op, meta(name, stage))
}

/// An exec named `name` over `inputs`.
pub fn step(def: &mut Definition, name: &str, inputs: &[NodeId]) -> NodeId {
    step_in(def, name, inputs, None)
}

/// Like [`step`], in stage `stage`.
pub fn step_in(def: &mut Definition, name: &str, inputs: &[NodeId], stage: Option<&str>) -> NodeId {
    def.push(Op::Exec(exec(name, inputs)), meta(name, stage))
}

/// An exec op whose args are `[name]`.
pub fn exec(name: &str, inputs: &[NodeId]) -> ExecOp {
    ExecOp {
        inputs: inputs.iter().map(|&n| Input::of(n)).collect(),
        args: vec![name.to_string()],
        env: Default::default(),
        cwd: "/".to_string(),
        user: String::new(),
        mounts: vec![],
        network: Default::default(),
        security: Default::default(),
        hostname: String::new(),
    }
}

fn meta(name: &str, stage: Option<&str>) -> OpMetadata {
    OpMetadata {
        description: format!("step {name}"),
        stage: stage.map(str::to_string),
        ..OpMetadata::default()
    }
}
