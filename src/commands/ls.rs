//! `berth ls`: the caller's berth environments on this engine (`--all-users`: everyone's).

use super::ExitStatus;
use serde::Serialize;

use super::Context;
use crate::engine::Engine;
use crate::host::HostUser;
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
    pub gpus: String,
}

pub async fn run(ctx: &Context, all_users: bool) -> anyhow::Result<ExitStatus> {
    let engine = Engine::connect().await?;
    let user = HostUser::current();
    let list = engine.list_berth((!all_users).then_some(user.uid)).await?;
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
            Entry {
                name: get("dev.berth.name"),
                state: c.state.clone(),
                container_id: c.id.clone(),
                container_name: c.name.clone(),
                image: c.image.clone(),
                project: get(LABEL_PROJECT),
                owner: get("dev.berth.owner"),
                gpus,
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
            let mut row =
                vec![e.name.clone(), e.state.clone(), e.gpus.clone(), e.image.clone(), e.project.clone()];
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
