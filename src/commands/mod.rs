//! One file per command: resolve the project, plan, apply, print.
//!
//! Commands receive a [`Context`] (resolved global options), never clap types. Shared steps
//! (finding the project, planning, bringing the environment up, the `down` guard) live in
//! [`crate::environment`], job views in [`crate::jobs`], image moves in [`crate::transport`];
//! no command imports another.

pub mod build;
pub mod clean;
pub mod code;
pub mod commit;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod export;
pub mod freeze;
pub mod gpu_check;
pub mod host_configure;
pub mod init;
pub mod jobs;
pub mod kill;
pub mod logs;
pub mod ls;
pub mod pack;
pub mod push;
pub mod run;
pub mod shell;
pub mod ship;
pub mod status;
pub mod stop;
pub mod top;
pub mod unpack;
pub mod up;

use anyhow::Context as _;

pub use crate::environment::{Context, Project};

/// Build the current-thread runtime every command runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}
