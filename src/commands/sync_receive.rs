//! `berth sync-receive DIR` (hidden): the server's side of the project sync that `berth --on`
//! starts over ssh. Reads the laptop's manifest and files on stdin, answers on stdout; what it
//! checks and never touches is `remote::sync::receive`'s business.

use super::ExitStatus;
use std::path::Path;

use super::Context;

pub fn run(_ctx: &Context, dir: &Path) -> anyhow::Result<ExitStatus> {
    crate::remote::sync::receive(dir, std::io::stdin().lock(), crate::output::protocol_stdout())?;
    Ok(ExitStatus::SUCCESS)
}
