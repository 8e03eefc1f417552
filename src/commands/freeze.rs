//! `berth freeze [--write FILE]`: the Python packages installed in the running container that
//! differ from the requirements (added, removed, other version); `--write` records what is
//! installed as a pinned requirements file.

use super::ExitStatus;
use std::collections::BTreeMap;

use anyhow::Context as _;

use super::{Context, Project};
use crate::engine::{self, Engine, exec::ExecRequest};
use crate::environment::up;
use crate::error::{Code, fail};
use crate::image::freeze;
use crate::output::table;

const PIP_LIST: &str = r#"py=$(command -v python3 || command -v python) || { echo "no python in this environment" >&2; exit 127; }
exec "$py" -m pip list --format=json --disable-pip-version-check"#;

/// The installed packages and how they differ from the requirements.
pub async fn inspect(
    project: &Project,
    engine: &Engine,
) -> anyhow::Result<(BTreeMap<String, String>, freeze::Drift, BTreeMap<String, Option<String>>)> {
    let req = ExecRequest {
        container: project.container.clone(),
        cmd: vec!["/bin/sh".into(), "-c".into(), PIP_LIST.into()],
        ..Default::default()
    };
    let out = engine.exec_capture(&req).await?;
    if out.code != 0 {
        return Err(fail(
            Code::Failure,
            format!("`pip list` failed in {} (exit {}): {}", project.container, out.code, out.stderr.trim()),
            "freeze needs Python with pip in the image",
        ));
    }
    #[derive(serde::Deserialize)]
    struct Item {
        name: String,
        version: String,
    }
    let items: Vec<Item> = serde_json::from_str(out.stdout.trim()).context("reading `pip list` output")?;
    let installed: BTreeMap<String, String> =
        items.into_iter().map(|i| (freeze::normalise(&i.name), i.version)).collect();
    let layer = engine.changes(&project.container).await?;
    let requirements = requirement_lines(project)?;
    let wanted = freeze::parse_requirements(&requirements);
    let drift = freeze::compare(&installed, &layer, &wanted);
    Ok((installed, drift, wanted))
}

/// `[image] pip` followed by the requirements file's lines. (Unversioned torch companions are
/// pinned by the build to the image's own torch, so any installed version is the wanted one.)
fn requirement_lines(project: &Project) -> anyhow::Result<Vec<String>> {
    let img = &project.spec.image;
    let mut lines = img.pip.clone();
    if let Some(r) = &img.requirements {
        let text = std::fs::read_to_string(r).with_context(|| format!("reading {}", r.display()))?;
        lines.extend(text.lines().map(str::to_string));
    }
    Ok(lines)
}

pub async fn run(ctx: &Context, write: Option<std::path::PathBuf>) -> anyhow::Result<ExitStatus> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let running = matches!(project.container(&engine).await?, Some(c) if engine::is_running(&c));
    if !running {
        up::apply(ctx, &project, &engine, up::UpOptions::default()).await?;
    }
    let (installed, drift, wanted) = inspect(&project, &engine).await?;
    if let Some(path) = write {
        let path = if path.is_absolute() { path } else { ctx.dir.join(path) };
        let text = format!(
            "# Written by `berth freeze` from {} ({} packages pinned).\n{}",
            project.container,
            wanted.len() + drift.added.len(),
            freeze::pinned(&installed, &drift, &wanted)
        );
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)?;
        ctx.out.status(format!("wrote {}", path.display()));
    }
    if ctx.out.json {
        ctx.out.json(&drift)?;
        return Ok(ExitStatus::SUCCESS);
    }
    if drift.is_empty() {
        ctx.out.status("the installed packages match the requirements");
        return Ok(ExitStatus::SUCCESS);
    }
    let mut rows = Vec::new();
    for p in &drift.added {
        rows.push(vec!["added".into(), p.name.clone(), p.version.clone().unwrap_or_default()]);
    }
    for p in &drift.removed {
        rows.push(vec!["missing".into(), p.name.clone(), p.version.clone().unwrap_or_default()]);
    }
    for c in &drift.changed {
        rows.push(vec!["version".into(), c.name.clone(), format!("{} → {}", c.from, c.to)]);
    }
    ctx.out.data(table(&["CHANGE", "PACKAGE", "VERSION"], &rows));
    ctx.out.status("keep them: `berth freeze --write requirements.txt` (and `requirements = \"requirements.txt\"` in [image]), or `berth commit`");
    Ok(ExitStatus::SUCCESS)
}
