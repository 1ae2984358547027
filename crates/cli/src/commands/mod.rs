//! One module per verb (or family of verbs: `container*`), each exposing
//! functions `(settings, args) -> anyhow::Result<ExitCode>`, plus private
//! helpers of one verb (`build_check`, `metadata`, `secrets` for `build`;
//! `container_opts`, `container_inspect`) and `platforms` (multi-platform
//! images for `inspect`, `save`, `push`). What several verbs share lives
//! outside this folder (`crate::lookup`, `crate::runtime`, `crate::table`,
//! `crate::template`), so no verb calls into another.

pub(crate) mod analyze;
pub(crate) mod build;
mod build_check;
pub(crate) mod build_records;
pub(crate) mod container;
pub(crate) mod container_cp;
pub(crate) mod container_inspect;
pub(crate) mod container_life;
mod container_opts;
pub(crate) mod container_run;
pub(crate) mod debug;
pub(crate) mod debug_step;
pub(crate) mod history;
pub(crate) mod images;
pub(crate) mod import;
pub(crate) mod inspect;
pub(crate) mod load;
pub(crate) mod login;
mod metadata;
pub(crate) mod prune;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod rmi;
pub(crate) mod save;
pub(crate) mod system;
pub(crate) mod tag;
pub(crate) mod volume;
