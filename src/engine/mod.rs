//! The only code that talks to the container engine (Docker or Podman, through bollard).
//!
//! Invariants: berth only ever changes containers carrying its `dev.berth.managed` label, and
//! every engine error reaches the user as a cause plus a fix (see [`explain`]).

pub mod build;
pub mod changes;
mod connect;
mod container;
pub mod create;
mod error;
pub mod exec;
pub mod facts;
mod http;
pub mod images;
mod inventory;
pub mod kind;
mod ssh;
mod transfer;

pub use connect::{Endpoint, parse_host, resolve};
pub use container::{Container, GpuRequest, Listed, ListedImage, Mount, PublishedPort, listed_from_json};
pub use error::{EngineError, Refusal};
pub use transfer::{Credentials, ImageFacts, PushProgress};

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};

use crate::plan::{BusyGpus, ContainerPlan, LABEL_MANAGED};
use facts::EngineFacts;

/// How the engine reports long work (builds, pulls) to whoever shows it; the engine never
/// prints.
pub trait Progress {
    /// A line about what starts now (`pulling IMAGE`).
    fn status(&self, line: &str);
    /// What is happening now (a build step, a pull's state).
    fn message(&self, text: &str);
    /// Bytes done of the total known so far.
    fn bytes(&self, done: u64, total: u64);
    /// The work ended, well or not: clear what was drawn.
    fn finish(&self);
}

/// A connected engine.
#[derive(Debug)]
pub struct Engine {
    docker: Docker,
    pub endpoint: Endpoint,
    /// Where berth's own requests go (`/_ping`, Podman's create): the same socket as bollard's.
    dial: http::Dial,
    /// Podman's own API version (`Libpod-Api-Version` in `/_ping`'s answer); `None`: Docker.
    libpod: Option<String>,
    _ssh: Option<ssh::SshProxy>,
}

/// How long one request may take (bollard's own timeout for every call berth makes).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

impl Engine {
    /// Connect to the engine the docker CLI would use, negotiating the API version from
    /// `/_ping`'s headers as the docker CLI does (see [`http`]; `/version` only where they are
    /// missing).
    pub async fn connect() -> anyhow::Result<Engine> {
        let (endpoint, _source) = connect::resolve()?;
        let (dial, proxy) = match &endpoint {
            Endpoint::Unix(path) => (http::Dial::Unix(path.clone()), None),
            Endpoint::Tcp(addr) => (http::Dial::Tcp(addr.clone()), None),
            Endpoint::Ssh { destination, port } => {
                let proxy = ssh::start(destination, *port)?;
                (http::Dial::Unix(proxy.socket.clone()), Some(proxy))
            }
        };
        let ping = http::request(&dial, "GET", "/_ping", None, REQUEST_TIMEOUT)
            .await
            .map_err(|e| explain(e, &endpoint))?;
        let server = ping.header("api-version").and_then(api_version).filter(|_| ping.status == 200);
        let version = match &server {
            Some(v) if v < bollard::API_DEFAULT_VERSION => v,
            _ => bollard::API_DEFAULT_VERSION,
        };
        let secs = REQUEST_TIMEOUT.as_secs();
        let docker = match &dial {
            http::Dial::Unix(path) => Docker::connect_with_unix(&path.to_string_lossy(), secs, version),
            http::Dial::Tcp(url) => Docker::connect_with_http(url, secs, version),
        }
        .map_err(|e| explain(e, &endpoint))?;
        let docker = match server {
            Some(_) => docker,
            // Something answered without an API version: bollard's negotiation says what it is.
            None => docker.negotiate_version().await.map_err(|e| explain(e, &endpoint))?,
        };
        let libpod = ping.header("libpod-api-version").map(str::to_string);
        Ok(Engine { docker, endpoint, dial, libpod, _ssh: proxy })
    }

    /// Whether the engine is Podman (it said so in `/_ping`'s headers).
    pub fn is_podman(&self) -> bool {
        self.libpod.is_some()
    }

    /// The engine's own facts (product, version, runtimes, CDI devices): one `/info`.
    pub async fn facts(&self) -> anyhow::Result<EngineFacts> {
        let info = self.docker.info().await.map_err(|e| explain(e, &self.endpoint))?;
        let mut facts =
            facts::from_engine(&info, self.libpod.is_some(), &self.docker.client_version().to_string());
        facts.process = kind::probe(&self.endpoint);
        self.read_podman_cdi(&mut facts);
        Ok(facts)
    }

    /// What a plan needs from the engine. On a local Podman that is all known without `/info`
    /// (0.2–2 s there): the ping said Podman, its process says rootless or not and its limits,
    /// and the CDI spec files say which devices it knows. Elsewhere, [`Engine::facts`].
    pub async fn plan_facts(&self) -> anyhow::Result<EngineFacts> {
        let process = kind::probe(&self.endpoint);
        let (Some(libpod), Some(process)) = (&self.libpod, process) else { return self.facts().await };
        let mut facts = EngineFacts {
            product: "Podman".into(),
            server_version: libpod.clone(),
            api_version: self.docker.client_version().to_string(),
            rootless: process.uid != 0,
            process: Some(process),
            ..Default::default()
        };
        self.read_podman_cdi(&mut facts);
        Ok(facts)
    }

    /// Podman 4 lists no CDI devices in its API: the spec files it reads say which it knows
    /// (readable only where it runs on this machine).
    fn read_podman_cdi(&self, facts: &mut EngineFacts) {
        if facts.is_podman() && self.endpoint.is_local() {
            facts.cdi_spec_dirs = crate::host::cdi::SPEC_DIRS.iter().map(|d| d.to_string()).collect();
            facts.cdi_devices =
                crate::host::cdi::device_names(&crate::host::HostRoot::real(), &facts.cdi_spec_dirs);
        }
    }

    /// Inspect a container by name or id; `None` when it does not exist.
    pub async fn inspect(&self, name: &str) -> anyhow::Result<Option<Container>> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(c.into())),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(explain(e, &self.endpoint)),
        }
    }

    /// Start a container (already running is fine); the failure is classified, so `up` can
    /// tell a missing GPU runtime or a taken port from the rest.
    pub async fn start(&self, id: &str) -> Result<(), EngineError> {
        match self.docker.start_container(id, None).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(error::classify(e, &self.endpoint)),
        }
    }

    pub async fn unpause(&self, id: &str) -> anyhow::Result<()> {
        self.docker.unpause_container(id).await.map_err(|e| explain(e, &self.endpoint))
    }

    /// Create the plan's container, with these host ports for the `ports` that left the choice
    /// to berth; its id. A name already taken is [`Refusal::Conflict`], a missing image
    /// [`Refusal::NoSuchImage`].
    pub async fn create(
        &self,
        plan: &ContainerPlan,
        host_ports: &[Option<u16>],
    ) -> Result<String, EngineError> {
        if !plan.gpu.cdi_devices.is_empty() {
            return self.create_libpod(plan, host_ports).await;
        }
        let opts = CreateContainerOptionsBuilder::default().name(&plan.name).build();
        match self.docker.create_container(Some(opts), create::create_body(plan, host_ports)).await {
            Ok(r) => Ok(r.id),
            Err(e) => Err(error::classify(e, &self.endpoint)),
        }
    }

    /// Create through Podman's own API (`/libpod/containers/create`): the only request of
    /// Podman 4 that takes CDI names (see `plan::gpu`). `v4.0.0` is the oldest libpod API
    /// Podman 5 still serves.
    async fn create_libpod(
        &self,
        plan: &ContainerPlan,
        host_ports: &[Option<u16>],
    ) -> Result<String, EngineError> {
        let body = create::libpod_body(plan, host_ports).to_string();
        let path = "/v4.0.0/libpod/containers/create";
        let answer = http::request(&self.dial, "POST", path, Some(body.as_bytes()), REQUEST_TIMEOUT)
            .await
            .map_err(|e| error::classify(e, &self.endpoint))?;
        if let Some(refusal) = answer.refusal() {
            return Err(error::classify(refusal, &self.endpoint));
        }
        let id = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("Id").and_then(|i| i.as_str()).map(str::to_string));
        id.ok_or_else(|| {
            error::classify(
                bollard::errors::Error::DockerResponseServerError {
                    status_code: answer.status,
                    message: format!(
                        "Podman's create answered without a container id: {}",
                        String::from_utf8_lossy(&answer.body)
                    ),
                },
                &self.endpoint,
            )
        })
    }

    /// Commit a container as `repo:tag` (paused meanwhile), with these image labels.
    pub async fn commit(
        &self,
        id: &str,
        repo: &str,
        tag: &str,
        comment: &str,
        labels: HashMap<String, String>,
    ) -> anyhow::Result<()> {
        let opts = CommitContainerOptionsBuilder::default()
            .container(id)
            .repo(repo)
            .tag(tag)
            .comment(comment)
            .pause(true)
            .build();
        let config = bollard::models::ContainerConfig { labels: Some(labels), ..Default::default() };
        self.docker.commit_container(opts, config).await.map_err(|e| explain(e, &self.endpoint))?;
        Ok(())
    }

    /// Every change in a container's writable layer (see [`changes::all`]).
    pub async fn changes(&self, id: &str) -> anyhow::Result<Vec<changes::Change>> {
        let raw = self.docker.container_changes(id).await.map_err(|e| explain(e, &self.endpoint))?;
        Ok(changes::all(&raw.unwrap_or_default()))
    }

    /// The command lines of a running container's processes (the engine's `top`); `None` when
    /// the engine does not name a command column.
    pub async fn processes(&self, id: &str) -> anyhow::Result<Option<Vec<String>>> {
        let top = self
            .docker
            .top_processes(id, None::<bollard::query_parameters::TopOptions>)
            .await
            .map_err(|e| explain(e, &self.endpoint))?;
        let col = top.titles.as_ref().and_then(|t| t.iter().position(|t| t == "CMD" || t == "COMMAND"));
        Ok(col.map(|col| top.processes.iter().flatten().filter_map(|p| p.get(col).cloned()).collect()))
    }

    /// Running containers (any owner).
    pub async fn running_containers(&self) -> anyhow::Result<Vec<Listed>> {
        let opts = ListContainersOptionsBuilder::default().all(false).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| explain(e, &self.endpoint))?;
        Ok(list.into_iter().map(Listed::from).collect())
    }

    pub async fn stop(&self, id: &str, timeout_s: i32) -> anyhow::Result<()> {
        let opts = StopContainerOptionsBuilder::default().t(timeout_s).build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(explain(e, &self.endpoint)),
        }
    }

    /// Remove a container (running or not) and its anonymous volumes.
    pub async fn remove(&self, id: &str) -> anyhow::Result<()> {
        // Never the container's anonymous volumes: berth makes none, so any holds the user's data.
        let opts = RemoveContainerOptionsBuilder::default().force(true).v(false).build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(explain(e, &self.endpoint)),
        }
    }

    /// Remove a stopped container; the engine refuses if it was started again meanwhile.
    pub async fn remove_stopped(&self, id: &str) -> anyhow::Result<()> {
        let opts = RemoveContainerOptionsBuilder::default().force(false).v(false).build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(explain(e, &self.endpoint)),
        }
    }

    /// berth's containers, optionally only those of one owner uid.
    pub async fn list_berth(&self, owner_uid: Option<u32>) -> anyhow::Result<Vec<Listed>> {
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(uid) = owner_uid {
            labels.push(format!("{}={uid}", crate::plan::LABEL_OWNER_UID));
        }
        let filters: HashMap<String, Vec<String>> = HashMap::from([("label".to_string(), labels)]);
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let mut list =
            self.docker.list_containers(Some(opts)).await.map_err(|e| explain(e, &self.endpoint))?;
        // Images berth built carry `managed` too, and the engine copies image labels onto any
        // container made from them; only containers berth created carry a plan hash.
        list.retain(|c| {
            c.labels.as_ref().and_then(|l| l.get(crate::plan::LABEL_HASH)).is_some_and(|h| !h.is_empty())
        });
        list.sort_by(|a, b| a.names.cmp(&b.names));
        Ok(list.into_iter().map(Listed::from).collect())
    }

    /// GPU ids (indices, UUIDs, CDI names' ids, device paths) held by running containers other
    /// than `except`, so that `devices = N` can prefer free GPUs (a stopped one uses none).
    pub async fn busy_gpus(&self, except: Option<&str>) -> anyhow::Result<BusyGpus> {
        let opts = ListContainersOptionsBuilder::default().all(true).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| explain(e, &self.endpoint))?;
        let mut busy = BusyGpus::new();
        for c in list {
            let Some(id) = c.id.as_deref() else { continue };
            if Some(id) == except || c.state.as_ref().is_some_and(|s| s.to_string() != "running") {
                continue;
            }
            let Some(inspect) = self.inspect(id).await? else { continue };
            for req in inspect.gpu_requests {
                for dev in req.device_ids {
                    busy.insert(dev.rsplit('=').next().unwrap_or(&dev).to_string());
                }
                if req.all {
                    busy.insert("all".into());
                }
            }
            busy.extend(inspect.devices);
        }
        Ok(busy)
    }
}

/// `1.41` as bollard's version type.
fn api_version(text: &str) -> Option<bollard::ClientVersion> {
    let (major, minor) = text.trim().split_once('.')?;
    Some(bollard::ClientVersion { major_version: major.parse().ok()?, minor_version: minor.parse().ok()? })
}

/// Turn an engine error into a message with a cause and a fix (see [`error::classify`]).
pub(crate) fn explain(err: BollardError, endpoint: &Endpoint) -> anyhow::Error {
    anyhow::Error::new(error::classify(err, endpoint))
}

/// The fix for a permission error on the engine's socket: a socket no group opens (rootful
/// Podman's, another user's rootless engine) has its own; else from the user's groups.
fn permission_hint(endpoint: &Endpoint) -> String {
    use std::os::unix::fs::MetadataExt;
    if let Endpoint::Unix(path) = endpoint
        && let Ok(meta) = std::fs::metadata(path)
    {
        let owner = crate::host::user::name_of(meta.uid()).unwrap_or_else(|| meta.uid().to_string());
        if let Some(fix) = kind::closed_socket_fix(path, meta.uid(), &owner, meta.mode() & 0o7777) {
            return fix;
        }
    }
    let user = crate::host::HostUser::current();
    let docker_gid = group_gid("docker");
    let listed = group_members("docker").contains(&user.name);
    let active = docker_gid.is_some_and(|g| user.groups.contains(&g) || user.gid == g);
    if listed && !active {
        "you were added to the `docker` group, but this login does not have it yet: run \
         `newgrp docker` (or log out and back in)"
            .to_string()
    } else {
        "ask an administrator to add you to the `docker` group (`sudo usermod -aG docker $USER`), \
         then run `newgrp docker`; members of `docker` can act as root on this host, so on \
         shared servers rootless Docker is the safer choice"
            .to_string()
    }
}

fn group_line(name: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines()
        .find(|l| l.split(':').next() == Some(name))
        .map(|l| l.split(':').map(str::to_string).collect())
}

fn group_gid(name: &str) -> Option<u32> {
    group_line(name)?.get(2)?.parse().ok()
}

fn group_members(name: &str) -> Vec<String> {
    group_line(name)
        .and_then(|f| f.get(3).cloned())
        .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The label value of a container, if set.
pub fn label<'a>(c: &'a Container, key: &str) -> Option<&'a str> {
    c.label(key)
}

/// Whether a container is running (not paused, not restarting: the engine calls those
/// "running" too, but nothing can be exec'd in them).
pub fn is_running(c: &Container) -> bool {
    c.is_running()
}

/// The container's status word (`created`, `running`, `paused`, `restarting`, `exited`, ...).
pub fn status(c: &Container) -> String {
    c.status.clone()
}
