//! `berth sync-send DIR` (hidden): the server's side of `berth --on NAME fetch`. Reads which
//! paths are asked on stdin and sends those files on stdout (`remote::sync::send`).

use super::ExitStatus;
use std::path::Path;

use super::Context;

pub fn run(_ctx: &Context, dir: &Path) -> anyhow::Result<ExitStatus> {
    crate::remote::sync::send(dir, std::io::stdin().lock(), crate::output::protocol_stdout())?;
    Ok(ExitStatus::SUCCESS)
}
