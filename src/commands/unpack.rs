//! `berth unpack FILE [-C DIR] [--force] [--expect ID] [--allow-access]`: load a pack's image,
//! verified, and write its pinned `berth.toml` into DIR (default `./<name>`), then say which
//! `berth up` follows.
//!
//! A pack is untrusted input: its checksums travel inside it, so they prove integrity against
//! accidents, never who made it. Order matters: the file is recognised, its `berth.toml`
//! validated like any project file and required to run exactly the packed image, `--expect`
//! checked and DIR checked, all before the engine is touched; the image streams to the engine
//! checked against the header as it goes (`transport::image_check`) with the tail held back
//! until every member matched (`transport::unpack`), so a truncated, corrupted, foreign or
//! forged file leaves the engine as it was. `berth.toml` is written last, atomically, never over
//! an existing one without `--force`, and without the settings that widen access on this host
//! (`plan::access`) unless `--allow-access` says so.

use super::ExitStatus;
use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use super::Context;
use crate::engine::Engine;
use crate::error::{Code, fail};
use crate::plan::access::{self, Widening};
use crate::spec::FILE_NAME;
use crate::transport::layout::chain_ids;
use crate::transport::save::short;
use crate::transport::unpack::{self, Damage, HOLD_BACK, Verified};
use crate::transport::{bridge, progress};

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub file: PathBuf,
    pub force: bool,
    /// The image id the user expects (`--expect`).
    pub expect: Option<String>,
    /// Write the settings that widen access active (`--allow-access`).
    pub allow_access: bool,
}

#[derive(Debug, Serialize)]
pub struct UnpackResult {
    pub dir: String,
    pub berth_toml: String,
    pub image: String,
    pub id: String,
    pub tags: Vec<String>,
    pub layers: usize,
    /// Layers the engine had already, so their data was verified but not loaded again.
    pub layers_skipped: usize,
    pub seconds: f64,
    /// The command that brings the environment up.
    pub next: String,
    /// Settings of the pack that widen access, written commented out (not applied).
    pub held_back: Vec<Widening>,
    /// Settings that widen access written active (`--allow-access`).
    pub allowed: Vec<Widening>,
}

pub async fn run(ctx: &Context, opts: UnpackOptions) -> anyhow::Result<ExitStatus> {
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let file = cwd.join(&opts.file);
    let file = file.canonicalize().unwrap_or(file);
    if !file.is_file() {
        return Err(fail(
            Code::BadInput,
            format!("{} does not exist (or is not a file)", file.display()),
            "give the path of a pack written by `berth pack`",
        ));
    }
    let peeked = unpack::peek(&file).map_err(|d| damaged(&file, d))?;
    let dir = if ctx.dir_given { ctx.dir.clone() } else { cwd.join(&peeked.header.name) };
    let toml_path = dir.join(FILE_NAME);
    if let Some(expect) = &opts.expect {
        expected(expect, &peeked.header.image.id)?;
    }
    let consent = format!(
        "unpack again with --allow-access --force (`berth -C {} unpack {} --allow-access --force`)",
        crate::ssh::sh_quote(&dir.display().to_string()),
        crate::ssh::sh_quote(&file.display().to_string())
    );
    let (text, wide) = project_file(&peeked, &toml_path, opts.allow_access, &consent)?;
    if toml_path.exists() && !opts.force {
        return Err(fail(
            Code::Refused,
            format!("{} already exists; nothing was loaded", toml_path.display()),
            "unpack into another folder with -C DIR, or add --force to replace that berth.toml",
        ));
    }

    let engine = Engine::connect().await?;
    // Loading re-points the pack's tags: never away from another image without --force.
    if !opts.force {
        for tag in &peeked.header.image.tags {
            if let Some(other) = engine.image_facts(tag).await?
                && other.id != peeked.header.image.id
            {
                return Err(fail(
                    Code::Refused,
                    format!(
                        "the tag {tag} names another image here ({}); nothing was loaded",
                        short(&other.id)
                    ),
                    "add --force to move the tag to the packed image (the other keeps its id), or retag it first",
                ));
            }
        }
    }
    let layers = &peeked.header.image.layers;
    // Podman's load needs every layer file the archive's manifest names, present or not.
    let held: BTreeSet<String> = if engine.is_podman() {
        BTreeSet::new()
    } else {
        engine.all_image_layers().await?.iter().flat_map(|l| chain_ids(l)).collect()
    };
    let skip: BTreeSet<usize> =
        chain_ids(layers).iter().enumerate().filter(|(_, c)| held.contains(*c)).map(|(i, _)| i).collect();
    if skip.is_empty() {
        ctx.out.status(format!("verifying and loading {}", file.display()));
    } else {
        ctx.out.status(format!(
            "verifying and loading {} ({} of its {} layers are here already)",
            file.display(),
            skip.len(),
            layers.len()
        ));
    }
    let started = Instant::now();
    let verified = match load(ctx, &engine, &file, &skip, &peeked).await {
        // The engine lost a layer berth counted on (removed meanwhile): send them all.
        Err(e) if !skip.is_empty() && !crate::error::is_explained(&e) => {
            ctx.out.warn(format!("the load failed ({e:#}); loading again with every layer"));
            load(ctx, &engine, &file, &BTreeSet::new(), &peeked).await?
        }
        other => other?,
    };
    let image = verified.manifest.image.clone();
    if engine.image_facts(&image.id).await?.is_none() {
        return Err(fail(
            Code::Failure,
            format!("the engine reported no error, but it does not have {} after the load", image.id),
            "check the engine's log (`journalctl -u docker`) and disk space, then unpack again",
        ));
    }

    write_toml(&dir, &text, opts.force)?;
    let seconds = started.elapsed().as_secs_f64();
    let shown = if image.tags.is_empty() { short(&image.id) } else { image.tags.join(", ") };
    ctx.out
        .status(format!("loaded {shown} ({}) in {seconds:.1} s, every checksum verified", short(&image.id)));
    ctx.out.status(format!("wrote {} (pinned to that image)", toml_path.display()));
    let (held_back, allowed) = if opts.allow_access { (Vec::new(), wide) } else { (wide, Vec::new()) };
    if !held_back.is_empty() {
        ctx.out.warn(format!(
            "held back {} setting(s) of the pack that widen access on this host (written commented out, not applied):",
            held_back.len()
        ));
        for w in &held_back {
            ctx.out.warn(format!("  {}: {}", w.setting, w.effect));
        }
        ctx.out.warn(format!("to apply them: {consent}, or edit {}", toml_path.display()));
    }
    for w in &allowed {
        ctx.out.warn(format!("applied, as --allow-access says: {}: {}", w.setting, w.effect));
    }
    let next = format!("berth -C {} up", shown_path(&dir, &cwd));
    ctx.out.status(format!("next: {next}"));
    if ctx.out.json {
        ctx.out.json(&UnpackResult {
            dir: dir.display().to_string(),
            berth_toml: toml_path.display().to_string(),
            image: shown,
            id: image.id,
            layers: image.layers.len(),
            layers_skipped: verified.layers_skipped,
            tags: image.tags,
            seconds,
            next,
            held_back,
            allowed,
        })?;
    }
    Ok(ExitStatus::SUCCESS)
}

/// `--expect`: the pack's image id is the one given (in full, or its first 12 or more digits).
fn expected(expect: &str, id: &str) -> anyhow::Result<()> {
    let want = expect.trim().trim_start_matches("sha256:").to_ascii_lowercase();
    let have = id.trim_start_matches("sha256:");
    if want.len() >= 12 && want.bytes().all(|b| b.is_ascii_hexdigit()) && have.starts_with(&want) {
        return Ok(());
    }
    Err(fail(
        Code::BadInput,
        format!("the pack holds the image {id}, not {expect}; nothing was loaded"),
        "ask whoever made the pack which image id `berth pack` printed, or drop --expect",
    ))
}

/// The pack's `berth.toml`, checked like any project file and pinned to the packed image, as it
/// is written: with the settings that widen access held back (commented out) unless `allow`.
/// Returns the text and those settings.
fn project_file(
    peeked: &unpack::Peeked,
    toml_path: &Path,
    allow: bool,
    consent: &str,
) -> anyhow::Result<(String, Vec<Widening>)> {
    let bad = |what: String| {
        fail(
            Code::BadInput,
            format!("the pack's berth.toml {what}; nothing was loaded"),
            "this is not a file `berth pack` writes: get the pack again from its maker",
        )
    };
    let spec = crate::spec::parse_portable(&peeked.pinned, toml_path)
        .map_err(|e| bad(format!("is not a valid project file ({e})")))?;
    let id = &peeked.header.image.id;
    if spec.image.base != *id || spec.image.needs_build() || spec.image.preset.is_some() {
        return Err(bad(format!(
            "does not run the packed image {id} (its [image] says {})",
            spec.image.base
        )));
    }
    let wide = access::widening(&spec);
    if allow || wide.is_empty() {
        return Ok((peeked.pinned.clone(), wide));
    }
    let text = access::hold_back(&peeked.pinned, &wide, consent)
        .map_err(|e| bad(format!("cannot be rewritten ({e})")))?;
    let safe = crate::spec::parse_portable(&text, toml_path)
        .map_err(|e| bad(format!("cannot be rewritten without its wider settings ({e})")))?;
    let left = access::widening(&safe);
    if !left.is_empty() || safe.image.base != *id {
        let names: Vec<&str> = left.iter().map(|w| w.setting.as_str()).collect();
        return Err(bad(format!("holds settings berth cannot hold back: {}", names.join(", "))));
    }
    Ok((text, wide))
}

/// The error for a file that is not a good pack: what is wrong, that nothing changed, the fix.
fn damaged(file: &Path, damage: Damage) -> anyhow::Error {
    let hint = match &damage {
        Damage::Truncated | Damage::Corrupt(_) => {
            "copy the file again (compare `sha256sum` on both machines), or make a new one with `berth pack`"
        }
        Damage::Foreign(_) => "give a file written by `berth pack`",
        Damage::Mismatch(_) => {
            "the file was damaged or changed after `berth pack` wrote it (its checksums catch \
             accidents, not intent): copy it again from its maker and compare `sha256sum` on both machines"
        }
        Damage::Newer(_) => "unpack it with the berth version that packed it, or a newer one",
        Damage::Unreadable(_) | Damage::Stopped(_) => "check the file's permissions and the disk",
    };
    fail(Code::BadInput, format!("{}: {damage}; the engine was not changed", file.display()), hint)
}

/// Write `berth.toml` into `dir` atomically (never over an existing one without `force`).
fn write_toml(dir: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".berth.toml.")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    temp.write_all(text.as_bytes())?;
    temp.as_file().sync_all()?;
    let target = dir.join(FILE_NAME);
    let persisted = if force { temp.persist(&target) } else { temp.persist_noclobber(&target) };
    persisted.map_err(|e| anyhow::Error::new(e.error).context(format!("writing {}", target.display())))?;
    Ok(())
}

/// `dir` relative to `cwd` when it lies below it (shorter to type), else absolute.
fn shown_path(dir: &Path, cwd: &Path) -> String {
    let p = dir.strip_prefix(cwd).map(Path::to_path_buf).unwrap_or_else(|_| dir.to_path_buf());
    let text = p.display().to_string();
    if text.is_empty() { ".".into() } else { crate::ssh::sh_quote(&text) }
}

/// Stream the pack into the engine, verified, leaving out the layers in `skip`.
async fn load(
    ctx: &Context,
    engine: &Engine,
    file: &Path,
    skip: &BTreeSet<usize>,
    peeked: &unpack::Peeked,
) -> anyhow::Result<Verified> {
    let total = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = progress::bytes(&ctx.out, total, "unpacking");
    let (sink, body) = bridge::writer(HOLD_BACK);
    let reader_bar = bar.clone();
    let path = file.to_path_buf();
    let skip = skip.clone();
    let peeked = peeked.clone();
    let work = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path).map_err(Damage::Unreadable)?;
        let input = progress::Counted { inner: BufReader::with_capacity(1 << 20, f), bar: reader_bar };
        unpack::stream(input, sink, &skip, &peeked)
    });
    let (loaded, verified) = tokio::join!(engine.load(body), work);
    let verified = verified.context("the unpacking thread failed")?;
    bar.finish_and_clear();
    match (verified, loaded) {
        (Err(Damage::Stopped(_)), Err(engine_err)) => Err(engine_err.context("loading the image failed")),
        (Err(d), _) => Err(damaged(file, d)),
        (Ok(_), Err(engine_err)) => Err(engine_err.context("loading the image failed")),
        (Ok(v), Ok(_)) => Ok(v),
    }
}
