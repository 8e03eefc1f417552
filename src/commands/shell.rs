//! `berth shell`: `up`, then an interactive login shell inside, as the configured user, in the
//! work folder. Leaving the shell never stops the environment (the keep-alive is PID 1's child).

use std::io::IsTerminal;

use super::Context;
use crate::environment::exec;

/// bash when the image has it, else sh; both as login shells so profiles (and conda) load.
const LOGIN_SHELL: &str = "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi";

pub async fn run(ctx: &Context) -> anyhow::Result<i32> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    exec::run_in(ctx, vec!["/bin/sh".into(), "-c".into(), LOGIN_SHELL.into()], true, tty).await
}
