//! Making sure the environment's image is present: pulled with progress when it is not.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::{Engine, Progress, explain};
use crate::error::{Code, fail};

impl Engine {
    /// Whether the engine has `image` (by name or id).
    pub async fn has_image(&self, image: &str) -> anyhow::Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(explain(e, &self.endpoint)),
        }
    }

    /// The image's configured environment (`Config.Env`), empty when it has none.
    pub async fn image_env(&self, image: &str) -> anyhow::Result<Vec<String>> {
        let inspect = self.docker.inspect_image(image).await.map_err(|e| explain(e, &self.endpoint))?;
        Ok(inspect.config.and_then(|c| c.env).unwrap_or_default())
    }

    /// The image's own work folder (`Config.WorkingDir`, its Dockerfile's last `WORKDIR`);
    /// `None` when it sets none (or `/`).
    pub async fn image_workdir(&self, image: &str) -> anyhow::Result<Option<String>> {
        let inspect = self.docker.inspect_image(image).await.map_err(|e| explain(e, &self.endpoint))?;
        Ok(inspect.config.and_then(|c| c.working_dir).filter(|w| !w.is_empty() && w != "/"))
    }

    /// The names directly inside the folder `path` of `image` (empty when the image has no such
    /// folder or it is empty): what a mount at `path` would hide. At most [`PROBE_BYTES`] of the
    /// folder are read (the names seen by then are returned).
    pub async fn image_folder_names(&self, image: &str, path: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .read_from_image(image, path, PROBE_BYTES)
            .await?
            .map(|tar| top_level_names(&tar))
            .unwrap_or_default())
    }

    /// A small text file from the image's filesystem (`/opt/rocm/.info/version`); `None` when the
    /// image has no such file or it is empty.
    pub async fn image_file(&self, image: &str, path: &str) -> anyhow::Result<Option<String>> {
        let Some(tar) = self.read_from_image(image, path, 1 << 20).await? else { return Ok(None) };
        let mut archive = tar::Archive::new(tar.as_slice());
        let Some(Ok(mut entry)) = archive.entries()?.next() else { return Ok(None) };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).ok();
        Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()))
    }

    /// The first `limit` bytes of the tar of `path` in `image` (`None` when the image has no such
    /// path), read through a container that is created, never started, and removed at once.
    async fn read_from_image(
        &self,
        image: &str,
        path: &str,
        limit: usize,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_string()),
            // Never run: set so that an image without a command can still be created.
            entrypoint: Some(vec!["/berth-probe-never-started".into()]),
            network_disabled: Some(true),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(None::<bollard::query_parameters::CreateContainerOptions>, body)
            .await
            .map_err(|e| explain(e, &self.endpoint))?;
        let opts =
            bollard::query_parameters::DownloadFromContainerOptionsBuilder::default().path(path).build();
        let mut stream = self.docker.download_from_container(&created.id, Some(opts));
        let mut tar = Vec::new();
        let mut outcome = Ok(Some(()));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tar.extend_from_slice(&bytes),
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                    outcome = Ok(None);
                    break;
                }
                Err(e) => {
                    outcome = Err(explain(e, &self.endpoint));
                    break;
                }
            }
            if tar.len() >= limit {
                break;
            }
        }
        drop(stream);
        let _ = self.remove(&created.id).await;
        Ok(outcome?.map(|()| tar))
    }

    /// Pull `image` unless present, showing progress on a terminal.
    pub async fn ensure_image(&self, image: &str, bar: &dyn Progress) -> anyhow::Result<()> {
        if self.has_image(image).await? {
            return Ok(());
        }
        if image.starts_with("sha256:") {
            // An id is never pullable: berth pack and ship pin berth.toml to one.
            return Err(fail(
                Code::Failure,
                format!("the image {image} is not on this engine, and an image id cannot be pulled"),
                "this berth.toml was pinned to that image by `berth pack` or `berth ship`: load the pack \
                 here with `berth unpack FILE`, or ship the image here again",
            ));
        }
        bar.status(&format!("pulling {image}"));
        let (from, tag) = split_tag(image);
        let opts = CreateImageOptionsBuilder::default().from_image(from).tag(tag).build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(e) => {
                    bar.finish();
                    return Err(pull_failed(image, e));
                }
            };
            if let (Some(id), Some(detail)) = (info.id.as_ref(), info.progress_detail.as_ref())
                && let (Some(cur), Some(total)) = (detail.current, detail.total)
            {
                layers.insert(id.clone(), (cur.max(0) as u64, total.max(0) as u64));
                let (c, t) = layers.values().fold((0, 0), |(a, b), (c, t)| (a + c, b + t));
                bar.bytes(c, t);
            }
            if let Some(status) = info.status {
                bar.message(&status);
            }
        }
        bar.finish();
        Ok(())
    }
}

/// How much of an image folder [`Engine::image_folder_names`] reads.
pub const PROBE_BYTES: usize = 32 << 20;

/// The names one level below the archive's root folder (`app/x`, `app/y/z` give `x`, `y`); a
/// tar cut short yields the names before the cut.
fn top_level_names(tar: &[u8]) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut archive = tar::Archive::new(tar);
    let Ok(entries) = archive.entries() else { return Vec::new() };
    for entry in entries {
        let Ok(entry) = entry else { break };
        let Ok(path) = entry.path() else { continue };
        let mut parts = path.components().filter(|c| !matches!(c, std::path::Component::CurDir));
        if let (Some(_root), Some(name)) = (parts.next(), parts.next()) {
            names.insert(name.as_os_str().to_string_lossy().into_owned());
        }
    }
    names.into_iter().collect()
}

fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

fn pull_failed(image: &str, err: BollardError) -> anyhow::Error {
    let text = err.to_string();
    let offline = [
        "dial tcp",
        "lookup ",
        "no such host",
        "i/o timeout",
        "connection refused",
        "network is unreachable",
        "TLS handshake",
    ]
    .iter()
    .any(|m| text.contains(m));
    if offline {
        return fail(
            Code::Failure,
            format!(
                "the image {image} is not on this engine, and the registry cannot be reached to pull it ({text})"
            ),
            "this machine looks offline: bring the image in with `docker load -i FILE` (or `berth unpack`), \
             or set `[image] base` to an image the engine already has (`docker images`)",
        );
    }
    fail(
        Code::Failure,
        format!("could not pull {image}: {text}"),
        "check the image name in `[image] base`, and `docker login` if the registry is private",
    )
}

#[cfg(test)]
mod tests {
    use super::{split_tag, top_level_names};

    #[test]
    fn names_one_level_below_the_root_and_nothing_from_a_cut_tar() {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [("app/", &b""[..]), ("app/train.py", b"print(1)"), ("app/data/x", b"12")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_entry_type(if path.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_mode(0o644);
            b.append_data(&mut h, path, data).expect("append");
        }
        let tar = b.into_inner().expect("tar");
        assert_eq!(top_level_names(&tar), ["data", "train.py"]);
        assert_eq!(top_level_names(&tar[..1024]), ["train.py"]);
        assert!(top_level_names(b"").is_empty());
    }

    #[test]
    fn tags_split_from_repositories() {
        assert_eq!(split_tag("python:3.12-slim"), ("python", "3.12-slim"));
        assert_eq!(split_tag("localhost:5000/x"), ("localhost:5000/x", "latest"));
        assert_eq!(split_tag("localhost:5000/x:1"), ("localhost:5000/x", "1"));
        assert_eq!(split_tag("busybox"), ("busybox", "latest"));
    }
}
