//! Working on a GPU server from the laptop: named servers (`berth remote add|ls|rm`) and
//! `berth --on NAME <command>`, which runs berth itself on the server (so the server's GPU
//! facts are planned with), in the project's folder there, over one shared ssh connection.
//!
//! - [`config`]: the named servers in the user's config folder.
//! - [`session`]: the shared ssh connection (ControlMaster) and how berth is started there.
//! - [`call`]: one call, the laptop's side: sync and command in one ssh session, what a failed
//!   call teaches (no berth there, a connection gone bad) and the call made again.
//! - [`serve`]: the same call, the server's side (`berth serve-on`).
//! - [`install`]: finding a berth of this version on the server, or copying this one there.
//! - [`forward`]: which commands run there, and the arguments they get.
//! - [`place`]: which folder there holds the project (kept when the laptop's folder moves).
//! - [`sync`]: the project's files laptop → server, and results back (`fetch`).

pub mod call;
pub mod config;
pub mod forward;
pub mod install;
pub mod place;
pub mod serve;
pub mod session;
pub mod sync;

use std::path::{Path, PathBuf};

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

/// The way to the server `name` for the project found from `dir`, and the laptop's project
/// folder. Nothing is started yet: the first call opens the connection.
pub fn connect(dir: &Path, name: &str, out: &Printer) -> anyhow::Result<(session::Session, PathBuf)> {
    let remotes = config::Remotes::load()?;
    let url = remotes.get(name)?;
    let file = crate::spec::find(dir)?;
    let file = file.canonicalize().unwrap_or(file);
    let local = crate::spec::load_existing(&file)?;
    let mut session = session::Session::open(name, url)?;
    let fresh = project_dir(url.base.as_deref(), &local.name, &local.project_dir);
    session.project_dir = place::folder_there(&url.to_url(), fresh, &local.project_dir, name, out);
    Ok((session, local.project_dir))
}

/// Runs `args` by the server's berth in the project's folder there, the laptop's folder
/// `sync`ed first when given, in one ssh session; returns the exit status (the command's, or
/// 255 when the connection broke). With `forward_stdin` the command reads this stdin.
pub fn run(
    session: &mut session::Session,
    out: &Printer,
    yes: bool,
    sync: Option<&Path>,
    args: &[String],
    forward_stdin: bool,
) -> anyhow::Result<i32> {
    let (mode, doing): (&[&str], _) = match sync {
        Some(_) => (&["--sync"], "syncing the project"),
        None => (&[], "starting the command"),
    };
    let (report, greeted) = call::call(session, out, yes, mode, args, doing, |to, from| match sync {
        Some(local) => {
            let push = sync::push_start(local, &mut *to)?;
            call::expect_greeting(from)?;
            Ok(Some(push.finish(from)?))
        }
        None => {
            call::expect_greeting(from)?;
            Ok(None)
        }
    })?;
    if let Some(report) = report {
        say_synced(session, out, &report);
    }
    greeted.finish(forward_stdin)
}

/// Only the sync, for a command that then runs on a terminal of its own.
pub fn sync(
    session: &mut session::Session,
    out: &Printer,
    yes: bool,
    local: &Path,
) -> anyhow::Result<sync::SyncReport> {
    let (report, greeted) =
        call::call(session, out, yes, &["--sync"], &[], "syncing the project", |to, from| {
            let push = sync::push_start(local, &mut *to)?;
            call::expect_greeting(from)?;
            Ok(push.finish(from)?)
        })?;
    say_synced(session, out, &report);
    let code = greeted.finish(false)?;
    if code != 0 {
        return Err(crate::error::fail(
            crate::error::Code::Failure,
            format!("the sync to {} ended with exit {code}", session.label),
            "run it again; if it persists, run `berth --on NAME status` to see what the server says",
        ));
    }
    Ok(report)
}

/// `fetch`: `paths` (relative to `project`) from the server's copy of the project.
pub fn fetch(
    session: &mut session::Session,
    out: &Printer,
    yes: bool,
    project: &Path,
    paths: &[PathBuf],
    force: bool,
) -> anyhow::Result<sync::FetchReport> {
    let (report, greeted) = call::call(session, out, yes, &["--send"], &[], "fetching", |to, from| {
        let fetch = sync::fetch_start(project, paths, &mut *to)?;
        call::expect_greeting(from)?;
        Ok(fetch.finish(force, from)?)
    })?;
    greeted.finish(false)?;
    Ok(report)
}

fn say_synced(session: &session::Session, out: &Printer, report: &sync::SyncReport) {
    sync::warn_skipped(out, &report.files_skipped);
    let mut line = format!(
        "synced to {}: {} sent ({} bytes), {} unchanged",
        session.label,
        crate::output::count(report.files_sent, "file"),
        report.bytes_sent,
        report.unchanged
    );
    if !report.kept_on_server.is_empty() {
        line.push_str(&format!(", {} kept there (deleted or ignored here)", report.kept_on_server.len()));
    }
    out.status(line);
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
