//! `berth jobs`: the project's jobs with state, exit code and diagnosis (`--json`: an array).
//!
//! Also the shared view of a job (record + container state + diagnosis) used by `logs`,
//! `kill`, `status` and `down`.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use bollard::models::ContainerInspectResponse;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::{self, Engine};
use crate::jobs::diagnose::{Diagnosis, Ending, diagnose};
use crate::jobs::{self, JobRecord, JobState};
use crate::output::table;

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
}

impl ContainerState {
    pub fn of(c: Option<&ContainerInspectResponse>) -> ContainerState {
        let Some(c) = c else { return ContainerState::default() };
        let hc = c.host_config.as_ref();
        ContainerState {
            running: engine::is_running(c),
            started: c
                .state
                .as_ref()
                .and_then(|s| s.started_at.clone())
                .filter(|s| !s.is_empty() && !s.starts_with("0001-")),
            memory: hc.and_then(|h| h.memory).filter(|m| *m > 0).map(|m| m as u64),
            shm: hc.and_then(|h| h.shm_size).map(|s| s as u64),
        }
    }
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
    let state = job.state(c.running, c.started.as_deref());
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
    let log_tail = if state == JobState::Running { String::new() } else { tail(&job.log_path(), 16 * 1024) };
    let diagnosis = diagnose(&Ending {
        exit_code: job.exit_code,
        oom: job.oom,
        interrupted: state == JobState::Interrupted,
        memory_limit: c.memory,
        shm_bytes: c.shm,
        log_tail: &log_tail,
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

/// Every job of the project, with its container's state.
pub async fn views(project: &Project, engine: &Engine) -> anyhow::Result<(Vec<JobView>, ContainerState)> {
    let c = project.container(engine).await?;
    let state = ContainerState::of(c.as_ref());
    let list = jobs::list(&project.spec.project_dir).iter().map(|j| view(j, &state)).collect();
    Ok((list, state))
}

pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let project = Project::load_existing(ctx)?;
    let engine = Engine::connect().await?;
    let (list, _) = views(&project, &engine).await?;
    if ctx.out.json {
        return ctx.out.json(&list);
    }
    if list.is_empty() {
        ctx.out.status("no jobs yet: `berth run -- CMD` starts one");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|j| {
            vec![
                j.name.clone(),
                serde_json::to_value(j.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                j.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                j.started.clone(),
                j.finished.clone().unwrap_or_else(|| "-".into()),
                j.diagnosis.as_ref().map(|d| d.cause.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    ctx.out.data(table(&["NAME", "STATE", "EXIT", "STARTED", "FINISHED", "DIAGNOSIS"], &rows));
    Ok(())
}
