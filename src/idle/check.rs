//! One run of `berth idle --check`: for every running berth environment of the caller (root: of
//! every user), read its signals, update its record, and stop it when it has been idle for its
//! stop-after. Stopping is `docker stop`: the container and its writable layer stay, `berth up`
//! starts it again. Its GPU leases are released with it.
//!
//! Invariants: only containers berth made (`dev.berth.managed` and a plan hash) are looked at;
//! a project whose lock a berth command holds (`up`, `stop`, a job starting) is left for the next
//! run; the signals are read again just before the stop, so a session or job that began since is
//! not cut off; a dry run writes and stops nothing.

use std::path::Path;

use serde::Serialize;

use super::signals::{self, GpuUse};
use super::{HostIdle, Policy, Record, Verdict, decide, record};
use crate::engine::{self, Engine};
use crate::host::HostRoot;
use crate::plan::{LABEL_NAME, LABEL_OWNER, LABEL_OWNER_UID, LABEL_PROJECT};

/// What one check did for one environment.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub environment: String,
    pub owner: String,
    pub project: String,
    pub container: String,
    /// `stop-after` in words, with where it came from.
    pub policy: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// `stopped`, `would-stop` (dry run), `kept`, `skipped`.
    pub action: String,
    /// Why it was skipped or not stopped, when it was not plainly busy or idle.
    pub note: Option<String>,
    /// The GPU leases released with the stop (`GPUs 0,2 (alice)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub released_leases: Vec<String>,
}

/// The whole run, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub now: u64,
    pub dry_run: bool,
    /// Whose environments were looked at: one user name, or `all users` (root).
    pub scope: String,
    pub environments: Vec<Checked>,
}

pub async fn run(engine: &Engine, root: &HostRoot, dry_run: bool) -> anyhow::Result<Report> {
    let now = super::now();
    let host = HostIdle::load(root).map_err(|e| {
        crate::error::fail(
            crate::error::Code::BadInput,
            format!("{e}; nothing was stopped"),
            format!("fix {} (see `berth idle --help`), or remove it", super::policy::HOST_FILE),
        )
    })?;
    let me = crate::host::HostUser::current();
    let all_users = me.uid == 0;
    let listed = engine.list_berth(if all_users { None } else { Some(me.uid) }).await?;
    let dir = record::own_dir();
    let mut gpus: Option<GpuUse> = None;
    let mut report = Report {
        now,
        dry_run,
        scope: if all_users { "all users".into() } else { me.name.clone() },
        environments: Vec::new(),
    };
    for l in &listed {
        if l.state != "running" {
            continue;
        }
        let Some(c) = engine.inspect(&l.id).await? else { continue };
        if !c.is_running() {
            continue;
        }
        let project = engine::label(&c, LABEL_PROJECT).unwrap_or_default().to_string();
        let owner_uid = engine::label(&c, LABEL_OWNER_UID).and_then(|u| u.parse::<u32>().ok());
        let (spec, note) = idle_spec(&project, if all_users { owner_uid.or(Some(u32::MAX)) } else { None });
        let policy = Policy::of(spec.as_ref(), &host);
        let mut checked = Checked {
            environment: engine::label(&c, LABEL_NAME).unwrap_or(&c.name).to_string(),
            owner: engine::label(&c, LABEL_OWNER).unwrap_or_default().to_string(),
            project: project.clone(),
            container: c.name.clone(),
            policy: policy.words(),
            verdict: Verdict::NoPolicy,
            action: "kept".into(),
            note,
            released_leases: Vec::new(),
        };
        if policy.stop_after.is_none() {
            report.environments.push(checked);
            continue;
        }
        let mut found = signals::in_container(engine, &c.id, &c.exec_ids).await?;
        let gpu = gpus.get_or_insert_with(|| signals::read_gpus(root, policy.gpu_utilization));
        found.extend(gpu.of(&c.id));
        // A record of a stop the container has been started again since (`berth up`) counts
        // for nothing: idleness is counted afresh from this check.
        let previous = record::read(&dir, &c.id).filter(|r| r.stopped.is_none());
        let started = c.started_at.as_deref().and_then(super::parse_rfc3339);
        checked.verdict = decide(&policy, previous.as_ref(), &found, started, now);
        let mut rec = Record {
            container: c.id.clone(),
            environment: checked.environment.clone(),
            first_seen: previous.as_ref().map_or(now, |r| r.first_seen.min(now)),
            last_busy: if found.is_empty() { previous.as_ref().and_then(|r| r.last_busy) } else { Some(now) },
            checked: now,
            signals: found.iter().map(super::Signal::words).collect(),
            stop_after: policy.stop_after,
            stops_at: match &checked.verdict {
                Verdict::Idle { stops_at, .. } => Some(*stops_at),
                Verdict::Stop { .. } => Some(now),
                _ => None,
            },
            stopped: None,
        };
        if matches!(checked.verdict, Verdict::Stop { .. }) {
            if dry_run {
                checked.action = "would-stop".into();
            } else {
                match stop(engine, &c, &project).await? {
                    Ok(released) => {
                        checked.action = "stopped".into();
                        match released {
                            Ok(list) => checked.released_leases = list,
                            Err(why) => checked.note = Some(why),
                        }
                        rec.stopped = Some(now);
                        rec.stops_at = None;
                    }
                    Err(why) => {
                        checked.action = "skipped".into();
                        checked.note = Some(why);
                    }
                }
            }
        }
        if !dry_run {
            let owner = if all_users {
                engine::label(&c, LABEL_OWNER_UID).and_then(|u| u.parse::<u32>().ok()).map(|u| (u, 0))
            } else {
                None
            };
            record::write(&dir, &rec, owner)?;
        }
        report.environments.push(checked);
    }
    if !dry_run {
        let alive: Vec<String> = listed.iter().map(|l| l.id.clone()).collect();
        record::prune(&dir, &alive);
    }
    Ok(report)
}

/// The environment's `[idle]`, read from its berth.toml now (an edit applies at the next check);
/// none, with a note, when the file cannot be read: the host's default applies then. The error
/// itself is not repeated: run by root, it could quote a file its owner may not read. Run by
/// root, only a file of the environment's owner (`owner`) counts.
fn idle_spec(project: &str, owner: Option<u32>) -> (Option<crate::spec::IdleSpec>, Option<String>) {
    let file = Path::new(project).join(crate::spec::FILE_NAME);
    let text = read_project_file(&file, owner);
    match text.as_deref().map(|t| crate::spec::parse_portable(t, &file)) {
        Ok(Ok(spec)) => (Some(spec.idle), None),
        Ok(Err(_)) => (None, Some(format!("{} cannot be read; the host's default applies", file.display()))),
        Err(why) => (None, Some(format!("{} {why}; the host's default applies", file.display()))),
    }
}

/// The largest berth.toml the check reads.
const MAX_PROJECT_FILE: u64 = 1 << 20;

/// A project file a user controls, read by a check that may run as root: a plain file (a link
/// is followed, a FIFO or device is not read, and opening never waits), at most
/// [`MAX_PROJECT_FILE`] bytes, and, when `owner` is given, owned by that uid. Regression: a
/// berth.toml made a FIFO hung root's check for every user, a link to /dev/zero made it read
/// without end, a link to a root-only file had root parse it for the user.
pub fn read_project_file(file: &Path, owner: Option<u32>) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(file)
        .map_err(|e| format!("cannot be opened ({})", e.kind()))?;
    let meta = f.metadata().map_err(|e| format!("cannot be read ({})", e.kind()))?;
    if !meta.is_file() {
        return Err("is not a plain file".into());
    }
    if meta.len() > MAX_PROJECT_FILE {
        return Err(format!("is over {} bytes", MAX_PROJECT_FILE));
    }
    if let Some(uid) = owner
        && meta.uid() != uid
    {
        return Err("does not belong to the environment's owner".into());
    }
    let mut text = String::new();
    f.take(MAX_PROJECT_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot be read ({})", e.kind()))?;
    Ok(text)
}

/// What a stop released: the leases, or why they could not be (the stop itself stands).
type Released = Result<Vec<String>, String>;

/// Stops `c` unless a berth command holds its project or it became busy since it was read, then
/// releases its GPU leases. `Ok(Err(why))`: left running.
async fn stop(
    engine: &Engine,
    c: &engine::Container,
    project: &str,
) -> anyhow::Result<Result<Released, String>> {
    let _lock = match hold_lock(Path::new(project)) {
        Ok(lock) => lock,
        Err(why) => return Ok(Err(why)),
    };
    let Some(now) = engine.inspect(&c.id).await? else { return Ok(Err("it was removed meanwhile".into())) };
    if !now.is_running() {
        return Ok(Err("it was stopped meanwhile".into()));
    }
    let busy = signals::in_container(engine, &now.id, &now.exec_ids).await?;
    if let Some(s) = busy.first() {
        return Ok(Err(format!("it became busy just now: {}", s.words())));
    }
    engine.stop(&c.id, 10).await?;
    Ok(Ok(release_gpu_leases(c)))
}

/// The project's lock (`state::lock`), taken without waiting, so that no job starts while the
/// environment stops. Opened read-only and never created or followed through a link: root runs
/// this in other users' folders. No lock file: no berth command ever held it.
fn hold_lock(project: &Path) -> Result<Option<std::fs::File>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = crate::state::lock(project);
    // Nor waited on: a FIFO in its place would hold the check for everyone.
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(flags).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("{} is not a plain file; the next check decides", path.display()));
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(_) => Err("a berth command (up, stop, run) is working on it; the next check decides".into()),
    }
}

/// Releases the GPU leases recorded for the stopped environment (`crate::lease`): the caller's,
/// or, run by root, its owner's (never another user's lease that merely names it).
fn release_gpu_leases(c: &engine::Container) -> Released {
    let owner = engine::label(c, LABEL_OWNER_UID).and_then(|u| u.parse::<u32>().ok());
    match crate::lease::release_for_environment(&c.name, owner) {
        Ok(list) => Ok(list
            .iter()
            .map(|l| {
                let gpus: Vec<String> = l.record.gpus.iter().map(u32::to_string).collect();
                format!("GPUs {} ({})", gpus.join(","), l.holder)
            })
            .collect()),
        Err(e) => Err(format!("its GPU leases could not be released: {e:#}; `berth lease release` does it")),
    }
}
