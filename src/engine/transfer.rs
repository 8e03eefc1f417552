//! Moving whole images in and out of the engine: inspect, `docker save`, `docker load`, tag
//! and push. The formats, checksums and compression around them live in `crate::transport`.
//!
//! Saves and loads of multi-GB images outlast the client's 10-minute request timeout, so they go
//! through a clone of the client without one; bytes always stream, never sit in memory whole.

use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    ImportImageOptionsBuilder, ListImagesOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{Engine, explain};
use crate::error::{Code, fail};

/// What berth needs to know about an image to move it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// `sha256:…`, the engine's image id.
    pub id: String,
    /// `repo:tag` names pointing at it.
    pub tags: Vec<String>,
    /// The uncompressed layers' digests (`RootFS.Layers`, the "diff ids"), base first.
    pub layers: Vec<String>,
    /// The engine's estimate of the image's size in bytes (about the size of `docker save`).
    pub size: u64,
}

/// A registry login, as docker stores it (`config.json` or a credential helper). It goes to the
/// engine only; berth never prints or stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
    pub identitytoken: Option<String>,
    pub serveraddress: Option<String>,
}

/// One progress message of a push.
#[derive(Debug, Clone, Default)]
pub struct PushProgress {
    /// The engine's words (`Pushed`, `Layer already exists`, `... digest: sha256:...`).
    pub status: String,
    /// Bytes sent and to send of the layer in flight, when the engine says.
    pub current: Option<i64>,
    pub total: Option<i64>,
}

/// One year: effectively no timeout for transfers that stream for as long as they need.
const NO_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

impl Engine {
    /// Inspect an image by name or id; `None` when the engine does not have it.
    pub async fn image_facts(&self, reference: &str) -> anyhow::Result<Option<ImageFacts>> {
        let img = match self.docker.inspect_image(reference).await {
            Ok(img) => img,
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
            Err(e) => return Err(explain(e, &self.endpoint)),
        };
        let tags = img.repo_tags.unwrap_or_default().into_iter().filter(|t| t != "<none>:<none>").collect();
        Ok(Some(ImageFacts {
            id: img.id.unwrap_or_default(),
            tags,
            layers: img.root_fs.and_then(|r| r.layers).unwrap_or_default(),
            size: img.size.unwrap_or(0).max(0) as u64,
        }))
    }

    /// The layers (diff ids, base first) of every image the engine holds, intermediate ones
    /// included: what a load need not be sent again.
    pub async fn all_image_layers(&self) -> anyhow::Result<Vec<Vec<String>>> {
        let opts = ListImagesOptionsBuilder::default().all(true).build();
        let list = self.docker.list_images(Some(opts)).await.map_err(|e| explain(e, &self.endpoint))?;
        let inspections = list.iter().map(|img| self.image_facts(&img.id));
        let facts = futures_util::future::join_all(inspections).await;
        // An image removed meanwhile is simply not there.
        Ok(facts.into_iter().filter_map(|f| f.ok().flatten()).map(|f| f.layers).collect())
    }

    /// `docker save NAMES…` as a stream of tar bytes.
    pub fn save(&self, names: &[String]) -> impl Stream<Item = anyhow::Result<Bytes>> + Send + use<> {
        let docker = self.docker.clone().with_timeout(NO_TIMEOUT);
        let endpoint = self.endpoint.clone();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        docker.export_images(&refs).map(move |r| r.map_err(|e| explain(e, &endpoint)))
    }

    /// `docker load` from a stream of tar bytes. An `Err` item aborts the upload, so the engine
    /// sees a broken request and keeps nothing. Returns the engine's "Loaded image" lines.
    pub async fn load<S>(&self, body: S) -> anyhow::Result<Vec<String>>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let docker = self.docker.clone().with_timeout(NO_TIMEOUT);
        let opts = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut replies = docker.import_image_stream(opts, body, None);
        let mut loaded = Vec::new();
        while let Some(item) = replies.next().await {
            let info = item.map_err(|e| match e {
                BollardError::DockerStreamError { error } => {
                    anyhow::anyhow!("the engine could not load it: {error}")
                }
                e => explain(e, &self.endpoint),
            })?;
            for text in [info.stream, info.status].into_iter().flatten() {
                loaded.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
            }
        }
        Ok(loaded)
    }

    /// Point `repo:tag` at `image`.
    pub async fn tag(&self, image: &str, repo: &str, tag: &str) -> anyhow::Result<()> {
        let opts = TagImageOptionsBuilder::default().repo(repo).tag(tag).build();
        self.docker.tag_image(image, Some(opts)).await.map_err(|e| explain(e, &self.endpoint))
    }

    /// `docker push repo:tag`: the engine's progress messages, or the registry's refusal.
    pub fn push(
        &self,
        repo: &str,
        tag: &str,
        credentials: Option<Credentials>,
    ) -> impl Stream<Item = anyhow::Result<PushProgress>> + use<> {
        let docker = self.docker.clone().with_timeout(NO_TIMEOUT);
        let opts = PushImageOptionsBuilder::default().tag(tag).build();
        let endpoint = self.endpoint.clone();
        let credentials = credentials.map(|c| DockerCredentials {
            username: c.username,
            password: c.password,
            identitytoken: c.identitytoken,
            serveraddress: c.serveraddress,
            ..Default::default()
        });
        docker.push_image(repo, Some(opts), credentials).map(move |r| {
            r.map(|info| {
                let (current, total) =
                    info.progress_detail.map(|p| (p.current, p.total)).unwrap_or((None, None));
                PushProgress { status: info.status.unwrap_or_default(), current, total }
            })
            .map_err(|e| match e {
                BollardError::DockerStreamError { error } => {
                    fail(Code::Failure, format!("the registry refused the push: {error}"), push_hint(&error))
                }
                e => explain(e, &endpoint),
            })
        })
    }
}

fn push_hint(error: &str) -> String {
    let e = error.to_ascii_lowercase();
    if e.contains("unauthorized") || e.contains("authentication required") || e.contains("no basic auth") {
        "log in to that registry first (`docker login REGISTRY`); berth reads the credentials docker \
         stores (config.json, credsStore, credHelpers)"
            .into()
    } else if e.contains("denied") {
        "your account may not push to that repository: check its name and your rights there".into()
    } else {
        "check that the registry is reachable from the engine and the reference is right".into()
    }
}
