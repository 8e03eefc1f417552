//! `berth shell`: `up`, then an interactive login shell inside, as the configured user, in the
//! work folder. Leaving the shell never stops the environment (the keep-alive is PID 1's child).

use super::ExitStatus;
use std::io::IsTerminal;

use super::Context;
use crate::environment::exec;

/// bash when the image has it, else sh; both read what a login shell reads (profiles, conda's
/// initialisation), then activate the Python environment (`python::shell_argv`).
pub async fn run(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    exec::run_in(ctx, crate::python::shell_argv_for(tty), true, tty).await.map(ExitStatus::from)
}
