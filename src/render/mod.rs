//! Exports: the environment of `berth up`, written for the engines other people run —
//! VS Code Dev Containers, Docker Compose, Slurm and Kubernetes.
//!
//! [`ExportPlan`] is built from the spec alone, through the same portable pieces `plan` uses
//! (mounts, variables, keep-alive), plus stated defaults where `berth up` would ask the host (the
//! GPU vendor when it is `auto`, shm when the file has none, GPUs per node for `"all"`). So an
//! export never depends on the machine that renders it: the same file and options give the same
//! bytes anywhere. Each format is one pure function in its own file, returning [`Rendered`].

pub mod compose;
pub mod devcontainer;
pub mod k8s;
mod k8s_pod;
pub mod slurm;
pub mod yaml;

#[cfg(test)]
mod agreement_tests;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use crate::host::Vendor;
use crate::plan::portable::{self, MountKind, MountRoot, PortableMount};
use crate::plan::{PortPlan, ShmSource, rules};
use crate::spec::size::format_size;
use crate::spec::{ClusterVolume, DeviceSelection, GpuRef, Spec, UserMode, VendorChoice};

/// shm when the file sets none: the host-RAM rule of `berth up` would make exports differ
/// between machines, so exports use a fixed size instead (still capped by the memory limit).
pub const DEFAULT_SHM: u64 = rules::SHM_CAP;
/// GPUs per node assumed for `devices = "all"` on a cluster: the common 8-GPU node.
pub const DEFAULT_GPUS_PER_NODE: u32 = 8;
/// torchrun's own default rendezvous port.
pub const DEFAULT_MASTER_PORT: u16 = 29500;
/// The command that keeps an environment alive (the same as `berth up`'s).
pub const KEEP_ALIVE: [&str; 2] = ["sleep", "infinity"];

/// Which GPUs one container gets on a single server (compose, devcontainer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalGpus {
    All,
    Count(u32),
    /// Host indices or NVIDIA UUIDs, as written in the file.
    Ids(Vec<String>),
}

/// What the command line adds to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    pub nodes: u32,
    /// The command after `--`; empty: the keep-alive (a remote dev environment).
    pub command: Vec<String>,
    /// `--vendor`, for a file that says `auto` (never `Auto` itself).
    pub vendor: Option<VendorChoice>,
    pub gpus_per_node: Option<u32>,
    pub master_port: u16,
    /// How to write this file again (for its header), e.g. `berth export slurm --nodes 4 -- ...`.
    pub regenerate: String,
    /// berth.toml as seen from the output file's folder (for its header).
    pub source_ref: String,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions {
            nodes: 1,
            command: Vec::new(),
            vendor: None,
            gpus_per_node: None,
            master_port: DEFAULT_MASTER_PORT,
            regenerate: String::new(),
            source_ref: "berth.toml".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportMount {
    pub mount: PortableMount,
    /// The source on this machine, for the file's own mounts (a cluster without a `[cluster]`
    /// entry for it can only be told this path).
    pub host_source: Option<PathBuf>,
    /// The `[cluster]` entry that holds this source, if any.
    pub cluster: Option<ClusterTarget>,
}

/// Where a mount's source is on a cluster: a `[cluster]` volume and the folder inside it
/// (`""` when the entry maps the source itself, `work_dirs` when it maps the project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    pub volume: ClusterVolume,
    pub sub_path: String,
}

/// The environment as every export sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPlan {
    pub name: String,
    /// `name` as a DNS label (Kubernetes objects, hostnames), at most 40 characters so
    /// `<name>-node-0-12` style pod names stay within 63.
    pub dns_name: String,
    /// The project folder on this machine: only for hostPath volumes nobody mapped.
    pub project_dir: PathBuf,
    pub image: String,
    pub workdir: String,
    pub user: UserMode,
    /// `None`: no GPUs.
    pub vendor: Option<Vendor>,
    pub local_gpus: LocalGpus,
    /// GPUs each cluster node asks for (0 without GPUs) and whether that was assumed.
    pub gpus_per_node: u32,
    pub gpus_per_node_assumed: bool,
    /// `None` with `run.ipc = "host"` (the host's /dev/shm is used).
    pub shm: Option<u64>,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub mounts: Vec<ExportMount>,
    /// Literal variables, sorted by name.
    pub env: Vec<(String, String)>,
    /// `{ from-host = true }` names: passed from where the file is used, never written down.
    pub host_env: Vec<String>,
    pub ports: Vec<PortPlan>,
    pub ipc: Option<String>,
    pub network: Option<String>,
    pub cap_add: Vec<String>,
    /// `[run] devices` (GPU devices are each format's business).
    pub devices: Vec<String>,
    pub ulimits: Vec<(String, i64)>,
    /// The command, wrapped in the Python activation (`python::wrap`) unless it is the
    /// keep-alive.
    pub command: Vec<String>,
    pub keep_alive: bool,
    /// berth.toml's `[python] env` (`None`: the one the image has, found when the job starts).
    pub python_env: Option<String>,
    pub nodes: u32,
    pub master_port: u16,
    /// Defaults taken in place of host facts, stated in every file's header.
    pub assumptions: Vec<String>,
    pub regenerate: String,
    pub source_ref: String,
}

/// A problem with the file or the options for this export; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RenderError {
    pub message: String,
    pub hint: String,
}

pub fn refuse(message: impl Into<String>, hint: impl Into<String>) -> RenderError {
    RenderError { message: message.into(), hint: hint.into() }
}

/// A rendered file and what the user should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub warnings: Vec<String>,
}

impl ExportPlan {
    pub fn new(spec: &Spec, opts: &ExportOptions) -> Result<ExportPlan, RenderError> {
        if opts.nodes == 0 {
            return Err(refuse("--nodes must be at least 1", "use --nodes 1 for one node"));
        }
        if opts.nodes > 1 && opts.command.is_empty() {
            return Err(refuse(
                format!("a {}-node export needs the command every node runs", opts.nodes),
                format!(
                    "put it after `--`, e.g. `berth export ... --nodes {} -- torchrun train.py`",
                    opts.nodes
                ),
            ));
        }
        let mut assumptions = Vec::new();
        let (vendor, vendor_assumed) = rules::export_vendor(spec.gpu.vendor, opts.vendor);
        if vendor_assumed {
            assumptions.push(
                "GPUs: NVIDIA, because gpu.vendor is \"auto\" (pass --vendor amd|none to change)".into(),
            );
        }
        let local_gpus = match &spec.gpu.devices {
            DeviceSelection::All => LocalGpus::All,
            DeviceSelection::Count(n) => LocalGpus::Count(*n),
            DeviceSelection::List(refs) => LocalGpus::Ids(
                refs.iter()
                    .map(|r| match r {
                        GpuRef::Index(i) => i.to_string(),
                        GpuRef::Uuid(u) => u.clone(),
                    })
                    .collect(),
            ),
        };
        let (gpus_per_node, gpus_per_node_assumed) = match (vendor, opts.gpus_per_node, &local_gpus) {
            (None, _, _) => (0, false),
            (_, Some(n), _) => (n, false),
            (_, None, LocalGpus::Count(n)) => (*n, false),
            (_, None, LocalGpus::Ids(ids)) => (u32::try_from(ids.len()).unwrap_or(u32::MAX), false),
            (_, None, LocalGpus::All) => (DEFAULT_GPUS_PER_NODE, true),
        };
        let shm = match rules::shm(spec, DEFAULT_SHM) {
            s if s.source == ShmSource::HostIpc => None,
            s if s.source == ShmSource::File => Some(s.bytes),
            s => {
                assumptions.push(format!(
                    "shm: {}, berth's default for exports (set resources.shm to change)",
                    format_size(s.bytes)
                ));
                Some(s.bytes)
            }
        };
        let mounts = portable::mounts(spec)
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let host_source = match m.kind {
                    MountKind::User => {
                        Some(spec.mounts.get(i).map_or(spec.project_dir.clone(), |w| w.source.clone()))
                    }
                    _ => None,
                };
                let cluster = cluster_target(spec, &m);
                ExportMount { mount: m, host_source, cluster }
            })
            .collect();
        let ulimits = rules::ulimits(spec, vendor.is_some()).into_iter().collect();
        let keep_alive = opts.command.is_empty();
        Ok(ExportPlan {
            name: spec.name.clone(),
            dns_name: dns_label(&spec.name, 40),
            project_dir: spec.project_dir.clone(),
            image: spec.image.base.clone(),
            workdir: spec.workdir.clone(),
            user: spec.user.clone(),
            vendor,
            local_gpus,
            gpus_per_node,
            gpus_per_node_assumed,
            shm,
            memory: spec.resources.memory,
            cpus: spec.resources.cpus,
            mounts,
            env: portable::env(spec),
            host_env: portable::host_env(spec),
            ports: rules::ports(spec),
            ipc: spec.run.ipc.clone(),
            network: spec.run.network.clone(),
            cap_add: spec.run.cap_add.clone(),
            devices: spec.run.devices.clone(),
            ulimits,
            command: if keep_alive {
                KEEP_ALIVE.iter().map(|s| s.to_string()).collect()
            } else {
                // Activated when the job starts, so the file is the same on every machine.
                crate::python::wrap(spec.python_env.as_deref(), &opts.command)
            },
            keep_alive,
            python_env: spec.python_env.clone(),
            nodes: opts.nodes,
            master_port: opts.master_port,
            assumptions,
            regenerate: opts.regenerate.clone(),
            source_ref: opts.source_ref.clone(),
        })
    }

    /// The note for GPUs per node when it was assumed (cluster formats add it to their header).
    pub fn gpus_per_node_note(&self) -> Option<String> {
        self.gpus_per_node_assumed.then(|| {
            format!(
                "GPUs per node: {}, because gpu.devices is \"all\" (pass --gpus-per-node N to change)",
                self.gpus_per_node
            )
        })
    }

    /// torchrun's processes per node: one per GPU, or one without GPUs.
    pub fn nproc_per_node(&self) -> u32 {
        self.gpus_per_node.max(1)
    }

    /// The header every file starts with, each line behind `prefix` (`#` or `//`).
    pub fn header(&self, prefix: &str, extra: &[String]) -> String {
        let mut lines = vec![
            format!("Written by berth from {} (environment \"{}\").", self.source_ref, self.name),
            "Change berth.toml rather than this file, then write it again with:".to_string(),
            format!("  {}", self.regenerate),
        ];
        lines.extend(self.assumptions.iter().cloned());
        lines.extend(extra.iter().cloned());
        // A comment ends at a newline: every line of every entry gets the prefix.
        lines.iter().flat_map(|l| l.split('\n')).map(|l| format!("{prefix} {l}\n")).collect()
    }
}

/// The `[cluster]` entry whose path holds `m`'s source (the longest such), with the rest.
fn cluster_target(spec: &Spec, m: &PortableMount) -> Option<ClusterTarget> {
    spec.cluster
        .iter()
        .filter_map(|c| {
            let (root, path) = portable::classify(&c.raw, &c.source, &spec.project_dir);
            if root != m.root {
                return None;
            }
            let rest = if path == m.path {
                String::new()
            } else if root != MountRoot::Absolute && path.is_empty() {
                m.path.clone()
            } else {
                m.path.strip_prefix(&format!("{}/", path.trim_end_matches('/')))?.to_string()
            };
            Some((path.len(), ClusterTarget { volume: c.volume.clone(), sub_path: rest }))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, t)| t)
}

/// A DNS-1123 label from `name`: lowercase letters, digits and `-`, at most `max` long.
pub fn dns_label(name: &str, max: usize) -> String {
    let mapped: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let cut: String = mapped.chars().take(max).collect();
    let trimmed = cut.trim_matches('-').to_string();
    if trimmed.is_empty() { "berth".into() } else { trimmed }
}

/// Docker-style size text (`16g`, `512m`, or bytes) that compose, docker and Slurm all read.
pub fn docker_size(bytes: u64) -> String {
    for (unit, suffix) in [(1u64 << 30, "g"), (1 << 20, "m"), (1 << 10, "k")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// CPUs as text without a useless `.0`.
pub fn cpus_text(cpus: f64) -> String {
    let text = format!("{cpus}");
    text.strip_suffix(".0").unwrap_or(&text).to_string()
}
