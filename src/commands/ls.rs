//! `berth ls`: the caller's berth environments on this engine (`--all-users`: everyone's), each
//! with its GPUs as host indices (as `berth top` and `berth lease` number them) where this host
//! knows them.

use super::ExitStatus;
use serde::Serialize;

use super::Context;
use crate::engine::Engine;
use crate::host::{HostFacts, HostRoot, HostUser};
use crate::output::table;
use crate::plan::{LABEL_PLAN, LABEL_PROJECT, drift::Summary};

#[derive(Debug, Serialize)]
pub struct Entry {
    pub name: String,
    pub state: String,
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    pub project: String,
    pub owner: String,
    /// As the environment's plan records them: `nvidia:GPU-<uuid>,...`, `nvidia:all`, `none`.
    pub gpus: String,
    /// The same GPUs as host indices, where this host has them.
    pub host_gpus: Vec<u32>,
}

pub async fn run(ctx: &Context, all_users: bool) -> anyhow::Result<ExitStatus> {
    let engine = Engine::connect().await?;
    let user = HostUser::current();
    let list = engine.list_berth((!all_users).then_some(user.uid)).await?;
    let host = HostFacts::probe(&HostRoot::from_env());
    let entries: Vec<Entry> = list
        .into_iter()
        .map(|c| {
            let labels = c.labels.clone();
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let gpus = labels
                .get(LABEL_PLAN)
                .and_then(|p| Summary::from_label(p))
                .map(|s| s.gpus)
                .unwrap_or_default();
            let host_gpus = host_indices(&gpus, &host);
            Entry {
                name: get("dev.berth.name"),
                state: c.state.clone(),
                container_id: c.id.clone(),
                container_name: c.name.clone(),
                image: c.image.clone(),
                project: get(LABEL_PROJECT),
                owner: get("dev.berth.owner"),
                gpus,
                host_gpus,
            }
        })
        .collect();
    if ctx.out.json {
        ctx.out.json(&entries)?;
        return Ok(ExitStatus::SUCCESS);
    }
    if entries.is_empty() {
        ctx.out.status("no berth environments here yet; `berth up` in a project folder creates one");
        return Ok(ExitStatus::SUCCESS);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let gpus = match (e.gpus.split_once(':'), e.host_gpus.is_empty()) {
                (Some((vendor, _)), false) => format!(
                    "{vendor} {}",
                    e.host_gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                ),
                _ => e.gpus.clone(),
            };
            let mut row = vec![e.name.clone(), e.state.clone(), gpus, e.image.clone(), e.project.clone()];
            if all_users {
                row.push(e.owner.clone());
            }
            row
        })
        .collect();
    let mut header = vec!["NAME", "STATE", "GPUS", "IMAGE", "PROJECT"];
    if all_users {
        header.push("OWNER");
    }
    ctx.out.data(table(&header, &rows));
    Ok(ExitStatus::SUCCESS)
}

/// Host indices of the GPUs a plan summary names (`nvidia:GPU-<uuid>,3`): each UUID or index
/// this host has; none when any is unknown here (shown as recorded then) or for `all`/`none`.
fn host_indices(gpus: &str, host: &HostFacts) -> Vec<u32> {
    let Some((_, ids)) = gpus.split_once(':') else { return Vec::new() };
    let found: Vec<Option<u32>> = ids
        .split(',')
        .map(|id| {
            host.gpus
                .iter()
                .find(|g| {
                    g.uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(id)) || g.index.to_string() == id
                })
                .map(|g| g.index)
        })
        .collect();
    if found.iter().any(Option::is_none) { Vec::new() } else { found.into_iter().flatten().collect() }
}
