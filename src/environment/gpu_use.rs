//! What runs on each GPU now, and whose it is: `berth top` shows it, `up` chooses around it.
//! NVIDIA through nvidia-smi's query interface, AMD through KFD's sysfs, each process matched to
//! a container through its cgroup and to a job through the project's pid files (`crate::top`).
//!
//! With `BERTH_HOST_ROOT` it reads a recorded host instead: `nvidia-smi/query-gpu.csv` and
//! `nvidia-smi/query-compute-apps.csv` (the two queries' outputs), `containers.json` (the
//! engine's `/containers/json?all=1`; without it the engine is asked), and procfs/sysfs/job
//! files below it.

use std::collections::BTreeMap;

use crate::host::{HostFacts, HostRoot, Vendor};
use crate::plan::LABEL_PROJECT;
use crate::top::{self, ContainerMeta, GpuUse, ProcUse, Viewer, sources};

/// Every GPU with its processes, and what could not be seen (said, never guessed).
#[derive(Debug, Default)]
pub struct Usage {
    pub gpus: Vec<GpuUse>,
    pub unseen: Vec<String>,
}

/// Read the GPUs' processes and attribute each one.
pub async fn collect(root: &HostRoot, host: &HostFacts, viewer: Viewer) -> Usage {
    let mut usage = Usage::default();
    // (pid, MiB, index into `gpus`)
    let mut apps: Vec<(u32, Option<u64>, usize)> = Vec::new();
    let has_nvidia =
        host.gpus_of(Vendor::Nvidia).next().is_some() || host.nvidia_driver.is_some() || host.wsl.is_some();
    if has_nvidia {
        match sources::nvidia_smi(root) {
            Ok((gpus, procs)) => {
                usage.gpus = gpus;
                for (pid, mib, uuid) in procs {
                    if let Some(i) = usage.gpus.iter().position(|g| g.uuid.as_deref() == Some(uuid.as_str()))
                    {
                        apps.push((pid, mib, i));
                    }
                }
            }
            Err(e) => usage.unseen.push(format!("cannot list NVIDIA GPU processes: {e}")),
        }
    }
    let amd: Vec<_> = host.gpus_of(Vendor::Amd).collect();
    if !amd.is_empty() {
        let (uses, procs) = sources::amd_usage(root, &amd);
        let offset = usage.gpus.len();
        usage.gpus.extend(uses);
        for (pid, mib, index) in procs {
            if let Some(i) = usage.gpus[offset..].iter().position(|g| g.index == index) {
                apps.push((pid, mib, offset + i));
            }
        }
    }
    if usage.gpus.is_empty() {
        return usage;
    }
    let containers = containers(root, &mut usage.unseen).await;
    let names = sources::user_names(root);
    let mut jobs = BTreeMap::new();
    let mut hidden = Vec::new();
    for (pid, mib, i) in apps {
        let info = sources::proc_info(root, pid);
        let project = info
            .container
            .as_ref()
            .and_then(|id| containers.iter().find(|c| &c.id == id))
            .filter(|c| c.is_berth())
            .and_then(|c| c.labels.get(LABEL_PROJECT));
        if let Some(p) = project
            && !jobs.contains_key(p)
        {
            jobs.insert(p.clone(), sources::running_jobs(root, p));
        }
        let user =
            info.uid.map(|u| names.get(&u).cloned().unwrap_or_else(|| u.to_string())).unwrap_or_default();
        let unseen = info.uid.is_none().then(|| {
            hidden.push(pid.to_string());
            "procfs shows nothing of it here (another pid namespace, or /proc mounted with hidepid)"
                .to_string()
        });
        let who = if unseen.is_some() && info.container.is_none() {
            top::Who::Unseen
        } else {
            top::who(&info, &containers, &jobs, viewer)
        };
        usage.gpus[i].processes.push(ProcUse {
            pid,
            used_mib: mib,
            command: info.command,
            user,
            uid: info.uid,
            container_id: info.container.clone(),
            who,
            unseen,
        });
    }
    if !hidden.is_empty() {
        usage.unseen.push(format!(
            "process {} on a GPU has no /proc entry berth can read (it runs in another pid namespace, or /proc \
             is mounted with hidepid): its user and container are unknown",
            hidden.join(", ")
        ));
    }
    for g in &mut usage.gpus {
        g.processes.sort_by(|a, b| b.used_mib.cmp(&a.used_mib).then(a.pid.cmp(&b.pid)));
    }
    usage
}

/// Every container the engine knows (a recorded host: its `containers.json`); none, with a
/// note, when the engine cannot be asked: GPU processes are still listed.
async fn containers(root: &HostRoot, unseen: &mut Vec<String>) -> Vec<ContainerMeta> {
    let recorded = root.dir().join("containers.json");
    let list: Vec<crate::engine::Listed> = if root.is_recorded() && recorded.exists() {
        std::fs::read_to_string(&recorded).map(|t| crate::engine::listed_from_json(&t)).unwrap_or_default()
    } else {
        let listed = match super::engine_within(10).await {
            Ok((engine, _)) => engine.all_containers(false).await,
            Err(e) => Err(e),
        };
        listed.unwrap_or_else(|e| {
            unseen
                .push(format!("cannot ask the engine which containers exist ({e:#}); they are shown by id"));
            Vec::new()
        })
    };
    list.into_iter()
        .map(|c| ContainerMeta { name: c.name, id: c.id, labels: c.labels.into_iter().collect() })
        .collect()
}

/// What else holds each GPU, for `up`'s choice: other users' leases and every process not in
/// this environment's container (`own`). GPUs in `held` (the running environment's own) carry
/// no lease claim: they were its before the lease. Returns the claims and what could not be seen.
pub async fn claims(
    root: &HostRoot,
    host: &HostFacts,
    uid: u32,
    own: Option<&str>,
    held: &[u32],
    force: bool,
) -> (crate::plan::GpuClaims, Vec<String>) {
    let mut claims = crate::plan::GpuClaims { force, ..Default::default() };
    let mut unseen = Vec::new();
    let now = crate::lease::now();
    match crate::lease::Store::list_if_any(now) {
        Ok(listing) => {
            for l in crate::lease::others(&listing.leases, uid, now) {
                for g in l.record.gpus.iter().filter(|g| !held.contains(g)) {
                    claims.leased.entry(*g).or_insert_with(|| format!("leased by {}", l.holder_words(now)));
                }
            }
        }
        Err(e) => unseen.push(format!("cannot read the GPU leases ({e:#}); GPUs are chosen without them")),
    }
    let usage = collect(root, host, Viewer { uid, all_users: false }).await;
    unseen.extend(usage.unseen);
    for g in usage.gpus {
        let words: Vec<String> = g
            .processes
            .iter()
            .filter(|p| own.is_none() || p.container_id.as_deref() != own)
            .map(|p| {
                let mem = p.used_mib.map_or_else(|| "memory".to_string(), |m| format!("{m} MiB"));
                let user = if p.user.is_empty() {
                    "an unknown user".to_string()
                } else {
                    format!("user {}", p.user)
                };
                format!("{mem} of {} ({user}, pid {})", p.who.words(), p.pid)
            })
            .collect();
        if !words.is_empty() {
            claims.used.insert(g.index, words);
        }
    }
    (claims, unseen)
}
