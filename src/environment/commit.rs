//! Committing an environment (`berth commit`, `up --adopt`): snapshot the container's writable layer into an image the environment then
//! starts from (recorded in `.berth/commit.json` with the inputs it was made from), and say how
//! to make the change permanent in the project file.

use std::collections::HashMap;

use super::{Context, Project};
use crate::engine::Engine;
use crate::image::{self, CommitRecord};
use crate::jobs::store::rfc3339;

/// Commit the container `c` as the project's image (see the module doc).
pub async fn commit(
    ctx: &Context,
    project: &Project,
    engine: &Engine,
    c: &crate::engine::Container,
) -> anyhow::Result<()> {
    let resolved = image::resolve(&project.spec, &project.host_facts())?;
    let stamp = rfc3339(std::time::SystemTime::now());
    let tag = format!("commit-{}", stamp.replace(['-', ':'], "").trim_end_matches('Z').replace('T', "-"));
    let repo = format!("berth/{}", image::repo_name(&project.spec.name));
    let mut labels: HashMap<String, String> =
        image::labels(&project.spec, &project.user, &resolved.inputs).into_iter().collect();
    // The engine copies the container's labels into the image; the container-only ones must
    // not make a plain `docker run` of the image look like a berth environment.
    for key in crate::plan::CONTAINER_ONLY_LABELS {
        labels.insert(key.to_string(), String::new());
    }
    // What the image will hold, seen before the commit (the container is paused meanwhile, and a
    // change made between the two is counted as not captured: `down` errs on the safe side).
    let id = if c.id.is_empty() { project.container.as_str() } else { c.id.as_str() };
    let found = engine.significant_changes(c).await?;
    let captured = engine.seen(id, &found).await?;
    engine.commit(id, &repo, &tag, "berth commit", labels).await?;
    let image = format!("{repo}:{tag}");
    let record = CommitRecord {
        image: image.clone(),
        inputs: resolved.inputs.clone(),
        created: stamp,
        container: Some(c.id.clone()).filter(|i| !i.is_empty()),
        captured,
    };
    let path = image::commit_record_path(&project.spec.project_dir);
    crate::fsutil::write_atomic(&path, serde_json::to_string_pretty(&record)?.as_bytes(), 0o644)?;
    ctx.out.status(format!("committed {} as {image}", c.shown_name()));
    ctx.out.status(
        "  a recreated environment (`berth up --recreate`, or `berth down` then `berth up`) starts from it",
    );
    ctx.out.status(format!(
        "  to make it permanent, put the change in berth.toml: `berth freeze --write requirements.txt` for pip \
         packages, `[image] apt = [...]` for system ones, or `[image] base = \"{image}\"`"
    ));
    ctx.out.status(format!("  to go back to the image berth.toml describes, delete {}", path.display()));
    Ok(())
}
