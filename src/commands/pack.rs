//! `berth pack [-o FILE]`: the environment's image and a `berth.toml` pinned to it, in one
//! checksummed zstd archive for servers without network (format: `transport::manifest`).
//!
//! Needs the image, not a container. The archive is written under a temporary name beside the
//! target and renamed only when complete and synced; Ctrl-C removes it, so the target path
//! never holds a partial pack. An existing file is replaced only with `--force`.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::{Engine, ImageFacts};
use crate::error::{Code, fail};
use crate::spec::size::format_size;
use crate::transport::manifest::PackedImage;
use crate::transport::{bridge, pack, pinned, progress};

#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub output: Option<PathBuf>,
    pub force: bool,
}

#[derive(Debug, Serialize)]
pub struct PackResult {
    pub file: String,
    pub name: String,
    pub image: String,
    pub id: String,
    /// Size of the pack.
    pub bytes: u64,
    /// Size of the image's members inside it (uncompressed).
    pub image_bytes: u64,
    pub seconds: f64,
}

pub async fn run(ctx: &Context, opts: PackOptions) -> anyhow::Result<()> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let reference = project.image()?;
    let facts = local_image(&engine, &reference).await?;
    let target = target_path(opts.output.as_deref(), &project.spec.name)?;
    if target.exists() && !opts.force {
        return Err(fail(
            Code::Refused,
            format!("{} already exists", target.display()),
            "choose another name with -o FILE, or add --force to replace it",
        ));
    }
    let original = std::fs::read_to_string(&project.spec.file)
        .with_context(|| format!("reading {}", project.spec.file.display()))?;
    let pinned = pinned::pin(&original, &project.spec.name, &facts.id, &reference)?;
    let folder = target.parent().unwrap_or(Path::new("."));
    let file_name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Ctrl-C, a closed terminal or an ssh session gone (SIGHUP), or a kill (SIGTERM): handled from
    // before the partial file exists (`ctrl_c()` would only listen once first polled), and the
    // partial file is removed when `temp_path` drops, so nothing is left behind.
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".partial")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(folder)
        .with_context(|| format!("creating a file in {}", folder.display()))?;
    // The path stays here, so it is removed whenever this function returns early (Ctrl-C too);
    // the writing thread only gets the open file.
    let (file, temp_path) = temp.into_parts();

    ctx.out.status(format!("packing {reference} ({}) into {}", short(&facts.id), target.display()));
    let started = Instant::now();
    let bar = progress::bytes(&ctx.out, facts.size, "packing");
    let (tx, reader) = bridge::reader();
    let input = progress::Counted { inner: reader, bar: bar.clone() };
    let packed = PackedImage {
        id: facts.id.clone(),
        tags: facts.tags.clone(),
        source: reference.clone(),
        layers: facts.layers.clone(),
    };
    let name = project.spec.name.clone();
    let work = tokio::task::spawn_blocking(move || -> anyhow::Result<(pack::PackStats, u64)> {
        let out = BufWriter::with_capacity(1 << 20, file);
        let (out, stats) = pack::write(input, out, &pinned, &name, packed)?;
        let file = out.into_inner().map_err(|e| e.into_error()).context("writing the pack")?;
        file.sync_all().context("writing the pack to disk")?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok((stats, bytes))
    });
    let feed = bridge::forward(engine.save(&save_names(&facts)), tx);
    let both = async {
        let (_, done) = tokio::join!(feed, work);
        done.context("the packing thread failed")?
    };
    let interrupted = async {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    };
    let (stats, bytes) = tokio::select! {
        r = both => r.inspect_err(|_| bar.abandon())?,
        _ = interrupted => {
            bar.abandon();
            return Err(fail(Code::Interrupted, "interrupted: no pack was written", "run `berth pack` again"));
        }
    };
    bar.finish_and_clear();
    let persist = if opts.force { temp_path.persist(&target) } else { temp_path.persist_noclobber(&target) };
    persist
        .map_err(|e| anyhow::Error::new(e.error).context(format!("naming the pack {}", target.display())))?;

    let seconds = started.elapsed().as_secs_f64();
    ctx.out.status(format!(
        "packed {} into {}: {} (the image is {}) in {seconds:.1} s",
        reference,
        target.display(),
        format_size(bytes),
        format_size(stats.image_bytes),
    ));
    ctx.out.status(format!("on the other machine: berth unpack {}", file_name));
    if ctx.out.json {
        ctx.out.json(&PackResult {
            file: target.display().to_string(),
            name: project.spec.name.clone(),
            image: reference,
            id: facts.id,
            bytes,
            image_bytes: stats.image_bytes,
            seconds,
        })?;
    }
    Ok(())
}

/// The environment's image as the engine has it, or an error that says how to get it.
pub async fn local_image(engine: &Engine, reference: &str) -> anyhow::Result<ImageFacts> {
    engine.image_facts(reference).await?.ok_or_else(|| {
        fail(
            Code::Failure,
            format!("the image {reference} is not on this engine"),
            "run `berth up` first (it pulls the image), or `docker pull` it",
        )
    })
}

/// What to ask the engine to save: every name of the image (the load restores them), or its
/// id when it has none.
pub fn save_names(facts: &ImageFacts) -> Vec<String> {
    if facts.tags.is_empty() { vec![facts.id.clone()] } else { facts.tags.clone() }
}

/// `-o FILE` (relative to the current folder), or `./<name>.berth.tar.zst`.
fn target_path(output: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let target = match output {
        Some(p) => cwd.join(p),
        None => cwd.join(format!("{name}.berth.tar.zst")),
    };
    if target.is_dir() {
        return Ok(target.join(format!("{name}.berth.tar.zst")));
    }
    Ok(target)
}

/// The first 12 hex digits of an id, like `docker images` shows.
pub fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}
