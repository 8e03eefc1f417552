//! `berth pack [-o FILE]`: the environment's image and a `berth.toml` pinned to it, in one
//! checksummed zstd archive for servers without network (format: `transport::manifest`).
//!
//! The archive goes to `-o FILE`, or by default to `.berth/packs/` in the project: never into
//! the build context (a pack found in one is left out of it anyway, `image::context`).
//!
//! Needs the image, not a container. The archive is written under a temporary name beside the
//! target and renamed only when complete and synced; Ctrl-C removes it, so the target path
//! never holds a partial pack. An existing file is replaced only with `--force`.

use super::ExitStatus;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::Engine;
use crate::error::{Code, fail};
use crate::spec::size::format_size;
use crate::transport::manifest::PackedImage;
use crate::transport::save::{local_image, save_names, short};
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

pub async fn run(ctx: &Context, opts: PackOptions) -> anyhow::Result<ExitStatus> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let reference = project.image()?;
    let facts = local_image(&engine, &reference).await?;
    // The pack holds the image; work done inside the container since is not in it.
    if let Some(c) = project.container(&engine).await? {
        let left_out = crate::environment::guard::uncommitted(&project, &engine, &c).await?;
        if !left_out.is_empty() {
            ctx.out.warn(format!(
                "{} holds {} changed file{} the pack leaves out (the pack holds the image, not the \
                 container): run `berth commit` first to keep them in the image",
                project.container,
                left_out.len(),
                if left_out.len() == 1 { "" } else { "s" }
            ));
        }
    }
    let target = target_path(opts.output.as_deref(), &project.spec)?;
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
    remove_stale_partials(folder, &file_name);
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
    // Held while the file is written, and released by the kernel however berth ends (SIGKILL
    // too): the next pack tells a stale partial file from one being written by the lock.
    temp.as_file().lock().with_context(|| format!("locking {}", temp.path().display()))?;
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
    // The id, sent by another way than the pack, is what lets the other side know it got this
    // image: the pack's own checksums only catch accidents.
    ctx.out.status(format!("on the other machine: berth unpack {file_name} --expect {}", facts.id));
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
    Ok(ExitStatus::SUCCESS)
}

/// `-o FILE` (relative to the current folder; a folder gets `<name>.berth.tar.zst` in it), or
/// `<project>/.berth/packs/<name>.berth.tar.zst`: berth's own folder, which never enters a build
/// context, so the next build cannot bake the pack into the image.
fn target_path(output: Option<&Path>, spec: &crate::spec::Spec) -> anyhow::Result<PathBuf> {
    let file_name = format!("{}.berth.tar.zst", spec.name);
    let target = match output {
        Some(p) => std::env::current_dir().context("reading the current folder")?.join(p),
        None => {
            let folder = crate::state::packs(&spec.project_dir);
            crate::fsutil::create_state_dir(&folder)?;
            // `pack` may be the first command to make `.berth`: a pack is no file for git.
            crate::state::ignore_in_git(&crate::state::dir(&spec.project_dir));
            return Ok(folder.join(file_name));
        }
    };
    if target.is_dir() {
        return Ok(target.join(file_name));
    }
    Ok(target)
}

/// Remove the partial files earlier packs to `file_name` in `folder` left when they were killed
/// (SIGKILL, a power cut: nothing ran to remove them). One still locked belongs to a pack that is
/// running now and is left alone; a file that only looks like ours is never touched.
fn remove_stale_partials(folder: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.");
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(middle) = name.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(".partial")) else {
            continue;
        };
        // tempfile's random part: six letters or digits.
        if middle.len() != 6 || !middle.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = std::fs::File::open(&path) else { continue };
        if file.try_lock().is_ok() {
            let _ = std::fs::remove_file(&path);
        }
    }
}
