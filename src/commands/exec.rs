//! `berth exec [-i] [-t] -- CMD`: run one command inside, stream its output, return its code.
//!
//! Like `docker exec`: stdin is forwarded with `-i`; a TTY is used with `-t`, or by default
//! only when stdin and stdout are both terminals (then stdin is forwarded too), so captured
//! output never carries `\r`. The environment is brought up first when it is not running.

use super::ExitStatus;
use std::io::IsTerminal;

use super::Context;
use crate::environment::exec::{check_command, run_in};

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub interactive: bool,
    pub tty: bool,
    pub cmd: Vec<String>,
}

/// Returns the command's exit code.
pub async fn run(ctx: &Context, opts: ExecOptions) -> anyhow::Result<ExitStatus> {
    check_command("exec", &opts.cmd)?;
    let auto_tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let tty = opts.tty || auto_tty;
    let stdin = opts.interactive || (auto_tty && !opts.tty);
    run_in(ctx, opts.cmd, stdin, tty).await.map(ExitStatus::from)
}
