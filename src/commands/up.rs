//! `berth up`: make the environment exist and run, exactly as the file says (see
//! [`crate::environment::up`]), then name the settings that widen access.

use super::ExitStatus;
use super::{Context, Project};
use crate::engine::Engine;
use crate::environment::{announce, up};

pub use crate::environment::up::UpOptions;

pub async fn run(ctx: &Context, opts: UpOptions) -> anyhow::Result<ExitStatus> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let result = up::apply(ctx, &project, &engine, opts).await?;
    announce::announce(ctx, &project.spec);
    if ctx.out.json {
        ctx.out.json(&result)?;
    }
    Ok(ExitStatus::SUCCESS)
}
