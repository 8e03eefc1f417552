//! The guard before a container is removed (`berth down`, `up --recreate`, `up --adopt`): it
//! refuses while jobs run, and reads the writable layer's changes, drops the noise
//! (`engine::changes`) and refuses while anything that matters is left, listing it grouped.
//! Mounted folders, images and volumes are never touched: "down" removes the container only.

use super::Project;
use crate::engine::{Engine, changes};
use crate::error::{Code, fail};

/// How many groups of changes a refusal lists before summarising.
const SHOWN: usize = 15;

/// The changes no `berth commit` of this container holds: those recorded in `.berth/commit.json`
/// for it, unchanged since (same kind, size and modification time) and with the committed image
/// still on the engine, are kept there and are not lost with the container.
async fn not_committed(
    project: &Project,
    engine: &Engine,
    c: &crate::engine::Container,
    found: Vec<changes::Change>,
) -> anyhow::Result<Vec<changes::Change>> {
    let Some(rec) = crate::image::read_commit(&project.spec.project_dir) else { return Ok(found) };
    if rec.captured.is_empty() || rec.container.as_deref() != Some(c.id.as_str()) {
        return Ok(found);
    }
    if !engine.has_image(&rec.image).await? {
        return Ok(found);
    }
    let candidates: Vec<changes::Change> =
        found.iter().filter(|f| rec.captured.iter().any(|s| s.path == f.path)).cloned().collect();
    let now = engine.seen(&c.id, &candidates).await?;
    Ok(found
        .into_iter()
        .filter(|f| !now.iter().any(|n| n.path == f.path && rec.captured.contains(n)))
        .collect())
}

/// Refuse while jobs run in the container (a running job is the user's work); `force_hint` says
/// what overrides it.
pub async fn refuse_running_jobs(
    project: &Project,
    engine: &Engine,
    c: &crate::engine::Container,
    force_hint: &str,
) -> anyhow::Result<()> {
    let running = crate::jobs::view::running(project, engine, c).await;
    if running.is_empty() {
        return Ok(());
    }
    Err(fail(
        Code::Refused,
        format!("{} has running jobs: {}", c.shown_name(), running.join(", ")),
        format!("wait for them (`berth logs NAME -f`), stop them (`berth kill NAME`), or {force_hint}"),
    ))
}

/// The changes that matter in the container's writable layer and that no `berth commit` has
/// kept: what `down` would lose and what a `pack` of the image leaves out.
pub async fn uncommitted(
    project: &Project,
    engine: &Engine,
    c: &crate::engine::Container,
) -> anyhow::Result<Vec<changes::Change>> {
    let found = engine.significant_changes(c).await?;
    not_committed(project, engine, c, found).await
}

/// Refuse unless the container holds no changes that matter, or `force` is given.
pub async fn guard(
    project: &Project,
    engine: &Engine,
    c: &crate::engine::Container,
    force: bool,
) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    refuse_running_jobs(project, engine, c, "add --force").await?;
    let found = uncommitted(project, engine, c).await?;
    if found.is_empty() {
        return Ok(());
    }
    let groups = changes::group(&found);
    let mut message = format!(
        "{} holds {} changed file{} that would be lost:",
        project.container,
        found.len(),
        if found.len() == 1 { "" } else { "s" }
    );
    for g in groups.iter().take(SHOWN) {
        message.push_str(&format!("\n    {g}"));
    }
    if groups.len() > SHOWN {
        message.push_str(&format!("\n    … and {} more places", groups.len() - SHOWN));
    }
    Err(fail(
        Code::Refused,
        message,
        "keep them in an image with `berth commit`, copy what you need into a mounted folder \
         (the project is mounted), or add --force to discard them",
    ))
}
