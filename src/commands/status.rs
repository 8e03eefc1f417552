//! `berth status`: this environment: state, image, GPUs, shm, mounts, ports, last exit, and
//! drift between the container and the file. `--json` prints one object.

use super::ExitStatus;
use serde::Serialize;

use super::{Context, Project};
use crate::engine;
use crate::environment::up;
use crate::jobs::diagnose::{Ending, diagnose};
use crate::plan::{ShmSource, drift};
use crate::spec::size::format_size;

#[derive(Debug, Serialize)]
pub struct Status {
    pub name: String,
    pub project: String,
    pub container_name: String,
    /// `absent`, `created`, `running`, `exited`, ...
    pub state: String,
    pub container_id: Option<String>,
    pub image: Option<String>,
    pub user: Option<String>,
    pub gpus: Vec<String>,
    pub shm_bytes: Option<u64>,
    pub shm: Option<String>,
    pub memory_bytes: Option<u64>,
    pub mounts: Vec<String>,
    /// Host folders the environment can change (read-write bind mounts): what a process inside,
    /// or a pack's code, can write to on this machine.
    pub writable_host_folders: Vec<String>,
    pub ports: Vec<String>,
    pub last_exit: Option<LastExit>,
    /// Python packages installed or removed by hand inside the container; `null` unless
    /// `--changes` asked (counting them reads the container's whole writable layer).
    pub python_packages_changed: Option<usize>,
    /// Jobs still running in the environment.
    pub running_jobs: Vec<String>,
    /// How the file differs from the container (empty: it matches).
    pub drift: Vec<String>,
    /// Why the file could not be planned (then drift is unknown).
    pub plan_error: Option<String>,
    /// Settings that widen access beyond the project folder (`plan::access`).
    pub access: Vec<crate::plan::access::Widening>,
    /// The project folder the container was made for, when the project was moved or renamed
    /// since (the container shown is that one; `up --adopt` recreates it here).
    pub moved_from: Option<String>,
    /// When `berth idle --check` stops it, and what keeps it alive (none: no container).
    pub idle: Option<crate::idle::view::IdleStatus>,
}

#[derive(Debug, Serialize)]
pub struct LastExit {
    pub code: i64,
    pub oom_killed: bool,
    pub finished_at: Option<String>,
    pub explanation: String,
}

/// What `berth status` is asked.
#[derive(Debug, Default)]
pub struct StatusOptions {
    /// Also count Python packages installed or removed by hand (a diff of the container's
    /// writable layer: the slow part, so not on every call).
    pub changes: bool,
}

pub async fn run(ctx: &Context, opts: StatusOptions) -> anyhow::Result<ExitStatus> {
    let (project, engine) = Project::existing(ctx).await?;
    let mut c = project.container(&engine).await?;
    let mut moved_from = None;
    if c.is_none()
        && let Some(old) = project.moved(&engine).await?
    {
        moved_from = engine::label(&old, crate::plan::LABEL_PROJECT).map(str::to_string);
        c = Some(old);
    }
    // A plan that cannot be made (a driver gone, a requirements file deleted) must not hide
    // the container: status shows it, and why drift could not be judged.
    let planned = up::plan_for(&project, &engine, c.as_ref()).await;
    let mut st = Status {
        name: project.spec.name.clone(),
        project: project.spec.project_dir.display().to_string(),
        container_name: project.container.clone(),
        state: "absent".into(),
        container_id: None,
        image: None,
        user: None,
        gpus: Vec::new(),
        shm_bytes: None,
        shm: None,
        memory_bytes: None,
        mounts: Vec::new(),
        writable_host_folders: Vec::new(),
        ports: Vec::new(),
        last_exit: None,
        running_jobs: Vec::new(),
        python_packages_changed: None,
        drift: Vec::new(),
        plan_error: None,
        access: crate::plan::access::widening(&project.spec),
        moved_from,
        idle: None,
    };
    if project.from_labels {
        st.plan_error = Some(format!("{} is missing: restore it to see drift", project.spec.file.display()));
    }
    if let Some(c) = &c {
        fill(&mut st, c);
        if st.moved_from.is_some() {
            st.container_name = c.name.clone();
        }
        match &planned {
            _ if st.plan_error.is_some() || st.moved_from.is_some() => {}
            Ok(planned) if up::matches(c, planned, &project.spec.project_dir) => {}
            Ok(planned) => {
                let old = engine::label(c, crate::plan::LABEL_PLAN)
                    .and_then(drift::Summary::from_label)
                    .unwrap_or_default();
                st.drift = drift::differences(&old, &drift::Summary::of(&planned.plan));
            }
            Err(e) => st.plan_error = Some(format!("{e:#}")),
        }
        if let Ok(p) = &planned
            && st.shm_bytes == Some(p.plan.shm.bytes)
        {
            st.shm = Some(shm_words(p.plan.shm.bytes, p.plan.shm.source));
        }
        if opts.changes
            && let Ok(layer) = engine.changes(&c.id).await
        {
            st.python_packages_changed = Some(crate::image::freeze::hand_changed(&layer));
        }
        st.running_jobs = crate::jobs::view::running(&project, &engine, c).await;
        st.idle = Some(crate::idle::view::of(&engine, c, &project.spec.idle, &st.running_jobs).await);
        if let Ok(p) = &planned {
            st.gpus = p
                .plan
                .gpu
                .selected
                .iter()
                .map(|g| format!("{} {}", g.index, g.model.clone().unwrap_or_default()).trim().to_string())
                .collect();
        }
    }
    if ctx.out.json {
        ctx.out.json(&st)?;
        return Ok(ExitStatus::SUCCESS);
    }
    ctx.out.data(render(&st));
    Ok(ExitStatus::SUCCESS)
}

fn shm_words(bytes: u64, source: ShmSource) -> String {
    let size = format_size(bytes);
    match source {
        ShmSource::File => format!("{size} (resources.shm)"),
        ShmSource::HostRam => {
            format!("{size} (default: half of host RAM, at most 16 GiB; set resources.shm)")
        }
        ShmSource::MemoryLimit => format!("{size} (default: half of resources.memory)"),
        ShmSource::HostIpc => "the host's /dev/shm (run.ipc = \"host\")".into(),
    }
}

fn fill(st: &mut Status, c: &crate::engine::Container) {
    st.state = if c.status.is_empty() { "unknown".into() } else { c.status.clone() };
    st.container_id = Some(c.id.clone()).filter(|i| !i.is_empty());
    st.image = c.image.clone();
    st.user = c.user.clone();
    st.shm_bytes = c.shm_size;
    st.shm = st.shm_bytes.map(format_size);
    // With the host's IPC namespace the engine still reports its 64 MiB default, unused.
    if crate::plan::limits::uses_host_shm(c.ipc_mode.as_deref()) {
        st.shm_bytes = None;
        st.shm = Some(shm_words(0, ShmSource::HostIpc));
    }
    st.memory_bytes = c.memory;
    st.mounts = c
        .mounts
        .iter()
        .map(|m| format!("{} → {}{}", m.source, m.destination, if m.read_only { " (read-only)" } else { "" }))
        .collect();
    st.writable_host_folders =
        c.mounts.iter().filter(|m| !m.read_only && m.bind).map(|m| m.source.clone()).collect();
    if !c.ports.is_empty() {
        let mut list: Vec<String> =
            c.ports.iter().map(|p| format!("{}:{} → {}", p.host_ip, p.host_port, p.inside)).collect();
        list.sort();
        st.ports = list;
    }
    if !c.status.is_empty() && !c.running_flag && c.status != "created" {
        let code = c.exit_code;
        let oom = c.oom_killed;
        st.last_exit = Some(LastExit {
            code,
            oom_killed: oom,
            finished_at: c.finished_at.clone(),
            explanation: explain_exit(code, oom, st.memory_bytes, st.shm_bytes),
        });
    }
}

/// A short cause and fix for a container's exit (the same diagnosis jobs get).
fn explain_exit(code: i64, oom: bool, memory: Option<u64>, shm: Option<u64>) -> String {
    let ending =
        Ending { exit_code: Some(code), oom, memory_limit: memory, shm_bytes: shm, ..Default::default() };
    match diagnose(&ending) {
        Some(d) => format!("{}; {}", d.cause, d.fix),
        None if code == 0 => "stopped normally".into(),
        None => format!("exited with code {code}"),
    }
}

fn render(st: &Status) -> String {
    let mut out = String::new();
    // Paths and names are the user's: escaped, so none can add a line or drive the terminal.
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<10} {}\n", crate::output::escape(v)));
    line("name", &st.name);
    line("project", &st.project);
    line("container", &st.container_name);
    line("state", &st.state);
    if let Some(id) = &st.container_id {
        line("id", &id.chars().take(12).collect::<String>());
    }
    if let Some(i) = &st.image {
        line("image", i);
    }
    if let Some(u) = &st.user {
        line("user", u);
    }
    line("gpus", &if st.gpus.is_empty() { "none".to_string() } else { st.gpus.join("; ") });
    if let Some(s) = &st.shm {
        line("shm", s);
    }
    if let Some(m) = st.memory_bytes {
        line("memory", &format_size(m));
    }
    for (i, m) in st.mounts.iter().enumerate() {
        line(if i == 0 { "mounts" } else { "" }, m);
    }
    for (i, w) in st.writable_host_folders.iter().enumerate() {
        line(if i == 0 { "writable" } else { "" }, &format!("{w} (the environment can change it)"));
    }
    for (i, p) in st.ports.iter().enumerate() {
        line(if i == 0 { "ports" } else { "" }, p);
    }
    if let Some(n) = st.python_packages_changed.filter(|n| *n > 0) {
        line("python", &format!("{n} package(s) installed or removed by hand: `berth freeze` lists them"));
    }
    if !st.running_jobs.is_empty() {
        line("jobs", &format!("running: {}", st.running_jobs.join(", ")));
    }
    for (i, w) in st.access.iter().enumerate() {
        line(if i == 0 { "access" } else { "" }, &format!("{}: {}", w.setting, w.effect));
    }
    if let Some(i) = st.idle.as_ref().filter(|i| i.stop_after.is_some() || i.stopped_by_check.is_some()) {
        for (n, l) in idle_lines(i).iter().enumerate() {
            line(if n == 0 { "idle" } else { "" }, l);
        }
    }
    if let Some(e) = &st.last_exit {
        line("last exit", &format!("{}: {}", e.code, e.explanation));
    }
    if let Some(was) = &st.moved_from {
        line(
            "moved",
            &format!(
                "made for {was}; its mounts still point at the files it had there: `berth up --adopt` \
                 recreates it here, `berth down` removes it"
            ),
        );
    } else if let Some(e) = &st.plan_error {
        line("drift", &format!("unknown: berth.toml cannot be planned here ({e})"));
    } else if st.state == "absent" {
        line("", "no container yet: `berth up` creates it");
    } else if st.drift.is_empty() {
        line("drift", "none: the container matches berth.toml");
    } else {
        for (i, d) in st.drift.iter().enumerate() {
            line(if i == 0 { "drift" } else { "" }, d);
        }
        line("", "`berth up --recreate` applies these changes");
    }
    out
}

/// `idle`'s lines: the stop-after, what keeps it alive or when it stops, and notes.
fn idle_lines(i: &crate::idle::view::IdleStatus) -> Vec<String> {
    let mut lines = vec![format!("stop-after {}", i.policy)];
    if let Some(at) = &i.stopped_by_check
        && i.stops_at.is_none()
        && i.kept_alive_by.is_empty()
    {
        lines.push(format!("stopped by the idle check at {at}; `berth up` starts it again"));
    }
    for k in &i.kept_alive_by {
        lines.push(format!("kept alive by {k}"));
    }
    if let (Some(since), Some(at)) = (&i.idle_since, &i.stops_at) {
        lines.push(format!("idle since {since}; stopped at {at} unless used"));
    } else if !i.kept_alive_by.is_empty() && i.stop_after.is_some() {
        lines.push("stopped once idle for the stop-after".into());
    }
    if let Some(n) = &i.note {
        lines.push(n.clone());
    }
    lines
}
