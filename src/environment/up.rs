//! Bringing the environment up (`berth up`): make it exist and run, exactly as the file says.
//!
//! Create it, or start the stopped one, or do nothing when the running container matches the
//! plan (compared by the config hash in its labels, without touching the engine further). When
//! the file changed in a way the container cannot follow, say what differs and require
//! `--recreate`, which keeps `down`'s guard. Concurrent `up`s of one project serialise on a
//! lock in `.berth/`, and the engine's unique names make a second container impossible.

use std::fs::File;
use std::net::{TcpListener, UdpSocket};

use anyhow::Context as _;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::facts::EngineFacts;
use crate::engine::{self, Container, Endpoint, Engine, EngineError, Refusal, exec::ExecRequest};
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
    pub adopt: bool,
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

/// A plan with what it was computed from.
#[derive(Debug)]
pub struct Planned {
    pub plan: ContainerPlan,
    pub host: HostFacts,
    pub image: image::Resolved,
    /// Work folders the image's own files are kept in (no project mount there).
    pub image_kept: Vec<String>,
    /// Limits from berth.toml this host makes meaningless (`resources.memory` above its RAM).
    pub warnings: Vec<String>,
    /// Planned with `--force`: other users' leases on listed GPUs were taken anyway.
    pub force: bool,
}

/// Compute this project's plan against the engine as it is now. Whether the image's work folder
/// is kept (see [`look_into_image`]) is what the existing container was made with.
pub async fn plan_for(
    project: &Project,
    engine: &Engine,
    existing: Option<&Container>,
) -> anyhow::Result<Planned> {
    plan_forced(project, engine, existing, false).await
}

/// [`plan_for`], taking GPUs other users leased when `force` (`up --force`).
pub async fn plan_forced(
    project: &Project,
    engine: &Engine,
    existing: Option<&Container>,
    force: bool,
) -> anyhow::Result<Planned> {
    let kept = existing.map(|c| kept_by(project, c)).unwrap_or_default();
    plan_with(project, engine, existing, kept, force).await
}

/// The work folder an existing container was made without the default project mount on.
fn kept_by(project: &Project, c: &Container) -> Vec<String> {
    let spec = &project.spec;
    let Some(old) = engine::label(c, LABEL_PLAN).and_then(drift::Summary::from_label) else {
        return Vec::new();
    };
    let mounted = old.mounts.iter().any(|m| {
        let mut parts = m.rsplitn(3, ':');
        parts.nth(1) == Some(spec.workdir.as_str())
    });
    if spec.mounts.is_empty() && old.workdir == spec.workdir && !mounted {
        vec![spec.workdir.clone()]
    } else {
        Vec::new()
    }
}

async fn plan_with(
    project: &Project,
    engine: &Engine,
    existing: Option<&Container>,
    image_kept: Vec<String>,
    force: bool,
) -> anyhow::Result<Planned> {
    let spec = &project.spec;
    let host = project.host_facts();
    // Sizes and counts this host cannot give stop here, at their line; limits it can never
    // reach are said once per `up`.
    let mut warnings = Vec::new();
    for p in plan::limits::host_problems(spec, &host) {
        if p.error {
            return Err(anyhow::Error::new(p.at(spec)));
        }
        warnings.push(p.at(spec).to_string());
    }
    let resolved = image::resolve(spec, &host)?;
    // Engine facts only change NVIDIA plans (CDI); skipping /info keeps a no-op `up` fast.
    let wants_nvidia = spec.gpu.vendor == VendorChoice::Gpu(Vendor::Nvidia)
        || (spec.gpu.vendor == VendorChoice::Auto && host.gpus_of(Vendor::Nvidia).next().is_some());
    // The ping and the engine's process (no API call) tell Podman apart and the limits it can apply.
    let facts = if wants_nvidia {
        engine.plan_facts().await?
    } else {
        EngineFacts {
            product: if engine.is_podman() { "Podman".into() } else { String::new() },
            process: engine::kind::probe(&engine.endpoint),
            ..Default::default()
        }
    };
    let busy =
        if matches!(spec.gpu.devices, DeviceSelection::Count(_)) && spec.gpu.vendor != VendorChoice::None {
            engine.busy_gpus(existing.map(|c| c.id.as_str())).await?
        } else {
            BusyGpus::new()
        };
    let prefer = existing.map(held_gpus).unwrap_or_default();
    // Other users' leases and processes on the GPUs; a running environment keeps its own GPUs.
    let claims = if spec.gpu.vendor != VendorChoice::None && !host.gpus.is_empty() {
        let running = existing.filter(|c| engine::is_running(c));
        let held: Vec<u32> = running
            .map(|c| {
                let ids = held_gpus(c);
                host.gpus
                    .iter()
                    .filter(|g| {
                        ids.contains(&g.index.to_string())
                            || ids.contains(&g.pci)
                            || g.uuid.as_ref().is_some_and(|u| ids.contains(u))
                            || g.render_node.as_ref().is_some_and(|n| ids.contains(&n.path))
                    })
                    .map(|g| g.index)
                    .collect()
            })
            .unwrap_or_default();
        let own = existing.map(|c| c.id.as_str()).filter(|id| !id.is_empty());
        let root = crate::host::HostRoot::from_env();
        let (claims, unseen) =
            super::gpu_use::claims(&root, &host, project.user.uid, own, &held, force).await;
        warnings.extend(unseen);
        claims
    } else {
        plan::GpuClaims::default()
    };
    let inputs = plan::Inputs {
        host: &host,
        engine: &facts,
        user: &project.user,
        busy: &busy,
        claims: &claims,
        prefer: &prefer,
        image: &resolved.image,
        image_kept: &image_kept,
    };
    let plan = plan::plan(spec, &inputs).map_err(|e| {
        let code = if matches!(e, plan::PlanError::Leased { .. }) { Code::Refused } else { Code::BadInput };
        anyhow::Error::new(Hint::new(code, format!("{}: {e}", spec.file.display())).with_hint(e.hint()))
    })?;
    Ok(Planned { plan, host, image: resolved, image_kept, warnings, force })
}

/// berth's own files, in every project folder: they say nothing about where the code is.
fn berths_own(name: &str) -> bool {
    name == crate::spec::FILE_NAME || name == ".berth"
}

/// Before a container is made: which of its mounts would hide files the image holds at the
/// mount's target that the mounted folder lacks. The default project mount is left out when the
/// project folder holds none of the image's files there (an unpacked project: the image carries
/// the code); any other mount is made as written, with a warning naming what it hides. Returns
/// the plan to create (planned again when the default mount was left out or came back).
async fn look_into_image(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    planned: &Planned,
) -> anyhow::Result<Option<Planned>> {
    let spec = &project.spec;
    // berth's own files are in every project folder, and say nothing about the code.
    let listed = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let few = |names: &[&String]| -> String {
        let shown: Vec<&str> = names.iter().take(5).map(|s| s.as_str()).collect();
        let more = if names.len() > 5 { format!(", … {} more", names.len() - 5) } else { String::new() };
        format!("{}{more}", shown.join(", "))
    };
    let mut kept = Vec::new();
    let written: Vec<(std::path::PathBuf, String)> = if spec.mounts.is_empty() {
        vec![(spec.project_dir.clone(), spec.workdir.clone())]
    } else {
        spec.mounts.iter().map(|m| (m.source.clone(), m.target.clone())).collect()
    };
    for (source, target) in written {
        let in_image = match engine.image_folder_names(&planned.plan.image, &target).await {
            Ok(names) => names,
            // Only a warning can come of the look: it never stops the environment being made.
            Err(e) => {
                ctx.out
                    .warn(format!("could not look into the image at {target} ({e:#}); mounting as planned"));
                continue;
            }
        };
        let in_image: Vec<&String> = in_image.iter().filter(|n| !berths_own(n)).collect();
        if in_image.is_empty() {
            continue;
        }
        let here = listed(&source);
        let hidden: Vec<&String> = in_image.iter().copied().filter(|n| !here.contains(n)).collect();
        if hidden.is_empty() {
            continue;
        }
        if spec.mounts.is_empty() && hidden.len() == in_image.len() {
            ctx.out.warn(format!(
                "the image holds files in {target} ({}) and {} holds none of them: the project folder is not \
                 mounted there, so the environment runs the image's own files; to work on them from this \
                 folder instead, put them here and run `berth up --recreate`, or mount it anyway with \
                 `mounts = [\".:{target}\"]` in berth.toml",
                few(&in_image),
                source.display()
            ));
            kept.push(target);
        } else {
            ctx.out.warn(format!(
                "mounting {} over {target} hides what the image holds there and it lacks: {}; if the \
                 environment needs those, copy them into {} (or mount it elsewhere in `mounts`) and run \
                 `berth up --recreate`",
                source.display(),
                few(&hidden),
                source.display()
            ));
        }
    }
    image_workdir_unseen(ctx, project, engine, planned, &listed(&spec.project_dir)).await;
    if kept == planned.image_kept {
        return Ok(None);
    }
    Ok(Some(plan_with(project, engine, None, kept, planned.force).await?))
}

/// Seed 002 on the server: the image's own `WORKDIR` (say /app, where its Dockerfile copied the
/// code) is not berth's work folder, and the project folder (unpacked: only berth.toml) holds
/// none of the files the image keeps there, so `python train.py` would start in an empty
/// folder. Said once per `up`, with how to work in the image's folder; nothing is refused.
async fn image_workdir_unseen(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    planned: &Planned,
    here: &[String],
) {
    let spec = &project.spec;
    // Only an image the user's own Dockerfile made (here, or packed and pinned by id on the
    // server) says where its code is; a preset's or a plain base's WORKDIR is its maker's.
    if spec.image.dockerfile.is_none() && !spec.image.base.starts_with("sha256:") {
        return;
    }
    let Ok(Some(theirs)) = engine.image_workdir(&planned.plan.image).await else { return };
    let theirs = theirs.trim_end_matches('/').to_string();
    let mounted = spec.mounts.iter().any(|m| m.target.trim_end_matches('/') == theirs);
    if theirs == spec.workdir.trim_end_matches('/') || mounted {
        return;
    }
    let Ok(names) = engine.image_folder_names(&planned.plan.image, &theirs).await else { return };
    let names: Vec<&String> = names.iter().filter(|n| !berths_own(n)).collect();
    if names.is_empty() || names.iter().any(|n| here.contains(n)) {
        return;
    }
    let shown: Vec<&str> = names.iter().take(5).map(|s| s.as_str()).collect();
    let more = if names.len() > 5 { format!(", … {} more", names.len() - 5) } else { String::new() };
    let mounts = if spec.mounts.is_empty() { "" } else { " and drop the project's line from `mounts`" };
    ctx.out.warn(format!(
        "the image works in {theirs} (its WORKDIR), which holds {}{more}, but commands here start in {} \
         (berth's work folder), where {} holds none of them; to run the image's code, set `workdir = \
         \"{theirs}\"` in berth.toml{mounts} and run `berth up --recreate`, or give its paths (`berth exec -- \
         python3 {theirs}/...`)",
        shown.join(", "),
        spec.workdir,
        spec.project_dir.display()
    ));
}

/// GPU ids the container holds (from its device requests and devices).
fn held_gpus(c: &Container) -> Vec<String> {
    let mut ids: Vec<String> = c
        .gpu_requests
        .iter()
        .flat_map(|r| r.device_ids.iter())
        .map(|d| d.rsplit('=').next().unwrap_or(d).to_string())
        .collect();
    ids.extend(c.devices.iter().cloned());
    ids
}

/// Bring the environment up; prints what it did.
pub async fn apply(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    opts: UpOptions,
) -> anyhow::Result<UpResult> {
    // Before anything runs inside: no relay left from before serves a folder that says no.
    crate::ssh_agent::keep_out(&project.spec);
    let existing = project.container(engine).await?;
    let mut planned = plan_forced(project, engine, existing.as_ref(), opts.force).await?;
    for note in planned.plan.gpu.notes.iter().chain(&planned.warnings) {
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
    if existing.is_none()
        && let Some(old) = project.moved(engine).await?
    {
        adopt(ctx, project, engine, &old, opts).await?;
        planned = plan_forced(project, engine, None, opts.force).await?;
    }
    let plan = &planned.plan;
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
                // `--force` said the GPU is taken, as when the container is made with --no-start.
                record_takeover(ctx, project, &planned);
                ctx.out.status(format!("{} exists and is stopped (--no-start)", project.container));
                return Ok(result(project, &c, Action::Running));
            }
            let id = c.id.clone();
            start(ctx, engine, plan, &id).await.map_err(|e| start_failed(plan, e))?;
            record_takeover(ctx, project, &planned);
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
            super::guard::guard(project, engine, &c, opts.force).await?;
            let id = c.id.clone();
            engine.remove(&id).await?;
            let c = create_and_start(ctx, project, engine, &planned, opts, &c.port_bindings).await?;
            record(project, &c)?;
            record_takeover(ctx, project, &planned);
            ctx.out.status(format!("recreated {} ({})", project.container, Project::short_id(&c)));
            Ok(result(project, &c, Action::Recreated))
        }
        None => {
            let c = create_and_start(ctx, project, engine, &planned, opts, &[]).await?;
            record(project, &c)?;
            record_takeover(ctx, project, &planned);
            ctx.out.status(format!("created {} ({})", project.container, Project::short_id(&c)));
            Ok(result(project, &c, Action::Created))
        }
    }
}

/// `up --force` took GPUs other users leased: write a lease of the caller's own on them, until
/// the latest of those leases ends, naming each one taken over, so its holder sees it in
/// `berth lease ls` (the record is the taker's file: it shows the taker's uid, not a claim).
fn record_takeover(ctx: &Context, project: &Project, planned: &Planned) {
    if !planned.force {
        return;
    }
    let gpus: Vec<u32> = planned.plan.gpu.selected.iter().map(|g| g.index).collect();
    let done = (|| -> anyhow::Result<Vec<crate::lease::Lease>> {
        let now = crate::lease::now();
        let listing = crate::lease::Store::list_if_any(now)?;
        let taken = crate::lease::foreign_on(&listing.leases, &gpus, project.user.uid, now);
        if taken.is_empty() {
            return Ok(Vec::new());
        }
        let on: Vec<u32> = gpus.iter().copied().filter(|g| taken.iter().any(|l| l.covers(*g))).collect();
        let record = crate::lease::Record {
            gpus: on,
            uuids: Vec::new(),
            created: now,
            expires: taken.iter().map(|l| l.record.expires).max().unwrap_or(now),
            note: Some("taken with `berth up --force`".into()),
            environment: Some(project.container.clone()),
            over: taken
                .iter()
                .map(|l| crate::lease::Over {
                    holder_uid: l.holder_uid,
                    holder: l.holder.clone(),
                    id: l.id.clone(),
                    expires: l.record.expires,
                })
                .collect(),
        };
        crate::lease::Store::open()?.create(record)?;
        Ok(taken.into_iter().cloned().collect())
    })();
    match done {
        Ok(taken) => {
            for l in taken {
                ctx.out.warn(format!(
                    "took GPU {} over {}'s lease (--force); recorded in `berth lease ls` for them to see",
                    l.record
                        .gpus
                        .iter()
                        .filter(|g| gpus.contains(g))
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    l.holder
                ));
            }
        }
        Err(e) => ctx.out.warn(format!("could not record taking leased GPUs over ({e:#})")),
    }
}

/// Remember which container was made for these files (`.berth/container`), so it is found
/// again after the folder moves.
fn record(project: &Project, c: &Container) -> anyhow::Result<()> {
    let path = super::container_record(&project.spec.project_dir);
    crate::fsutil::write_atomic(&path, c.id.as_bytes(), 0o644)?;
    // And its host ports, which the next create (after `down`) asks for first.
    crate::ports::write_record(&project.spec.project_dir, c)
}

/// The project's environment was made before its folder moved (`old`): never a second one for
/// the same files silently. With `--adopt` it is recreated here (its mounts cannot change):
/// refused while jobs run, what changed inside it committed first so the new one starts from it.
async fn adopt(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    old: &Container,
    opts: UpOptions,
) -> anyhow::Result<()> {
    let name = old.shown_name().to_string();
    let was = engine::label(old, plan::LABEL_PROJECT).unwrap_or("another folder").to_string();
    if !opts.adopt {
        return Err(fail(
            Code::Refused,
            format!(
                "this project's environment {name} was made when the project was at {was} (the folder was \
                 moved or renamed since, or its berth.toml is gone); its mounts still point at the files it \
                 had there, so berth does not make a second one"
            ),
            "`berth up --adopt` recreates it here (refused while jobs run; what changed inside it is kept \
             through `berth commit`), or `berth down` removes it (its guard applies) and `berth up` makes a \
             fresh one",
        ));
    }
    engine.endpoint.require_local("adopting an environment")?;
    super::guard::refuse_running_jobs(project, engine, old, "adopt it once they ended").await?;
    if !engine.significant_changes(old).await?.is_empty() {
        super::commit::commit(ctx, project, engine, old).await?;
    }
    engine.remove(if old.id.is_empty() { &name } else { &old.id }).await?;
    ctx.out.status(format!(
        "adopted {name} (made for {was}): recreating it for {}",
        project.spec.project_dir.display()
    ));
    Ok(())
}

/// A paused container is resumed; one the engine keeps restarting is explained, not reused.
async fn settle(ctx: &Context, project: &Project, engine: &Engine, c: &Container) -> anyhow::Result<()> {
    let id = if c.id.is_empty() { project.container.as_str() } else { c.id.as_str() };
    match engine::status(c).as_str() {
        "paused" => {
            engine.unpause(id).await?;
            ctx.out.status(format!("resumed the paused {}", project.container));
            Ok(())
        }
        "restarting" => {
            let (code, oom) = (c.exit_code, c.oom_killed);
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
        // A `down --force` or a killed `up` moments ago: the engine finishes removing it.
        "removing" => wait_removed(engine, id, &project.container).await,
        "dead" => Err(fail(
            Code::Failure,
            format!("{} is dead (the engine could not remove it)", project.container),
            "remove it with `berth down --force`, then `berth up`",
        )),
        _ => Ok(()),
    }
}

/// Wait (up to a minute) for the engine to finish removing a container.
async fn wait_removed(engine: &Engine, id: &str, name: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        match engine.inspect(id).await? {
            Some(c) if engine::status(&c) == "removing" => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Some(c) if engine::status(&c) == "dead" => break,
            _ => return Ok(()),
        }
    }
    Err(fail(
        Code::Failure,
        format!("the engine is still removing {name} after a minute"),
        "check `docker ps -a`; remove it with `berth down --force`, then `berth up`",
    ))
}

/// Whether the container is what the plan asks for: the same config hash, or the container a
/// `berth commit` was made from (it already holds what the committed image does).
pub fn matches(c: &Container, planned: &Planned, project_dir: &std::path::Path) -> bool {
    if engine::label(c, LABEL_HASH) == Some(planned.plan.config_hash.as_str()) {
        return true;
    }
    if !planned.image.committed {
        return false;
    }
    let Some(rec) = image::read_commit(project_dir) else { return false };
    if rec.container.as_deref() != Some(c.id.as_str()) {
        return false;
    }
    let Some(old) = engine::label(c, LABEL_PLAN).and_then(drift::Summary::from_label) else { return false };
    let mut now = drift::Summary::of(&planned.plan);
    now.image = old.image.clone();
    now == old
}

fn result(project: &Project, c: &Container, action: Action) -> UpResult {
    UpResult { name: project.spec.name.clone(), container_id: c.id.clone(), action, state: c.status.clone() }
}

/// Take the project's lock (released when the file closes): `up`, `stop`, `down` and the start
/// of a job take it, so a job never starts into a container being stopped or removed.
pub fn lock(project: &Project) -> anyhow::Result<File> {
    let sharing = crate::jobs::private::Sharing::of(&project.spec.user, &project.user);
    crate::jobs::private::state_dir(&project.spec.project_dir, sharing).map_err(|e| {
        crate::fsutil::io_failure(&crate::state::dir(&project.spec.project_dir), "create the folder", &e)
    })?;
    let path = crate::state::lock(&project.spec.project_dir);
    let file = crate::fsutil::open_own_file(&path, false, 0o600)
        .map_err(|e| crate::fsutil::io_failure(&path, "create", &e))?;
    file.lock().with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

async fn create_and_start(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    planned: &Planned,
    opts: UpOptions,
    earlier: &[engine::PublishedPort],
) -> anyhow::Result<Container> {
    engine.endpoint.require_local("creating an environment")?;
    super::build::ensure(ctx, project, engine, &planned.image).await?;
    let replanned = look_into_image(ctx, project, engine, planned).await?;
    let planned = replanned.as_ref().unwrap_or(planned);
    let plan = &planned.plan;
    // Before anything is created: does the image fit this host's GPU stack?
    let env = engine.image_env(&plan.image).await?;
    image::compat::check_driver(&plan.image, &env, &plan.gpu, &planned.host)?;
    let user_env: Vec<String> = project.spec.env.iter().map(|v| v.key.clone()).collect();
    if plan.gpu.mode == GpuMode::Amd {
        // The image's ROCm: its env or tag, the tag it was built from, else the file ROCm installs.
        let mut rocm = image::compat::image_rocm(&plan.image, &env)
            .or_else(|| image::compat::image_rocm(&planned.image.base, &[]));
        if rocm.is_none() {
            rocm = engine.image_file(&plan.image, image::compat::ROCM_VERSION_FILE).await.ok().flatten();
        }
        if let Some(a) = image::compat::amd_warnings(&plan.gpu, &planned.host, rocm.as_deref(), &user_env) {
            ctx.out.warn(format!("{}\n  fix: {}", a.detail, a.fix));
        }
    }
    for m in plan.mounts.iter().filter(|m| m.create) {
        std::fs::create_dir_all(&m.source)
            .with_context(|| format!("creating the mount source {}", m.source.display()))?;
    }
    let ports = pick_ports(ctx, project, plan, engine, earlier).await?;
    let (id, made_here) = match engine.create(plan, &ports).await {
        Ok(id) => (id, true),
        // Lost a race with another berth (or a foreign container took the name): look again.
        Err(e) if e.refusal() == Some(Refusal::Conflict) => {
            let c = project.container(engine).await?.context("the container vanished while being created")?;
            let old = c.id.clone();
            if engine::status(&c) == "removing" {
                // The name is still held by a container being removed: wait, then create anew.
                wait_removed(engine, &old, &plan.name).await?;
                match engine.create(plan, &ports).await {
                    Ok(id) => (id, true),
                    Err(e) => return Err(create_failed(plan, e)),
                }
            } else {
                (old, false)
            }
        }
        Err(e) => return Err(create_failed(plan, e)),
    };
    describe(ctx, plan);
    if !opts.no_start
        && let Err(e) = start(ctx, engine, plan, &id).await
    {
        // A failed `up` changes nothing: the container it just made goes again, so the next
        // `up` creates a fresh one instead of reporting drift.
        let cleanup = if made_here { engine.remove(&id).await } else { Ok(()) };
        let holder =
            if e.refusal() == Some(Refusal::PortTaken) { port_holder(engine, plan, &id).await } else { None };
        let e = start_failed(plan, e);
        let e = match holder {
            Some(holder) => e.context(holder),
            None => e,
        };
        return Err(match cleanup {
            Ok(()) => e,
            Err(c) => e.context(format!(
                "{} did not start, and removing it failed ({c:#}): remove it with `berth down --force`",
                plan.name
            )),
        });
    }
    engine.inspect(&id).await?.context("the new container vanished")
}

/// When starting failed on a host port, who holds it: a berth environment (by project), another
/// container (by name), or something outside the engine.
async fn port_holder(engine: &Engine, plan: &ContainerPlan, own: &str) -> Option<String> {
    let ports: Vec<u16> = plan.ports.iter().filter_map(|p| p.host_port).collect();
    let list = engine.running_containers().await.ok()?;
    for c in list.iter().filter(|c| c.id != own) {
        let Some(port) = c.public_ports.iter().copied().find(|p| ports.contains(p)) else {
            continue;
        };
        return Some(match c.label(plan::LABEL_PROJECT) {
            Some(dir) => format!("host port {port} is held by the berth environment in {dir}"),
            None => format!("host port {port} is held by container {}", c.name),
        });
    }
    Some(format!(
        "host port {} is held by a program outside the engine",
        ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
    ))
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

async fn start(ctx: &Context, engine: &Engine, plan: &ContainerPlan, id: &str) -> Result<(), EngineError> {
    engine.start(id).await?;
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

/// Host ports for `ports` entries that left the choice to berth (see [`crate::ports::assign`]):
/// what the environment had (`earlier`: the container being recreated; else the record of the
/// last create), else the port derived from who asks, skipping ports any container on the
/// engine holds (any user's, stopped ones too) and ports bound on this host.
async fn pick_ports(
    ctx: &Context,
    project: &Project,
    plan: &ContainerPlan,
    engine: &Engine,
    earlier: &[engine::PublishedPort],
) -> anyhow::Result<Vec<Option<u16>>> {
    use crate::ports::assign;
    if !matches!(engine.endpoint, Endpoint::Unix(_)) || plan.ports.iter().all(|p| p.host_port.is_some()) {
        // Another machine's engine: only it can tell what is free there.
        return Ok(vec![None; plan.ports.len()]);
    }
    let held = engine.reserved_host_ports(None).await?;
    let recorded = crate::ports::read_record(&project.spec.project_dir);
    // Ports this container fixes itself are taken for the entries that leave the choice.
    let mut taken: std::collections::BTreeSet<u16> = plan.ports.iter().filter_map(|p| p.host_port).collect();
    let mut out = Vec::with_capacity(plan.ports.len());
    for p in &plan.ports {
        if p.host_port.is_some() {
            out.push(None);
            continue;
        }
        let key = assign::key(&p.host_ip, p.container_port, &p.protocol);
        let inside = format!("{}/{}", p.container_port, p.protocol);
        let mut had: Vec<u16> = earlier
            .iter()
            .filter(|b| b.inside == inside && b.host_ip == p.host_ip)
            .filter_map(|b| b.host_port.parse().ok())
            .collect();
        had.extend(recorded.get(&key).copied());
        let preferred = assign::preferred(project.user.uid, &project.spec.project_dir, &key);
        let free = |port: u16| !held.contains(&port) && !taken.contains(&port) && bindable(p, port);
        let chosen = match assign::choose(&had, preferred, free) {
            Some(port) => port,
            // Every port of the range is held: one the kernel says is free.
            None => TcpListener::bind((p.host_ip.as_str(), 0))
                .and_then(|l| l.local_addr())
                .with_context(|| format!("finding a free port on {}", p.host_ip))?
                .port(),
        };
        if let Some(&before) = had.first()
            && !had.contains(&chosen)
        {
            // The URL and the laptop's `ssh -L` line change with it: say so rather than let an
            // open tunnel silently reach nothing (or whoever holds the old port now).
            ctx.out.warn(format!(
                "host port {before}, which {inside} had, is taken by another program or container: \
                 {inside} is now at {}:{chosen} (a laptop's forward needs the new line: `berth ports --ssh`)",
                crate::ports::url::url_host(&p.host_ip)
            ));
        }
        taken.insert(chosen);
        out.push(Some(chosen));
    }
    Ok(out)
}

/// Whether a program on this host could bind the port (nothing listens on it).
fn bindable(p: &plan::PortPlan, port: u16) -> bool {
    let addr = (p.host_ip.as_str(), port);
    if p.protocol == "udp" { UdpSocket::bind(addr).is_ok() } else { TcpListener::bind(addr).is_ok() }
}

fn create_failed(plan: &ContainerPlan, e: EngineError) -> anyhow::Error {
    if e.refusal() == Some(Refusal::NoSuchImage) {
        return fail(
            Code::Failure,
            format!("the image {} is not on this engine", plan.image),
            "pull or load it (`docker pull`, `docker load -i FILE`), or change `[image] base`",
        );
    }
    anyhow::Error::new(e).context(format!("creating {}", plan.name))
}

fn start_failed(plan: &ContainerPlan, e: EngineError) -> anyhow::Error {
    // Causes berth knows the fix for (Podman without catatonit or /dev/net/tun) keep that fix.
    if let EngineError::Explained { what, fix } = &e {
        return fail(Code::Failure, format!("could not start {}: {what}", plan.name), fix.clone());
    }
    let kind = e.refusal();
    let text = format!("{:#}", anyhow::Error::new(e));
    let hint = match kind {
        Some(Refusal::DeviceDriverMissing) => {
            "the engine cannot hand out NVIDIA GPUs: install the NVIDIA Container Toolkit and restart \
             Docker (`berth doctor` checks this), then run `berth up` again"
        }
        Some(Refusal::DeviceMissing) => {
            "a device in the plan does not exist where the engine runs (Docker Desktop runs it in a VM, \
             which cannot see host GPUs); use Docker Engine on the host"
        }
        Some(Refusal::BindSourceMissing) => {
            "a mount source is missing on the engine's machine; check `mounts` in berth.toml"
        }
        Some(Refusal::PortTaken) => {
            // The container is removed again (a failed `up` changes nothing): nothing to inspect.
            "stop what holds the port, or choose another host port in `ports` in berth.toml (a bare \
             container port such as \"8888\" lets berth pick a free one)"
        }
        _ => "see `berth status` and `docker logs` for the container; `berth doctor` checks the host",
    };
    fail(Code::Failure, format!("could not start {}: {text}", plan.name), hint)
}
