//! One call to the server's berth (`berth serve-on`, [`super::serve`]): in the common case the
//! whole cost of a `berth --on` is one ssh session over the shared connection, in which the
//! server's berth greets (proving it is this version), takes the project's sync when there is
//! one, and runs the command — one process there, no check before.
//!
//! What a call cannot know beforehand it learns from the call failing, then makes it once more:
//! - no greeting: no berth of this version at the remembered path; [`super::install::ensure`]
//!   looks (and, with consent, copies this one there), passing over the berths that would not
//!   answer;
//! - ssh failing (255) through a connection that existed: the shared connection went bad (a
//!   master whose network is gone); it is closed and a new one opened.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use anyhow::Context as _;

use super::session::{NO_BERTH, Session};
use crate::error::{Code, fail};
use crate::output::Printer;

/// The server's berth did not greet: nothing of the command ran there.
#[derive(Debug, thiserror::Error)]
#[error("the server's berth did not answer")]
pub struct NoGreeting {
    /// What came on stdout instead (at most a few KiB), for the message.
    pub got: Vec<u8>,
}

/// Reads the server's greeting ([`super::serve::greeting`]). Lines before it (a login script
/// that prints) are passed over; a stream that ends, or runs long, without it is a
/// [`NoGreeting`].
pub fn expect_greeting(r: &mut impl BufRead) -> Result<(), NoGreeting> {
    let want = super::serve::greeting();
    let mut got = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.by_ref().take(4096).read_until(b'\n', &mut line).unwrap_or(0);
        if line == want.as_bytes() {
            return Ok(());
        }
        got.extend_from_slice(&line);
        if n == 0 || got.len() > 16 << 10 {
            return Err(NoGreeting { got });
        }
    }
}

/// A call whose server's berth greeted and did what `talk` asked of it; what it prints next
/// is the command's.
#[derive(Debug)]
pub struct Greeted {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: BufReader<ChildStdout>,
}

impl Greeted {
    /// Hands the rest of the server's stdout to ours (stdin closed, or fed from ours when
    /// `forward_stdin`) and returns ssh's exit status: the command's, or 255 when the
    /// connection broke.
    pub fn finish(self, forward_stdin: bool) -> anyhow::Result<i32> {
        let Greeted { mut child, mut stdin, mut stdout } = self;
        if forward_stdin {
            // Not joined: a terminal may never say end-of-file; the process ends without it.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut stdin);
            });
        } else {
            drop(stdin);
        }
        let mut to = crate::output::protocol_stdout();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            // A reader that went away (`| head`) ends the copy; the command goes on there.
            if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                break;
            }
        }
        drop(to);
        // Unread, ssh would block on a full pipe forever; closed, it stops with the reader.
        drop(stdout);
        let status = child.wait().context("waiting for ssh")?;
        Ok(exit_code(status))
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Calls `berth serve-on … MODE -- COMMAND` there: `talk` writes what the mode needs, reads
/// the greeting with [`expect_greeting`] (after its first write, so that nothing waits a round
/// trip), and the protocol after it. See the module's notes for when it is made again.
pub fn call<T>(
    session: &mut Session,
    out: &Printer,
    yes: bool,
    mode: &[&str],
    command: &[String],
    doing: &str,
    mut talk: impl FnMut(&mut ChildStdin, &mut BufReader<ChildStdout>) -> anyhow::Result<T>,
) -> anyhow::Result<(T, Greeted)> {
    // The berths there that did not answer (a path is asked once).
    let mut tried: Vec<String> = Vec::new();
    let mut renewed = false;
    let mut copied_once = false;
    loop {
        let through_master = session.socket.exists();
        let mut args = vec![
            "serve-on".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
            session.project_dir.clone(),
            "--server".into(),
            session.name.clone(),
        ];
        args.extend(mode.iter().map(|m| m.to_string()));
        if !command.is_empty() {
            args.push("--".into());
            args.extend(command.iter().cloned());
        }
        let mut child = session
            .berth(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the system ssh")?;
        let mut stdin = child.stdin.take().context("ssh's stdin")?;
        let mut stdout = BufReader::with_capacity(1 << 20, child.stdout.take().context("ssh's stdout")?);
        let err = match talk(&mut stdin, &mut stdout) {
            Ok(t) => return Ok((t, Greeted { child, stdin, stdout })),
            Err(e) => e,
        };
        drop(stdin);
        // Whatever is left is not the user's: the call failed before the command.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let status = exit_code(child.wait().context("waiting for ssh")?);
        let Some(no) = err.downcast_ref::<NoGreeting>() else {
            if status == 255 {
                return Err(
                    err.context(format!("the ssh connection to {} broke while {doing}", session.label))
                );
            }
            return Err(err);
        };
        if status == 255 {
            if through_master && !renewed {
                renewed = true;
                out.status(format!(
                    "the shared ssh connection to {} failed: opening a new one",
                    session.label
                ));
                session.close();
                continue;
            }
            return Err(fail(
                Code::Failure,
                format!("cannot reach {} over ssh (ssh said why above)", session.label),
                "berth runs the system ssh: check that `ssh HOST` works from this shell (keys, agent, \
                 ~/.ssh/config); BERTH_SSH can set the command line, e.g. BERTH_SSH=\"ssh -F my_config\"",
            ));
        }
        if tried.contains(&session.berth_path) {
            let said = String::from_utf8_lossy(&no.got).trim().to_string();
            return Err(fail(
                Code::Failure,
                format!(
                    "the berth at {} on {} does not answer as {} (exit {status}){}",
                    session.berth_path,
                    session.label,
                    super::install::version_line(),
                    if said.is_empty() { String::new() } else { format!("; it printed: {said}") }
                ),
                "run `berth --version` there; a login script that prints on stdout can also stand in \
                 the way (ssh HOST true should print nothing)",
            ));
        }
        if status != NO_BERTH {
            // A berth is there and would not serve: another version, or another build of this one.
            tried.push(session.berth_path.clone());
        }
        let (path, copied) = super::install::ensure(session, out, yes, &tried)?;
        if status == NO_BERTH {
            tried.push(session.berth_path.clone());
        }
        if copied && !copied_once {
            // This very binary now: asked afresh, even where an older one stood (once).
            copied_once = true;
            tried.retain(|t| *t != path);
        }
        session.remember_berth(path);
    }
}
