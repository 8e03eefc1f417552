//! Another server's Docker, reached by running `docker` there through the system `ssh` (see
//! [`crate::ssh`]): the other side needs Docker and a POSIX `sh`, not berth. Every command of
//! one `berth ship` shares one ssh connection, closed when the [`Remote`] is dropped.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

use anyhow::Context as _;

use crate::error::{Code, fail};
use crate::ssh::{self, sh_quote};

/// An ssh destination and the shared connection to it.
#[derive(Debug)]
pub struct Remote {
    /// ssh, its options, `--` and the destination: append one remote command.
    argv: Vec<String>,
    /// `[user@]host[:port]`, for messages.
    pub label: String,
    dir: tempfile::TempDir,
}

impl Remote {
    pub fn new(destination: &str, port: Option<u16>) -> anyhow::Result<Remote> {
        let dir =
            tempfile::Builder::new().prefix("berth-ship-").tempdir().context("creating a folder for ssh")?;
        let mut argv = ssh::command()?;
        argv.extend(["-T".into(), "-o".into(), "ConnectTimeout=30".into()]);
        argv.extend(ssh::shared_connection(dir.path()));
        if let Some(p) = port {
            argv.extend(["-p".into(), p.to_string()]);
        }
        argv.extend(["--".into(), destination.to_string()]);
        let label = match port {
            Some(p) => format!("{destination}:{p}"),
            None => destination.to_string(),
        };
        Ok(Remote { argv, label, dir })
    }

    /// A command running `script` with `sh` on the other side (whatever the login shell is).
    pub fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]).arg(format!("sh -c {}", sh_quote(script)));
        cmd
    }

    /// Run `script` there and return its output; a failure carries what the other side said.
    pub fn run(&self, script: &str, what: &str) -> anyhow::Result<Output> {
        let out = self
            .command(script)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("starting `{}` (the system ssh)", self.argv[0]))?;
        if out.status.success() {
            return Ok(out);
        }
        Err(self.failure(what, &out))
    }

    /// Run `script` there with `input` on its stdin.
    pub fn run_with_input(&self, script: &str, input: &[u8], what: &str) -> anyhow::Result<Output> {
        let mut child = self
            .command(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{}` (the system ssh)", self.argv[0]))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).with_context(|| format!("sending to {}", self.label))?;
        }
        let out = child.wait_with_output()?;
        if out.status.success() {
            return Ok(out);
        }
        Err(self.failure(what, &out))
    }

    /// Start `script` there with a pipe to its stdin (for `docker load`).
    pub fn spawn(&self, script: &str) -> anyhow::Result<Child> {
        self.command(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{}` (the system ssh)", self.argv[0]))
    }

    /// The error for a remote command that failed, with the fix that fits what it printed.
    pub fn failure(&self, what: &str, out: &Output) -> anyhow::Error {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let code = out.status.code().unwrap_or(-1);
        let message = if code == 255 {
            format!(
                "cannot reach {} over ssh: {}",
                self.label,
                if said.is_empty() { "ssh failed" } else { &said }
            )
        } else if said.is_empty() {
            format!("{what} on {} failed (exit {code})", self.label)
        } else {
            format!("{what} on {} failed: {said}", self.label)
        };
        let hint = if code == 255 {
            "berth runs the system ssh: check that `ssh HOST` works from this shell (keys, agent, \
             ~/.ssh/config); BERTH_SSH can set the command line, e.g. BERTH_SSH=\"ssh -F my_config\""
        } else if said.contains("docker: not found") || said.contains("docker: command not found") {
            "install Docker on that server (berth needs nothing else there)"
        } else if said.contains("permission denied") && said.contains("docker") {
            "the ssh user may not use Docker there: add it to the `docker` group on that server"
        } else if said.contains("Cannot connect to the Docker daemon") {
            "start Docker on that server (`sudo systemctl start docker`)"
        } else {
            "run the same through `ssh HOST` by hand to see more"
        };
        fail(Code::Failure, message, hint)
    }
}

impl Drop for Remote {
    /// Close the shared connection now rather than when it times out.
    fn drop(&mut self) {
        let mut cmd = Command::new(&self.argv[0]);
        let dest_at = self.argv.len() - 1;
        cmd.args(&self.argv[1..dest_at - 1]).args(["-O", "exit"]).arg(&self.argv[dest_at]);
        let _ = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = &self.dir;
    }
}
