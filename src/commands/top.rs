//! `berth top`: per GPU, the processes on it, their memory, and the environment and job each
//! belongs to. NVIDIA through nvidia-smi's query interface, AMD through KFD's sysfs.
//!
//! With `BERTH_HOST_ROOT` it reads a recorded host instead: `nvidia-smi/query-gpu.csv` and
//! `nvidia-smi/query-compute-apps.csv` (the two queries' outputs), `containers.json` (the
//! engine's `/containers/json?all=1`), `id.txt` (the viewer), and procfs/sysfs/job files below it.

use std::collections::BTreeMap;

use super::Context;
use crate::doctor::facts::parse_id;
use crate::environment::engine_within;
use crate::host::{HostFacts, HostRoot, HostUser, Vendor};
use crate::plan::{LABEL_MANAGED, LABEL_PROJECT};
use crate::top::{self, ContainerMeta, GpuUse, ProcUse, Viewer, sources};

const GPU_QUERY: &str = "--query-gpu=index,uuid,name,memory.used,memory.total";
const APPS_QUERY: &str = "--query-compute-apps=pid,used_memory,gpu_uuid";

pub async fn run(ctx: &Context, all_users: bool) -> anyhow::Result<()> {
    let root = HostRoot::from_env();
    let host = HostFacts::probe(&root);
    let viewer_uid = if root.is_recorded() {
        std::fs::read_to_string(root.dir().join("id.txt")).ok().and_then(|t| parse_id(&t)).map(|u| u.uid)
    } else {
        None
    };
    let viewer = Viewer { uid: viewer_uid.unwrap_or_else(|| HostUser::current().uid), all_users };

    let mut gpus: Vec<GpuUse> = Vec::new();
    // (pid, MiB, index into `gpus`)
    let mut apps: Vec<(u32, Option<u64>, usize)> = Vec::new();
    let has_nvidia =
        host.gpus_of(Vendor::Nvidia).next().is_some() || host.nvidia_driver.is_some() || host.wsl.is_some();
    if has_nvidia {
        match (nvidia_smi(&root, GPU_QUERY), nvidia_smi(&root, APPS_QUERY)) {
            (Ok(g), Ok(a)) => {
                gpus = top::parse_nvidia_gpus(&g);
                for (pid, mib, uuid) in top::parse_nvidia_apps(&a) {
                    if let Some(i) = gpus.iter().position(|g| g.uuid.as_deref() == Some(uuid.as_str())) {
                        apps.push((pid, mib, i));
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => ctx.out.warn(format!("cannot list NVIDIA GPU processes: {e}")),
        }
    }
    let amd: Vec<_> = host.gpus_of(Vendor::Amd).collect();
    if !amd.is_empty() {
        let (uses, procs) = sources::amd_usage(&root, &amd);
        let offset = gpus.len();
        gpus.extend(uses);
        for (pid, mib, index) in procs {
            if let Some(i) = gpus[offset..].iter().position(|g| g.index == index) {
                apps.push((pid, mib, offset + i));
            }
        }
    }
    if gpus.is_empty() {
        if ctx.out.json {
            return ctx.out.json(&gpus);
        }
        ctx.out.status("no GPUs to show on this host");
        return Ok(());
    }

    let containers = containers(ctx, &root).await;
    let names = sources::user_names(&root);
    let mut jobs = BTreeMap::new();
    for (pid, mib, i) in apps {
        let info = sources::proc_info(&root, pid);
        let project = info
            .container
            .as_ref()
            .and_then(|id| containers.iter().find(|c| &c.id == id))
            .filter(|c| c.labels.get(LABEL_MANAGED).map(String::as_str) == Some("true"))
            .and_then(|c| c.labels.get(LABEL_PROJECT));
        if let Some(p) = project
            && !jobs.contains_key(p)
        {
            jobs.insert(p.clone(), sources::running_jobs(&root, p));
        }
        let user =
            info.uid.map(|u| names.get(&u).cloned().unwrap_or_else(|| u.to_string())).unwrap_or_default();
        let who = top::who(&info, &containers, &jobs, viewer);
        gpus[i].processes.push(ProcUse { pid, used_mib: mib, command: info.command, user, who });
    }
    for g in &mut gpus {
        g.processes.sort_by(|a, b| b.used_mib.cmp(&a.used_mib).then(a.pid.cmp(&b.pid)));
    }
    if ctx.out.json {
        return ctx.out.json(&gpus);
    }
    ctx.out.data(top::render(&gpus));
    Ok(())
}

/// One nvidia-smi query's CSV: run it, or read it from a recorded host.
fn nvidia_smi(root: &HostRoot, query: &str) -> Result<String, String> {
    let file = if query == GPU_QUERY { "query-gpu.csv" } else { "query-compute-apps.csv" };
    sources::nvidia_smi(root, query, file)
}

/// Every container the engine knows (a recorded host: its `containers.json`); none, with a
/// warning, when the engine cannot be asked: GPU processes are still listed.
async fn containers(ctx: &Context, root: &HostRoot) -> Vec<ContainerMeta> {
    let list: Vec<crate::engine::Listed> = if root.is_recorded() {
        std::fs::read_to_string(root.dir().join("containers.json"))
            .map(|t| crate::engine::listed_from_json(&t))
            .unwrap_or_default()
    } else {
        let listed = match engine_within(10).await {
            Ok((engine, _)) => engine.all_containers(false).await,
            Err(e) => Err(e),
        };
        listed.unwrap_or_else(|e| {
            ctx.out
                .warn(format!("cannot ask the engine which containers exist ({e:#}); they are shown by id"));
            Vec::new()
        })
    };
    list.into_iter()
        .map(|c| ContainerMeta { name: c.name, id: c.id, labels: c.labels.into_iter().collect() })
        .collect()
}
