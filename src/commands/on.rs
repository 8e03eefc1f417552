//! `berth --on NAME <command> …`: the command runs on the named server, by the server's own
//! berth (so its GPU facts are planned with), in the project's folder there, with the same
//! arguments; output is streamed and its exit code is berth's. The project is synced laptop →
//! server first for the commands that use its files, in the same ssh session as the command
//! (a command on a terminal of its own gets a second one). See [`crate::remote`].

use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;

use super::{Context, ExitStatus};
use crate::error::{Code, fail};
use crate::remote::{self, forward};

#[derive(Debug, Clone)]
pub struct OnRequest {
    /// The server's name (`berth remote add`).
    pub name: String,
    /// Copy berth there without asking, when it is missing.
    pub yes: bool,
    /// The command's name (`up`, `gpu-check`, …).
    pub verb: String,
    /// The arguments for the server's berth.
    pub args: Vec<String>,
}

pub fn run(ctx: &Context, req: OnRequest) -> anyhow::Result<ExitStatus> {
    let Some(verb) = forward::find(&req.verb) else {
        let mut names: Vec<&str> = forward::VERBS.iter().map(|v| v.name).collect();
        names.push(forward::FETCH);
        return Err(fail(
            Code::BadInput,
            format!("`{}` does not run on a server with --on", req.verb),
            format!("--on takes the project commands: {}", names.join(", ")),
        ));
    };
    let (mut session, local) = remote::connect(&ctx.dir, &req.name, &ctx.out)?;
    let tty = verb.tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !tty {
        // Only `shell` and `exec` read input; the others leave it alone (and can run in the
        // background).
        let sync = verb.sync.then_some(local.as_path());
        let code = remote::run(&mut session, &ctx.out, req.yes, sync, &req.args, verb.tty)?;
        return Ok(ExitStatus::from(code));
    }
    remote::sync(&mut session, &ctx.out, req.yes, &local)?;
    let status = session
        .remote(&forward::script(&session.berth_path, &session.project_dir, &req.args, &req.name), true)
        .status()
        .map_err(|e| {
            fail(Code::Failure, format!("starting the system ssh: {e}"), "check that `ssh` is installed")
        })?;
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(ExitStatus::from(code))
}
