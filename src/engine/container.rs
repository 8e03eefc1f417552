//! berth's own view of containers and images, as the engine reports them.
//!
//! Commands and domain modules read these, never the engine client's types: the fields are the
//! ones berth decides on (state, labels, mounts, the host-config bits drift and `status` show),
//! already unwrapped, so a newer engine API changes this file and nothing above it.

use std::collections::HashMap;

use bollard::models::{ContainerInspectResponse, ContainerSummary, DeviceRequest, ImageSummary};

/// One container, inspected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    /// The state word: `created`, `running`, `paused`, `restarting`, `removing`, `exited`,
    /// `dead`; empty when the engine did not say.
    pub status: String,
    /// The engine's `Running` flag: true for paused and restarting containers too.
    pub running_flag: bool,
    pub exit_code: i64,
    /// The execs running in it now (the engine lists an exec only while it runs).
    pub exec_ids: Vec<String>,
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds, as the engine reports them.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub labels: HashMap<String, String>,
    /// The image the container was made from, as named then.
    pub image: Option<String>,
    pub user: Option<String>,
    pub env: Vec<String>,
    /// Memory limit in bytes, when one is set.
    pub memory: Option<u64>,
    pub shm_size: Option<u64>,
    pub ipc_mode: Option<String>,
    pub restart_policy: Option<String>,
    /// GPU requests: the device ids asked for (a CDI name's id part kept whole).
    pub gpu_requests: Vec<GpuRequest>,
    /// Host paths of the devices handed in.
    pub devices: Vec<String>,
    /// Sorted by the path inside (the engine's own order changes from one inspect to the next).
    pub mounts: Vec<Mount>,
    /// Published ports: (container port/protocol, host ip, host port).
    pub ports: Vec<PublishedPort>,
    /// The host ports it was created with (`HostConfig.PortBindings`): held while it is stopped
    /// too, when [`Container::ports`] is empty. An empty host port: the engine picks at start.
    pub port_bindings: Vec<PublishedPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuRequest {
    pub device_ids: Vec<String>,
    /// `--gpus all`.
    pub all: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    /// A bind mount of a host path (not a volume or tmpfs).
    pub bind: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedPort {
    pub inside: String,
    pub host_ip: String,
    pub host_port: String,
}

impl Container {
    /// The label value, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// Running, and not paused or restarting: the engine calls those "running" too, but nothing
    /// can be exec'd in them.
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// A short id for messages.
    pub fn short_id(&self) -> String {
        self.id.chars().take(12).collect()
    }

    /// The name that exists on the engine (after a project's rename it is not the one berth
    /// would make), or its id when it has none: the container messages name.
    pub fn shown_name(&self) -> &str {
        if self.name.is_empty() { &self.id } else { &self.name }
    }
}

/// The GPUs a container was given: its device requests, and the CDI names berth gave a Podman
/// container (kept in a label, since Podman's inspect shows them nowhere).
fn gpu_requests(requests: Vec<DeviceRequest>, labels: &HashMap<String, String>) -> Vec<GpuRequest> {
    let mut out: Vec<GpuRequest> = requests
        .into_iter()
        .map(|r| GpuRequest { device_ids: r.device_ids.unwrap_or_default(), all: r.count == Some(-1) })
        .collect();
    if let Some(names) = labels.get(crate::plan::LABEL_CDI).filter(|n| !n.is_empty()) {
        let device_ids: Vec<String> = names.split(',').map(str::to_string).collect();
        let all = device_ids.iter().any(|d| d.ends_with("=all"));
        out.push(GpuRequest { device_ids, all });
    }
    out
}

impl From<ContainerInspectResponse> for Container {
    fn from(c: ContainerInspectResponse) -> Container {
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let hc = c.host_config.unwrap_or_default();
        let ports = published(c.network_settings.and_then(|n| n.ports));
        let mut mounts: Vec<Mount> = c
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| Mount {
                bind: m.typ.as_deref() == Some("bind"),
                read_only: m.rw == Some(false),
                source: m.source.unwrap_or_default(),
                destination: m.destination.unwrap_or_default(),
            })
            .collect();
        mounts.sort_by(|a, b| a.destination.cmp(&b.destination));
        let port_bindings = published(hc.port_bindings.clone());
        let labels = config.labels.unwrap_or_default();
        let gpu_requests = gpu_requests(hc.device_requests.unwrap_or_default(), &labels);
        Container {
            id: c.id.unwrap_or_default(),
            name: c.name.unwrap_or_default().trim_start_matches('/').to_string(),
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            running_flag: state.running == Some(true),
            exit_code: state.exit_code.unwrap_or(0),
            exec_ids: c.exec_ids.clone().unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
            started_at: state.started_at,
            finished_at: state.finished_at,
            labels,
            image: config.image,
            user: config.user,
            env: config.env.unwrap_or_default(),
            memory: hc.memory.filter(|m| *m > 0).map(|m| m as u64),
            shm_size: hc.shm_size.map(|s| s as u64),
            ipc_mode: hc.ipc_mode,
            restart_policy: hc.restart_policy.and_then(|p| p.name).map(|n| n.to_string()),
            gpu_requests,
            devices: hc.devices.unwrap_or_default().into_iter().filter_map(|d| d.path_on_host).collect(),
            mounts,
            ports,
            port_bindings,
        }
    }
}

/// One container as the engine lists it (no inspect).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    /// The state word (`running`, `exited`, ...).
    pub state: String,
    pub image: String,
    pub image_id: String,
    pub labels: HashMap<String, String>,
    /// Host ports it publishes.
    pub public_ports: Vec<u16>,
    /// Bytes in its writable layer (only when listed with sizes).
    pub size_rw: u64,
}

impl Listed {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

impl From<ContainerSummary> for Listed {
    fn from(c: ContainerSummary) -> Listed {
        Listed {
            id: c.id.unwrap_or_default(),
            name: c
                .names
                .iter()
                .flatten()
                .next()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            image: c.image.unwrap_or_default(),
            image_id: c.image_id.unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
            public_ports: c.ports.iter().flatten().filter_map(|p| p.public_port).collect(),
            size_rw: c.size_rw.unwrap_or(0).max(0) as u64,
        }
    }
}

/// Containers in the engine API's list format (`GET /containers/json`, as a recorded host's
/// `containers.json` holds it); none when the text is not that.
pub fn listed_from_json(text: &str) -> Vec<Listed> {
    serde_json::from_str::<Vec<ContainerSummary>>(text)
        .map(|l| l.into_iter().map(Listed::from).collect())
        .unwrap_or_default()
}

/// One top-level image as the engine lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedImage {
    pub id: String,
    pub tags: Vec<String>,
    /// Seconds since the epoch.
    pub created: i64,
    pub size: u64,
    pub labels: HashMap<String, String>,
}

impl From<ImageSummary> for ListedImage {
    fn from(i: ImageSummary) -> ListedImage {
        ListedImage {
            id: i.id,
            tags: i.repo_tags,
            created: i.created,
            size: i.size.max(0) as u64,
            labels: i.labels,
        }
    }
}

/// The engine's port map (`"8888/tcp" → [{HostIp, HostPort}]`) as one row per binding.
fn published(map: Option<bollard::models::PortMap>) -> Vec<PublishedPort> {
    map.unwrap_or_default()
        .into_iter()
        .flat_map(|(inside, binds)| {
            binds.unwrap_or_default().into_iter().map(move |b| PublishedPort {
                inside: inside.clone(),
                host_ip: b.host_ip.unwrap_or_default(),
                host_port: b.host_port.unwrap_or_default(),
            })
        })
        .collect()
}
