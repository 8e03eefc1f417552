//! `berth stop`: stop the container and keep it (its files and its GPUs' assignment). Running
//! jobs are the user's work: refused while any runs, unless `--force`. Holds the project lock,
//! so no job starts while the container is being stopped.

use super::ExitStatus;
use super::{Context, Project};
use crate::engine;

pub async fn run(ctx: &Context, force: bool) -> anyhow::Result<ExitStatus> {
    let (project, engine) = Project::existing(ctx).await?;
    let _lock = crate::environment::up::lock(&project)?;
    let Some(c) = project.container_or_moved(ctx, &engine).await? else {
        ctx.out.status(format!("{} does not exist; nothing to stop", project.container));
        return Ok(ExitStatus::SUCCESS);
    };
    if !engine::is_running(&c) {
        ctx.out.status(format!("{} is already stopped", project.container));
        return Ok(ExitStatus::SUCCESS);
    }
    if !force {
        crate::environment::guard::refuse_running_jobs(
            &project,
            &engine,
            &c,
            "add --force to stop it anyway (they are killed)",
        )
        .await?;
    }
    engine.stop(if c.id.is_empty() { &project.container } else { &c.id }, 10).await?;
    ctx.out.status(format!(
        "stopped {} ({}); `berth up` starts it again",
        project.container,
        Project::short_id(&c)
    ));
    Ok(ExitStatus::SUCCESS)
}
