//! Reading `berth.toml` into a validated [`Spec`].
//!
//! Two steps: serde deserializes the text into private `Raw*` structs that mirror the file
//! (kebab-case keys, unknown keys refused, every value that needs checking kept with its
//! `Spanned` byte range), then validation turns them into a `Spec` or the first [`SpecError`],
//! positioned at the offending value.
//!
//! Defaults (an empty file is a complete project): `name` is the project folder's name made
//! container-safe; `workdir` is `/workspace`; `image.base` is `python:3.12-slim`; `gpu.vendor` is
//! `auto` with `devices = "all"`; both caches are on; `user.as` is `host`; no mounts, ports,
//! env, resource limits or `[run]` options.
//!
//! Mounts (`"SRC:DST[:ro|:rw]"`): a relative source (`.`, `./x`, `x`) is resolved against the
//! project folder and `~/` against `$HOME`; the target must be absolute and used once. An
//! explicit `:ro`/`:rw` always wins; otherwise a source **outside** the project folder is mounted
//! read-only (it is usually a dataset shared with other work) and one **inside** it read-write
//! (code, outputs, checkpoints). A missing source is an error unless it lies inside the project
//! folder: then it is marked `create` and made when the plan is applied, never here.
//!
//! Keys of features this version does not implement yet (`image.apt`, `[cluster]`, ...) are
//! recognised and refused by name instead of being silently ignored.

mod loose;
mod mounts;
mod ports;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use self::loose::Loose;
use super::error::{quote_list, suggest};
use super::{
    CacheSpec, DeviceSelection, GpuRef, GpuSpec, ImageSpec, Resources, Spec, SpecError, UserMode,
    VendorChoice,
};

const DEFAULT_BASE: &str = "python:3.12-slim";
const DEFAULT_WORKDIR: &str = "/workspace";
/// Docker refuses container names longer than this (they become DNS labels).
const MAX_NAME: usize = 63;
const MIN_SHM: u64 = 1 << 20;
/// Docker refuses a memory limit below 6 MiB.
const MIN_MEMORY: u64 = 6 << 20;

/// `[image]` keys of later features, refused by name until they are implemented.
const LATER_IMAGE_KEYS: [&str; 13] = [
    "preset",
    "torch",
    "cuda",
    "rocm",
    "python",
    "apt",
    "pip",
    "requirements",
    "pip-index-url",
    "pip-extra-index-urls",
    "apt-mirror",
    "conda-environment",
    "dockerfile",
];
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
    image: RawImage,
    #[serde(default)]
    gpu: RawGpu,
    #[serde(default)]
    resources: RawResources,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<Loose>>,
    #[serde(default)]
    user: RawUser,
    #[serde(default)]
    run: tables::RawRun,
    cluster: Option<Spanned<IgnoredAny>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
struct RawImage {
    base: Option<Spanned<String>>,
    // Later features, in LATER_IMAGE_KEYS order.
    preset: Option<Spanned<IgnoredAny>>,
    torch: Option<Spanned<IgnoredAny>>,
    cuda: Option<Spanned<IgnoredAny>>,
    rocm: Option<Spanned<IgnoredAny>>,
    python: Option<Spanned<IgnoredAny>>,
    apt: Option<Spanned<IgnoredAny>>,
    pip: Option<Spanned<IgnoredAny>>,
    requirements: Option<Spanned<IgnoredAny>>,
    pip_index_url: Option<Spanned<IgnoredAny>>,
    pip_extra_index_urls: Option<Spanned<IgnoredAny>>,
    apt_mirror: Option<Spanned<IgnoredAny>>,
    conda_environment: Option<Spanned<IgnoredAny>>,
    dockerfile: Option<Spanned<IgnoredAny>>,
}

impl RawImage {
    /// Spans of the later-feature keys, in LATER_IMAGE_KEYS order.
    fn later(&self) -> [Option<Range<usize>>; 13] {
        [
            &self.preset,
            &self.torch,
            &self.cuda,
            &self.rocm,
            &self.python,
            &self.apt,
            &self.pip,
            &self.requirements,
            &self.pip_index_url,
            &self.pip_extra_index_urls,
            &self.apt_mirror,
            &self.conda_environment,
            &self.dockerfile,
        ]
        .map(|v| v.as_ref().map(Spanned::span))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
struct RawGpu {
    vendor: Option<Spanned<String>>,
    devices: Option<Spanned<Loose>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
struct RawResources {
    shm: Option<Spanned<Loose>>,
    memory: Option<Spanned<Loose>>,
    cpus: Option<Spanned<Loose>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
struct RawCache {
    pip: Option<bool>,
    huggingface: Option<bool>,
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
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, key: impl Into<String>, message: impl Display) -> SpecError {
        SpecError::at(self.file, self.text, span, Some(key.into()), message)
    }
}

/// Reads and validates the project file at `file`.
pub fn load(file: &Path) -> Result<Spec, SpecError> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let text = std::fs::read_to_string(&file)
        .map_err(|e| SpecError::whole_file(&file, format!("cannot read the project file: {e}")))?;
    parse_str(&text, &file)
}

/// Validates `text` as the contents of the project file at `file` (absolute; its folder is
/// the project). Mount sources are checked on disk; nothing is created.
pub fn parse_str(text: &str, file: &Path) -> Result<Spec, SpecError> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    parse_with_home(text, file, home)
}

fn parse_with_home(text: &str, file: &Path, home: Option<PathBuf>) -> Result<Spec, SpecError> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let project_dir = mounts::normalise(file.parent().unwrap_or(Path::new("/")));
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        SpecError::from_toml(&file, text, &e, |at| key_at(text, at), is_later_feature)
    })?;
    let cx = Ctx {
        file: &file,
        text,
        project_dir,
        home,
    };
    refuse_later_features(&raw, &cx)?;

    let spec = Spec {
        name: name(raw.name.as_ref(), &cx)?,
        workdir: workdir(raw.workdir.as_ref(), &cx)?,
        image: ImageSpec {
            base: image_base(raw.image.base.as_ref(), &cx)?,
        },
        gpu: gpu(&raw.gpu, &cx)?,
        resources: resources(&raw.resources, &cx)?,
        mounts: mounts::mounts(&raw.mounts, &cx)?,
        cache: CacheSpec {
            pip: raw.cache.pip.unwrap_or(true),
            huggingface: raw.cache.huggingface.unwrap_or(true),
        },
        env: tables::env(&raw.env, &cx)?,
        user: user(raw.user.as_.as_ref(), &cx)?,
        ports: ports::ports(&raw.ports, &cx)?,
        run: tables::run(&raw.run, &cx)?,
        project_dir: cx.project_dir.clone(),
        file: file.clone(),
    };
    Ok(spec)
}

/// Whether `candidate`, offered as a valid key beside the unknown `key`, is a later feature
/// (accepted by serde only to be refused, so never advertised).
fn is_later_feature(key: &str, candidate: &str) -> bool {
    match key.split_once('.') {
        Some(("image", _)) => LATER_IMAGE_KEYS.contains(&candidate),
        Some(_) => false,
        None => candidate == "cluster",
    }
}

fn refuse_later_features(raw: &RawSpec, cx: &Ctx) -> Result<(), SpecError> {
    let image = LATER_IMAGE_KEYS
        .iter()
        .zip(raw.image.later())
        .filter_map(|(k, span)| Some((format!("image.{k}"), span?)));
    let cluster = raw
        .cluster
        .as_ref()
        .map(|c| ("cluster".to_string(), c.span()));
    // Report the one that comes first in the file, as a reader would meet it.
    match image.chain(cluster).min_by_key(|(_, span)| span.start) {
        Some((key, span)) => Err(cx
            .err(span, key, "is not supported by this version of berth yet")
            .with_hint("remove it for now; a later berth release implements it")),
        None => Ok(()),
    }
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
        toml::de::DeValue::Table(table) => {
            // A `[header]` table's span is only the header, so look inside first.
            if find_in_table(table, offset, path) {
                return true;
            }
        }
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

fn name(raw: Option<&Spanned<String>>, cx: &Ctx) -> Result<String, SpecError> {
    let Some(raw) = raw else {
        return Ok(default_name(&cx.project_dir));
    };
    let name = raw.get_ref();
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok && name.len() <= MAX_NAME {
        return Ok(name.clone());
    }
    Err(cx
        .err(raw.span(), "name", format!("`{name}` is not a valid name"))
        .with_hint(format!(
            "use letters, digits, `_`, `.` and `-`, starting with a letter or digit, \
             at most {MAX_NAME} characters"
        )))
}

/// The project folder's name, made into a valid `name`: other characters become `-`, leading
/// separators go, and an unusable name (the root folder) falls back to `project`.
fn default_name(project_dir: &Path) -> String {
    let folder = project_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(MAX_NAME)
        .collect();
    if cleaned.is_empty() {
        "project".to_string()
    } else {
        cleaned
    }
}

fn workdir(raw: Option<&Spanned<String>>, cx: &Ctx) -> Result<String, SpecError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_WORKDIR.to_string());
    };
    let dir = raw.get_ref();
    if dir.starts_with('/') && !dir.contains('\0') {
        return Ok(dir.clone());
    }
    Err(cx
        .err(
            raw.span(),
            "workdir",
            format!("`{dir}` is not an absolute path"),
        )
        .with_hint(format!(
            "the work folder is a path inside the container, like \"{DEFAULT_WORKDIR}\""
        )))
}

fn image_base(raw: Option<&Spanned<String>>, cx: &Ctx) -> Result<String, SpecError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_BASE.to_string());
    };
    let base = raw.get_ref();
    match image_ref_problem(base) {
        None => Ok(base.clone()),
        Some(problem) => Err(cx
            .err(
                raw.span(),
                "image.base",
                format!("`{base}` is not an image reference: {problem}"),
            )
            .with_hint(
                "write it like \"python:3.12-slim\" or \"nvcr.io/nvidia/pytorch:24.08-py3\"",
            )),
    }
}

/// Why `r` cannot be a Docker image reference (`[registry/]path[:tag][@digest]`), if it cannot.
/// Plausibility only: the engine has the last word when it pulls.
fn image_ref_problem(r: &str) -> Option<&'static str> {
    if r.is_empty() {
        return Some("it is empty");
    }
    if r.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("it contains a space");
    }
    let (named, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if digest.is_some_and(
        |d| !matches!(d.split_once(':'), Some((a, h)) if !a.is_empty() && !h.is_empty()),
    ) {
        return Some("the digest must look like `sha256:...`");
    }
    // A `:` after the last `/` starts the tag; one before it is a registry port.
    let slash = named.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match named[slash..].rfind(':') {
        Some(i) => (&named[..slash + i], Some(&named[slash + i + 1..])),
        None => (named, None),
    };
    let tag_ok = |t: &str| {
        !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    if tag.is_some_and(|t| !tag_ok(t)) {
        return Some("the tag may hold letters, digits, `_`, `.` and `-`");
    }
    let mut parts: Vec<&str> = repo.split('/').collect();
    // Only the first part can be a registry, and only if it looks like a host.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        parts.remove(0);
    }
    for part in parts {
        if part.chars().any(|c| c.is_ascii_uppercase()) {
            return Some("the repository part must be lowercase");
        }
        let edges_ok = part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !edges_ok
            || !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Some(
                "each repository part is lowercase letters and digits, joined by `.`, `_` or `-`",
            );
        }
    }
    None
}

fn gpu(raw: &RawGpu, cx: &Ctx) -> Result<GpuSpec, SpecError> {
    let vendor = match &raw.vendor {
        None => VendorChoice::Auto,
        Some(v) => match v.get_ref().as_str() {
            "auto" => VendorChoice::Auto,
            "nvidia" => VendorChoice::Nvidia,
            "amd" => VendorChoice::Amd,
            "none" => VendorChoice::None,
            other => {
                return Err(one_of(
                    cx,
                    v.span(),
                    "gpu.vendor",
                    other,
                    &["auto", "nvidia", "amd", "none"],
                ));
            }
        },
    };
    let devices = match &raw.devices {
        None => DeviceSelection::All,
        Some(d) => devices(d, cx)?,
    };
    Ok(GpuSpec { vendor, devices })
}

/// An error for a value outside a closed set, with the nearest choice as a hint.
fn one_of(cx: &Ctx, span: Range<usize>, key: &str, value: &str, choices: &[&str]) -> SpecError {
    let hint = match suggest(value, choices) {
        Some(near) => format!("did you mean \"{near}\"?"),
        None => format!("use one of {}", quote_list(choices)),
    };
    cx.err(
        span,
        key,
        format!("`{value}` is not one of {}", quote_list(choices)),
    )
    .with_hint(hint)
}

fn devices(raw: &Spanned<Loose>, cx: &Ctx) -> Result<DeviceSelection, SpecError> {
    const KEY: &str = "gpu.devices";
    const HINT: &str = "write `devices = \"all\"`, a count like `devices = 2`, or a list of host \
                        indices or UUIDs like `devices = [0, 1]` or `[\"GPU-8b2c...\"]`";
    let items = match raw.get_ref() {
        Loose::Str(s) if s == "all" => return Ok(DeviceSelection::All),
        Loose::Int(n) => {
            return match u32::try_from(*n) {
                Ok(count) if count >= 1 => Ok(DeviceSelection::Count(count)),
                _ => Err(cx
                    .err(
                        raw.span(),
                        KEY,
                        format!("a count of GPUs must be at least 1, not {n}"),
                    )
                    .with_hint("to run without a GPU, set `vendor = \"none\"`")),
            };
        }
        Loose::List(items) => items,
        other => {
            let found = match other {
                Loose::Str(s) => format!("\"{s}\""),
                _ => other.kind().to_string(),
            };
            return Err(cx
                .err(
                    raw.span(),
                    KEY,
                    format!("expected \"all\", a count or a list, found {found}"),
                )
                .with_hint(HINT));
        }
    };
    if items.is_empty() {
        return Err(cx.err(raw.span(), KEY, "the list is empty").with_hint(HINT));
    }
    let mut refs: Vec<GpuRef> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let key = format!("{KEY}[{i}]");
        let gpu = match item.get_ref() {
            Loose::Int(n) => match u32::try_from(*n) {
                Ok(index) => GpuRef::Index(index),
                Err(_) => {
                    return Err(cx
                        .err(item.span(), key, format!("`{n}` is not a GPU index"))
                        .with_hint(HINT));
                }
            },
            Loose::Str(s) if is_gpu_uuid(s) => GpuRef::Uuid(s.clone()),
            Loose::Str(s) => {
                return Err(cx
                    .err(item.span(), key, format!("`{s}` is not a GPU UUID"))
                    .with_hint("UUIDs look like \"GPU-8b2c3d4e-...\" (see `nvidia-smi -L`); indices are integers"));
            }
            other => {
                let msg = format!("expected a GPU index or UUID, found {}", other.kind());
                return Err(cx.err(item.span(), key, msg).with_hint(HINT));
            }
        };
        if refs.contains(&gpu) {
            return Err(cx.err(item.span(), key, "this GPU is listed twice"));
        }
        refs.push(gpu);
    }
    Ok(DeviceSelection::List(refs))
}

fn is_gpu_uuid(s: &str) -> bool {
    s.strip_prefix("GPU-").is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    })
}

fn resources(raw: &RawResources, cx: &Ctx) -> Result<Resources, SpecError> {
    let cpus = match &raw.cpus {
        None => None,
        Some(c) => {
            let value = match c.get_ref() {
                Loose::Int(n) => Some(*n as f64),
                Loose::Float(f) => Some(*f),
                _ => None,
            };
            match value {
                Some(v) if v.is_finite() && v > 0.0 => Some(v),
                Some(_) => return Err(cx.err(c.span(), "resources.cpus", "must be more than 0")),
                None => {
                    let msg = format!("expected a number of CPUs, found {}", c.get_ref().kind());
                    return Err(cx
                        .err(c.span(), "resources.cpus", msg)
                        .with_hint("write it like `cpus = 8` or `cpus = 1.5`"));
                }
            }
        }
    };
    Ok(Resources {
        shm: size(raw.shm.as_ref(), "resources.shm", MIN_SHM, cx)?,
        memory: size(raw.memory.as_ref(), "resources.memory", MIN_MEMORY, cx)?,
        cpus,
    })
}

fn size(
    raw: Option<&Spanned<Loose>>,
    key: &str,
    min: u64,
    cx: &Ctx,
) -> Result<Option<u64>, SpecError> {
    use super::size::{format_size, parse_size};
    let Some(raw) = raw else { return Ok(None) };
    let bytes = match raw.get_ref() {
        Loose::Str(s) => parse_size(s).map_err(|m| cx.err(raw.span(), key, m))?,
        Loose::Int(n) => {
            u64::try_from(*n).map_err(|_| cx.err(raw.span(), key, "a size cannot be negative"))?
        }
        other => {
            let msg = format!("expected a size like \"16g\", found {}", other.kind());
            return Err(cx.err(raw.span(), key, msg));
        }
    };
    if bytes < min {
        let msg = format!(
            "{} is too small; the minimum is {}",
            format_size(bytes),
            format_size(min)
        );
        return Err(cx.err(raw.span(), key, msg));
    }
    Ok(Some(bytes))
}

fn user(raw: Option<&Spanned<String>>, cx: &Ctx) -> Result<UserMode, SpecError> {
    let Some(raw) = raw else {
        return Ok(UserMode::Host);
    };
    let value = raw.get_ref();
    match value.as_str() {
        "host" => return Ok(UserMode::Host),
        "root" => return Ok(UserMode::Root),
        _ => {}
    }
    let mut chars = value.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if first_ok && rest_ok && value.len() <= 32 {
        return Ok(UserMode::Named(value.clone()));
    }
    Err(cx
        .err(
            raw.span(),
            "user.as",
            format!("`{value}` is not \"host\", \"root\" or a user name"),
        )
        .with_hint(
            "user names are lowercase letters, digits, `_` and `-`, starting with a letter or `_`",
        ))
}
