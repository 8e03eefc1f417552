//! `berth kill N`: stop a job: SIGTERM to its process group, SIGKILL after a grace period.

use super::ExitStatus;
use std::time::{Duration, Instant};

use super::{Context, Project};
use crate::engine::Engine;
use crate::engine::exec::ExecRequest;
use crate::error::{Code, fail};
use crate::jobs::view::find;
use crate::jobs::view::{ContainerState, orphans, view};
use crate::jobs::{self, JobState, wrapper};

pub async fn run(ctx: &Context, name: &str, grace: u64) -> anyhow::Result<ExitStatus> {
    let (project, engine) = Project::existing(ctx).await?;
    let found = find(&project, Some(name));
    let c = project.environment(&engine).await?;
    let state = ContainerState::read(&engine, &project, c.as_ref()).await;
    let job = match found {
        Ok(job) => job,
        Err(e) => {
            let id = c.as_ref().map(|c| c.id.clone());
            return match id {
                Some(id)
                    if orphans(&jobs::list(&project.spec.project_dir), &state).iter().any(|n| n == name) =>
                {
                    kill_orphan(ctx, &engine, &id, name, grace).await.map(|()| ExitStatus::SUCCESS)
                }
                _ => Err(e),
            };
        }
    };
    let v = view(&job, &state);
    if v.state == JobState::Lost {
        // Its wrapper is gone; whatever it may have left behind (the process group its pid file
        // names) is sent SIGKILL.
        if let Some(id) = c.as_ref().map(|c| c.id.clone()) {
            let req =
                ExecRequest { container: id, cmd: wrapper::signal_argv(name, "KILL"), ..Default::default() };
            let _ = engine.exec_capture(&req).await;
        }
        let why = v.diagnosis.map(|d| d.cause).unwrap_or_default();
        ctx.out.status(format!("job {name} was lost ({why}); no process of it is left"));
        return Ok(ExitStatus::SUCCESS);
    }
    if v.state != JobState::Running {
        return Err(fail(
            Code::BadInput,
            format!(
                "job {name} is not running (it is {})",
                serde_json::to_value(v.state)?.as_str().unwrap_or("")
            ),
            "`berth jobs` shows each job's state",
        ));
    }
    let container = c.map(|c| c.id).unwrap_or_else(|| project.container.clone());
    let send = |signal: &'static str| {
        let req = ExecRequest {
            container: container.clone(),
            cmd: wrapper::signal_argv(name, signal),
            ..Default::default()
        };
        let engine = &engine;
        async move { engine.exec_capture(&req).await }
    };
    let sent = send("TERM").await?;
    if sent.code == 3 {
        return Err(fail(
            Code::Failure,
            format!("job {name} has no pid file yet (it may be starting, or its wrapper could not write it)"),
            "try again in a moment; `berth logs` shows what it printed",
        ));
    }
    if let Some(code) = ended(&project, name, Duration::from_secs(grace)).await {
        ctx.out.status(format!("job {name} stopped (exit {code})"));
        return Ok(ExitStatus::SUCCESS);
    }
    ctx.out.status(format!("job {name} ignored SIGTERM for {grace}s; sending SIGKILL"));
    send("KILL").await?;
    match ended(&project, name, Duration::from_secs(5)).await {
        Some(code) => ctx.out.status(format!("job {name} killed (exit {code})")),
        None => ctx.out.warn(format!("job {name} did not report an exit after SIGKILL")),
    }
    Ok(ExitStatus::SUCCESS)
}

/// Stop a job whose folder was deleted while it ran: it has no pid file or exit status, so it
/// is found, signalled and waited for by its wrapper's process.
async fn kill_orphan(ctx: &Context, engine: &Engine, id: &str, name: &str, grace: u64) -> anyhow::Result<()> {
    for (signal, wait) in [("TERM", grace), ("KILL", 5)] {
        let req = ExecRequest {
            container: id.to_string(),
            cmd: wrapper::signal_orphan_argv(name, signal),
            ..Default::default()
        };
        engine.exec_capture(&req).await?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(wait) {
            if !orphan_runs(engine, id, name).await {
                ctx.out.status(format!(
                    "job {name} stopped (SIG{signal}); its folder was deleted while it ran, so its log and exit \
                     status are lost"
                ));
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if signal == "TERM" {
            ctx.out.status(format!("job {name} ignored SIGTERM for {grace}s; sending SIGKILL"));
        }
    }
    ctx.out.warn(format!("job {name} is still running after SIGKILL"));
    Ok(())
}

/// Whether the wrapper of the folderless job `name` still runs in container `id`.
async fn orphan_runs(engine: &Engine, id: &str, name: &str) -> bool {
    let req = ExecRequest {
        container: id.to_string(),
        cmd: wrapper::signal_orphan_argv(name, "0"),
        ..Default::default()
    };
    !matches!(engine.exec_capture(&req).await, Ok(out) if out.code == 3)
}

/// Wait up to `deadline` for the job's exit status.
async fn ended(project: &Project, name: &str, deadline: Duration) -> Option<i64> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        let done = jobs::list(&project.spec.project_dir)
            .into_iter()
            .find(|j| j.meta.name == name)
            .and_then(|j| j.exit_code);
        if done.is_some() {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
