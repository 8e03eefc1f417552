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
pub mod completions;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod export;
pub mod fetch;
pub mod freeze;
pub mod gpu_check;
pub mod host_configure;
pub mod idle;
pub mod init;
pub mod jobs;
pub mod kill;
pub mod lease;
pub mod logs;
pub mod ls;
pub mod man;
pub mod on;
pub mod open;
pub mod pack;
pub mod ports;
pub mod push;
pub mod remote;
pub mod run;
pub mod shell;
pub mod ship;
pub mod ssh_agent_relay;
pub mod status;
pub mod stop;
pub mod top;
pub mod unpack;
pub mod up;

use anyhow::Context as _;

pub use crate::environment::{Context, Project};

/// How a command that ran to its end leaves the process: success, or the exit code it chose
/// (`exec`: the command's own; `clean`, `doctor`: 1 when something failed). Failures are
/// errors instead, rendered and coded by [`crate::error::render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(i32);

impl ExitStatus {
    pub const SUCCESS: ExitStatus = ExitStatus(0);

    /// 1 when something the command checked failed (`clean`, `gpu-check`), else success.
    pub fn failure_if(failed: bool) -> ExitStatus {
        ExitStatus(i32::from(failed))
    }

    pub fn code(self) -> i32 {
        self.0
    }
}

impl From<i32> for ExitStatus {
    fn from(code: i32) -> ExitStatus {
        ExitStatus(code)
    }
}

/// Build the current-thread runtime every command runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}
