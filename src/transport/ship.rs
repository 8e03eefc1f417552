//! `ship`'s decisions and its stream: what the other engine has (one probe over ssh), which
//! layers can stay home, and the `docker save` stream with those layers' data left out.
//!
//! A layer stays home only when the other engine holds the same layer *at the same place in the
//! stack* (same chain id): that is the identity its layer store keys layers by, and what lets
//! its `docker load` skip a missing `layer.tar` (graphdriver store). The containerd image store
//! cannot load an image with missing layers, so it gets everything.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

use anyhow::Context as _;

use super::layout::{Layout, chain_ids};
use super::pack::entry_path;
use crate::engine::ImageFacts;
use crate::ssh::sh_quote;

/// The shell script that asks the other side about its engine (and whether `project_dir`
/// holds a `berth.toml`), in one round trip.
pub fn probe(project_dir: Option<&str>) -> String {
    let mut script = String::from(
        "docker info --format 'INFO {{.ServerVersion}}|{{.Driver}}|{{json .DriverStatus}}' || exit 90
if command -v zstd >/dev/null 2>&1; then echo ZSTD; fi
ids=$(docker image ls -aq --no-trunc | sort -u)
if [ -n \"$ids\" ]; then docker image inspect --format 'IMG {{.Id}} {{json .RootFS.Layers}} {{json .RepoTags}}' $ids; fi
",
    );
    if let Some(dir) = project_dir {
        script.push_str(&format!("if [ -e {}/berth.toml ]; then echo PROJECT_EXISTS; fi\n", sh_quote(dir)));
    }
    script
}

/// A script that prints `<id> <layers as JSON>` for each of `names` (after a load, the check).
pub fn inspect(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| sh_quote(n)).collect();
    format!("docker image inspect --format '{{{{.Id}}}} {{{{json .RootFS.Layers}}}}' {}", quoted.join(" "))
}

/// What the other engine said about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteFacts {
    pub server_version: String,
    pub driver: String,
    /// Docker's containerd image store (no partial loads).
    pub containerd_store: bool,
    /// `zstd` is installed there, so the stream can travel compressed.
    pub zstd: bool,
    /// The `--project` folder there already holds a `berth.toml`.
    pub project_exists: bool,
    pub images: Vec<RemoteImage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage {
    pub id: String,
    pub layers: Vec<String>,
    pub tags: Vec<String>,
}

/// Parse the output of [`probe`].
pub fn parse_probe(text: &str) -> anyhow::Result<RemoteFacts> {
    let mut facts = RemoteFacts::default();
    let mut saw_info = false;
    for line in text.lines() {
        if let Some(info) = line.strip_prefix("INFO ") {
            let mut parts = info.splitn(3, '|');
            facts.server_version = parts.next().unwrap_or_default().to_string();
            facts.driver = parts.next().unwrap_or_default().to_string();
            let status = parts.next().unwrap_or_default();
            facts.containerd_store =
                status.contains("io.containerd.snapshotter") || facts.driver.starts_with("overlayfs");
            saw_info = true;
        } else if line == "ZSTD" {
            facts.zstd = true;
        } else if line == "PROJECT_EXISTS" {
            facts.project_exists = true;
        } else if let Some(img) = line.strip_prefix("IMG ") {
            let mut parts = img.splitn(3, ' ');
            let id = parts.next().unwrap_or_default().to_string();
            let layers = serde_json::from_str::<Option<Vec<String>>>(parts.next().unwrap_or("null"))
                .with_context(|| format!("reading the other engine's layers of {id}"))?
                .unwrap_or_default();
            let tags = serde_json::from_str::<Option<Vec<String>>>(parts.next().unwrap_or("null"))
                .unwrap_or_default()
                .unwrap_or_default();
            facts.images.push(RemoteImage { id, layers, tags });
        }
    }
    if !saw_info {
        anyhow::bail!("the other side did not describe its engine (it printed: {})", text.trim());
    }
    Ok(facts)
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// The image and all its names are there already.
    Nothing,
    /// Everything but the data of these layers (by index, base first).
    Partial { skip: BTreeSet<usize> },
    /// Everything, because the other engine cannot take less.
    Full { reason: String },
}

/// Decide what `local` needs to send to an engine described by `remote`.
pub fn decide(local: &ImageFacts, remote: &RemoteFacts) -> Transfer {
    let there = remote.images.iter().find(|i| i.id == local.id);
    if there.is_some_and(|i| local.tags.iter().all(|t| i.tags.contains(t))) {
        return Transfer::Nothing;
    }
    if remote.containerd_store {
        return Transfer::Full {
            reason: "the other engine uses the containerd image store, which cannot load an image \
                     without all its layers"
                .into(),
        };
    }
    let held: BTreeSet<String> = remote.images.iter().flat_map(|i| chain_ids(&i.layers)).collect();
    let skip = chain_ids(&local.layers)
        .iter()
        .enumerate()
        .filter(|(_, c)| held.contains(*c))
        .map(|(i, _)| i)
        .collect();
    Transfer::Partial { skip }
}

/// What went over the wire, by layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    pub layers_sent: usize,
    pub layers_skipped: usize,
    /// Bytes of the layers sent (uncompressed): what the other side lacked.
    pub layer_bytes_sent: u64,
    pub layer_bytes_skipped: u64,
    /// Bytes of the whole `docker save` stream read from the engine.
    pub save_bytes: u64,
}

/// Copy the `docker save` tar from `save` into `out`, leaving out the data of the layers in
/// `skip` (their small `json` and `VERSION` stay, which is what `docker load` needs).
pub fn filter<R: Read, W: Write>(
    save: R,
    out: W,
    diffs: &[String],
    skip: &BTreeSet<usize>,
) -> anyhow::Result<(W, Sent)> {
    let mut layout = Layout::new(diffs);
    let mut tar = tar::Builder::new(out);
    let mut sent = Sent::default();
    let mut archive = tar::Archive::new(save);
    for entry in archive.entries().context("reading the engine's image archive")? {
        let mut entry = entry.context("reading the engine's image archive")?;
        let path = entry_path(&entry)?;
        let size = entry.size();
        sent.save_bytes += size;
        let layer = layout.layer_of(&path);
        if layer.is_some_and(|i| skip.contains(&i)) {
            io::copy(&mut entry, &mut io::sink()).with_context(|| format!("reading {path}"))?;
            sent.layers_skipped += 1;
            sent.layer_bytes_skipped += size;
            continue;
        }
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name()?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
            tar.append_link(&mut header, &path, &target).with_context(|| format!("sending {path}"))?;
            continue;
        }
        header.set_size(size);
        if path.ends_with("/json") && size < (1 << 20) {
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data).with_context(|| format!("reading {path}"))?;
            layout.observe(&path, &data);
            tar.append_data(&mut header, &path, data.as_slice())
                .with_context(|| format!("sending {path}"))?;
            continue;
        }
        tar.append_data(&mut header, &path, &mut entry).with_context(|| format!("sending {path}"))?;
        if layer.is_some() || path.ends_with("/layer.tar") {
            sent.layers_sent += 1;
            sent.layer_bytes_sent += size;
        }
    }
    let out = tar.into_inner().context("finishing the stream")?;
    Ok((out, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(layers: &[&str]) -> ImageFacts {
        ImageFacts {
            id: "sha256:top".into(),
            tags: vec!["app:1".into()],
            layers: layers.iter().map(|l| l.to_string()).collect(),
            size: 0,
        }
    }

    fn remote(images: Vec<RemoteImage>) -> RemoteFacts {
        RemoteFacts { driver: "overlay2".into(), images, ..RemoteFacts::default() }
    }

    fn image(id: &str, layers: &[&str], tags: &[&str]) -> RemoteImage {
        RemoteImage {
            id: id.into(),
            layers: layers.iter().map(|l| l.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn probe_output_is_understood() {
        let text = "INFO 20.10.24|overlay2|[[\"Backing Filesystem\",\"extfs\"]]\nZSTD\n\
                    IMG sha256:a [\"sha256:l1\",\"sha256:l2\"] [\"base:1\"]\nIMG sha256:b null null\n";
        let f = parse_probe(text).expect("parse");
        assert_eq!((f.server_version.as_str(), f.driver.as_str()), ("20.10.24", "overlay2"));
        assert!(f.zstd && !f.containerd_store);
        assert_eq!(f.images[0], image("sha256:a", &["sha256:l1", "sha256:l2"], &["base:1"]));
        assert_eq!(f.images[1], image("sha256:b", &[], &[]));
        let c = parse_probe("INFO 28.0.1|overlayfs|[[\"driver-type\",\"io.containerd.snapshotter.v1\"]]\n")
            .expect("parse");
        assert!(c.containerd_store && !c.zstd);
        assert!(parse_probe("bash: docker: command not found\n").is_err());
    }

    #[test]
    fn only_layers_at_the_same_place_in_the_stack_stay_home() {
        let base = image("sha256:base", &["sha256:l1", "sha256:l2"], &["base:1"]);
        let t = decide(&local(&["sha256:l1", "sha256:l2", "sha256:l3"]), &remote(vec![base]));
        assert_eq!(t, Transfer::Partial { skip: BTreeSet::from([0, 1]) });
        // The same diff on another base is another layer for the engine.
        let other = image("sha256:o", &["sha256:x", "sha256:l2"], &[]);
        let t = decide(&local(&["sha256:l1", "sha256:l2"]), &remote(vec![other]));
        assert_eq!(t, Transfer::Partial { skip: BTreeSet::new() });
    }

    #[test]
    fn an_image_there_with_all_its_names_needs_nothing() {
        let same = image("sha256:top", &["sha256:l1"], &["app:1", "other:2"]);
        assert_eq!(decide(&local(&["sha256:l1"]), &remote(vec![same])), Transfer::Nothing);
        let untagged = image("sha256:top", &["sha256:l1"], &[]);
        assert_eq!(
            decide(&local(&["sha256:l1"]), &remote(vec![untagged])),
            Transfer::Partial { skip: BTreeSet::from([0]) }
        );
    }

    #[test]
    fn the_containerd_store_gets_everything() {
        let mut r = remote(vec![image("sha256:base", &["sha256:l1"], &[])]);
        r.containerd_store = true;
        assert!(matches!(decide(&local(&["sha256:l1", "sha256:l2"]), &r), Transfer::Full { .. }));
    }
}
