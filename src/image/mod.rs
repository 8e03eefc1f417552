//! The environment's image: which one, and how it is made.
//!
//! [`resolve`] is pure but for reading the input files: it turns `[image]` into the base (a
//! preset becomes a real tag for this host), the Dockerfile (generated, or the user's) and a
//! content-addressed tag (`berth/<name>:<16 hex>` over every input: base, lists, the
//! requirements file's bytes, the Dockerfile, the user's context), so an unchanged environment
//! is recognised without asking the engine to build. Code is mounted, never copied, so editing
//! it never changes the tag. An image made by `berth commit` replaces the tag while the inputs
//! it was made from are unchanged.

pub mod compat;
pub mod context;
pub mod dockerfile;
pub mod freeze;
pub mod presets;
pub mod tables;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::host::{HostFacts, HostUser};
use crate::spec::Spec;
use context::Entry;

/// How the image is made when it must be built.
#[derive(Debug, Clone)]
pub struct Build {
    /// The Dockerfile's text (generated, or the user's file).
    pub dockerfile: String,
    /// Its name inside the context.
    pub dockerfile_name: String,
    pub entries: Vec<Entry>,
    /// True for the generated Dockerfile.
    pub generated: bool,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    /// The base image (`FROM`), a preset resolved to its tag.
    pub base: String,
    /// `None`: the base is used as it is.
    pub build: Option<Build>,
    /// The image the container runs: the built tag, a committed image, or the base.
    pub image: String,
    /// The tag a build produces (equal to `image` unless a commit replaces it).
    pub built_tag: Option<String>,
    /// sha256 of every input (the tag's suffix is its first 16 hex digits).
    pub inputs: String,
    /// The image came from `berth commit`.
    pub committed: bool,
    /// torch carried by the base, when its tag says.
    pub torch: Option<String>,
}

/// What `berth commit` records in `.berth/commit.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitRecord {
    pub image: String,
    /// The inputs the committed container was made from.
    pub inputs: String,
    pub created: String,
    /// The container it was made from: that container already holds what the image does.
    #[serde(default)]
    pub container: Option<String>,
    /// The changes of that container the image holds, as they were when committed: `down`
    /// does not refuse for those (unless they changed again since).
    #[serde(default)]
    pub captured: Vec<crate::engine::changes::Seen>,
}

pub fn commit_record_path(project_dir: &Path) -> PathBuf {
    crate::state::commit_record(project_dir)
}

pub fn read_commit(project_dir: &Path) -> Option<CommitRecord> {
    serde_json::from_str(&std::fs::read_to_string(commit_record_path(project_dir)).ok()?).ok()
}

/// Resolve the environment's image for this host.
pub fn resolve(spec: &Spec, host: &HostFacts) -> anyhow::Result<Resolved> {
    let img = &spec.image;
    let base = match img.preset {
        Some(p) => presets::resolve(p, &img.pins, host)?,
        None => img.base.clone(),
    };
    let torch = presets::torch_of_tag(&base);
    let build = if let Some(path) = &img.dockerfile {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut entries = context::folder_entries(dir)?;
        let name =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "Dockerfile".into());
        if !entries.iter().any(|e| e.name == name) {
            entries.push(Entry { name: name.clone(), source: Some(path.clone()), bytes: None, mode: 0o644 });
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Some(Build { dockerfile: text, dockerfile_name: name, entries, generated: false })
    } else if img.needs_build() {
        let text = dockerfile::render(img, &base, &img.pip);
        let mut entries = vec![Entry {
            name: "Dockerfile".into(),
            source: None,
            bytes: Some(text.clone().into_bytes()),
            mode: 0o644,
        }];
        if let Some(r) = &img.requirements {
            entries.push(Entry {
                name: dockerfile::REQUIREMENTS.into(),
                source: Some(r.clone()),
                bytes: None,
                mode: 0o644,
            });
        }
        if let Some(c) = &img.conda_environment {
            entries.push(Entry {
                name: dockerfile::CONDA_ENV.into(),
                source: Some(c.clone()),
                bytes: None,
                mode: 0o644,
            });
        }
        Some(Build { dockerfile: text, dockerfile_name: "Dockerfile".into(), entries, generated: true })
    } else {
        None
    };
    let inputs = match &build {
        Some(b) => {
            let mut h = Sha256::new();
            h.update(b"berth-image-v1\0");
            h.update(base.as_bytes());
            h.update([0]);
            h.update(b.dockerfile_name.as_bytes());
            h.update([0]);
            h.update(context::hash(&b.entries)?.as_bytes());
            hex::encode(h.finalize())
        }
        None => hex::encode(Sha256::digest(format!("berth-base-v1\0{base}").as_bytes())),
    };
    // A user's Dockerfile builds on its own `FROM`, whatever `base` says (the hash above keeps
    // the written base, so existing tags stay valid).
    let base =
        match build.as_ref().filter(|b| !b.generated).and_then(|b| dockerfile::final_from(&b.dockerfile)) {
            Some(from) => from,
            None => base,
        };
    let built_tag = build.as_ref().map(|_| format!("berth/{}:{}", repo_name(&spec.name), &inputs[..16]));
    let mut image = built_tag.clone().unwrap_or_else(|| base.clone());
    let mut committed = false;
    if let Some(rec) = read_commit(&spec.project_dir)
        && rec.inputs == inputs
    {
        image = rec.image;
        committed = true;
    }
    Ok(Resolved { base, build, image, built_tag, inputs, committed, torch })
}

/// A Docker repository name from the project name (lowercase, `[a-z0-9._-]`).
pub fn repo_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    let s = s.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    if s.is_empty() { "env".into() } else { s }
}

/// Labels every image berth builds or commits carries.
pub fn labels(spec: &Spec, user: &HostUser, inputs: &str) -> Vec<(String, String)> {
    vec![
        (crate::plan::LABEL_MANAGED.to_string(), "true".to_string()),
        (crate::plan::LABEL_PROJECT.to_string(), spec.project_dir.display().to_string()),
        (crate::plan::LABEL_OWNER_UID.to_string(), user.uid.to_string()),
        ("dev.berth.inputs".to_string(), inputs.to_string()),
    ]
}

#[cfg(test)]
mod tests;
