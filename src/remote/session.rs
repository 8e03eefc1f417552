//! One shared ssh connection per session of commands: an OpenSSH master whose socket lives in
//! the user's private runtime folder (`$XDG_RUNTIME_DIR/berth`, else `/tmp/berth-<uid>`, 0700)
//! and stays `ControlPersist` minutes after the last command, so the next `berth --on` costs no
//! handshake. Every call is made with `ControlMaster=auto`: the first becomes the master (ssh
//! puts it in the background), the next ones ride on it, and a socket whose master is gone (killed,
//! a laptop that slept) is replaced by ssh itself on the next call — nothing is checked before a
//! call ([`super::call`] handles a call that fails through a master gone bad). The system ssh is
//! used, with `BERTH_SSH` and the user's ssh config ([`crate::ssh`]).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::Context as _;
use sha2::Digest;

use super::config::RemoteUrl;
use crate::error::{Code, fail};
use crate::ssh::{self, sh_quote};

/// The exit status of a call that found no berth at [`Session::berth_path`].
pub const NO_BERTH: i32 = 97;

/// How long an idle master stays for the next command.
const PERSIST: &str = "ControlPersist=15m";

/// A server reached through the shared connection.
#[derive(Debug)]
pub struct Session {
    /// ssh and the options every call shares (control socket, port, keep-alive).
    base: Vec<String>,
    destination: String,
    /// The name the laptop gives the server (`--on NAME`).
    pub name: String,
    /// `NAME (user@host:port)`, for messages.
    pub label: String,
    pub socket: PathBuf,
    /// The project's folder there (relative paths are under the ssh user's home).
    pub project_dir: String,
    /// The server's berth of this version, as far as the last call knew ([`super::install`]).
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
    /// The way to `url` through its shared connection. Starts nothing: the first call opens the
    /// master (see the module's notes).
    pub fn open(name: &str, url: &RemoteUrl) -> anyhow::Result<Session> {
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
            [
                "-o",
                "ControlMaster=auto",
                "-o",
                PERSIST,
                "-o",
                "ConnectTimeout=30",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
            ]
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
            name: name.to_string(),
            label,
            socket,
            project_dir: String::new(),
            berth_path: "berth".into(),
        };
        if let Some(path) = session.remembered_berth() {
            session.berth_path = path;
        }
        Ok(session)
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
        let mut cmd = self.ssh(&[if tty { "-t" } else { "-T" }]);
        cmd.arg(format!("sh -c {}", sh_quote(script)));
        cmd
    }

    /// The server's berth (the one last known, [`Session::berth_path`]) with `args`, no
    /// terminal. When nothing is at that path it ends with [`NO_BERTH`] and says nothing.
    pub fn berth<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let words: Vec<String> = args.iter().map(|a| sh_quote(a.as_ref())).collect();
        let b = sh_quote(&self.berth_path);
        // Shell built-ins only: no process is started to look.
        let present = if self.berth_path.contains('/') {
            format!("[ -x {b} ]")
        } else {
            format!("command -v {b} >/dev/null 2>&1")
        };
        self.command(&format!("{present} || exit {NO_BERTH}\nexec {b} {}", words.join(" ")))
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

    /// Where the answer "which berth runs there" is kept between commands. It is only a first
    /// guess: every call proves it (the server's berth greets as this version, or the call is
    /// made again after looking).
    pub fn berth_cache(&self) -> PathBuf {
        self.socket.with_extension("berth")
    }

    fn remembered_berth(&self) -> Option<String> {
        let cache = self.berth_cache();
        if !private_file(&cache) {
            return None;
        }
        let text = std::fs::read_to_string(&cache).ok()?;
        // Older berths wrote `PID<TAB>PATH`.
        let path = text.trim_end().rsplit('\t').next()?.to_string();
        path.starts_with('/').then_some(path)
    }

    /// Remember `path` as the server's berth.
    pub fn remember_berth(&mut self, path: String) {
        let _ = crate::fsutil::write_atomic(&self.berth_cache(), format!("{path}\n").as_bytes(), 0o600);
        self.berth_path = path;
    }

    /// Close the master now (a master gone bad, `remote rm`).
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
