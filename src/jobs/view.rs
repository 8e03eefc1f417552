//! The view of a job a user reads: its record, the container's state and the diagnosis
//! (`berth jobs`, `logs`, `kill`, `status`, and `down`'s guard).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

use crate::engine::{self, Engine};
use crate::environment::Project;
use crate::error::{Code, fail};
use crate::jobs::diagnose::{Diagnosis, Ending, diagnose};
use crate::jobs::{self, JobRecord, JobState};

#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub name: String,
    pub state: JobState,
    pub exit_code: Option<i64>,
    pub started: String,
    pub finished: Option<String>,
    pub diagnosis: Option<Diagnosis>,
    pub command: Vec<String>,
    pub log: String,
}

/// The container facts a job's state and diagnosis depend on.
#[derive(Debug, Clone, Default)]
pub struct ContainerState {
    pub running: bool,
    /// StartedAt as the engine reports it (RFC 3339 with nanoseconds).
    pub started: Option<String>,
    pub memory: Option<u64>,
    pub shm: Option<u64>,
    /// The running container's command lines (the engine's `top`): a job without an exit status
    /// and without its wrapper among them is lost. `None` when not read (or not readable).
    pub processes: Option<Vec<String>>,
    /// Whether the container still sees the jobs folder through its `.berth` mount (it does not
    /// once the host folder was deleted while it ran).
    pub sees_jobs: Option<bool>,
}

impl ContainerState {
    pub fn of(c: Option<&crate::engine::Container>) -> ContainerState {
        let Some(c) = c else { return ContainerState::default() };
        ContainerState {
            running: engine::is_running(c),
            started: c.started_at.clone().filter(|s| !s.is_empty() && !s.starts_with("0001-")),
            memory: c.memory,
            shm: c.shm_size,
            processes: None,
            sees_jobs: None,
        }
    }

    /// As [`ContainerState::of`], plus what liveness needs from a running container: its
    /// processes and, when one of the project's jobs has no wrapper among them, whether it
    /// still sees the jobs folder.
    pub async fn read(
        engine: &Engine,
        project: &Project,
        c: Option<&crate::engine::Container>,
    ) -> ContainerState {
        let mut state = ContainerState::of(c);
        let Some(id) = c.map(|c| c.id.as_str()).filter(|_| state.running) else { return state };
        // Every job wrapper is a detached exec, and the engine lists an exec only while it runs:
        // with none listed, no wrapper can be running, which the inspect already proves (the
        // engine's `top` runs `ps` on the host and is most of `berth status`'s time).
        if c.is_some_and(|c| c.exec_ids.is_empty()) {
            state.processes = Some(Vec::new());
        } else if let Ok(processes) = engine.processes(id).await {
            state.processes = processes;
        }
        let Some(processes) = &state.processes else { return state };
        let unseen = jobs::list(&project.spec.project_dir).iter().any(|j| {
            j.state(state.running, state.started.as_deref()) == JobState::Running
                && !crate::jobs::wrapper::runs_in(processes, &j.meta.name)
        });
        if unseen {
            state.sees_jobs = sees(engine, id, &format!("{}/jobs", crate::plan::STATE_DIR)).await;
        }
        state
    }
}

/// Whether the container sees the folder `path` (asked inside it: the engine's own file API
/// resolves a mount's path on the host, and so misses a mount whose host folder was deleted and
/// made again). `None` when it cannot tell.
pub async fn sees(engine: &Engine, id: &str, path: &str) -> Option<bool> {
    let req = crate::engine::exec::ExecRequest {
        container: id.to_string(),
        cmd: vec!["/bin/sh".into(), "-c".into(), format!("test -d {}", crate::plan::sh_quote(path))],
        ..Default::default()
    };
    match engine.exec_capture(&req).await {
        Ok(out) if out.code == 0 => Some(true),
        Ok(out) if out.code == 1 => Some(false),
        _ => None,
    }
}

/// How long after `berth run` recorded a job its wrapper may still be on its way.
const STARTING_S: u64 = 10;

/// Why a job whose wrapper is gone left no exit status, and what to do.
fn lost(job: &JobRecord, c: &ContainerState) -> Diagnosis {
    let again = format!("run it again (`berth run --name {} -- ...`)", job.meta.name);
    if c.sees_jobs == Some(false) {
        return Diagnosis {
            kind: "lost".into(),
            cause: "the job folder was deleted: the environment no longer sees the project's .berth \
                    (removed while it ran, e.g. by `git clean -fdx`), so the job could not record its \
                    output or exit status"
                .into(),
            fix: format!("`berth stop && berth up` reconnects the folder; then {again}"),
        };
    }
    let berth_dir = job.dir.parent().and_then(|d| d.parent()).unwrap_or(&job.dir);
    let free = rustix::fs::statvfs(&job.dir).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize));
    if free.is_some_and(|f| f < 64 * 1024) {
        return Diagnosis {
            kind: "lost".into(),
            cause: format!(
                "no space left on device under {}: the job could not write its exit status",
                berth_dir.display()
            ),
            fix: format!("free space there (its log may be cut short too), then {again}"),
        };
    }
    let pid = std::fs::read_to_string(job.dir.join("pid")).unwrap_or_default();
    if pid.trim().is_empty() {
        return Diagnosis {
            kind: "lost".into(),
            cause: "the job never started: `berth run` was interrupted after recording it".into(),
            fix: again,
        };
    }
    Diagnosis {
        kind: "lost".into(),
        cause: "no process of the job is left, but it wrote no exit status (its wrapper was killed, or \
                could not write to .berth)"
            .into(),
        fix: format!("`berth logs {}` shows what it printed; {again}", job.meta.name),
    }
}

/// Whether a job the files call running has no process left (see [`lost`]).
fn is_lost(job: &JobRecord, c: &ContainerState) -> bool {
    let Some(processes) = &c.processes else { return false };
    if crate::jobs::wrapper::runs_in(processes, &job.meta.name) {
        return false;
    }
    // Recorded a moment ago and no pid yet: `berth run` may not have started the wrapper yet.
    let started_wrapper = std::fs::metadata(job.dir.join("pid")).is_ok();
    let recent =
        jobs::store::rfc3339(std::time::SystemTime::now() - std::time::Duration::from_secs(STARTING_S));
    started_wrapper || job.meta.started.as_str() < recent.as_str() || c.sees_jobs == Some(false)
}

/// The last `max` bytes of a file, as text.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

pub fn view(job: &JobRecord, c: &ContainerState) -> JobView {
    let mut state = job.state(c.running, c.started.as_deref());
    if let Some(why) = &job.untrusted {
        // Nothing in the folder is believed: not its command, times, exit code or log.
        return JobView {
            name: job.meta.name.clone(),
            state,
            exit_code: None,
            started: String::new(),
            finished: None,
            diagnosis: Some(Diagnosis {
                kind: "untrusted".into(),
                cause: format!("not trusted: {why}"),
                fix: "another user could have written this job's files; check them, then delete the folder"
                    .into(),
            }),
            command: Vec::new(),
            log: job.log_path().display().to_string(),
        };
    }
    if state == JobState::Running && is_lost(job, c) {
        state = JobState::Lost;
    }
    let log_tail = if state == JobState::Running { String::new() } else { tail(&job.log_path(), 16 * 1024) };
    let diagnosis = if state == JobState::Lost { Some(lost(job, c)) } else { None };
    let diagnosis = diagnosis.or_else(|| {
        diagnose(&Ending {
            exit_code: job.exit_code,
            oom: job.oom,
            interrupted: state == JobState::Interrupted,
            memory_limit: c.memory,
            shm_bytes: c.shm,
            log_tail: &log_tail,
        })
    });
    JobView {
        name: job.meta.name.clone(),
        state,
        exit_code: job.exit_code,
        started: job.meta.started.clone(),
        finished: job.finished.clone(),
        diagnosis,
        command: job.meta.cmd.clone(),
        log: job.log_path().display().to_string(),
    }
}

/// Every job of the project, with its container's state; a job still running whose folder was
/// deleted (see [`orphans`]) is listed too, as running, with what happened to it.
pub async fn views(project: &Project, engine: &Engine) -> anyhow::Result<(Vec<JobView>, ContainerState)> {
    let c = project.environment(engine).await?;
    let state = ContainerState::read(engine, project, c.as_ref()).await;
    let known = jobs::list(&project.spec.project_dir);
    let mut list: Vec<JobView> = known.iter().map(|j| view(j, &state)).collect();
    for name in orphans(&known, &state) {
        list.push(JobView {
            diagnosis: Some(Diagnosis {
                kind: "orphaned".into(),
                cause: "its job folder was deleted while it ran (e.g. by `git clean -fdx`): berth knows it \
                        only by its process; its log and exit status are lost"
                    .into(),
                fix: format!("`berth kill {name}` stops it; `berth stop && berth up` reconnects the folder"),
            }),
            log: jobs::store::jobs_dir(&project.spec.project_dir)
                .join(&name)
                .join("log")
                .display()
                .to_string(),
            name,
            state: JobState::Running,
            exit_code: None,
            started: String::new(),
            finished: None,
            command: Vec::new(),
        });
    }
    Ok((list, state))
}

/// The jobs running in the container (their wrappers are among its processes) that have no
/// folder: deleted while they ran (`git clean -fdx`); berth knows them only by their process.
pub fn orphans(known: &[JobRecord], state: &ContainerState) -> Vec<String> {
    crate::jobs::wrapper::names_in(state.processes.as_deref().unwrap_or_default())
        .into_iter()
        .filter(|name| !known.iter().any(|j| &j.meta.name == name))
        .collect()
}

/// Names of the jobs running in `c` now (lost ones are not), and of any job running there
/// whose folder was deleted (`git clean -fdx` while it ran): berth knows it only by its process.
pub async fn running(project: &Project, engine: &Engine, c: &crate::engine::Container) -> Vec<String> {
    let state = ContainerState::read(engine, project, Some(c)).await;
    let known = jobs::list(&project.spec.project_dir);
    let mut names: Vec<String> = known
        .iter()
        .map(|j| view(j, &state))
        .filter(|v| v.state == JobState::Running)
        .map(|v| v.name)
        .collect();
    for name in orphans(&known, &state) {
        names.push(format!("{name} (its job folder was deleted)"));
    }
    names
}

/// A job by name, or the latest one.
pub fn find(project: &Project, name: Option<&str>) -> anyhow::Result<JobRecord> {
    let list = jobs::list(&project.spec.project_dir);
    let found = match name {
        Some(n) => list.into_iter().find(|j| j.meta.name == n),
        None => list.into_iter().last(),
    };
    if let Some(why) = found.as_ref().and_then(|j| j.untrusted.as_deref()) {
        return Err(fail(
            Code::Refused,
            format!("job {} is not trusted: {why}", found.as_ref().map_or("", |j| j.meta.name.as_str())),
            "another user could have written its files (its log, exit code or pid); check them, then \
             delete the folder",
        ));
    }
    found.ok_or_else(|| match name {
        Some(n) => {
            fail(Code::BadInput, format!("no job named {n}"), "`berth jobs` lists this project's jobs")
        }
        None => fail(Code::BadInput, "this project has no jobs yet", "`berth run -- CMD` starts one"),
    })
}
