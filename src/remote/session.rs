//! One shared ssh connection per session of commands: an OpenSSH master (`ControlMaster`)
//! whose socket lives in the user's private runtime folder (`$XDG_RUNTIME_DIR/berth`, else
//! `/tmp/berth-<uid>`, 0700) and stays `ControlPersist` minutes after the last command, so the
//! next `berth --on` costs no handshake. A master whose process is gone (killed, a laptop
//! that slept) is noticed with `ssh -O check` and replaced. The system ssh is used, with
//! `BERTH_SSH` and the user's ssh config ([`crate::ssh`]).

use std::fs::OpenOptions;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::Context as _;
use sha2::Digest;

use super::config::RemoteUrl;
use crate::error::{Code, fail};
use crate::output::Printer;
use crate::ssh::{self, sh_quote};

/// How long an idle master stays for the next command.
const PERSIST: &str = "ControlPersist=15m";

/// A server reached through the shared connection.
#[derive(Debug)]
pub struct Session {
    /// ssh and the options every call shares (control socket, port, keep-alive).
    base: Vec<String>,
    destination: String,
    /// `NAME (user@host:port)`, for messages.
    pub label: String,
    pub socket: PathBuf,
    /// The master's process id, as `ssh -O check` reported it.
    pub master_pid: u32,
    /// The project's folder there (relative paths are under the ssh user's home).
    pub project_dir: String,
    /// The server's berth of this version ([`super::install::ensure`]).
    pub berth_path: String,
}

/// The user's private folder for berth's sockets.
pub fn runtime_dir() -> anyhow::Result<PathBuf> {
    let uid = crate::host::HostUser::current().uid;
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() && d.is_dir() => d.join("berth"),
        _ => std::env::temp_dir().join(format!("berth-{uid}")),
    };
    match std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    // Someone else's folder (or a link) in its place would hand them our ssh connections.
    let meta = std::fs::symlink_metadata(&dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(fail(
            Code::Refused,
            format!("{} is not a private folder of yours (berth keeps its ssh sockets there)", dir.display()),
            format!(
                "remove it, or make it yours and 0700: chmod 700 {}",
                sh_quote(&dir.display().to_string())
            ),
        ));
    }
    Ok(dir)
}

impl Session {
    /// Reach `url` through its shared connection, opening (or replacing) the master.
    pub fn open(name: &str, url: &RemoteUrl, out: &Printer) -> anyhow::Result<Session> {
        let dir = runtime_dir()?;
        let mut base = ssh::command()?;
        // One socket per ssh command line and address: another BERTH_SSH is another connection.
        let mut key = sha2::Sha256::new();
        for part in base.iter().chain([&url.destination(), &url.port.unwrap_or(0).to_string()]) {
            key.update(part.as_bytes());
            key.update([0]);
        }
        let hex: String = key.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        let socket = dir.join(format!("ssh-{hex}"));
        base.extend(ssh::control_path(&socket));
        base.extend(
            ["-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
                .map(String::from),
        );
        if let Some(p) = url.port {
            base.extend(["-p".into(), p.to_string()]);
        }
        let label = match url.port {
            Some(p) => format!("{name} ({}:{p})", url.destination()),
            None if url.destination() == name => name.to_string(),
            None => format!("{name} ({})", url.destination()),
        };
        let mut session = Session {
            base,
            destination: url.destination(),
            label,
            socket,
            master_pid: 0,
            project_dir: String::new(),
            berth_path: "berth".into(),
        };
        // Two berths starting at once must not both start a master on one socket.
        let lock_path = session.socket.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", lock_path.display()))?;
        if let Some(pid) = session.check() {
            session.master_pid = pid;
            return Ok(session);
        }
        if session.socket.exists() {
            out.status(format!(
                "the shared ssh connection to {} was stale (its ssh is gone): opening a new one",
                session.label
            ));
            std::fs::remove_file(&session.socket)
                .with_context(|| format!("removing the stale socket {}", session.socket.display()))?;
            let _ = std::fs::remove_file(session.socket.with_extension("berth"));
        }
        session.start_master()?;
        session.master_pid = session.check().ok_or_else(|| {
            fail(
                Code::Failure,
                format!("the shared ssh connection to {} did not stay up", session.label),
                format!("see {} for what ssh said", session.socket.with_extension("log").display()),
            )
        })?;
        Ok(session)
    }

    /// The master's pid when one answers on the socket.
    fn check(&self) -> Option<u32> {
        let out = self.ssh(&["-O", "check"]).stdin(Stdio::null()).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let pid = said.split("pid=").nth(1)?.split(')').next()?.trim().parse().ok()?;
        Some(pid)
    }

    fn start_master(&self) -> anyhow::Result<()> {
        // `-f` keeps stderr open in the background master: a file, not a pipe we would wait on.
        let log_path = self.socket.with_extension("log");
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let status = self
            .ssh(&["-o", "ControlMaster=yes", "-o", PERSIST, "-N", "-f"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .with_context(|| format!("starting `{}` (the system ssh)", self.base[0]))?;
        if status.success() {
            return Ok(());
        }
        let said = std::fs::read_to_string(&log_path).unwrap_or_default();
        Err(fail(
            Code::Failure,
            format!(
                "cannot reach {} over ssh: {}",
                self.label,
                if said.trim().is_empty() { "ssh failed" } else { said.trim() }
            ),
            "berth runs the system ssh: check that `ssh HOST` works from this shell (keys, agent, \
             ~/.ssh/config); BERTH_SSH can set the command line, e.g. BERTH_SSH=\"ssh -F my_config\"",
        ))
    }

    /// `ssh <shared options> <extra> -- destination`.
    fn ssh(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(&self.base[0]);
        cmd.args(&self.base[1..]).args(extra).arg("--").arg(&self.destination);
        cmd
    }

    /// `script` run by `sh` there, through the master, without a terminal.
    pub fn command(&self, script: &str) -> Command {
        self.remote(script, false)
    }

    /// `script` there; with `tty`, on a terminal of its own (`ssh -t`: resize and Ctrl-C reach it).
    pub fn remote(&self, script: &str, tty: bool) -> Command {
        let mut cmd = self.ssh(&["-o", "ControlMaster=no", if tty { "-t" } else { "-T" }]);
        cmd.arg(format!("sh -c {}", sh_quote(script)));
        cmd
    }

    /// The server's berth with `args` (no terminal; set up stdin/stdout as needed).
    pub fn berth<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let words: Vec<String> = args.iter().map(|a| sh_quote(a.as_ref())).collect();
        self.command(&format!("exec {} {}", sh_quote(&self.berth_path), words.join(" ")))
    }

    /// Run `script` there and return its output; a failure carries what the other side said.
    pub fn run(&self, script: &str, what: &str) -> anyhow::Result<Output> {
        let out = self
            .command(script)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("starting `{}` (the system ssh)", self.base[0]))?;
        if out.status.success() {
            return Ok(out);
        }
        Err(self.failure(what, &out))
    }

    /// The error for a command there that failed.
    pub fn failure(&self, what: &str, out: &Output) -> anyhow::Error {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        match out.status.code() {
            Some(255) => fail(
                Code::Failure,
                format!(
                    "lost the ssh connection to {}: {}",
                    self.label,
                    if said.is_empty() { "ssh failed" } else { &said }
                ),
                "check that `ssh HOST` works from this shell; the next berth --on opens a new connection",
            ),
            code => fail(
                Code::Failure,
                format!("{what} on {} failed (exit {}): {said}", self.label, code.unwrap_or(-1)),
                "run the same through `ssh HOST` by hand to see more",
            ),
        }
    }

    /// Where the cached answer "which berth runs there" is kept; valid for this master only.
    pub fn berth_cache(&self) -> PathBuf {
        self.socket.with_extension("berth")
    }

    /// Close the master now (tests and `remote rm`).
    pub fn close(&self) {
        let _ = self
            .ssh(&["-O", "exit"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether `path` is private to us (0600 or less): a cache someone else could write is ignored.
pub fn private_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_file() && m.uid() == crate::host::HostUser::current().uid && m.permissions().mode() & 0o077 == 0
    })
}
