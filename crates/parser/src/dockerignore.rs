//! placeholder
/// x
pub struct Dockerignore;
