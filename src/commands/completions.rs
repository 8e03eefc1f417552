//! `berth completions bash|zsh|fish` and `berth man`: text generated from the command line's
//! own definitions (`cli::completions`, `cli::man_page`), printed on stdout so it can be
//! sourced or installed (`berth completions bash > /etc/bash_completion.d/berth`,
//! `berth man > /usr/local/share/man/man1/berth.1`).

use super::Context;
use super::ExitStatus;

/// Print generated text as it is.
pub fn run(ctx: &Context, text: &[u8]) -> anyhow::Result<ExitStatus> {
    ctx.out.data_bytes(text);
    Ok(ExitStatus::SUCCESS)
}
