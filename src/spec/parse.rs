//! Reading `berth.toml` into a validated [`Spec`].
//!
//! Two steps: serde deserializes the text into private `Raw*` structs that mirror the file
//! (kebab-case keys, unknown keys refused, every value that needs checking kept with its
//! `Spanned` byte range), then validation turns them into a `Spec` or the first [`SpecError`],
//! positioned at the offending value.
//!
//! Defaults (an empty file is a complete project): `name` is the project folder's name made
//! container-safe; `workdir` is `/workspace`; `image.base` is `python:3.12-slim`; `gpu.vendor` is
//! `auto` with `devices = "all"`; both caches are on; `user.as` is `host`; the caller's
//! ssh-agent is forwarded (`[ssh] agent`); no mounts, ports, env, resource limits or `[run]`
//! options.
//!
//! Mounts (`"SRC:DST[:ro|:rw]"`): a relative source (`.`, `./x`, `x`) is resolved against the
//! project folder and `~/` against `$HOME`; the target must be absolute and used once. An
//! explicit `:ro`/`:rw` always wins; otherwise a source **outside** the project folder is mounted
//! read-only (it is usually a dataset shared with other work) and one **inside** it read-write
//! (code, outputs, checkpoints). A missing source is an error unless it lies inside the project
//! folder: then it is marked `create` and made when the plan is applied, never here.
//!
//! `[cluster]` maps host paths (keys resolved like mount sources) to a PVC or a path on the
//! cluster's nodes, for the exports; see `cluster.rs`.

mod basics;
mod cluster;
mod hardware;
mod idle;
mod image;
mod loose;
mod mounts;
pub use mounts::{inside, real_path};
mod ports;
#[cfg(test)]
mod proptests;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use self::loose::Loose;
use super::error::{quote_list, suggest};
use super::{CacheSpec, Spec, SpecError, SshSpec};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
struct RawSpec {
    name: Option<Spanned<String>>,
    workdir: Option<Spanned<String>>,
    #[serde(default)]
    mounts: Vec<Spanned<String>>,
    #[serde(default)]
    ports: Vec<Spanned<String>>,
    #[serde(default)]
    image: image::RawImage,
    #[serde(default)]
    gpu: hardware::RawGpu,
    #[serde(default)]
    resources: hardware::RawResources,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<Loose>>,
    #[serde(default)]
    user: RawUser,
    #[serde(default)]
    run: tables::RawRun,
    #[serde(default)]
    cluster: BTreeMap<Spanned<String>, Spanned<Loose>>,
    #[serde(default)]
    idle: idle::RawIdle,
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default)]
    python: RawPython,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
struct RawPython {
    env: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
struct RawCache {
    pip: Option<bool>,
    huggingface: Option<bool>,
}

/// `[ssh]`: `agent = false` keeps the caller's ssh-agent out of the environment.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
struct RawSsh {
    agent: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
struct RawUser {
    #[serde(rename = "as")]
    as_: Option<Spanned<String>>,
}

/// What validation needs to know besides the raw values, and how it builds errors.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    /// Lexically normalised, so `starts_with` decides "inside the project".
    project_dir: PathBuf,
    home: Option<PathBuf>,
    /// Whether files the spec names (mount sources, requirements, ...) must exist now.
    check_files: bool,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, key: impl Into<String>, message: impl Display) -> SpecError {
        SpecError::at(self.file, self.text, span, Some(key.into()), message)
    }
}

/// Reads and validates the project file at `file`.
pub fn load(file: &Path) -> Result<Spec, SpecError> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let text = read_text(&file)?;
    parse_str(&text, &file)
}

/// Like [`load`], but files the spec names need not exist: for commands that act on an
/// existing environment (stop, down, status, logs, ...), which must keep working while a
/// dataset is unmounted or a requirements file is gone.
pub fn load_existing(file: &Path) -> Result<Spec, SpecError> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let text = read_text(&file)?;
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    parse_checked(&text, &file, home, false)
}

/// Like [`parse_str`], but files the spec names need not exist: for a file made on another
/// machine (`unpack` checks a pack's `berth.toml` before writing it).
pub fn parse_portable(text: &str, file: &Path) -> Result<Spec, SpecError> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    parse_checked(text, file, home, false)
}

/// The project file's text; bytes that are not UTF-8 are reported at their line and column.
fn read_text(file: &Path) -> Result<String, SpecError> {
    let bytes = std::fs::read(file)
        .map_err(|e| SpecError::whole_file(file, format!("cannot read the project file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bad = e.as_bytes().get(at).copied().unwrap_or(0);
        let valid = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
        SpecError::at(file, &valid, at..at, None, format!("byte 0x{bad:02x} is not UTF-8 text"))
            .with_hint("berth.toml must be UTF-8: re-save it as UTF-8 (e.g. `iconv -f GBK -t UTF-8`)")
    })
}

/// Validates `text` as the contents of the project file at `file` (absolute; its folder is
/// the project). Mount sources are checked on disk; nothing is created.
pub fn parse_str(text: &str, file: &Path) -> Result<Spec, SpecError> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    parse_with_home(text, file, home)
}

fn parse_with_home(text: &str, file: &Path, home: Option<PathBuf>) -> Result<Spec, SpecError> {
    parse_checked(text, file, home, true)
}

fn parse_checked(
    text: &str,
    file: &Path,
    home: Option<PathBuf>,
    check_files: bool,
) -> Result<Spec, SpecError> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let project_dir = mounts::normalise(file.parent().unwrap_or(Path::new("/")));
    let raw: RawSpec =
        toml::from_str(text).map_err(|e| SpecError::from_toml(&file, text, &e, |at| key_at(text, at)))?;
    let cx = Ctx { file: &file, text, project_dir, home, check_files };
    // Every part is validated before any error is returned, so the one reported is the first
    // in the file, as a reader (or an editor jumping to it) would meet it.
    let name = basics::name(raw.name.as_ref(), &cx);
    let workdir = basics::workdir(raw.workdir.as_ref(), &cx);
    let image = image::image(&raw.image, &cx);
    let gpu = hardware::gpu(&raw.gpu, &cx);
    let resources = hardware::resources(&raw.resources, &cx);
    let mounts = mounts::mounts(&raw.mounts, &cx);
    let env = tables::env(&raw.env, &cx);
    let user = basics::user(raw.user.as_.as_ref(), &cx);
    let ports = ports::ports(&raw.ports, &cx);
    let run = tables::run(&raw.run, &cx);
    let cluster = cluster::cluster(&raw.cluster, &cx);
    let idle = idle::idle(&raw.idle, &cx);
    let python_env = basics::python_env(raw.python.env.as_ref(), &cx);
    let errors = [
        name.as_ref().err().cloned(),
        workdir.as_ref().err().cloned(),
        image.as_ref().err().cloned(),
        gpu.as_ref().err().cloned(),
        resources.as_ref().err().cloned(),
        mounts.as_ref().err().cloned(),
        env.as_ref().err().cloned(),
        user.as_ref().err().cloned(),
        ports.as_ref().err().cloned(),
        run.as_ref().err().cloned(),
        cluster.as_ref().err().cloned(),
        idle.as_ref().err().cloned(),
        python_env.as_ref().err().cloned(),
    ];
    if let Some(first) = errors.into_iter().flatten().min_by_key(|e| (e.line, e.column)) {
        return Err(first);
    }
    Ok(Spec {
        name: name?,
        workdir: workdir?,
        image: image?,
        gpu: gpu?,
        resources: resources?,
        mounts: mounts?,
        cache: CacheSpec {
            pip: raw.cache.pip.unwrap_or(true),
            huggingface: raw.cache.huggingface.unwrap_or(true),
        },
        env: env?,
        user: user?,
        ports: ports?,
        run: run?,
        cluster: cluster?,
        idle: idle?,
        ssh: SshSpec { agent: raw.ssh.agent.unwrap_or(true) },
        python_env: python_env?,
        project_dir: cx.project_dir.clone(),
        file: file.clone(),
    })
}

/// The dotted key whose key or value covers byte `offset`, for serde errors (which carry only a
/// span). `None` when the text does not even parse.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut path = String::new();
    find_in_table(root.get_ref(), offset, &mut path).then_some(path)
}

fn find_in_table(table: &toml::de::DeTable<'_>, offset: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if key.span().contains(&offset) || find_in_value(value, offset, path) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn find_in_value(value: &Spanned<toml::de::DeValue<'_>>, offset: usize, path: &mut String) -> bool {
    match value.get_ref() {
        // A `[header]` table's span is only the header, so look inside first.
        toml::de::DeValue::Table(table) if find_in_table(table, offset, path) => return true,
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if find_in_value(item, offset, path) {
                    return true;
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
    value.span().contains(&offset)
}

/// An error for a value outside a closed set, with the nearest choice as a hint.
fn one_of(cx: &Ctx, span: Range<usize>, key: &str, value: &str, choices: &[&str]) -> SpecError {
    let hint = match suggest(value, choices) {
        Some(near) => format!("did you mean \"{near}\"?"),
        None => format!("use one of {}", quote_list(choices)),
    };
    cx.err(span, key, format!("`{value}` is not one of {}", quote_list(choices))).with_hint(hint)
}
