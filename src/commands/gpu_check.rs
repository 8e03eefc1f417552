//! `berth gpu-check`: prove the GPU works inside the environment: the vendor tool answers,
//! Python and torch import, torch sees the GPUs, a small matrix product runs on each, NCCL or
//! RCCL is there, and `/dev/shm` is as large as berth planned. Exit 1 when a check fails.

use super::ExitStatus;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::{self, Engine, exec::ExecRequest};
use anyhow::Context as _;

use crate::environment::{python, up};
use crate::gpu_probe::{self, Check, Status};
use crate::host::{HostFacts, Vendor};
use crate::output::table;
use crate::plan::{DOCKER_DEFAULT_SHM, GpuMode};
use crate::spec::{VendorChoice, size::format_size};

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    checks: Vec<Check>,
}

pub async fn run(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let running = matches!(project.container(&engine).await?, Some(c) if engine::is_running(&c));
    if !running {
        up::apply(ctx, &project, &engine, up::UpOptions::default()).await?;
    }
    let c = project.container(&engine).await?;
    let up::Planned { plan, host, .. } = up::plan_for(&project, &engine, c.as_ref()).await?;
    let mut checks = vec![access(&project, &plan.gpu.mode, &host)];
    let c = c.context("the environment vanished after `up`")?;
    // Python and torch as the user's own commands find them: in the activated environment.
    let env = python::session_env(&project, &engine, &c, &ctx.out).await;
    checks.push(python_check(python::which(&project, &engine, &c, &ctx.out).await?));
    let req = ExecRequest {
        container: project.container.clone(),
        cmd: vec!["/bin/sh".into(), "-c".into(), gpu_probe::script(plan.gpu.mode)],
        env,
        ..Default::default()
    };
    let out = engine.exec_capture(&req).await?;
    let (mut found, shm) = gpu_probe::parse(&out.stdout);
    checks.append(&mut found);
    checks.push(shm_check(shm, plan.shm.bytes));
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    if ctx.out.json {
        ctx.out.json(&Report { ok, checks })?;
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                let mark = match c.status {
                    Status::Pass => "✓",
                    Status::Warn => "!",
                    Status::Fail => "✗",
                    Status::Skip => "-",
                };
                vec![mark.to_string(), c.name.clone(), c.detail.clone()]
            })
            .collect();
        ctx.out.data(table(&["", "CHECK", "DETAIL"], &rows));
    }
    Ok(ExitStatus::failure_if(!ok))
}

/// Which `python` `exec` and jobs get, and which `berth shell` gets (`[python] env` chooses).
fn python_check((exec, shell): (String, String)) -> Check {
    let name = "python";
    if exec == "none" && shell == "none" {
        return Check::new(name, Status::Warn, "no python or python3 on PATH in exec, jobs or shell");
    }
    if exec == shell {
        return Check::new(name, Status::Pass, format!("exec, jobs and shell: {exec}"));
    }
    Check::new(
        name,
        Status::Warn,
        format!(
            "exec and jobs: {exec}; shell: {shell} (the login profile changed it: set [python] env in berth.toml)"
        ),
    )
}

/// Whether the environment was given a GPU at all, and if not, why.
fn access(project: &Project, mode: &GpuMode, host: &HostFacts) -> Check {
    let name = "gpu";
    match mode {
        GpuMode::Nvidia => Check::new(name, Status::Pass, "NVIDIA GPUs requested from the engine"),
        GpuMode::Amd => Check::new(name, Status::Pass, "/dev/kfd and render nodes passed in"),
        GpuMode::Wsl => Check::new(name, Status::Pass, "/dev/dxg passed in (WSL2)"),
        GpuMode::None if project.spec.gpu.vendor == VendorChoice::None => Check::new(
            name,
            Status::Fail,
            "no GPU is visible: berth.toml says `gpu.vendor = \"none\"`, so no device was requested",
        ),
        GpuMode::None => {
            let why = if host.gpus_of(Vendor::Nvidia).next().is_some() && host.nvidia_driver.is_none() {
                "an NVIDIA GPU is on the PCI bus but no NVIDIA driver is loaded on the host"
            } else {
                "no NVIDIA or AMD GPU (and no WSL2 /dev/dxg) was found on this host, so no device was requested"
            };
            Check::new(
                name,
                Status::Fail,
                format!("no GPU is visible: {why}; `berth doctor` checks the host"),
            )
        }
    }
}

fn shm_check(have: Option<u64>, planned: u64) -> Check {
    let Some(have) = have else { return Check::new("shm", Status::Warn, "could not measure /dev/shm") };
    if planned > 0 && have + (1 << 20) < planned {
        return Check::new(
            "shm",
            Status::Fail,
            format!(
                "/dev/shm is {} but berth planned {}: `berth up --recreate`",
                format_size(have),
                format_size(planned)
            ),
        );
    }
    if have <= DOCKER_DEFAULT_SHM {
        return Check::new(
            "shm",
            Status::Warn,
            format!("/dev/shm is only {}: raise `resources.shm`", format_size(have)),
        );
    }
    Check::new("shm", Status::Pass, format!("/dev/shm is {}", format_size(have)))
}
