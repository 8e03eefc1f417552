//! `berth up`: make the environment exist and run, exactly as the file says.
//!
//! Create it, or start the stopped one, or do nothing when the running container matches the
//! plan (compared by the config hash in its labels, without touching the engine further). When
//! the file changed in a way the container cannot follow, say what differs and require
//! `--recreate`, which keeps `down`'s guard. Concurrent `up`s of one project serialise on a
//! lock in `.berth/`, and the engine's unique names make a second container impossible.

use std::fs::File;
use std::net::TcpListener;

use anyhow::Context as _;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::facts::EngineFacts;
use crate::engine::{self, Endpoint, Engine, create, exec::ExecRequest};
use crate::error::{Code, Hint, fail};
use crate::host::{HostFacts, Vendor};
use crate::image;
use crate::plan::{self, BusyGpus, ContainerPlan, GpuMode, LABEL_HASH, LABEL_PLAN, drift};
use crate::spec::{DeviceSelection, VendorChoice, size::format_size};

#[derive(Debug, Clone, Copy, Default)]
pub struct UpOptions {
    pub recreate: bool,
    pub force: bool,
    pub no_start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Recreated,
    Started,
    Running,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpResult {
    pub name: String,
    pub container_id: String,
    pub action: Action,
    pub state: String,
}

pub async fn run(ctx: &Context, opts: UpOptions) -> anyhow::Result<()> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let result = apply(ctx, &project, &engine, opts).await?;
    if ctx.out.json {
        ctx.out.json(&result)?;
    }
    Ok(())
}

/// A plan with what it was computed from.
#[derive(Debug)]
pub struct Planned {
    pub plan: ContainerPlan,
    pub host: HostFacts,
    pub image: image::Resolved,
}

/// Compute this project's plan against the engine as it is now.
pub async fn plan_for(
    project: &Project,
    engine: &Engine,
    existing: Option<&ContainerInspectResponse>,
) -> anyhow::Result<Planned> {
    let spec = &project.spec;
    let host = project.host_facts();
    let resolved = image::resolve(spec, &host)?;
    // Engine facts only change NVIDIA plans (CDI); skipping /info keeps a no-op `up` fast.
    let wants_nvidia = spec.gpu.vendor == VendorChoice::Nvidia
        || (spec.gpu.vendor == VendorChoice::Auto && host.gpus_of(Vendor::Nvidia).next().is_some());
    // The engine's process (no API call) tells Podman apart and the limits it can apply.
    let facts = if wants_nvidia {
        engine.facts().await?
    } else {
        EngineFacts { process: engine::kind::probe(&engine.endpoint), ..Default::default() }
    };
    let busy =
        if matches!(spec.gpu.devices, DeviceSelection::Count(_)) && spec.gpu.vendor != VendorChoice::None {
            engine.busy_gpus(existing.and_then(|c| c.id.as_deref())).await?
        } else {
            BusyGpus::new()
        };
    let prefer = existing.map(held_gpus).unwrap_or_default();
    let inputs = plan::Inputs {
        host: &host,
        engine: &facts,
        user: &project.user,
        busy: &busy,
        prefer: &prefer,
        image: &resolved.image,
    };
    let plan = plan::plan(spec, &inputs).map_err(|e| {
        anyhow::Error::new(
            Hint::new(Code::BadInput, format!("{}: {e}", spec.file.display())).with_hint(e.hint()),
        )
    })?;
    Ok(Planned { plan, host, image: resolved })
}

/// GPU ids the container holds (from its device requests and devices).
fn held_gpus(c: &ContainerInspectResponse) -> Vec<String> {
    let Some(hc) = &c.host_config else { return Vec::new() };
    let mut ids: Vec<String> = hc
        .device_requests
        .iter()
        .flatten()
        .flat_map(|r| r.device_ids.clone().unwrap_or_default())
        .map(|d| d.rsplit('=').next().unwrap_or(&d).to_string())
        .collect();
    ids.extend(hc.devices.iter().flatten().filter_map(|d| d.path_on_host.clone()));
    ids
}

/// Bring the environment up; prints what it did.
pub async fn apply(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    opts: UpOptions,
) -> anyhow::Result<UpResult> {
    let existing = project.container(engine).await?;
    let planned = plan_for(project, engine, existing.as_ref()).await?;
    let plan = &planned.plan;
    for note in &plan.gpu.notes {
        ctx.out.warn(note);
    }
    if let Some(c) = &existing
        && engine::is_running(c)
        && matches(c, &planned, &project.spec.project_dir)
    {
        ctx.out.status(format!("{} is running ({})", project.container, Project::short_id(c)));
        return Ok(result(project, c, Action::Running));
    }

    // From here on berth changes things: one `up` per project at a time.
    let _lock = lock(project)?;
    let existing = project.container(engine).await?;
    if let Some(c) = &existing {
        settle(ctx, project, engine, c).await?;
    }
    let existing = project.container(engine).await?;
    match existing {
        Some(c) if matches(&c, &planned, &project.spec.project_dir) => {
            if engine::is_running(&c) {
                ctx.out.status(format!("{} is running ({})", project.container, Project::short_id(&c)));
                return Ok(result(project, &c, Action::Running));
            }
            if opts.no_start {
                ctx.out.status(format!("{} exists and is stopped (--no-start)", project.container));
                return Ok(result(project, &c, Action::Running));
            }
            let id = c.id.clone().unwrap_or_default();
            start(ctx, engine, plan, &id).await?;
            ctx.out.status(format!("started {} ({})", project.container, Project::short_id(&c)));
            let c = engine.inspect(&id).await?.unwrap_or(c);
            Ok(result(project, &c, Action::Started))
        }
        Some(c) => {
            let old = engine::label(&c, LABEL_PLAN).and_then(drift::Summary::from_label).unwrap_or_default();
            let differences = drift::differences(&old, &drift::Summary::of(plan));
            if !opts.recreate {
                let mut message =
                    format!("{} no longer matches {}:", project.container, project.spec.file.display());
                for d in &differences {
                    message.push_str(&format!("\n    {d}"));
                }
                return Err(fail(
                    Code::Refused,
                    message,
                    "run `berth up --recreate` to replace the container (files changed inside it \
                     block that unless --force is given; mounted folders are kept)",
                ));
            }
            engine.endpoint.require_local("recreating an environment")?;
            super::down::guard(project, engine, &c, opts.force).await?;
            let id = c.id.clone().unwrap_or_default();
            engine.remove(&id).await?;
            let c = create_and_start(ctx, project, engine, &planned, opts).await?;
            ctx.out.status(format!("recreated {} ({})", project.container, Project::short_id(&c)));
            Ok(result(project, &c, Action::Recreated))
        }
        None => {
            let c = create_and_start(ctx, project, engine, &planned, opts).await?;
            ctx.out.status(format!("created {} ({})", project.container, Project::short_id(&c)));
            Ok(result(project, &c, Action::Created))
        }
    }
}

/// A paused container is resumed; one the engine keeps restarting is explained, not reused.
async fn settle(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    c: &ContainerInspectResponse,
) -> anyhow::Result<()> {
    let id = c.id.as_deref().unwrap_or(&project.container);
    match engine::status(c).as_str() {
        "paused" => {
            engine.docker.unpause_container(id).await.map_err(|e| engine::explain(e, &engine.endpoint))?;
            ctx.out.status(format!("resumed the paused {}", project.container));
            Ok(())
        }
        "restarting" => {
            let st = c.state.as_ref();
            let code = st.and_then(|s| s.exit_code).unwrap_or(0);
            let oom = st.and_then(|s| s.oom_killed).unwrap_or(false);
            Err(fail(
                Code::Failure,
                format!(
                    "{} keeps restarting (its main process last exited with {code}{})",
                    project.container,
                    if oom { ", killed for lack of memory" } else { "" }
                ),
                "see `docker logs` for it, then `berth down` (its changes are listed first) and `berth up`",
            ))
        }
        "dead" | "removing" => Err(fail(
            Code::Failure,
            format!("{} is being removed or is dead", project.container),
            "wait a moment, or remove it with `berth down --force`, then `berth up`",
        )),
        _ => Ok(()),
    }
}

/// Whether the container is what the plan asks for: the same config hash, or the container a
/// `berth commit` was made from (it already holds what the committed image does).
pub fn matches(c: &ContainerInspectResponse, planned: &Planned, project_dir: &std::path::Path) -> bool {
    if engine::label(c, LABEL_HASH) == Some(planned.plan.config_hash.as_str()) {
        return true;
    }
    if !planned.image.committed {
        return false;
    }
    let Some(rec) = image::read_commit(project_dir) else { return false };
    if rec.container.is_none() || rec.container != c.id {
        return false;
    }
    let Some(old) = engine::label(c, LABEL_PLAN).and_then(drift::Summary::from_label) else { return false };
    let mut now = drift::Summary::of(&planned.plan);
    now.image = old.image.clone();
    now == old
}

fn result(project: &Project, c: &ContainerInspectResponse, action: Action) -> UpResult {
    UpResult {
        name: project.spec.name.clone(),
        container_id: c.id.clone().unwrap_or_default(),
        action,
        state: c.state.as_ref().and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// Take the project's `up` lock (released when the file closes).
fn lock(project: &Project) -> anyhow::Result<File> {
    let dir = project.spec.project_dir.join(".berth");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        // Job logs and state are machine-local: keep them out of the user's repository.
        let _ = std::fs::write(&ignore, "*\n");
    }
    let path = dir.join("lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    file.lock().with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

async fn create_and_start(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    planned: &Planned,
    opts: UpOptions,
) -> anyhow::Result<ContainerInspectResponse> {
    engine.endpoint.require_local("creating an environment")?;
    let plan = &planned.plan;
    super::build::ensure(ctx, project, engine, &planned.image).await?;
    // Before anything is created: does the image fit this host's GPU stack?
    let env = engine.image_env(&plan.image).await?;
    image::compat::check_driver(&plan.image, &env, &plan.gpu, &planned.host)?;
    let user_env: Vec<String> = project.spec.env.iter().map(|v| v.key.clone()).collect();
    for w in image::compat::amd_warnings(&plan.image, &env, &plan.gpu, &planned.host, &user_env) {
        ctx.out.warn(w);
    }
    for m in plan.mounts.iter().filter(|m| m.create) {
        std::fs::create_dir_all(&m.source)
            .with_context(|| format!("creating the mount source {}", m.source.display()))?;
    }
    let ports = pick_ports(plan, &engine.endpoint)?;
    let body = create::create_body(plan, &ports);
    let opts_create = CreateContainerOptionsBuilder::default().name(&plan.name).build();
    let id = match engine.docker.create_container(Some(opts_create), body).await {
        Ok(r) => r.id,
        // Lost a race with another berth (or a foreign container took the name): look again.
        Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => {
            let c = project.container(engine).await?.context("the container vanished while being created")?;
            c.id.unwrap_or_default()
        }
        Err(e) => return Err(create_failed(engine, plan, e)),
    };
    describe(ctx, plan);
    if !opts.no_start {
        start(ctx, engine, plan, &id).await?;
    }
    engine.inspect(&id).await?.context("the new container vanished")
}

fn describe(ctx: &Context, plan: &ContainerPlan) {
    let gpus = match plan.gpu.mode {
        GpuMode::None => "no GPU".to_string(),
        GpuMode::Wsl => "GPUs through WSL2".to_string(),
        mode => {
            let v = if mode == GpuMode::Nvidia { "NVIDIA" } else { "AMD" };
            let idx: Vec<String> = plan.gpu.selected.iter().map(|g| g.index.to_string()).collect();
            format!("{v} GPU {}", idx.join(", "))
        }
    };
    let shm = if plan.shm.bytes > 0 { format_size(plan.shm.bytes) } else { "host".into() };
    ctx.out.status(format!("  image {}, {gpus}, shm {shm}, user {}", plan.image, plan.user.user));
}

async fn start(ctx: &Context, engine: &Engine, plan: &ContainerPlan, id: &str) -> anyhow::Result<()> {
    if let Err(e) = engine.start(id).await {
        return Err(start_failed(plan, e));
    }
    if let Some(acct) = &plan.user.account {
        let req = ExecRequest {
            container: id.to_string(),
            cmd: vec!["/bin/sh".into(), "-c".into(), plan::setup_script(acct)],
            user: Some("0:0".into()),
            ..Default::default()
        };
        match engine.exec_capture(&req).await {
            Ok(out) if out.code == 0 => {}
            Ok(out) => ctx.out.warn(format!(
                "could not give {} a home inside (exit {}): {}",
                acct.name,
                out.code,
                out.stderr.trim()
            )),
            Err(e) => ctx.out.warn(format!("could not give {} a home inside: {e:#}", acct.name)),
        }
    }
    Ok(())
}

/// Host ports for `ports` entries that left the choice to berth: a free one on the bind
/// address, when the engine runs on this machine; otherwise the engine picks.
fn pick_ports(plan: &ContainerPlan, endpoint: &Endpoint) -> anyhow::Result<Vec<Option<u16>>> {
    let local = matches!(endpoint, Endpoint::Unix(_));
    plan.ports
        .iter()
        .map(|p| {
            if p.host_port.is_some() || !local || p.protocol != "tcp" {
                return Ok(None);
            }
            let listener = TcpListener::bind((p.host_ip.as_str(), 0))
                .with_context(|| format!("finding a free port on {}", p.host_ip))?;
            Ok(Some(listener.local_addr()?.port()))
        })
        .collect()
}

fn create_failed(engine: &Engine, plan: &ContainerPlan, e: BollardError) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("No such image") {
        return fail(
            Code::Failure,
            format!("the image {} is not on this engine", plan.image),
            "pull or load it (`docker pull`, `docker load -i FILE`), or change `[image] base`",
        );
    }
    engine::explain(e, &engine.endpoint).context(format!("creating {}", plan.name))
}

fn start_failed(plan: &ContainerPlan, e: anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    // Causes berth knows the fix for (Podman without catatonit or /dev/net/tun) keep that fix.
    if let Some((_, fix)) = engine::kind::known_refusal(&text) {
        return fail(Code::Failure, format!("could not start {}: {text}", plan.name), fix);
    }
    let hint = if text.contains("could not select device driver") {
        "the engine cannot hand out NVIDIA GPUs: install the NVIDIA Container Toolkit and restart \
         Docker (`berth doctor` checks this); the container was created and `berth up` will start it \
         once that is fixed"
    } else if text.contains("error gathering device information") {
        "a device in the plan does not exist where the engine runs (Docker Desktop runs it in a VM, \
         which cannot see host GPUs); use Docker Engine on the host"
    } else if text.contains("bind source path does not exist") {
        "a mount source is missing on the engine's machine; check `mounts` in berth.toml"
    } else {
        "see `berth status` and `docker logs` for the container; `berth doctor` checks the host"
    };
    fail(Code::Failure, format!("could not start {}: {text}", plan.name), hint)
}
