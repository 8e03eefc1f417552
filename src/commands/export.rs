//! `berth export devcontainer|compose|slurm|k8s [-- CMD]`: write the environment for another
//! engine, under the project folder unless `-o` says otherwise (`-o -`: standard output).
//!
//! Reads only berth.toml (never the host or the engine), so the file is the same wherever it
//! is written; a file whose bytes would not change is left untouched. What berth assumed in
//! place of host facts is in the file's header and on stderr.

use super::ExitStatus;
use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use super::{Context, Project};
use crate::error::{Code, Hint, fail};
use crate::plan::sh_quote;
use crate::render::k8s::Flavor;
use crate::render::slurm::Runtime;
use crate::render::{self, ExportOptions, ExportPlan, Rendered};
use crate::spec::VendorChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Devcontainer,
    Compose,
    Slurm,
    K8s(Flavor),
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Devcontainer => "devcontainer",
            Format::Compose => "compose",
            Format::Slurm => "slurm",
            Format::K8s(_) => "k8s",
        }
    }
}

/// The resolved command line.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub format: Format,
    /// Slurm only.
    pub runtime: Option<Runtime>,
    pub flavor_given: bool,
    pub nodes: u32,
    /// `--vendor`: never `Auto`.
    pub vendor: Option<VendorChoice>,
    pub gpus_per_node: Option<u32>,
    pub master_port: u16,
    pub output: Option<PathBuf>,
    pub command: Vec<String>,
    /// Replace a file at the target that berth did not write.
    pub force: bool,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    format: &'a str,
    path: String,
    written: bool,
    warnings: &'a [String],
    assumptions: &'a [String],
}

pub fn run(ctx: &Context, req: ExportRequest) -> anyhow::Result<ExitStatus> {
    check_flags(&req)?;
    let project = Project::load(ctx)?;
    let spec = &project.spec;
    if let Some(v) = req.vendor
        && spec.gpu.vendor != VendorChoice::Auto
        && spec.gpu.vendor != v
    {
        return Err(fail(
            Code::BadInput,
            format!("{} sets gpu.vendor, so --vendor cannot change it", spec.file.display()),
            "--vendor only chooses for `gpu.vendor = \"auto\"`; edit berth.toml to change the vendor",
        ));
    }
    let default_rel = match req.format {
        Format::Devcontainer => PathBuf::from(".devcontainer/devcontainer.json"),
        Format::Compose => PathBuf::from("compose.yaml"),
        Format::Slurm => PathBuf::from(format!("slurm/{}.sbatch", render::dns_label(&spec.name, 40))),
        Format::K8s(_) => PathBuf::from(format!("k8s/{}.yaml", render::dns_label(&spec.name, 40))),
    };
    let to_stdout = req.output.as_deref() == Some(Path::new("-"));
    let path = match &req.output {
        Some(p) if !to_stdout => std::path::absolute(ctx.dir.join(p)).unwrap_or_else(|_| ctx.dir.join(p)),
        _ => spec.project_dir.join(&default_rel),
    };
    let out_dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| spec.project_dir.clone());
    let opts = ExportOptions {
        nodes: req.nodes,
        command: req.command.clone(),
        vendor: req.vendor,
        gpus_per_node: req.gpus_per_node,
        master_port: req.master_port,
        regenerate: regenerate(&req),
        source_ref: relative_to(&out_dir, &spec.file, &spec.project_dir),
    };
    let bad =
        |e: render::RenderError| anyhow::Error::new(Hint::new(Code::BadInput, e.message).with_hint(e.hint));
    if let Some(p) = crate::plan::limits::spec_problems(spec).into_iter().find(|p| p.error) {
        return Err(anyhow::Error::new(p.at(spec)));
    }
    let plan = ExportPlan::new(spec, &opts).map_err(bad)?;
    let rendered: Rendered = match req.format {
        Format::Devcontainer => render::devcontainer::render(&plan),
        Format::Compose => {
            render::compose::render(&plan, &relative_to(&out_dir, &spec.project_dir, &spec.project_dir))
                .map_err(bad)?
        }
        Format::Slurm => render::slurm::render(&plan, req.runtime.unwrap_or(Runtime::Pyxis)),
        Format::K8s(flavor) => render::k8s::render(&plan, flavor),
    };
    for w in &rendered.warnings {
        ctx.out.warn(w);
    }
    for a in &plan.assumptions {
        ctx.out.status(format!("note: {a}"));
    }
    if to_stdout {
        ctx.out.data(&rendered.text);
        return Ok(ExitStatus::SUCCESS);
    }
    let written = write_if_changed(&path, &rendered.text, req.force)?;
    let shown = path.strip_prefix(&ctx.dir).map(Path::to_path_buf).unwrap_or_else(|_| path.clone());
    if written {
        ctx.out.status(format!("wrote {}", shown.display()));
    } else {
        ctx.out.status(format!("{} is up to date", shown.display()));
    }
    if ctx.out.json {
        ctx.out.json(&Report {
            format: req.format.name(),
            path: path.display().to_string(),
            written,
            warnings: &rendered.warnings,
            assumptions: &plan.assumptions,
        })?;
    }
    Ok(ExitStatus::SUCCESS)
}

fn check_flags(req: &ExportRequest) -> anyhow::Result<()> {
    let misplaced = |flag: &str, only: &str| {
        fail(Code::BadInput, format!("{flag} applies to `berth export {only}` only"), format!("drop {flag}"))
    };
    if req.runtime.is_some() && req.format != Format::Slurm {
        return Err(misplaced("--runtime", "slurm"));
    }
    if req.flavor_given && !matches!(req.format, Format::K8s(_)) {
        return Err(misplaced("--flavor", "k8s"));
    }
    if req.format == Format::Devcontainer && req.nodes != 1 {
        return Err(fail(
            Code::BadInput,
            "a dev container is one container: --nodes does not apply",
            "use `berth export compose --nodes N` to rehearse several nodes on this server",
        ));
    }
    Ok(())
}

/// How to write the same file again, for its header (flags in a fixed order).
fn regenerate(req: &ExportRequest) -> String {
    let mut words = vec!["berth".to_string(), "export".into(), req.format.name().into()];
    if req.nodes != 1 {
        words.push(format!("--nodes {}", req.nodes));
    }
    if let Some(r) = req.runtime {
        words.push(format!("--runtime {}", r.name()));
    }
    if let Format::K8s(f) = req.format
        && req.flavor_given
    {
        let name = match f {
            Flavor::Job => "job",
            Flavor::JobSet => "jobset",
            Flavor::TrainJob => "trainjob",
        };
        words.push(format!("--flavor {name}"));
    }
    if let Some(v) = req.vendor {
        words.push(format!("--vendor {}", v.name()));
    }
    if let Some(n) = req.gpus_per_node {
        words.push(format!("--gpus-per-node {n}"));
    }
    if req.master_port != render::DEFAULT_MASTER_PORT {
        words.push(format!("--master-port {}", req.master_port));
    }
    if let Some(o) = &req.output {
        words.push(format!("-o {}", sh_quote(&o.to_string_lossy())));
    }
    if !req.command.is_empty() {
        words.push("--".into());
        words.extend(req.command.iter().map(|c| one_line_quote(c)));
    }
    words.join(" ")
}

/// Shell quoting that stays on one line (it goes into a comment): `$'...'` for control
/// characters, as bash and zsh read it.
fn one_line_quote(arg: &str) -> String {
    if !arg.chars().any(char::is_control) {
        return sh_quote(arg);
    }
    let mut out = String::from("$'");
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `target` as seen from `dir`: relative when both lie in the project, else absolute.
fn relative_to(dir: &Path, target: &Path, project: &Path) -> String {
    let (Ok(from), Ok(to)) = (dir.strip_prefix(project), target.strip_prefix(project)) else {
        return target.display().to_string();
    };
    let ups = from.components().filter(|c| matches!(c, Component::Normal(_))).count();
    let mut rel = PathBuf::new();
    for _ in 0..ups {
        rel.push("..");
    }
    if !to.as_os_str().is_empty() {
        rel.push(to);
    }
    let text = rel.display().to_string();
    if text.is_empty() { ".".into() } else { text }
}

/// Writes `text` to `path` atomically unless it already holds exactly that; true if written.
fn write_if_changed(path: &Path, text: &str, force: bool) -> anyhow::Result<bool> {
    let old = std::fs::read(path).ok();
    if old.as_deref() == Some(text.as_bytes()) {
        return Ok(false);
    }
    // A compose.yaml or devcontainer.json the user wrote by hand is theirs: only files carrying
    // berth's header are replaced without --force.
    if let Some(old) = &old
        && !force
        && !String::from_utf8_lossy(&old[..old.len().min(400)]).contains("Written by berth")
    {
        return Err(crate::error::fail(
            crate::error::Code::Refused,
            format!("{} exists and berth did not write it", path.display()),
            "add --force to replace it, or write elsewhere with -o PATH",
        ));
    }
    let dir = path.parent().context("the output path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // An export is an ordinary project file: it keeps the mode of the one it replaces.
    let mode =
        std::fs::metadata(path).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
    crate::fsutil::write_atomic(path, text.as_bytes(), mode.unwrap_or(0o644))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_inside_the_project() {
        let p = Path::new("/p");
        assert_eq!(relative_to(Path::new("/p/slurm"), Path::new("/p/berth.toml"), p), "../berth.toml");
        assert_eq!(relative_to(Path::new("/p"), Path::new("/p/berth.toml"), p), "berth.toml");
        assert_eq!(relative_to(Path::new("/p"), Path::new("/p"), p), ".");
        assert_eq!(relative_to(Path::new("/p/a/b"), Path::new("/p"), p), "../..");
        assert_eq!(relative_to(Path::new("/tmp"), Path::new("/p/berth.toml"), p), "/p/berth.toml");
    }

    #[test]
    fn commands_quote_onto_one_line() {
        assert_eq!(one_line_quote("a b"), "'a b'");
        assert_eq!(one_line_quote("x\n'y'\\"), r"$'x\n\'y\'\\'");
    }
}
