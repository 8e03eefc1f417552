//! Running a command inside an environment, like `docker exec`, through the API.
//!
//! Output is streamed as it comes; stdin is forwarded when asked; with a TTY the local terminal
//! is put in raw mode (so Ctrl-C reaches the process inside as a byte) and window size changes
//! are passed on. The command's exit code is returned; berth's own exit code becomes it.

use std::io::{IsTerminal, Read};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Engine, explain};

#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub container: String,
    pub cmd: Vec<String>,
    /// `KEY=VALUE` pairs added for this command only (secrets from the host go here).
    pub env: Vec<String>,
    /// `None`: the container's user.
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub stdin: bool,
    pub tty: bool,
}

/// What a captured command printed.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// An exec running in a container (see [`Engine::running_execs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningExec {
    pub command: String,
    pub tty: bool,
}

/// Restores the terminal when dropped, whatever way the exec ends.
struct RawMode;

impl RawMode {
    fn enable() -> Option<RawMode> {
        crossterm::terminal::enable_raw_mode().ok().map(|_| RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

impl Engine {
    /// Run a command attached to this terminal and return its exit code.
    pub async fn exec(&self, req: &ExecRequest) -> anyhow::Result<i64> {
        let id = self.create_exec(req, true).await?;
        let started = self
            .docker
            .start_exec(&id, Some(StartExecOptions { detach: false, tty: req.tty, output_capacity: None }))
            .await
            .map_err(|e| explain(e, &self.endpoint))?;
        let StartExecResults::Attached { mut output, mut input } = started else {
            anyhow::bail!("the engine did not attach to the command");
        };
        let _raw = (req.tty && std::io::stdin().is_terminal()).then(RawMode::enable).flatten();
        if req.tty {
            self.follow_window_size(&id);
        }
        if req.stdin {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
            // tokio's stdin blocks shutdown until Enter is pressed; a plain thread does not.
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let mut stdin = std::io::stdin().lock();
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.blocking_send(buf[..n].to_vec()).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
            let tty = req.tty;
            tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    if input.write_all(&chunk).await.is_err() {
                        return;
                    }
                    let _ = input.flush().await;
                }
                // End of our stdin is end of theirs (a TTY has no such thing).
                if !tty {
                    let _ = input.shutdown().await;
                }
            });
        }
        while let Some(item) = output.next().await {
            match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    if crate::output::stream_stdout(&message).is_err() {
                        // Nobody reads any more (`berth exec -- yes | head`): letting go of the
                        // stream closes the command's output, which ends it as a pipe would
                        // (SIGPIPE), instead of running on unread.
                        drop(output);
                        return Ok(128 + 13);
                    }
                }
                Ok(LogOutput::StdErr { message }) => {
                    crate::output::stream_stderr(&message);
                }
                Ok(LogOutput::StdIn { .. }) => {}
                Err(e) => {
                    // The command may well still run inside: say so rather than invent a code.
                    return Err(crate::error::fail(
                        crate::error::Code::Failure,
                        format!("lost the connection to the engine while the command ran ({e})"),
                        "it may still be running inside the environment; for long work use `berth run`, \
                         whose jobs outlive the connection",
                    ));
                }
            }
        }
        self.exit_code(&id).await
    }

    /// Start a command that runs on by itself (like `docker exec -d`); returns the exec id.
    pub async fn exec_detached(&self, req: &ExecRequest) -> anyhow::Result<String> {
        let id = self.create_exec(req, false).await?;
        self.docker
            .start_exec(&id, Some(StartExecOptions { detach: true, tty: false, output_capacity: None }))
            .await
            .map_err(|e| explain(e, &self.endpoint))?;
        Ok(id)
    }

    /// Run a command without a terminal and collect what it prints.
    pub async fn exec_capture(&self, req: &ExecRequest) -> anyhow::Result<Captured> {
        let id = self.create_exec(req, true).await?;
        let started = self.docker.start_exec(&id, None).await.map_err(|e| explain(e, &self.endpoint))?;
        let mut out = Captured::default();
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(Ok(item)) = output.next().await {
                match item {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        out.stdout.push_str(&String::from_utf8_lossy(&message));
                    }
                    LogOutput::StdErr { message } => out.stderr.push_str(&String::from_utf8_lossy(&message)),
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        out.code = self.exit_code(&id).await?;
        Ok(out)
    }

    async fn create_exec(&self, req: &ExecRequest, attach: bool) -> anyhow::Result<String> {
        let opts = CreateExecOptions {
            attach_stdin: Some(req.stdin),
            attach_stdout: Some(attach),
            attach_stderr: Some(attach),
            tty: Some(req.tty),
            env: (!req.env.is_empty()).then(|| req.env.clone()),
            cmd: Some(req.cmd.clone()),
            user: req.user.clone(),
            working_dir: req.workdir.clone(),
            ..Default::default()
        };
        let created =
            self.docker.create_exec(&req.container, opts).await.map_err(|e| explain(e, &self.endpoint))?;
        Ok(created.id)
    }

    async fn exit_code(&self, id: &str) -> anyhow::Result<i64> {
        // The output can end a moment before the engine records the exit.
        for _ in 0..200 {
            let info = self.docker.inspect_exec(id).await.map_err(|e| explain(e, &self.endpoint))?;
            if info.running != Some(true) {
                return Ok(info.exit_code.unwrap_or(126));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(126)
    }

    /// The command lines (argv joined by spaces) of the execs among `ids` still running, with
    /// whether each has a TTY. An exec gone meanwhile is skipped.
    pub async fn running_execs(&self, ids: &[String]) -> anyhow::Result<Vec<RunningExec>> {
        let mut out = Vec::new();
        for id in ids {
            let info = match self.docker.inspect_exec(id).await {
                Ok(info) => info,
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => continue,
                Err(e) => return Err(explain(e, &self.endpoint)),
            };
            if info.running != Some(true) {
                continue;
            }
            let config = info.process_config.unwrap_or_default();
            let mut argv = vec![config.entrypoint.unwrap_or_default()];
            argv.extend(config.arguments.unwrap_or_default());
            out.push(RunningExec { command: argv.join(" "), tty: config.tty == Some(true) });
        }
        Ok(out)
    }

    /// Send the terminal's size now and whenever it changes.
    fn follow_window_size(&self, id: &str) {
        let docker = self.docker.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let resize = |docker: bollard::Docker, id: String| async move {
                if let Ok((w, h)) = crossterm::terminal::size() {
                    let _ = docker.resize_exec(&id, ResizeExecOptions { height: h, width: w }).await;
                }
            };
            resize(docker.clone(), id.clone()).await;
            let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            while winch.recv().await.is_some() {
                resize(docker.clone(), id.clone()).await;
            }
        });
    }
}
