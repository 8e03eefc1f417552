//! The only code that talks to the container engine (Docker or Podman, through bollard).
//!
//! Invariants: berth only ever changes containers carrying its `dev.berth.managed` label, and
//! every engine error reaches the user as a cause plus a fix (see [`explain`]).

pub mod build;
pub mod changes;
mod connect;
pub mod create;
pub mod exec;
pub mod facts;
pub mod images;
mod inventory;
pub mod kind;
mod ssh;
mod transfer;

pub use connect::{Endpoint, parse_host, resolve};
pub use transfer::ImageFacts;

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};

use crate::error::{Code, fail};
use crate::plan::{BusyGpus, LABEL_MANAGED};
use facts::EngineFacts;

/// A connected engine.
#[derive(Debug)]
pub struct Engine {
    pub docker: Docker,
    pub endpoint: Endpoint,
    _ssh: Option<ssh::SshProxy>,
}

impl Engine {
    /// Connect to the engine the docker CLI would use, negotiating the API version.
    pub async fn connect() -> anyhow::Result<Engine> {
        let (endpoint, _source) = connect::resolve()?;
        let version = bollard::API_DEFAULT_VERSION;
        let (docker, proxy) = match &endpoint {
            Endpoint::Unix(path) => {
                let d = Docker::connect_with_unix(&path.to_string_lossy(), 600, version)
                    .map_err(|e| explain(e, &endpoint))?;
                (d, None)
            }
            Endpoint::Tcp(addr) => {
                let d = Docker::connect_with_http(addr, 600, version).map_err(|e| explain(e, &endpoint))?;
                (d, None)
            }
            Endpoint::Ssh { destination, port } => {
                let proxy = ssh::start(destination, *port)?;
                let d = Docker::connect_with_unix(&proxy.socket.to_string_lossy(), 600, version)
                    .map_err(|e| explain(e, &endpoint))?;
                (d, Some(proxy))
            }
        };
        let docker = docker.negotiate_version().await.map_err(|e| explain(e, &endpoint))?;
        Ok(Engine { docker, endpoint, _ssh: proxy })
    }

    /// The engine's own facts (product, version, runtimes, CDI devices).
    pub async fn facts(&self) -> anyhow::Result<EngineFacts> {
        let info = self.docker.info().await.map_err(|e| explain(e, &self.endpoint))?;
        let version = self.docker.version().await.map_err(|e| explain(e, &self.endpoint))?;
        let mut facts = facts::from_engine(&info, &version, &self.docker.client_version().to_string());
        facts.process = kind::probe(&self.endpoint);
        Ok(facts)
    }

    /// Inspect a container by name or id; `None` when it does not exist.
    pub async fn inspect(&self, name: &str) -> anyhow::Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(explain(e, &self.endpoint)),
        }
    }

    pub async fn start(&self, id: &str) -> anyhow::Result<()> {
        match self.docker.start_container(id, None).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(explain(e, &self.endpoint)),
        }
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
    pub async fn list_berth(&self, owner_uid: Option<u32>) -> anyhow::Result<Vec<ContainerSummary>> {
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
        Ok(list)
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
            let Some(hc) = inspect.host_config else { continue };
            for req in hc.device_requests.unwrap_or_default() {
                for dev in req.device_ids.unwrap_or_default() {
                    busy.insert(dev.rsplit('=').next().unwrap_or(&dev).to_string());
                }
                if req.count == Some(-1) {
                    busy.insert("all".into());
                }
            }
            for d in hc.devices.unwrap_or_default() {
                if let Some(p) = d.path_on_host {
                    busy.insert(p);
                }
            }
        }
        Ok(busy)
    }
}

/// Turn an engine error into a message with a cause and a fix.
pub fn explain(err: BollardError, endpoint: &Endpoint) -> anyhow::Error {
    if let BollardError::SocketNotFoundError(path) = &err {
        return fail(
            Code::NoEngine,
            format!("no container engine at unix://{path} (the socket does not exist)"),
            "start Docker (`sudo systemctl start docker`), or point berth at your engine with \
             DOCKER_HOST or `docker context use NAME`",
        );
    }
    if let BollardError::DockerResponseServerError { message, status_code } = &err {
        if message.trim().is_empty() {
            // Something answered HTTP without an engine's error body (a proxy, another server).
            return fail(
                Code::NoEngine,
                format!("{endpoint} answered HTTP {status_code} without an engine's error message"),
                "check that DOCKER_HOST (or the Docker context) points at a Docker or Podman engine",
            );
        }
        if let Some((what, fix)) = kind::known_refusal(message) {
            return fail(Code::Failure, what, fix);
        }
        return fail(
            Code::Failure,
            format!("the engine refused (HTTP {status_code}): {message}"),
            "`berth status` shows the environment; `berth doctor` checks the engine and the host",
        );
    }
    if let Some(io) = io_error(&err) {
        match io.kind() {
            std::io::ErrorKind::PermissionDenied => return permission_denied(endpoint),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                return fail(
                    Code::NoEngine,
                    format!("the container engine at {endpoint} is not running (connection refused)"),
                    "start it (`sudo systemctl start docker`), or check DOCKER_HOST",
                );
            }
            _ => {}
        }
    }
    if matches!(err, BollardError::RequestTimeoutError) {
        return fail(
            Code::Failure,
            format!("the engine at {endpoint} did not answer in time"),
            "it may be busy with a large image or container; check that it is healthy (`docker info`) and try again",
        );
    }
    anyhow::Error::new(err).context(format!("talking to the container engine at {endpoint}"))
}

fn io_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

fn permission_denied(endpoint: &Endpoint) -> anyhow::Error {
    let user = crate::host::HostUser::current();
    let docker_gid = group_gid("docker");
    let listed = group_members("docker").contains(&user.name);
    let active = docker_gid.is_some_and(|g| user.groups.contains(&g) || user.gid == g);
    let hint = if listed && !active {
        "you were added to the `docker` group, but this login does not have it yet: run \
         `newgrp docker` (or log out and back in)"
            .to_string()
    } else {
        "ask an administrator to add you to the `docker` group (`sudo usermod -aG docker $USER`), \
         then run `newgrp docker`; members of `docker` can act as root on this host, so on \
         shared servers rootless Docker is the safer choice"
            .to_string()
    };
    fail(Code::NoEngine, format!("permission denied on the engine socket {endpoint}"), hint)
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

/// A listed container's name, without the engine's leading `/`.
pub fn summary_name(c: &ContainerSummary) -> String {
    c.names.iter().flatten().next().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default()
}

/// The label value of a container, if set.
pub fn label<'a>(c: &'a ContainerInspectResponse, key: &str) -> Option<&'a str> {
    c.config.as_ref()?.labels.as_ref()?.get(key).map(String::as_str)
}

/// Whether a container is running (not paused, not restarting: the engine calls those
/// "running" too, but nothing can be exec'd in them).
pub fn is_running(c: &ContainerInspectResponse) -> bool {
    status(c) == "running"
}

/// The container's status word (`created`, `running`, `paused`, `restarting`, `exited`, ...).
pub fn status(c: &ContainerInspectResponse) -> String {
    c.state.as_ref().and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_default()
}
