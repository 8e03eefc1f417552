//! `berth down`: remove the container, never the work inside it without `--force`.
//!
//! Mounted folders, images and volumes are never touched: "down" removes the container only;
//! the guard ([`crate::environment::guard`]) lists what would be lost and refuses.

use super::ExitStatus;
use super::{Context, Project};
use crate::environment::{guard, up};

pub async fn run(ctx: &Context, force: bool) -> anyhow::Result<ExitStatus> {
    let (project, engine) = Project::existing(ctx).await?;
    let _lock = up::lock(&project)?;
    let Some(c) = project.container_or_moved(ctx, &engine).await? else {
        ctx.out.status(format!("{} does not exist; nothing to remove", project.container));
        return Ok(ExitStatus::SUCCESS);
    };
    guard::guard(&project, &engine, &c, force).await?;
    engine.remove(if c.id.is_empty() { &project.container } else { &c.id }).await?;
    // Its ssh-agent relay has no one left to serve: it exits at its next check.
    crate::ssh_agent::remove_socket(&project.spec.project_dir);
    ctx.out.status(format!("removed {} ({})", project.container, Project::short_id(&c)));
    Ok(ExitStatus::SUCCESS)
}
