//! What an unpack lets through to the engine: only the members a `docker save` of the packed
//! image holds, each checked against the header as it streams. The image's config must hash to
//! the header's image id and list the header's layers; each layer must hash to its diff id (known
//! from its position, so a swapped layer stops the load at its last byte); `manifest.json`, whose
//! tags the engine applies, must name that config and exactly the header's tags. The header
//! itself is checked against the pack's manifest at the end, and the load is held back until then.
//!
//! Layouts: the legacy one (Docker before 25: `<v1 id>/layer.tar`, recognised through `Layout`),
//! Podman's docker-archive (`<diff id>.tar` at the top) and the OCI one (`blobs/sha256/<digest>`). With the containerd image store the layer blobs are
//! compressed, so their names are not diff ids: such a blob must hash to its name and be a layer
//! `manifest.json` lists, and the engine checks the diff ids as it unpacks them.

use std::collections::BTreeSet;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::layout::Layout;
use super::manifest::Header;

/// What a member under `image/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A folder.
    Folder,
    /// Small metadata, read whole and checked by [`ImageCheck::small`] (at most this many bytes).
    Small(u64),
    /// The layer at this index of the header's layers: streamed, its digest checked at its end.
    Layer(usize),
    /// A link to a layer the stream already carried.
    Link,
    /// A blob berth cannot tie to a diff id (a compressed layer of the containerd image store,
    /// an OCI manifest): streamed, its digest checked against its name at its end, and a large
    /// one must be a layer `manifest.json` lists.
    Blob,
}

/// Why a member is refused (the caller turns it into `Damage`).
pub type Refusal = String;

const META: u64 = 1 << 20;
const CONFIG: u64 = 16 << 20;

#[derive(Debug)]
pub struct ImageCheck {
    id_hex: String,
    tags: BTreeSet<String>,
    layers: Vec<String>,
    layout: Layout,
    config_seen: bool,
    manifest_seen: bool,
    /// Blobs over [`META`] bytes that streamed: each must be a layer `manifest.json` lists.
    large_blobs: Vec<String>,
    /// The layers `manifest.json` lists.
    listed: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Config {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ImageCheck {
    pub fn new(header: &Header) -> ImageCheck {
        ImageCheck {
            id_hex: header.image.id.trim_start_matches("sha256:").to_string(),
            tags: header.image.tags.iter().cloned().collect(),
            layers: header.image.layers.clone(),
            layout: Layout::new(&header.image.layers),
            config_seen: false,
            manifest_seen: false,
            large_blobs: Vec::new(),
            listed: BTreeSet::new(),
        }
    }

    /// What the member `path` (inside the image, `kind` as in the manifest) is, or why the
    /// format has no such member.
    pub fn role(&self, path: &str, kind: &str, link: Option<&str>) -> Result<Role, Refusal> {
        let path = path.trim_end_matches('/');
        let unknown = || format!("image/{path}, which is no part of a saved image");
        let parts: Vec<&str> = path.split('/').collect();
        let role = match (parts.as_slice(), kind) {
            (["manifest.json" | "repositories" | "index.json" | "oci-layout"], "file") => Role::Small(META),
            ([name], "file") => match (name.strip_suffix(".json"), name.strip_suffix(".tar")) {
                (Some(hex), _) if hex == self.id_hex => Role::Small(CONFIG),
                // Podman's docker-archive: each layer at the top, named by its diff id.
                (_, Some(hex)) if is_hex64(hex) => {
                    match self.layers.iter().position(|l| l.trim_start_matches("sha256:") == hex) {
                        Some(i) => Role::Layer(i),
                        None => return Err(format!("image/{path}, a layer that is not one of the header's")),
                    }
                }
                _ => return Err(unknown()),
            },
            ([folder], "dir") if is_hex64(folder) => Role::Folder,
            (["blobs"], "dir") | (["blobs", "sha256"], "dir") => Role::Folder,
            ([folder, "VERSION"], "file") if is_hex64(folder) => Role::Small(64),
            ([folder, "json"], "file") if is_hex64(folder) => Role::Small(META),
            ([folder, "layer.tar"], "file") if is_hex64(folder) => match self.layout.layer_of(path) {
                Some(i) => Role::Layer(i),
                None => return Err(format!("image/{path}, a layer that is not one of the header's")),
            },
            ([folder, "layer.tar"], "symlink") if is_hex64(folder) => {
                let target = link.unwrap_or_default();
                let same = self
                    .layout
                    .layer_of(path)
                    .zip(target.strip_prefix("../").and_then(|t| self.layout.layer_of(t)));
                // Podman links its legacy folders to the top-level `<diff id>.tar` of the layer.
                let podman = target
                    .strip_prefix("../")
                    .and_then(|t| t.strip_suffix(".tar"))
                    .and_then(|hex| self.layers.iter().position(|l| l.trim_start_matches("sha256:") == hex))
                    .filter(|&i| self.layout.layer_of(path).is_none_or(|a| self.layers[a] == self.layers[i]));
                match same {
                    Some((a, b)) if self.layers[a] == self.layers[b] => Role::Link,
                    _ if podman.is_some() => Role::Link,
                    _ => {
                        return Err(format!(
                            "image/{path}, a link to {target:?}, which is not the same layer"
                        ));
                    }
                }
            }
            (["blobs", "sha256", hex], "file") if is_hex64(hex) => match self.layout.layer_of(path) {
                Some(i) => Role::Layer(i),
                None if *hex == self.id_hex => Role::Small(CONFIG),
                None => Role::Blob,
            },
            _ => return Err(unknown()),
        };
        Ok(role)
    }

    /// Check a small member's data (after [`ImageCheck::role`] said `Small`).
    pub fn small(&mut self, path: &str, data: &[u8]) -> Result<(), Refusal> {
        let hex = hex::encode(Sha256::digest(data));
        let path = path.trim_end_matches('/');
        if let Some(named) = path.strip_prefix("blobs/sha256/")
            && named != hex
        {
            return Err(format!("image/{path} does not hash to its name"));
        }
        let is_config =
            path == format!("{}.json", self.id_hex) || path == format!("blobs/sha256/{}", self.id_hex);
        if is_config {
            if hex != self.id_hex {
                return Err(format!(
                    "the image config hashes to sha256:{hex}, not to the image id sha256:{} the pack names",
                    self.id_hex
                ));
            }
            let config: Config =
                serde_json::from_slice(data).map_err(|e| format!("the image config does not parse: {e}"))?;
            if config.rootfs.diff_ids != self.layers {
                return Err("the image config lists other layers than the pack's header".into());
            }
            self.config_seen = true;
        } else if let Some((folder, "json")) = path.split_once('/')
            && !folder.starts_with("blobs")
        {
            if !self.layout.observe(path, data) {
                return Err(format!("image/{path} describes no layer of the packed image"));
            }
        } else if path == "manifest.json" {
            self.manifest(data)?;
        } else if path == "repositories" {
            let repos: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
                serde_json::from_slice(data)
                    .map_err(|e| format!("image/repositories does not parse: {e}"))?;
            for (repo, tags) in repos {
                for tag in tags.keys() {
                    let name = format!("{repo}:{tag}");
                    if !self.tags.contains(&name) {
                        return Err(format!(
                            "image/repositories names {name}, a tag the pack's header does not"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `manifest.json`: what the engine applies. One image, the packed config, the header's tags.
    fn manifest(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let entries: Vec<SaveEntry> =
            serde_json::from_slice(data).map_err(|e| format!("image/manifest.json does not parse: {e}"))?;
        let [entry] = entries.as_slice() else {
            return Err(format!("image/manifest.json lists {} images; a pack holds one", entries.len()));
        };
        let config = entry.config.trim_start_matches("blobs/sha256/").trim_end_matches(".json");
        if config != self.id_hex {
            return Err(format!(
                "image/manifest.json loads the image sha256:{config}, not sha256:{} the pack names",
                self.id_hex
            ));
        }
        let tags: BTreeSet<String> = entry.repo_tags.iter().flatten().cloned().collect();
        if tags != self.tags {
            let extra: Vec<&String> = tags.difference(&self.tags).collect();
            return Err(format!(
                "image/manifest.json sets the tags {:?}, the pack's header says {:?}{}",
                tags,
                self.tags,
                if extra.is_empty() { String::new() } else { format!(" (it would move {extra:?})") }
            ));
        }
        if entry.layers.len() != self.layers.len() {
            return Err("image/manifest.json lists other layers than the pack's header".into());
        }
        self.listed = entry.layers.iter().cloned().collect();
        self.manifest_seen = true;
        Ok(())
    }

    /// A layer's data ended with this sha256 (hex).
    pub fn layer(&self, path: &str, index: usize, hex: &str) -> Result<(), Refusal> {
        let want = &self.layers[index];
        if want.trim_start_matches("sha256:") != hex {
            return Err(format!(
                "image/{path} is not the layer {want} the image config lists (damaged, or swapped)"
            ));
        }
        Ok(())
    }

    /// A blob of `size` bytes ended with this sha256 (hex).
    pub fn blob(&mut self, path: &str, size: u64, hex: &str) -> Result<(), Refusal> {
        if path.strip_prefix("blobs/sha256/") != Some(hex) {
            return Err(format!("image/{path} does not hash to its name"));
        }
        if size > META {
            self.large_blobs.push(path.to_string());
        }
        Ok(())
    }

    /// The stream ended: the config and `manifest.json` were both there, and every large blob
    /// is a layer the image loads.
    pub fn finish(&self) -> Result<(), Refusal> {
        if !self.config_seen {
            return Err("it holds no image config for the image id it names".into());
        }
        if !self.manifest_seen {
            return Err("its image holds no manifest.json".into());
        }
        if let Some(extra) = self.large_blobs.iter().find(|b| !self.listed.contains(*b)) {
            return Err(format!("image/{extra}, which is no layer of the image"));
        }
        Ok(())
    }
}
