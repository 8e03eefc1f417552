//! `berth --on NAME fetch PATH... [--force]`: copy files or folders (e.g. `work_dirs/`, a
//! checkpoint) from the server's project folder into this one. A local file newer than the
//! server's is kept unless `--force`; paths stay inside the project on both sides
//! (`remote::sync::fetch`), and a path that leaves it is refused before the server is reached.

use std::path::{Component, Path, PathBuf};

use super::{Context, ExitStatus};
use crate::error::{Code, fail};
use crate::output::count;
use crate::remote::sync::{self, FetchReport};
use crate::spec::size::format_size;

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// As the user gave them: relative to `-C DIR` (or the current folder), or absolute.
    pub paths: Vec<PathBuf>,
    pub force: bool,
}

/// Without a server there is nothing to fetch from.
pub fn run(_ctx: &Context, _opts: FetchOptions) -> anyhow::Result<ExitStatus> {
    Err(fail(
        Code::BadInput,
        "fetch copies from a server's copy of the project, and no server was named",
        "run `berth --on NAME fetch PATH` (servers are added with `berth remote add NAME ssh://user@host`)",
    ))
}

/// Fetch with `fetch` (the server's side reached by the caller): the paths are checked here
/// first, then the report printed.
pub fn run_from(
    ctx: &Context,
    opts: FetchOptions,
    fetch: impl FnOnce(&Path, &[PathBuf], bool) -> anyhow::Result<FetchReport>,
) -> anyhow::Result<FetchReport> {
    let project = project_dir(ctx)?;
    let paths = opts
        .paths
        .iter()
        .map(|p| inside_project(&project, &ctx.dir, p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = fetch(&project, &paths, opts.force)?;
    sync::warn_skipped(&ctx.out, &report.files_skipped);
    if ctx.out.json {
        ctx.out.json(&report)?;
    } else {
        let mut line = format!(
            "fetched {} ({})",
            count(report.files_fetched, "file"),
            format_size(report.bytes_received)
        );
        if report.unchanged > 0 {
            line.push_str(&format!(", {} already here", report.unchanged));
        }
        if !report.files_skipped.is_empty() {
            line.push_str(&format!(", {} kept as they were", report.files_skipped.len()));
        }
        ctx.out.status(line);
    }
    Ok(report)
}

/// The project folder: where `berth.toml` is, found from `-C DIR` or the current folder.
fn project_dir(ctx: &Context) -> anyhow::Result<PathBuf> {
    let file = crate::spec::find(&ctx.dir)?;
    let file = file.canonicalize().unwrap_or(file);
    Ok(file.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// `path` (relative to `base`, or absolute) as a path relative to `project`, or an error when
/// it leaves the project.
fn inside_project(project: &Path, base: &Path, path: &Path) -> anyhow::Result<PathBuf> {
    let base = std::path::absolute(base)?;
    let base = base.canonicalize().unwrap_or(base);
    let joined = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
    let mut clean = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            c => clean.push(c),
        }
    }
    match clean.strip_prefix(project) {
        Ok(rel) => Ok(rel.to_path_buf()),
        Err(_) => Err(fail(
            Code::BadInput,
            format!("{} is outside the project folder {}", path.display(), project.display()),
            "fetch copies only from the server's copy of this project: give a path inside it",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_relative_to_the_folder_and_kept_inside_the_project() {
        let p = Path::new("/home/u/proj");
        let rel = |base: &str, path: &str| inside_project(p, Path::new(base), Path::new(path)).ok();
        assert_eq!(rel("/home/u/proj", "work_dirs"), Some(PathBuf::from("work_dirs")));
        assert_eq!(rel("/home/u/proj/src", "../work_dirs/e1.pth"), Some(PathBuf::from("work_dirs/e1.pth")));
        assert_eq!(rel("/tmp", "/home/u/proj/out"), Some(PathBuf::from("out")));
        assert_eq!(rel("/home/u/proj", "."), Some(PathBuf::from("")));
        assert_eq!(rel("/home/u/proj", "../other"), None);
        assert_eq!(rel("/home/u/proj", "/etc/passwd"), None);
    }
}
