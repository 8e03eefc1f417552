//! `berth build`: make the environment's image from the project file (or the user's
//! Dockerfile) and print it. Tags are content-addressed, so an unchanged environment is
//! recognised by one engine lookup, without a build; superseded images stay until `berth clean`.

use super::ExitStatus;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::Engine;
use crate::environment::build;
use crate::image;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Print the Dockerfile instead of building.
    pub print: bool,
}

#[derive(Debug, Serialize)]
struct Built {
    image: String,
    built: bool,
}

pub async fn run(ctx: &Context, opts: BuildOptions) -> anyhow::Result<ExitStatus> {
    let project = Project::load(ctx)?;
    let host = project.host_facts();
    let resolved = image::resolve(&project.spec, &host)?;
    if opts.print {
        match &resolved.build {
            Some(b) => ctx.out.data(&b.dockerfile),
            None => ctx.out.status(format!(
                "nothing to build: the environment uses {} as it is (add apt, pip or requirements to [image])",
                resolved.base
            )),
        }
        return Ok(ExitStatus::SUCCESS);
    }
    let engine = Engine::connect().await?;
    let built = build::ensure(ctx, &project, &engine, &resolved).await?;
    let image = resolved.built_tag.clone().unwrap_or_else(|| resolved.image.clone());
    if ctx.out.json {
        ctx.out.json(&Built { image, built })?;
        return Ok(ExitStatus::SUCCESS);
    }
    ctx.out.status(format!("{} {image}", if built { "built" } else { "up to date:" }));
    if resolved.committed {
        ctx.out.status(format!(
            "  the environment runs the committed image {} (see `berth commit`)",
            resolved.image
        ));
    }
    Ok(ExitStatus::SUCCESS)
}
