//! The server's end of `berth --on` (`berth serve-on VERSION DIR [--sync|--send] -- COMMAND`,
//! hidden, started by [`super::call`]): one berth process per laptop command. It answers only
//! as the laptop's own version: another version steps aside without a word on stdout (the
//! laptop then looks for the right berth). Then it greets, takes the project's sync or sends
//! files, and the command runs in the project's folder, in this same process (`lib.rs`).

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use super::sync::SyncError;
use crate::error::{Code, fail};

/// The exit status of a berth of another version asked to serve (nothing done, nothing said).
pub const NOT_THIS_VERSION: i32 = 98;

/// The first line on stdout of a berth that serves: its exact version.
pub fn greeting() -> String {
    format!("berth-on {}\n", env!("CARGO_PKG_VERSION"))
}

/// Greets when `want` is this version; `false` (and nothing printed) otherwise.
pub fn greet(want: &str) -> anyhow::Result<bool> {
    if want != env!("CARGO_PKG_VERSION") {
        return Ok(false);
    }
    let mut out = crate::output::protocol_stdout();
    out.write_all(greeting().as_bytes())
        .and_then(|()| out.flush())
        .context("writing to the laptop (stdout)")?;
    Ok(true)
}

/// Takes the laptop's sync into `dir` (made if missing). `Ok(false)`: it failed and the
/// laptop was told why (it says so; nothing more here). An error: the stream itself broke, and
/// only this side can say it.
pub fn receive(dir: &Path) -> anyhow::Result<bool> {
    told(super::sync::receive(dir, std::io::stdin().lock(), crate::output::protocol_stdout()).map(|_| ()))
}

/// Sends what the laptop's `fetch` asks for from `dir`; as [`receive`].
pub fn send(dir: &Path) -> anyhow::Result<bool> {
    told(super::sync::send(dir, std::io::stdin().lock(), crate::output::protocol_stdout()))
}

fn told(done: Result<(), SyncError>) -> anyhow::Result<bool> {
    match done {
        Ok(()) => Ok(true),
        Err(e @ SyncError::Protocol(_)) => Err(e.into()),
        Err(_) => Ok(false),
    }
}

/// Moves into the project's folder there, or says how to make it.
pub fn enter(dir: &Path, server: &str) -> anyhow::Result<()> {
    std::env::set_current_dir(dir).map_err(|_| {
        fail(
            Code::BadInput,
            format!("the project has no folder on this server yet ({})", dir.display()),
            format!("bring it there with berth --on {server} up"),
        )
    })
}
