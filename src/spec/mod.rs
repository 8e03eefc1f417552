//! The project file `berth.toml`: where it is, what it may say, and the validated [`Spec`].
//!
//! Invariants: a `Spec` only exists for a file that parsed and validated completely; every
//! path in it is absolute; secrets (`{ from-host = true }`) are carried as names, never values.
//! Errors always name the file, line, column and key (see [`SpecError`]).

pub mod duration;
mod error;
mod find;
mod parse;
pub mod size;

pub use error::SpecError;
pub use find::{FILE_NAME, find};
pub use parse::{inside, load, load_existing, parse_portable, parse_str, real_path};

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::host::Vendor;

/// A validated project file.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Absolute path of the `berth.toml` this came from.
    pub file: PathBuf,
    /// Absolute path of the folder holding it (the project).
    pub project_dir: PathBuf,
    /// `name`, defaulting to the project folder's name; `[A-Za-z0-9][A-Za-z0-9_.-]*`.
    pub name: String,
    /// `workdir`, default `/workspace`; absolute.
    pub workdir: String,
    pub image: ImageSpec,
    pub gpu: GpuSpec,
    pub resources: Resources,
    pub mounts: Vec<MountSpec>,
    pub cache: CacheSpec,
    pub env: Vec<EnvVar>,
    pub user: UserMode,
    pub ports: Vec<PortSpec>,
    pub run: RunOptions,
    /// `[cluster]`: where host paths live on a cluster, for the exports (file order).
    pub cluster: Vec<ClusterMount>,
    /// `[idle]`: when the environment is stopped for lack of use (see `crate::idle`).
    pub idle: IdleSpec,
    /// `[ssh]`: the caller's ssh-agent in sessions and jobs.
    pub ssh: SshSpec,
    /// `[python] env`: the Python environment to activate (an absolute path, or `none`);
    /// `None`: the one the image has (see `crate::python`).
    pub python_env: Option<String>,
}

/// `[image]`: what the environment's image is made from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageSpec {
    /// `base`, as the user wrote it (default `python:3.12-slim`); unused with `preset` or
    /// `dockerfile`.
    pub base: String,
    /// `preset`, resolved to a real tag against the host's GPU stack when planning.
    pub preset: Option<Preset>,
    pub pins: Pins,
    /// Debian/Ubuntu packages (`name` or `name=version`).
    pub apt: Vec<String>,
    /// pip requirement strings.
    pub pip: Vec<String>,
    /// A requirements file (absolute; inside or outside the project).
    pub requirements: Option<PathBuf>,
    pub pip_index_url: Option<String>,
    pub pip_extra_index_urls: Vec<String>,
    pub apt_mirror: Option<String>,
    /// A conda `environment.yml` (absolute), applied when the base has conda or mamba.
    pub conda_environment: Option<PathBuf>,
    /// The user's own Dockerfile (absolute); its folder is the build context.
    pub dockerfile: Option<PathBuf>,
}

impl ImageSpec {
    /// Whether the image must be built (anything beyond a plain `base`).
    pub fn needs_build(&self) -> bool {
        self.dockerfile.is_some()
            || !self.apt.is_empty()
            || !self.pip.is_empty()
            || self.requirements.is_some()
            || self.conda_environment.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Pytorch,
    Ngc,
    Rocm,
    Cuda,
    Python,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Pytorch => "pytorch",
            Preset::Ngc => "ngc",
            Preset::Rocm => "rocm",
            Preset::Cuda => "cuda",
            Preset::Python => "python",
        }
    }
}

/// Version pins for a preset (`torch = "2.5.1"`, `cuda = "12.4"`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pins {
    pub torch: Option<String>,
    pub cuda: Option<String>,
    pub rocm: Option<String>,
    pub python: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorChoice {
    /// Whatever GPUs the host has.
    Auto,
    /// GPUs of this vendor only.
    Gpu(Vendor),
    /// No GPUs.
    None,
}

impl VendorChoice {
    /// The name berth.toml and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            VendorChoice::Auto => "auto",
            VendorChoice::Gpu(v) => v.name(),
            VendorChoice::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuRef {
    /// A host index (nvidia-smi / rocm-smi order).
    Index(u32),
    /// A GPU UUID (`GPU-...`).
    Uuid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelection {
    All,
    Count(u32),
    List(Vec<GpuRef>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSpec {
    pub vendor: VendorChoice,
    pub devices: DeviceSelection,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    /// `/dev/shm` size in bytes; `None` means berth's default (derived from host RAM).
    pub shm: Option<u64>,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// CPU limit (fractional cores allowed).
    pub cpus: Option<f64>,
}

/// One `src:dst[:ro|:rw]` entry of `mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Absolute host path (relative sources are resolved against the project folder).
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
    /// The source does not exist yet but lies inside the project folder: berth creates it
    /// when it applies the plan (never while validating).
    pub create: bool,
    /// The entry as written, for messages.
    pub raw: String,
}

/// `[ssh]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshSpec {
    /// `agent` (default true): `shell`, `exec` and jobs reach the caller's ssh-agent through a
    /// socket in `.berth/` (see `crate::agent`). An access-widening setting.
    pub agent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSpec {
    pub pip: bool,
    pub huggingface: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    /// Read from berth's own environment at every start/exec; never stored anywhere.
    FromHost,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub key: String,
    pub value: EnvValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserMode {
    /// The host user's uid:gid plus the GPU device groups, with a name and home inside.
    Host,
    Root,
    /// A user that exists in the image.
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Host address to bind, `127.0.0.1` unless the entry names one.
    pub host_ip: String,
    /// `None`: berth picks a free port when it creates the container.
    pub host_port: Option<u16>,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub raw: String,
}

/// `[run]`: explicit opt-ins that weaken isolation; never defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOptions {
    pub ipc: Option<String>,
    pub network: Option<String>,
    pub cap_add: Vec<String>,
    /// Extra host devices, `/dev/x[:/dev/y][:rwm]`.
    pub devices: Vec<String>,
    /// Soft = hard limit per name (`memlock`, `stack`, `nofile`, ...); `-1` is unlimited.
    pub ulimits: BTreeMap<String, i64>,
}

/// One `[cluster]` entry: `"/data/x" = { pvc = "name" }` or `{ host-path = "/mnt/x" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMount {
    /// The host path it maps, resolved like a mount source (absolute, normalised).
    pub source: PathBuf,
    /// The key as written (`"/data/x"`, `"./data"`, `"~/.cache/huggingface"`).
    pub raw: String,
    pub volume: ClusterVolume,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterVolume {
    /// A PersistentVolumeClaim of this name (Kubernetes).
    Pvc(String),
    /// The same data at this absolute path on every cluster node.
    HostPath(String),
}

/// `[idle]`: `stop-after = "4h"` or `"never"`; absent, the host's default applies
/// (`/etc/berth/idle.toml`, see `crate::idle::policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdleSpec {
    pub stop_after: Option<StopAfter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAfter {
    /// Stop after this many seconds without a session, a job or GPU use.
    Seconds(u64),
    /// Never stop it for idleness (an administrator's `max-stop-after` still applies).
    Never,
}
