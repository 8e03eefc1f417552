//! Working on a GPU server from the laptop: named servers (`berth remote add|ls|rm`) and
//! `berth --on NAME <command>`, which runs berth itself on the server (so the server's GPU
//! facts are planned with), in the project's folder there, over one shared ssh connection.
//!
//! - [`config`]: the named servers in the user's config folder.
//! - [`session`]: the shared ssh connection (ControlMaster), a stale one replaced, and running
//!   the server's berth with the laptop's arguments.
//! - [`install`]: finding a berth of this version on the server, or copying this one there.
//! - [`forward`]: which commands run there, and the arguments they get.

pub mod config;
pub mod forward;
pub mod install;
pub mod session;
pub mod sync;

use std::path::Path;
use std::process::Stdio;

use anyhow::Context as _;
use sha2::Digest;

use crate::output::Printer;

/// Where the project at `local` (named `name`) lives on the server: `<base>/<name>-<8 hex of
/// the laptop path>`, `base` defaulting to `~/berth`. Returned relative to the ssh user's home
/// when under it (ssh starts commands there), so it needs no expansion.
pub fn project_dir(base: Option<&str>, name: &str, local: &Path) -> String {
    let hash = sha2::Sha256::digest(local.as_os_str().as_encoded_bytes());
    let hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let leaf = format!("{name}-{hex}");
    match base {
        None => format!("berth/{leaf}"),
        Some(b) => match b.strip_prefix("~/") {
            Some(rest) => format!("{}/{leaf}", rest.trim_end_matches('/')),
            None => format!("{}/{leaf}", b.trim_end_matches('/')),
        },
    }
}

/// The session for the project found from `dir` on the server `name`: the shared connection
/// open, the server's berth found (or copied, see [`install::ensure`]) and the project's folder
/// there named. Also returns the laptop's project folder.
pub fn connect(
    dir: &Path,
    name: &str,
    yes: bool,
    out: &Printer,
) -> anyhow::Result<(session::Session, std::path::PathBuf)> {
    let remotes = config::Remotes::load()?;
    let url = remotes.get(name)?;
    let file = crate::spec::find(dir)?;
    let file = file.canonicalize().unwrap_or(file);
    let local = crate::spec::load_existing(&file)?;
    let mut session = session::Session::open(name, url, out)?;
    session.berth_path = install::ensure(&session, out, yes)?;
    session.project_dir = project_dir(url.base.as_deref(), &local.name, &local.project_dir);
    Ok((session, local.project_dir))
}

/// Bring the server's copy of the project at `local` up to date (`dir` there), over the
/// shared connection: the server's berth receives ([`sync`]).
pub fn sync(session: &session::Session, local: &Path, out: &Printer) -> anyhow::Result<sync::SyncReport> {
    let mut child = session
        .berth(&["sync-receive", &session.project_dir])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the system ssh")?;
    let to_server = child.stdin.take().context("ssh's stdin")?;
    let from_server = child.stdout.take().context("ssh's stdout")?;
    let pushed = sync::push(local, to_server, from_server);
    let status = child.wait().context("waiting for ssh")?;
    let report = match pushed {
        Ok(report) => report,
        Err(e) if status.code() == Some(255) => {
            return Err(anyhow::Error::new(e).context(format!(
                "the ssh connection to {} broke while syncing the project",
                session.label
            )));
        }
        Err(e) => return Err(e.into()),
    };
    sync::warn_skipped(out, &report.files_skipped);
    out.status(format!(
        "synced to {}: {} sent ({} bytes), {} unchanged",
        session.label,
        crate::output::count(report.files_sent, "file"),
        report.bytes_sent,
        report.unchanged
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_two_laptop_folders_two_server_folders() {
        let a = project_dir(None, "demo", Path::new("/home/me/a/demo"));
        let b = project_dir(None, "demo", Path::new("/home/me/b/demo"));
        assert!(a.starts_with("berth/demo-") && a.len() == "berth/demo-".len() + 8, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, project_dir(None, "demo", Path::new("/home/me/a/demo")));
        let s = project_dir(Some("/scratch/me"), "demo", Path::new("/x"));
        assert!(s.starts_with("/scratch/me/demo-"), "{s}");
        let h = project_dir(Some("~/work"), "demo", Path::new("/x"));
        assert!(h.starts_with("work/demo-"), "{h}");
    }
}
