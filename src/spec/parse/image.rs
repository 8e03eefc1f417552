//! `[image]`: base or preset (with pins), apt and pip packages, a requirements file, package
//! indexes and mirrors, a conda environment, or the user's own Dockerfile.
//!
//! Files (`requirements`, `conda-environment`, `dockerfile`) are resolved against the project
//! folder and must exist. `dockerfile` replaces the generated file, so it cannot be combined
//! with the keys that feed the generated one; `preset` replaces `base`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::basics::image_base;
use super::{Ctx, one_of};
use crate::spec::{ImageSpec, Pins, Preset, SpecError};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawImage {
    base: Option<Spanned<String>>,
    preset: Option<Spanned<String>>,
    torch: Option<Spanned<String>>,
    cuda: Option<Spanned<String>>,
    rocm: Option<Spanned<String>>,
    python: Option<Spanned<String>>,
    #[serde(default)]
    apt: Vec<Spanned<String>>,
    #[serde(default)]
    pip: Vec<Spanned<String>>,
    requirements: Option<Spanned<String>>,
    pip_index_url: Option<Spanned<String>>,
    #[serde(default)]
    pip_extra_index_urls: Vec<Spanned<String>>,
    apt_mirror: Option<Spanned<String>>,
    conda_environment: Option<Spanned<String>>,
    dockerfile: Option<Spanned<String>>,
}

const PRESETS: [&str; 5] = ["pytorch", "ngc", "rocm", "cuda", "python"];

pub(super) fn image(raw: &RawImage, cx: &Ctx) -> Result<ImageSpec, SpecError> {
    let base = image_base(raw.base.as_ref(), cx)?;
    let preset = match &raw.preset {
        None => None,
        Some(p) => Some(match p.get_ref().as_str() {
            "pytorch" => Preset::Pytorch,
            "ngc" => Preset::Ngc,
            "rocm" => Preset::Rocm,
            "cuda" => Preset::Cuda,
            "python" => Preset::Python,
            other => return Err(one_of(cx, p.span(), "image.preset", other, &PRESETS)),
        }),
    };
    if let (Some(p), Some(b)) = (&raw.preset, &raw.base) {
        let at = p.span().start.max(b.span().start);
        return Err(cx
            .err(at..at + 1, "image.preset", "`base` and `preset` both choose the base image")
            .with_hint("keep one: `preset` picks a tag matching this host's GPU stack, `base` names one"));
    }
    let pins = Pins {
        torch: version(raw.torch.as_ref(), "image.torch", cx)?,
        cuda: version(raw.cuda.as_ref(), "image.cuda", cx)?,
        rocm: version(raw.rocm.as_ref(), "image.rocm", cx)?,
        python: version(raw.python.as_ref(), "image.python", cx)?,
    };
    if preset.is_none() {
        let pinned =
            [(&raw.torch, "torch"), (&raw.cuda, "cuda"), (&raw.rocm, "rocm"), (&raw.python, "python")];
        if let Some((Some(v), key)) = pinned.into_iter().find(|(v, _)| v.is_some()) {
            return Err(cx
                .err(v.span(), format!("image.{key}"), "a version pin only applies to a `preset`")
                .with_hint(
                    "add `preset = \"pytorch\"` (or ngc, rocm, cuda, python), or put the version in `base`",
                ));
        }
    }
    let apt =
        raw.apt.iter().enumerate().map(|(i, a)| apt_package(a, i, cx)).collect::<Result<Vec<_>, _>>()?;
    let pip =
        raw.pip.iter().enumerate().map(|(i, p)| pip_requirement(p, i, cx)).collect::<Result<Vec<_>, _>>()?;
    let requirements = file(raw.requirements.as_ref(), "image.requirements", cx)?;
    let conda_environment = file(raw.conda_environment.as_ref(), "image.conda-environment", cx)?;
    let dockerfile = file(raw.dockerfile.as_ref(), "image.dockerfile", cx)?;
    if let Some(d) = &raw.dockerfile {
        let generated: [(&str, bool); 8] = [
            ("preset", raw.preset.is_some()),
            ("apt", !raw.apt.is_empty()),
            ("pip", !raw.pip.is_empty()),
            ("requirements", raw.requirements.is_some()),
            ("conda-environment", raw.conda_environment.is_some()),
            ("apt-mirror", raw.apt_mirror.is_some()),
            ("pip-index-url", raw.pip_index_url.is_some()),
            ("pip-extra-index-urls", !raw.pip_extra_index_urls.is_empty()),
        ];
        if let Some((key, _)) = generated.iter().find(|(_, set)| *set) {
            return Err(cx
                .err(
                    d.span(),
                    "image.dockerfile",
                    format!("`dockerfile` replaces the generated Dockerfile, so `{key}` would be ignored"),
                )
                .with_hint(format!(
                    "put that step in your Dockerfile and remove `{key}`, or drop `dockerfile`"
                )));
        }
    }
    Ok(ImageSpec {
        base,
        preset,
        pins,
        apt,
        pip,
        requirements,
        pip_index_url: url(raw.pip_index_url.as_ref(), "image.pip-index-url", cx)?,
        pip_extra_index_urls: raw
            .pip_extra_index_urls
            .iter()
            .enumerate()
            .map(|(i, u)| {
                url(Some(u), &format!("image.pip-extra-index-urls[{i}]"), cx).map(Option::unwrap_or_default)
            })
            .collect::<Result<Vec<_>, _>>()?,
        apt_mirror: url(raw.apt_mirror.as_ref(), "image.apt-mirror", cx)?,
        conda_environment,
        dockerfile,
    })
}

fn version(raw: Option<&Spanned<String>>, key: &str, cx: &Ctx) -> Result<Option<String>, SpecError> {
    let Some(raw) = raw else { return Ok(None) };
    let v = raw.get_ref();
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit())) {
        return Err(cx
            .err(raw.span(), key, format!("`{v}` is not a version"))
            .with_hint("write it like \"2.5.1\" or \"12.4\""));
    }
    Ok(Some(v.clone()))
}

fn apt_package(raw: &Spanned<String>, i: usize, cx: &Ctx) -> Result<String, SpecError> {
    let p = raw.get_ref();
    let name = p.split_once('=').map_or(p.as_str(), |(n, _)| n);
    let ok = name.len() >= 2
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.:".contains(c))
        && !p.chars().any(char::is_whitespace);
    if ok {
        return Ok(p.clone());
    }
    Err(cx
        .err(raw.span(), format!("image.apt[{i}]"), format!("`{p}` is not a Debian package name"))
        .with_hint("one package per string, lowercase, optionally `name=version`"))
}

fn pip_requirement(raw: &Spanned<String>, i: usize, cx: &Ctx) -> Result<String, SpecError> {
    let p = raw.get_ref().trim();
    let starts_ok = p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !starts_ok || p.contains('\n') || p.starts_with('-') {
        return Err(cx
            .err(raw.span(), format!("image.pip[{i}]"), format!("`{p}` is not a pip requirement"))
            .with_hint("one requirement per string, like \"transformers\" or \"numpy>=1.26\"; options go in pip-index-url"));
    }
    // `pkg @ https://user:token@host/pkg.whl`, `git+https://token@github.com/...`: the
    // requirement is written into the build's `RUN` line, which the image's history keeps.
    if let Some(shown) = p.split_whitespace().find_map(without_credentials) {
        return Err(cx
            .err(raw.span(), format!("image.pip[{i}]"), format!("`{shown}` holds credentials, which would be baked into the image"))
            .with_hint("keep the secret out of the image: write the URL without its user and password and give pip the login from a netrc file or a keyring (or build the wheel and name it by a path in the project)"));
    }
    Ok(p.to_string())
}

fn url(raw: Option<&Spanned<String>>, key: &str, cx: &Ctx) -> Result<Option<String>, SpecError> {
    let Some(raw) = raw else { return Ok(None) };
    let u = raw.get_ref();
    let ok = (u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file://"))
        && u.len() > 8
        && !u.chars().any(char::is_whitespace);
    if !ok {
        return Err(cx
            .err(raw.span(), key, format!("`{u}` is not a URL"))
            .with_hint("write it like \"https://mirror.example/simple\""));
    }
    if let Some(shown) = without_credentials(u) {
        // Whatever the build is given (`ENV`, or a build `ARG`: the classic builder records
        // both in the image's history) ends up in every copy of the image: packs, pushes.
        let hint = if key.starts_with("image.pip") {
            "keep the secret out of the image: for the environment, set \
             `[env] PIP_INDEX_URL = { from-host = true }` (or PIP_EXTRA_INDEX_URL) and export it on \
             the host; for the build, use a netrc file or a keyring, and write the URL here without \
             its user and password"
        } else {
            "keep the secret out of the image: write the mirror without its user and password, and \
             give apt its login in an auth.conf file (apt_auth.conf(5)) outside the image"
        };
        return Err(cx
            .err(raw.span(), key, format!("`{shown}` holds credentials, which would be baked into the image"))
            .with_hint(hint));
    }
    Ok(Some(u.clone()))
}

/// For a URL with a user part (`user:password@`, or a token written as the user alone), the
/// URL with that part masked, so the error can show where it is without repeating the secret.
fn without_credentials(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, host) = rest[..authority_end].rsplit_once('@')?;
    let masked = match userinfo.split_once(':') {
        Some((user, _)) if !user.is_empty() => format!("{user}:***"),
        _ => "***".to_string(),
    };
    Some(format!("{scheme}://{masked}@{host}{}", &rest[authority_end..]))
}

fn file(raw: Option<&Spanned<String>>, key: &str, cx: &Ctx) -> Result<Option<PathBuf>, SpecError> {
    let Some(raw) = raw else { return Ok(None) };
    let path = super::mounts::normalise(&resolve(&cx.project_dir, raw.get_ref()));
    let span: Range<usize> = raw.span();
    // A build input is copied into an image layer (and every copy of the image): only what the
    // project holds may go there, decided after symlinks, as the build would read it.
    if !super::mounts::inside_project(&path, cx) {
        let real = super::mounts::real_path(&path);
        let via = if real == path { String::new() } else { format!(" (it leads to {})", real.display()) };
        return Err(cx
            .err(span, key, format!("{} is outside the project folder{via}", path.display()))
            .with_hint(
                "build inputs are copied into the image, so they must lie in the folder holding \
                 berth.toml: copy the file there and name it by a relative path",
            ));
    }
    if path.is_file() || !cx.check_files {
        return Ok(Some(path));
    }
    Err(cx
        .err(span, key, format!("{} does not exist (or is not a file)", path.display()))
        .with_hint("paths are relative to the folder holding berth.toml"))
}

fn resolve(project: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() { path.to_path_buf() } else { project.join(path) }
}
