//! `berth build`: make the environment's image from the project file (or the user's
//! Dockerfile) and print it. Tags are content-addressed, so an unchanged environment is
//! recognised by one engine lookup, without a build; superseded images stay until `berth clean`.

use std::collections::HashMap;

use serde::Serialize;

use super::{Context, Project};
use crate::engine::{Engine, build::BuildRequest};
use crate::image::{self, Resolved, context};

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

pub async fn run(ctx: &Context, opts: BuildOptions) -> anyhow::Result<()> {
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
        return Ok(());
    }
    let engine = Engine::connect().await?;
    let built = ensure(ctx, &project, &engine, &resolved).await?;
    let image = resolved.built_tag.clone().unwrap_or_else(|| resolved.image.clone());
    if ctx.out.json {
        return ctx.out.json(&Built { image, built });
    }
    ctx.out.status(format!("{} {image}", if built { "built" } else { "up to date:" }));
    if resolved.committed {
        ctx.out.status(format!(
            "  the environment runs the committed image {} (see `berth commit`)",
            resolved.image
        ));
    }
    Ok(())
}

/// Make sure the environment's image is on the engine: the committed one, the built tag
/// (building it when missing), or the base (pulled when missing). Returns whether it built.
pub async fn ensure(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    resolved: &Resolved,
) -> anyhow::Result<bool> {
    if resolved.committed {
        if engine.has_image(&resolved.image).await? {
            return Ok(false);
        }
        return Err(crate::error::fail(
            crate::error::Code::Failure,
            format!("the committed image {} is no longer on this engine", resolved.image),
            format!(
                "delete {} to go back to the image berth.toml describes",
                image::commit_record_path(&project.spec.project_dir).display()
            ),
        ));
    }
    let (Some(build), Some(tag)) = (&resolved.build, &resolved.built_tag) else {
        engine.ensure_image(&resolved.base, &ctx.out).await?;
        return Ok(false);
    };
    if engine.has_image(tag).await? {
        return Ok(false);
    }
    // The log may show what the build was given: the owner's alone, like all of `.berth`.
    let sharing = crate::jobs::private::Sharing::of(&project.spec.user, &project.user);
    let state = crate::state::dir(&project.spec.project_dir);
    let log = crate::state::build_log(&project.spec.project_dir);
    crate::jobs::private::state_dir(&project.spec.project_dir, sharing)
        .map_err(|e| crate::fsutil::io_failure(&state, "create the folder", &e))?;
    crate::jobs::private::private_file(&log, sharing)
        .map_err(|e| crate::fsutil::io_failure(&log, "write", &e))?;
    ctx.out.status(format!("building {tag} from {} (log: {})", resolved.base, log.display()));
    let labels: HashMap<String, String> =
        image::labels(&project.spec, &project.user, &resolved.inputs).into_iter().collect();
    let req = BuildRequest {
        context_tar: context::tar(&build.entries)?,
        dockerfile: &build.dockerfile_name,
        tag,
        labels,
        log: &log,
    };
    engine.build(req, &ctx.out).await?;
    Ok(true)
}
