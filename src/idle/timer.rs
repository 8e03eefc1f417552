//! What `berth host configure --idle-timer` installs so that `berth idle --check` runs every few
//! minutes without a daemon of berth's own: a systemd service and timer, or, on hosts without
//! systemd, a cron.d entry.
//!
//! Both run the check as root: on a shared box only root may act for every user's environments
//! (and the check stops nothing but berth's own, labelled containers). The service is sandboxed:
//! it may read the projects (job folders, berth.toml) but write only `/var/lib/berth` and the
//! lease folder.

use std::path::{Path, PathBuf};

/// How often the check runs.
pub const EVERY_MINUTES: u32 = 5;

pub const SERVICE: &str = "berth-idle.service";
pub const TIMER: &str = "berth-idle.timer";
/// cron.d ignores file names with dots.
pub const CRON: &str = "berth-idle";

/// Which scheduler runs the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    Systemd,
    Cron,
}

impl Scheduler {
    /// systemd when it runs this host (`/run/systemd/system` exists), else cron.
    pub fn detect() -> Scheduler {
        if Path::new("/run/systemd/system").is_dir() { Scheduler::Systemd } else { Scheduler::Cron }
    }

    /// Where its files go unless told otherwise.
    pub fn default_dir(self) -> PathBuf {
        match self {
            Scheduler::Systemd => PathBuf::from("/etc/systemd/system"),
            Scheduler::Cron => PathBuf::from("/etc/cron.d"),
        }
    }

    /// What makes the scheduler take the files up.
    pub fn activate(self) -> String {
        match self {
            Scheduler::Systemd => {
                format!("sudo systemctl daemon-reload && sudo systemctl enable --now {TIMER}")
            }
            Scheduler::Cron => "nothing: cron reads /etc/cron.d by itself within a minute".into(),
        }
    }
}

/// `(file name, contents)` of every file to install, for the berth binary at `berth`.
pub fn files(scheduler: Scheduler, berth: &Path) -> Vec<(&'static str, String)> {
    let bin = berth.display();
    // The shared lease folder (root's /var/tmp): the check releases a stopped environment's leases there.
    let leases = crate::lease::DEFAULT_DIR;
    match scheduler {
        Scheduler::Systemd => vec![
            (
                SERVICE,
                format!(
                    "# Installed by `berth host configure --idle-timer`; `berth idle --check --dry-run` shows what it does.\n\
                     [Unit]\n\
                     Description=berth: stop idle environments (kept; `berth up` starts them again)\n\
                     After=docker.service\n\
                     Wants=docker.service\n\
                     \n\
                     [Service]\n\
                     Type=oneshot\n\
                     ExecStart={bin} idle --check\n\
                     StateDirectory=berth\n\
                     StateDirectoryMode=0711\n\
                     NoNewPrivileges=yes\n\
                     ProtectSystem=strict\n\
                     ProtectHome=read-only\n\
                     ReadWritePaths=-{leases}\n\
                     TimeoutStartSec=10min\n"
                ),
            ),
            (
                TIMER,
                format!(
                    "# Installed by `berth host configure --idle-timer`.\n\
                     [Unit]\n\
                     Description=berth: look for idle environments every {EVERY_MINUTES} minutes\n\
                     \n\
                     [Timer]\n\
                     OnBootSec={EVERY_MINUTES}min\n\
                     OnUnitActiveSec={EVERY_MINUTES}min\n\
                     AccuracySec=1min\n\
                     \n\
                     [Install]\n\
                     WantedBy=timers.target\n"
                ),
            ),
        ],
        Scheduler::Cron => vec![(
            CRON,
            format!(
                "# Installed by `berth host configure --idle-timer`; `berth idle --check --dry-run` shows what it does.\n\
                 SHELL=/bin/sh\n\
                 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
                 */{EVERY_MINUTES} * * * * root {bin} idle --check --quiet\n"
            ),
        )],
    }
}

/// What installing the timer did (or, in a dry run, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Installed {
    pub scheduler: &'static str,
    /// Files written (or that a dry run would write), with their contents.
    pub files: Vec<InstalledFile>,
    pub dry_run: bool,
    /// What makes the scheduler take them up.
    pub activate: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InstalledFile {
    pub path: String,
    pub contents: String,
    /// Whether it changed (false: it already said this).
    pub changed: bool,
}

/// Writes the scheduler's files into `dir` (0644, atomically), running `berth`, which must be
/// a file only root can change: root runs it every few minutes.
pub fn install(scheduler: Scheduler, dir: &Path, berth: &Path, dry_run: bool) -> anyhow::Result<Installed> {
    let berth = std::path::absolute(berth).unwrap_or_else(|_| berth.to_path_buf());
    if let Some(why) = unsafe_for_root(&berth) {
        return Err(crate::error::fail(
            crate::error::Code::Refused,
            format!("the timer would run {} as root, but {why}; nothing was installed", berth.display()),
            "install berth where only root can change it (`sudo install -m 755 \"$(command -v berth)\" \
             /usr/local/bin/berth`) and pass `--berth-path /usr/local/bin/berth`",
        ));
    }
    let mut out = Installed {
        scheduler: match scheduler {
            Scheduler::Systemd => "systemd",
            Scheduler::Cron => "cron",
        },
        files: Vec::new(),
        dry_run,
        activate: scheduler.activate(),
    };
    for (name, contents) in files(scheduler, &berth) {
        let path = dir.join(name);
        let changed = std::fs::read_to_string(&path).ok().as_deref() != Some(contents.as_str());
        if changed && !dry_run {
            crate::fsutil::write_atomic(&path, contents.as_bytes(), 0o644)
                .map_err(|e| install_error(&path, &e))?;
        }
        out.files.push(InstalledFile { path: path.display().to_string(), contents, changed });
    }
    Ok(out)
}

fn install_error(path: &Path, err: &anyhow::Error) -> anyhow::Error {
    let denied = err
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
    crate::error::fail(
        crate::error::Code::Failure,
        format!("cannot write {}: {}", path.display(), err.root_cause()),
        if denied {
            "run it as root: `sudo berth host configure --idle-timer`"
        } else {
            "check that the folder exists and has free space"
        },
    )
}

/// Why a non-root user could change `path` (it, or a folder above it, is theirs or writable by
/// others); `None` when only root can.
pub fn unsafe_for_root(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("it cannot be read ({e})"));
    match meta {
        Err(e) => return Some(e),
        Ok(m) if !m.is_file() => return Some("it is not a file".into()),
        _ => {}
    }
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    for p in real.ancestors() {
        let Ok(m) = std::fs::metadata(p) else { continue };
        if m.uid() != 0 {
            return Some(format!("{} belongs to uid {}", p.display(), m.uid()));
        }
        // Group- or world-writable, except a sticky folder like /tmp (its files are still safe)...
        let sticky = m.is_dir() && m.mode() & 0o1000 != 0;
        if m.mode() & 0o022 != 0 && !(sticky && p != real) {
            return Some(format!("{} can be changed by users other than root", p.display()));
        }
    }
    None
}
