//! The single-string keys: `name`, `workdir`, `image.base`, `user.as` and `python.env`.
//!
//! Invariants: a name is `[A-Za-z0-9][A-Za-z0-9_.-]*` and at most 63 characters (Docker's
//! container-name rules, and a DNS label), whether written or derived from the folder; the
//! work folder is absolute; the base image is a plausible reference, checked only for what
//! would certainly fail later (the engine has the last word when it pulls).

use std::path::Path;

use toml::Spanned;

use super::Ctx;
use crate::spec::{SpecError, UserMode};

const DEFAULT_BASE: &str = "python:3.12-slim";
const DEFAULT_WORKDIR: &str = "/workspace";
/// Docker refuses container names longer than this (they become DNS labels).
const MAX_NAME: usize = 63;

pub(super) fn name(raw: Option<&Spanned<String>>, cx: &Ctx) -> Result<String, SpecError> {
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
    Err(cx.err(raw.span(), "name", format!("`{name}` is not a valid name")).with_hint(format!(
        "use letters, digits, `_`, `.` and `-`, starting with a letter or digit, \
             at most {MAX_NAME} characters"
    )))
}

/// The project folder's name, made into a valid `name`: other characters become `-`, leading
/// separators go, and an unusable name (the root folder) falls back to `project`.
pub(super) fn default_name(project_dir: &Path) -> String {
    let folder = project_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let cleaned: String = folder
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(MAX_NAME)
        .collect();
    if cleaned.is_empty() { "project".to_string() } else { cleaned }
}

pub(super) fn workdir(raw: Option<&Spanned<String>>, cx: &Ctx) -> Result<String, SpecError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_WORKDIR.to_string());
    };
    let dir = raw.get_ref();
    if dir.starts_with('/') && !dir.contains('\0') {
        let clean = super::mounts::normalise(Path::new(dir));
        let Some(why) = super::mounts::reserved(&clean) else { return Ok(dir.clone()) };
        return Err(cx
            .err(raw.span(), "workdir", format!("`{dir}` cannot be the work folder: {why}"))
            .with_hint(format!("use a folder of its own, like \"{DEFAULT_WORKDIR}\"")));
    }
    Err(cx
        .err(raw.span(), "workdir", format!("`{dir}` is not an absolute path"))
        .with_hint(format!("the work folder is a path inside the container, like \"{DEFAULT_WORKDIR}\"")))
}

pub(super) fn image_base(raw: Option<&Spanned<String>>, cx: &Ctx) -> Result<String, SpecError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_BASE.to_string());
    };
    let base = raw.get_ref();
    match image_ref_problem(base) {
        None => Ok(base.clone()),
        Some(problem) => Err(cx
            .err(raw.span(), "image.base", format!("\"{base}\" is not an image reference: {problem}"))
            .with_hint("write it like \"python:3.12-slim\" or \"nvcr.io/nvidia/pytorch:24.08-py3\"")),
    }
}

/// Why `r` cannot be a Docker image reference (`[registry/]path[:tag][@digest]`), if it cannot.
/// Plausibility only: the engine has the last word when it pulls.
pub(super) fn image_ref_problem(r: &str) -> Option<&'static str> {
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
    if digest.is_some_and(|d| !matches!(d.split_once(':'), Some((a, h)) if !a.is_empty() && !h.is_empty())) {
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
            && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
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
        if !edges_ok || !part.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            return Some("each repository part is lowercase letters and digits, joined by `.`, `_` or `-`");
        }
    }
    None
}

pub(super) fn user(raw: Option<&Spanned<String>>, cx: &Ctx) -> Result<UserMode, SpecError> {
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
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if first_ok && rest_ok && value.len() <= 32 {
        return Ok(UserMode::Named(value.clone()));
    }
    Err(cx
        .err(raw.span(), "user.as", format!("`{value}` is not \"host\", \"root\" or a user name"))
        .with_hint("user names are lowercase letters, digits, `_` and `-`, starting with a letter or `_`"))
}

/// `[python] env`: an absolute folder inside the image (a venv or a conda environment), or
/// `"none"`. Written into shell scripts and exports, so it must be one plain line.
pub(super) fn python_env(raw: Option<&Spanned<String>>, cx: &Ctx) -> Result<Option<String>, SpecError> {
    let Some(raw) = raw else { return Ok(None) };
    let env = raw.get_ref();
    if env == "none" {
        return Ok(Some(env.clone()));
    }
    let why = if !env.starts_with('/') {
        Some("it is not an absolute path")
    } else if env.chars().any(char::is_control) {
        Some("it holds a control character")
    } else if env.split('/').any(|part| part == "..") {
        Some("it holds `..`")
    } else {
        None
    };
    match why {
        None => Ok(Some(super::mounts::normalise(Path::new(env)).display().to_string())),
        Some(why) => Err(cx
            .err(raw.span(), "python.env", format!("`{env}` cannot be the Python environment: {why}"))
            .with_hint(
                "name the environment's folder inside the image, like \"/opt/venv\" or \"/opt/conda/envs/train\" \
                 (the folder holding bin/python), or \"none\" to activate none",
            )),
    }
}
