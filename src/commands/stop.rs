//! `berth stop`: stop the container and keep it (its files and its GPUs' assignment).

use super::{Context, Project};
use crate::engine::{self, Engine};

pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let project = Project::load_existing(ctx)?;
    let engine = Engine::connect().await?;
    let Some(c) = project.container(&engine).await? else {
        ctx.out.status(format!("{} does not exist; nothing to stop", project.container));
        return Ok(());
    };
    if !engine::is_running(&c) {
        ctx.out.status(format!("{} is already stopped", project.container));
        return Ok(());
    }
    engine.stop(c.id.as_deref().unwrap_or(&project.container), 10).await?;
    ctx.out.status(format!(
        "stopped {} ({}); `berth up` starts it again",
        project.container,
        Project::short_id(&c)
    ));
    Ok(())
}
