//! `berth completions bash|zsh|fish`: the shell's completion script, generated from the command
//! line's own definitions (`cli::completions`), printed on stdout so it can be sourced or
//! installed (`berth completions bash > /etc/bash_completion.d/berth`).

use super::Context;
use super::ExitStatus;

/// Print the script `cli::completions` generated for the chosen shell.
pub fn run(ctx: &Context, script: &[u8]) -> anyhow::Result<ExitStatus> {
    ctx.out.data_bytes(script);
    Ok(ExitStatus::SUCCESS)
}
