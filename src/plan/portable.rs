//! The environment's mounts and variables described without this machine: mount sources as
//! "inside the project", "inside the user's home" or an absolute path, and the variables berth
//! sets whatever the host.
//!
//! `plan` resolves these against the project folder and the host user's home; the exports
//! (`render`) write them in each format's own terms (`./x`, `${HOME}/x`, `$project/x`, a PVC),
//! so `berth up` and every export describe the same mounts and variables from one list.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CACHE_DIR, STATE_DIR};
use crate::spec::{EnvValue, Spec};

/// What a mount source is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountRoot {
    /// The project folder (the one holding berth.toml).
    Project,
    /// The user's home folder.
    Home,
    /// An absolute path, the same wherever the file is used.
    Absolute,
}

/// Why the mount exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// Written in `mounts` (or the default: the project at the work folder).
    User,
    /// berth's own folder (`<project>/.berth`): job logs and state.
    State,
    /// A host cache shared across projects (`[cache]`).
    Cache,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortableMount {
    pub root: MountRoot,
    /// Relative to `root` (`""` is the root itself), or absolute for [`MountRoot::Absolute`].
    pub path: String,
    pub target: String,
    pub read_only: bool,
    /// The source may be missing: whoever starts the environment creates it.
    pub create: bool,
    pub kind: MountKind,
}

impl PortableMount {
    /// The source as berth.toml would write it: `.`, `./x`, `~/x` or `/x`.
    pub fn path_or_dot(&self) -> String {
        match (self.root, self.path.is_empty()) {
            (MountRoot::Project, true) => ".".into(),
            (MountRoot::Project, false) => format!("./{}", self.path),
            (MountRoot::Home, true) => "~".into(),
            (MountRoot::Home, false) => format!("~/{}", self.path),
            (MountRoot::Absolute, _) => self.path.clone(),
        }
    }

    /// The host path on this machine.
    pub fn resolve(&self, project_dir: &Path, home: &Path) -> PathBuf {
        let join =
            |base: &Path| if self.path.is_empty() { base.to_path_buf() } else { base.join(&self.path) };
        match self.root {
            MountRoot::Project => join(project_dir),
            MountRoot::Home => join(home),
            MountRoot::Absolute => PathBuf::from(&self.path),
        }
    }
}

/// Classify a source written as `raw` (the text in berth.toml) and resolved to `source`.
pub fn classify(raw: &str, source: &Path, project_dir: &Path) -> (MountRoot, String) {
    if raw == "~" || raw.starts_with("~/") {
        let rest = raw.trim_start_matches('~').trim_start_matches('/');
        let clean: PathBuf =
            Path::new(rest).components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
        return (MountRoot::Home, clean.to_string_lossy().into_owned());
    }
    match source.strip_prefix(project_dir) {
        Ok(rel) => (MountRoot::Project, rel.to_string_lossy().into_owned()),
        Err(_) => (MountRoot::Absolute, source.to_string_lossy().into_owned()),
    }
}

/// Every mount of the environment, in the order the container gets them.
pub fn mounts(spec: &Spec) -> Vec<PortableMount> {
    let mut out: Vec<PortableMount> = spec
        .mounts
        .iter()
        .map(|m| {
            let raw_source = m.raw.split(':').next().unwrap_or_default();
            let (root, path) = classify(raw_source, &m.source, &spec.project_dir);
            PortableMount {
                root,
                path,
                target: m.target.clone(),
                read_only: m.read_only,
                create: m.create,
                kind: MountKind::User,
            }
        })
        .collect();
    if out.is_empty() {
        // An environment without its code is no use: by default the project is the work folder.
        out.push(PortableMount {
            root: MountRoot::Project,
            path: String::new(),
            target: spec.workdir.clone(),
            read_only: false,
            create: false,
            kind: MountKind::User,
        });
    }
    let own = |root, path: &str, target: String, kind| PortableMount {
        root,
        path: path.to_string(),
        target,
        read_only: false,
        create: true,
        kind,
    };
    out.push(own(MountRoot::Project, ".berth", STATE_DIR.into(), MountKind::State));
    for cache in caches(spec) {
        out.push(own(MountRoot::Home, cache.host, cache.inside, MountKind::Cache));
    }
    out
}

/// A host cache `[cache]` turns on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCache {
    /// The `[cache]` key.
    pub key: &'static str,
    /// The host folder, relative to the home folder.
    pub host: &'static str,
    /// Where it appears inside.
    pub inside: String,
}

/// The host caches the spec mounts (read-write, shared with every environment of the user).
pub fn caches(spec: &Spec) -> Vec<HostCache> {
    let mut out = Vec::new();
    if spec.cache.pip {
        out.push(HostCache { key: "pip", host: ".cache/pip", inside: format!("{CACHE_DIR}/pip") });
    }
    if spec.cache.huggingface {
        // The hub cache only: the folder above it holds the login `token`, which would reach
        // every environment (one unpacked from a stranger's pack too). A token the user wants
        // inside is passed at start: `[env] HF_TOKEN = { from-host = true }`.
        out.push(HostCache { key: "huggingface", host: HF_HUB_HOST, inside: HF_HUB_CACHE.into() });
    }
    out
}

/// The host's Hugging Face hub cache (models and datasets downloaded from the hub), relative to
/// the home folder, and where it appears inside.
const HF_HUB_HOST: &str = ".cache/huggingface/hub";
const HF_HUB_CACHE: &str = "/berth/cache/huggingface/hub";

/// The literal variables every environment gets, sorted by name: the file's `[env]` strings,
/// the cache locations and berth's own. (`{ from-host = true }` names are not here: they are
/// passed at start, never written down.)
pub fn env(spec: &Spec) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .filter_map(|v| match &v.value {
            EnvValue::Literal(value) => Some((v.key.clone(), value.clone())),
            EnvValue::FromHost => None,
        })
        .collect();
    if spec.cache.pip {
        env.push(("PIP_CACHE_DIR".into(), format!("{CACHE_DIR}/pip")));
    }
    if spec.cache.huggingface {
        // HF_HOME (token, settings) stays the container's own; only downloads are shared.
        env.push(("HF_HUB_CACHE".into(), HF_HUB_CACHE.into()));
    }
    env.push(("BERTH_STATE".into(), STATE_DIR.into()));
    env.push(("BERTH_ENV".into(), spec.name.clone()));
    // `pip install` inside a dev container is the point; an "externally managed" system
    // Python (Debian 12, Ubuntu 24.04) would refuse it.
    env.push(("PIP_BREAK_SYSTEM_PACKAGES".into(), "1".into()));
    normalise_env(&mut env);
    env
}

/// Sorted by name, one value per name: the first one pushed wins, so a key the user set in
/// `[env]` (pushed before berth's defaults) keeps the user's value.
pub(super) fn normalise_env(env: &mut Vec<(String, String)>) {
    env.sort_by(|a, b| a.0.cmp(&b.0));
    env.dedup_by(|later, first| later.0 == first.0);
}

/// Names of the `{ from-host = true }` variables, in file order.
pub fn host_env(spec: &Spec) -> Vec<String> {
    spec.env.iter().filter(|v| v.value == EnvValue::FromHost).map(|v| v.key.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_classified_by_how_they_were_written() {
        let project = Path::new("/home/a/proj");
        assert_eq!(classify(".", project, project), (MountRoot::Project, String::new()));
        assert_eq!(classify("./out", &project.join("out"), project), (MountRoot::Project, "out".into()));
        assert_eq!(
            classify("~/.cache/x", Path::new("/home/a/.cache/x"), project),
            (MountRoot::Home, ".cache/x".into())
        );
        assert_eq!(classify("/data", Path::new("/data"), project), (MountRoot::Absolute, "/data".into()));
        let m = PortableMount {
            root: MountRoot::Home,
            path: ".cache/x".into(),
            target: "/c".into(),
            read_only: false,
            create: true,
            kind: MountKind::Cache,
        };
        assert_eq!(m.resolve(project, Path::new("/h")), Path::new("/h/.cache/x"));
    }
}
