//! `berth commit`: snapshot the container's writable layer into an image the environment then
//! starts from (see [`crate::environment::commit`]).

use super::ExitStatus;
use super::{Context, Project};
use crate::engine::Engine;
use crate::environment::commit;
use crate::error::{Code, fail};

pub async fn run(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let Some(c) = project.container(&engine).await? else {
        return Err(fail(
            Code::BadInput,
            format!("{} does not exist; nothing to commit", project.container),
            "`berth up` creates it",
        ));
    };
    commit::commit(ctx, &project, &engine, &c).await?;
    Ok(ExitStatus::SUCCESS)
}
