//! What the engine holds: every container and top-level image (any owner), image layers, and
//! the changes in a container's writable layer; plus removing an image berth chose to remove.
//!
//! Listing is read-only and covers things berth did not create, so callers can tell them apart
//! (`clean`, `top`, `host configure`); only [`Engine::remove_image`] changes anything.

use std::collections::{BTreeSet, HashMap};

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};

use futures_util::StreamExt;

use super::changes::{self, Change, Seen};
use super::{Container, Engine, Listed, ListedImage, explain};

impl Engine {
    /// Every container, running or not, whoever made it; with `size`, `SizeRw` is filled in
    /// (slower: the engine walks each writable layer).
    pub async fn all_containers(&self, size: bool) -> anyhow::Result<Vec<Listed>> {
        let opts = ListContainersOptionsBuilder::default().all(true).size(size).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| explain(e, &self.endpoint))?;
        Ok(list.into_iter().map(Listed::from).collect())
    }

    /// Host port numbers other containers hold, whoever made them: published by running ones,
    /// and the fixed host ports stopped ones were created with (they take them back at start).
    /// `except` (the container being replaced) is left out. Any address and protocol counts,
    /// so a port chosen here clashes with none of them.
    pub async fn reserved_host_ports(&self, except: Option<&str>) -> anyhow::Result<BTreeSet<u16>> {
        let mut held = BTreeSet::new();
        for c in self.all_containers(false).await? {
            if Some(c.id.as_str()) == except {
                continue;
            }
            held.extend(c.public_ports.iter().copied());
            if c.state == "running" {
                continue;
            }
            // Only an inspect shows a stopped container's bindings; one removed meanwhile holds none.
            let Some(inspect) = self.inspect(&c.id).await? else { continue };
            held.extend(inspect.port_bindings.iter().filter_map(|b| b.host_port.parse::<u16>().ok()));
        }
        Ok(held)
    }

    /// Top-level images (no intermediate layers), only those carrying `label` when given.
    pub async fn images(&self, label: Option<&str>) -> anyhow::Result<Vec<ListedImage>> {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(l) = label {
            filters.insert("label".into(), vec![l.to_string()]);
        }
        let opts = ListImagesOptionsBuilder::default().all(false).filters(&filters).build();
        let list = self.docker.list_images(Some(opts)).await.map_err(|e| explain(e, &self.endpoint))?;
        Ok(list.into_iter().map(ListedImage::from).collect())
    }

    /// An image's layer digests, base first (empty when the image is gone).
    pub async fn image_layers(&self, id: &str) -> anyhow::Result<Vec<String>> {
        match self.docker.inspect_image(id).await {
            Ok(img) => Ok(img.root_fs.and_then(|r| r.layers).unwrap_or_default()),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(Vec::new()),
            Err(e) => Err(explain(e, &self.endpoint)),
        }
    }

    /// Remove an image by id, or untag one name of it; never forced, so an image a container
    /// still uses stays (the engine refuses).
    pub async fn remove_image(&self, reference: &str) -> anyhow::Result<()> {
        let opts = RemoveImageOptionsBuilder::default().force(false).noprune(false).build();
        match self.docker.remove_image(reference, Some(opts), None).await {
            Ok(_) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(explain(e, &self.endpoint)),
        }
    }

    /// The changes in a container's writable layer that a user would lose (see `changes`).
    pub async fn significant_changes(&self, c: &Container) -> anyhow::Result<Vec<Change>> {
        let raw = self.docker.container_changes(&c.id).await.map_err(|e| explain(e, &self.endpoint))?;
        let mut ignore: Vec<String> = c.mounts.iter().map(|m| m.destination.clone()).collect();
        // The `.profile` berth's account setup writes into the user's home (plan::account) is
        // berth's, not the user's work.
        if c.label(crate::plan::LABEL_MANAGED) == Some("true")
            && let Some(home) = c
                .env
                .iter()
                .find_map(|e| e.strip_prefix("HOME="))
                .map(|h| h.trim_end_matches('/').to_string())
        {
            ignore.push(format!("{home}/.profile"));
        }
        Ok(changes::significant(&raw.unwrap_or_default(), &ignore))
    }

    /// Each change with the file's size and modification time in the container now (the
    /// engine's stat of the path; it works on a stopped container too).
    pub async fn seen(&self, id: &str, found: &[Change]) -> anyhow::Result<Vec<Seen>> {
        let stats = futures_util::stream::iter(found.iter().cloned())
            .map(|c| async move {
                if c.kind == changes::Kind::Deleted {
                    return Ok(Seen { path: c.path, kind: c.kind, size: None, mtime: None });
                }
                let opts = bollard::query_parameters::ContainerArchiveInfoOptionsBuilder::default()
                    .path(&c.path)
                    .build();
                match self.docker.get_container_archive_info(id, Some(opts)).await {
                    Ok(st) => Ok(Seen {
                        path: c.path,
                        kind: c.kind,
                        size: Some(st.size),
                        mtime: st.modification_time,
                    }),
                    // Gone meanwhile: nothing to compare it by.
                    Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                        Ok(Seen { path: c.path, kind: c.kind, size: None, mtime: None })
                    }
                    Err(e) => Err(explain(e, &self.endpoint)),
                }
            })
            .buffered(16)
            .collect::<Vec<anyhow::Result<Seen>>>()
            .await;
        stats.into_iter().collect()
    }
}
