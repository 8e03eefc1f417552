//! `berth run [--name N] [--gpus SEL] [--torchrun] -- CMD`: start a job that outlives berth.
//!
//! The job runs in a detached exec, so it survives the berth process ending, SSH dropping and
//! the terminal closing; its output and exit status go to `<project>/.berth/jobs/<name>/` on
//! the host (see `jobs::wrapper`). `--gpus` narrows the GPUs the job sees among the
//! environment's, numbered as the container numbers them (0..n-1).

use super::ExitStatus;
use anyhow::Context as _;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::{self, Engine, exec::ExecRequest};
use crate::environment::exec::workdir_for;
use crate::environment::{python, session_env, up};
use crate::error::{Code, fail};
use crate::jobs::{self, JobMeta, store::rfc3339, wrapper};
use crate::plan::GpuMode;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub name: Option<String>,
    pub gpus: Option<String>,
    pub torchrun: bool,
    pub cmd: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Started {
    name: String,
    container_id: String,
    log: String,
}

pub async fn run(ctx: &Context, opts: RunOptions) -> anyhow::Result<ExitStatus> {
    crate::environment::exec::check_command("run", &opts.cmd)?;
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    // A job's log and status live in this machine's .berth folder.
    engine.endpoint.require_local("running a job")?;
    let running = matches!(project.container(&engine).await?, Some(c) if engine::is_running(&c));
    if !running {
        up::apply(ctx, &project, &engine, up::UpOptions::default()).await?;
    }
    // Held until the job runs: a `stop` or `down` waits for it, and one that came first is seen.
    let _lock = up::lock(&project)?;
    let c = project.container(&engine).await?.context("the environment vanished after `up`")?;
    if !engine::is_running(&c) {
        return Err(fail(
            Code::Refused,
            format!(
                "{} was stopped while the job was being started; the job did not start",
                project.container
            ),
            "run it again (`berth run` starts the environment first)",
        ));
    }
    let plan = up::plan_for(&project, &engine, Some(&c)).await?.plan;
    let (gpu_env, visible) = gpu_env(plan.gpu.mode, plan.gpu.selected.len(), opts.gpus.as_deref())?;
    // Host GPUs the job will use: another user's lease on one of them refuses the job.
    let host_gpus: Vec<u32> =
        match opts.gpus.as_deref().map(str::trim).filter(|s| !s.is_empty() && *s != "all") {
            Some(sel) => sel
                .split(',')
                .filter_map(|p| p.trim().parse::<usize>().ok())
                .filter_map(|p| plan.gpu.selected.get(p).map(|g| g.index))
                .collect(),
            None => plan.gpu.selected.iter().map(|g| g.index).collect(),
        };
    crate::lease::refuse_foreign(
        &host_gpus,
        project.user.uid,
        "the job would run on a GPU another user leased",
        "ask the holder or wait for the end (`berth lease ls`); `--gpus` narrows the job to the \
         environment's other GPUs",
    )?;
    let mut cmd = opts.cmd.clone();
    if opts.torchrun {
        let nproc = visible.max(1);
        let mut t =
            vec!["torchrun".to_string(), "--standalone".to_string(), format!("--nproc_per_node={nproc}")];
        t.append(&mut cmd);
        cmd = t;
    }

    let name = match &opts.name {
        Some(n) => check_name(n)?,
        None => next_name(&project, &cmd),
    };
    let dir = jobs::jobs_dir(&project.spec.project_dir).join(&name);
    if let Some(refusal) = jobs::private::shared_group_refusal(&project.spec.user, &project.user) {
        return Err(refusal);
    }
    let sharing = jobs::private::Sharing::of(&project.spec.user, &project.user);
    // Made exclusively: of two `run --name x` at once, exactly one gets the folder. A folder
    // with nothing recorded in it is what a `berth run` killed before it recorded its job leaves
    // (none is in progress: this one holds the project lock): it does not block the name.
    let made = match jobs::private::new_job_dir(&project.spec.project_dir, &name, sharing) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && jobs::private::reclaim_unstarted(&dir) => {
            jobs::private::new_job_dir(&project.spec.project_dir, &name, sharing)
        }
        other => other,
    };
    match made {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(fail(
                Code::Refused,
                format!("a job named {name} already exists ({})", dir.display()),
                "pick another --name, or delete that folder if its log is no longer needed",
            ));
        }
        Err(e) => return Err(crate::fsutil::io_failure(&dir, "create the folder", &e)),
    }
    let container_id = c.id.clone();
    let meta = JobMeta {
        name: name.clone(),
        cmd: cmd.clone(),
        started: rfc3339(std::time::SystemTime::now()),
        gpus: opts.gpus.iter().flat_map(|g| g.split(',').map(|s| s.trim().to_string())).collect(),
        container_id: container_id.clone(),
        container_started: crate::jobs::view::ContainerState::of(Some(&c)).started,
    };
    crate::fsutil::write_atomic(
        &dir.join("meta.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
        0o600,
    )?;

    // The caller's part before anything runs inside (see `environment::exec::run_in`).
    let session = session_env(&project, &ctx.out);
    if crate::jobs::view::sees(&engine, &container_id, &wrapper::inside_dir(&name)).await == Some(false) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(fail(
            Code::Failure,
            format!(
                "{} no longer sees the project's .berth folder (it was deleted while the environment ran, \
                 e.g. by `git clean -fdx`): the job could not record its output or exit status",
                project.container
            ),
            "`berth stop && berth up` reconnects the folder; then run the job again",
        ));
    }
    // The Python environment's variables first: a `from-host` variable of the same name wins.
    let mut env = python::session_env(&project, &engine, &c, &ctx.out).await;
    env.extend(session);
    env.extend(gpu_env);
    let req = ExecRequest {
        container: container_id.clone(),
        cmd: wrapper::argv(&name, workdir_for(&project.spec, &ctx.dir).as_deref(), &cmd),
        env,
        ..Default::default()
    };
    if let Err(e) = engine.exec_detached(&req).await {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e.context(format!("starting job {name}")));
    }
    let log = dir.join("log").display().to_string();
    if ctx.out.json {
        ctx.out.json(&Started { name, container_id, log })?;
        return Ok(ExitStatus::SUCCESS);
    }
    ctx.out.status(format!("started job {name} in {}", project.container));
    ctx.out.status(format!("  follow it: berth logs {name} -f     stop it: berth kill {name}"));
    ctx.out.status(format!("  log on the host: {log}"));
    Ok(ExitStatus::SUCCESS)
}

/// The variables that narrow a job's GPUs, and how many it sees.
fn gpu_env(mode: GpuMode, count: usize, sel: Option<&str>) -> anyhow::Result<(Vec<String>, usize)> {
    let Some(sel) = sel.map(str::trim).filter(|s| !s.is_empty() && *s != "all") else {
        return Ok((Vec::new(), count));
    };
    if mode == GpuMode::None {
        return Err(fail(
            Code::BadInput,
            format!("--gpus {sel}: this environment has no GPU"),
            "set `[gpu]` in berth.toml (`berth status` shows what the environment has)",
        ));
    }
    let mut ids = Vec::new();
    for part in sel.split(',').map(str::trim) {
        let i: usize = part.parse().map_err(|_| {
            fail(
                Code::BadInput,
                format!("--gpus {sel}: `{part}` is not a GPU number"),
                "use numbers like `0,1`",
            )
        })?;
        // WSL2 does not say how many GPUs it shares; trust the user there.
        if mode != GpuMode::Wsl && i >= count {
            return Err(fail(
                Code::BadInput,
                format!(
                    "--gpus {sel}: the environment has {count} GPU(s), numbered 0 to {}",
                    count.saturating_sub(1)
                ),
                "GPUs are numbered as the container sees them; `berth status` lists them",
            ));
        }
        if !ids.contains(&i) {
            ids.push(i);
        }
    }
    let list = ids.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let vars = match mode {
        GpuMode::Amd => vec![format!("ROCR_VISIBLE_DEVICES={list}")],
        _ => vec![format!("CUDA_VISIBLE_DEVICES={list}")],
    };
    Ok((vars, ids.len()))
}

fn check_name(name: &str) -> anyhow::Result<String> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(fail(
            Code::BadInput,
            format!("`{name}` cannot be a job name"),
            "use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        ))
    }
}

/// `<command word>-<n>`: `python-3` for the third job.
fn next_name(project: &Project, cmd: &[String]) -> String {
    let word = cmd
        .iter()
        .find(|w| !w.starts_with('-') && !w.contains('='))
        .map(|w| w.rsplit('/').next().unwrap_or(w).to_string())
        .unwrap_or_else(|| "job".into());
    let word: String =
        word.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')).take(24).collect();
    let word = if word.is_empty() { "job".to_string() } else { word };
    let n = jobs::list(&project.spec.project_dir).len() + 1;
    let mut candidate = format!("{word}-{n}");
    let mut k = n;
    while jobs::jobs_dir(&project.spec.project_dir).join(&candidate).exists() {
        k += 1;
        candidate = format!("{word}-{k}");
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_narrow_with_the_vendors_variable() {
        assert_eq!(
            gpu_env(GpuMode::Nvidia, 4, Some("1,3")).ok(),
            Some((vec!["CUDA_VISIBLE_DEVICES=1,3".into()], 2))
        );
        assert_eq!(
            gpu_env(GpuMode::Amd, 2, Some("0")).ok(),
            Some((vec!["ROCR_VISIBLE_DEVICES=0".into()], 1))
        );
        assert_eq!(gpu_env(GpuMode::Nvidia, 2, None).ok(), Some((vec![], 2)));
        assert!(gpu_env(GpuMode::Nvidia, 2, Some("2")).is_err());
        assert!(gpu_env(GpuMode::None, 0, Some("0")).is_err());
        assert!(gpu_env(GpuMode::Nvidia, 2, Some("x")).is_err());
    }

    #[test]
    fn job_names_are_checked() {
        assert!(check_name("train-1").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name("-x").is_err());
    }
}
