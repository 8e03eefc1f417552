//! `berth top`'s logic: which process on which GPU belongs to which environment and job.
//!
//! Pure functions over what was read: nvidia-smi's CSV answers (or AMD's per-process VRAM from
//! sysfs), each process's cgroup and namespace pids (`sources`), the engine's containers and the
//! projects' job pid files. A process is matched to a container through its cgroup path, and to
//! a job when the job's process group (as the container numbers it) is its own, its group
//! leader's or an ancestor's. Other users' environments are named only with `--all-users`.

pub mod sources;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::{LABEL_HASH, LABEL_MANAGED, LABEL_NAME, LABEL_OWNER, LABEL_OWNER_UID, LABEL_PROJECT};

/// One GPU and what runs on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuUse {
    pub index: u32,
    pub vendor: &'static str,
    pub uuid: Option<String>,
    pub name: String,
    pub used_mib: Option<u64>,
    pub total_mib: Option<u64>,
    /// Percent of the last sample period a kernel ran on it (nvidia-smi's `utilization.gpu`);
    /// unknown where the driver does not say (AMD through sysfs, some virtual GPUs).
    pub utilization_percent: Option<u32>,
    pub processes: Vec<ProcUse>,
    /// Leases on it that have not ended (`berth lease`).
    pub leases: Vec<LeaseMark>,
    /// A process runs on it whose user holds no lease on it (only said when the user is known).
    pub used_without_lease: bool,
    /// Leased, but no process of any holder runs on it.
    pub lease_idle: bool,
}

/// A lease as `top` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseMark {
    pub holder: String,
    pub holder_uid: u32,
    pub expires_at: String,
    pub until: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Mark each GPU with its leases, its use without one and its leases held idle.
pub fn mark_leases(gpus: &mut [GpuUse], leases: &[crate::lease::Lease], now: u64) {
    for g in gpus {
        let on: Vec<&crate::lease::Lease> =
            leases.iter().filter(|l| l.covers(g.index) && l.record.expires > now).collect();
        g.leases = on
            .iter()
            .map(|l| LeaseMark {
                holder: l.holder.clone(),
                holder_uid: l.holder_uid,
                expires_at: l.expires_at.clone(),
                until: crate::lease::until(l.record.expires, now),
                note: l.record.note.clone(),
            })
            .collect();
        let holds = |uid: u32| on.iter().any(|l| l.holder_uid == uid);
        g.used_without_lease = g.processes.iter().any(|p| p.uid.is_some_and(|u| !holds(u)));
        g.lease_idle = !on.is_empty() && !g.processes.iter().any(|p| p.uid.is_some_and(holds));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcUse {
    pub pid: u32,
    pub used_mib: Option<u64>,
    pub command: String,
    /// The process's user on the host.
    pub user: String,
    /// Its uid on the host, from `/proc/<pid>/status` (unknown when procfs hides it).
    pub uid: Option<u32>,
    /// The container it runs in (from its cgroup), when it runs in one.
    #[serde(skip)]
    pub container_id: Option<String>,
    pub who: Who,
    /// Why its owner or container could not be seen, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseen: Option<String>,
}

/// Whose a GPU process is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Who {
    /// A berth environment (the caller's, or anyone's with `--all-users`).
    Environment {
        environment: String,
        owner: String,
        project: String,
        container: String,
        job: Option<String>,
    },
    /// Another user's berth environment, not named without `--all-users`.
    OtherUsersEnvironment { owner: String },
    /// A container berth did not create.
    Container { container: String },
    /// A container this engine does not know (another engine, Kubernetes, ...).
    UnknownContainer { id: String },
    /// A process on the host itself.
    Host,
    /// A process procfs shows nothing of here (another pid namespace, hidepid).
    Unseen,
}

/// A process as procfs describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub uid: Option<u32>,
    pub command: String,
    /// The container id from its cgroup path.
    pub container: Option<String>,
    /// Pids inside its container's namespace of itself, its process-group leader and its
    /// ancestors in the same container: a job's pid file holds one of them.
    pub ns_pids: Vec<u32>,
}

/// A container as the engine lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl ContainerMeta {
    /// Whether berth created it: its labels say managed and carry a plan hash. A plain `docker
    /// run` of an image berth built or committed inherits the image's `managed` and project
    /// labels, and is still not an environment.
    pub fn is_berth(&self) -> bool {
        self.labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
            && self.labels.get(LABEL_HASH).is_some_and(|h| !h.is_empty())
    }
}

/// Running jobs of one project: `(name, process group inside the container)`.
pub type Jobs = Vec<(String, u32)>;

/// Who the viewer is and how much they may see.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    pub uid: u32,
    pub all_users: bool,
}

/// `0, GPU-..., NVIDIA RTX A6000, 29520, 49140, 87` lines of [`sources::NVIDIA_GPU_QUERY`]
/// (`--format=csv,noheader,nounits`); a line without the last field (an older recording) has
/// its utilisation unknown, as has `[N/A]`.
pub fn parse_nvidia_gpus(csv: &str) -> Vec<GpuUse> {
    csv.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let (index, uuid, name, used, total, util) = match f[..] {
                [index, uuid, name, used, total] => (index, uuid, name, used, total, ""),
                [index, uuid, name, used, total, util] => (index, uuid, name, used, total, util),
                _ => return None,
            };
            Some(GpuUse {
                index: index.parse().ok()?,
                vendor: "nvidia",
                uuid: Some(uuid.to_string()).filter(|u| u.starts_with("GPU-")),
                name: name.to_string(),
                used_mib: used.parse().ok(),
                total_mib: total.parse().ok(),
                utilization_percent: util.parse().ok(),
                processes: Vec::new(),
                leases: Vec::new(),
                used_without_lease: false,
                lease_idle: false,
            })
        })
        .collect()
}

/// `(pid, MiB, gpu uuid)` from
/// `nvidia-smi --query-compute-apps=pid,used_memory,gpu_uuid --format=csv,noheader,nounits`;
/// memory is `[N/A]` on some platforms (WSL), kept as unknown.
pub fn parse_nvidia_apps(csv: &str) -> Vec<(u32, Option<u64>, String)> {
    csv.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let [pid, used, uuid] = f[..] else { return None };
            Some((pid.parse().ok()?, used.parse().ok(), uuid.to_string()))
        })
        .collect()
}

/// The container id in a `/proc/<pid>/cgroup` text: cgroup v1 `…:/docker/<id>`, v2 with
/// cgroupfs `0::/docker/<id>`, v2 with systemd `0::/system.slice/docker-<id>.scope` (also
/// rootless Docker's and Podman's `libpod-<id>.scope`), nested cgroups below those included.
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.split('/').rev().find_map(|seg| {
            let seg = seg.strip_suffix(".scope").unwrap_or(seg);
            if seg.starts_with("libpod-conmon-") {
                return None;
            }
            let id = seg.rsplit(['-', ':']).next().unwrap_or(seg);
            is_container_id(id).then(|| id.to_string())
        })
    })
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whose `proc` is, given the engine's containers and each berth project's running jobs.
pub fn who(
    proc: &ProcInfo,
    containers: &[ContainerMeta],
    jobs: &BTreeMap<String, Jobs>,
    viewer: Viewer,
) -> Who {
    let Some(id) = &proc.container else { return Who::Host };
    let Some(c) = containers.iter().find(|c| &c.id == id) else {
        return Who::UnknownContainer { id: id.chars().take(12).collect() };
    };
    let get = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
    if !c.is_berth() {
        return Who::Container { container: c.name.clone() };
    }
    let owner = get(LABEL_OWNER);
    let mine = c.labels.get(LABEL_OWNER_UID).and_then(|u| u.parse::<u32>().ok()) == Some(viewer.uid);
    if !mine && !viewer.all_users {
        return Who::OtherUsersEnvironment { owner };
    }
    let project = get(LABEL_PROJECT);
    let job = jobs
        .get(&project)
        .and_then(|list| list.iter().find(|(_, pgid)| proc.ns_pids.contains(pgid)))
        .map(|(name, _)| name.clone());
    Who::Environment { environment: get(LABEL_NAME), owner, project, container: c.name.clone(), job }
}

impl Who {
    /// How the table shows it.
    pub fn words(&self) -> String {
        match self {
            Who::Environment { environment, job: Some(job), .. } => format!("{environment}, job {job}"),
            Who::Environment { environment, .. } => format!("{environment} (not a job)"),
            Who::OtherUsersEnvironment { owner } => format!("an environment of {owner}"),
            Who::Container { container } => format!("container {container} (not berth)"),
            Who::UnknownContainer { id } => format!("container {id} (not on this engine)"),
            Who::Host => "host process".to_string(),
            Who::Unseen => "unknown (no /proc entry here)".to_string(),
        }
    }
}

/// The text table: one block per GPU, its processes below, most memory first.
pub fn render(gpus: &[GpuUse]) -> String {
    let mut out = String::new();
    for g in gpus {
        let memory = match (g.used_mib, g.total_mib) {
            (Some(u), Some(t)) => format!("{u} / {t} MiB"),
            (Some(u), None) => format!("{u} MiB used"),
            (None, Some(t)) => format!("? / {t} MiB"),
            _ => "memory unknown".to_string(),
        };
        let busy = g.utilization_percent.map(|p| format!("  {p}% busy")).unwrap_or_default();
        out.push_str(&format!("GPU {}  {}  {memory}{busy}\n", g.index, crate::output::escape(&g.name)));
        for l in &g.leases {
            let note =
                l.note.as_ref().map(|n| format!(" ({})", crate::output::escape(n))).unwrap_or_default();
            out.push_str(&format!("  leased by {} until {}{note}\n", l.holder, l.until));
        }
        if g.lease_idle {
            out.push_str("  ! leased, but no process of its holder runs on it\n");
        }
        if g.used_without_lease {
            out.push_str("  ! used by someone who holds no lease on it\n");
        }
        if g.processes.is_empty() {
            out.push_str("  no processes\n");
            continue;
        }
        let rows: Vec<Vec<String>> = g
            .processes
            .iter()
            .map(|p| {
                let mem = p.used_mib.map_or_else(|| "?".to_string(), |m| format!("{m} MiB"));
                vec![p.pid.to_string(), mem, p.user.clone(), p.command.clone(), p.who.words()]
            })
            .collect();
        let table = crate::output::table(&["PID", "MEMORY", "USER", "COMMAND", "WHO"], &rows);
        for line in table.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}
