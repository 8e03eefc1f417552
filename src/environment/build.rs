//! The environment's image on the engine (`berth build`, `up`): the committed one, the built
//! tag, or the base. Tags are content-addressed, so an unchanged environment is recognised by
//! one engine lookup, without a build.

use std::collections::HashMap;

use super::{Context, Project};
use crate::engine::{Engine, build::BuildRequest};
use crate::image::{self, Resolved, context};

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
        engine.ensure_image(&resolved.base, &ctx.out.transfer()).await?;
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
    engine.build(req, &ctx.out.spinner()).await?;
    Ok(true)
}
