//! `berth man`: the manual page (roff), generated from the command line's own definitions
//! (`cli::man_page`), printed on stdout (`berth man > /usr/local/share/man/man1/berth.1`).

use super::Context;
use super::ExitStatus;

pub fn run(ctx: &Context) -> anyhow::Result<ExitStatus> {
    ctx.out.data_bytes(&crate::cli::man_page()?);
    Ok(ExitStatus::SUCCESS)
}
