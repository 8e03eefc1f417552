//! spec + facts → plan: the exact container the engine must end up with.
//!
//! Pure: no engine calls, no file writes. Everything host-dependent comes in through
//! [`Inputs`], so plans for recorded hosts are snapshot-tested. The engine module turns a
//! [`ContainerPlan`] into the API request; `drift` compares a plan with a running container.

pub mod access;
mod account;
pub mod drift;
mod gpu;
mod identity;
pub mod limits;
pub mod portable;
pub mod rules;
mod ulimits;

pub use account::{setup_script, sh_quote};
pub use gpu::{BusyGpus, DeviceRequestPlan, GpuClaims, GpuMode, GpuPlan, SelectedGpu};
pub use identity::{
    CONTAINER_ONLY_LABELS, LABEL_CDI, LABEL_HASH, LABEL_MANAGED, LABEL_NAME, LABEL_OWNER, LABEL_OWNER_UID,
    LABEL_PLAN, LABEL_PROJECT, container_name,
};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::engine::facts::EngineFacts;
use crate::host::{HostFacts, HostUser};
use crate::spec::{Spec, UserMode};

/// Where berth's own host folder (`<project>/.berth/`) appears inside every environment.
pub const STATE_DIR: &str = "/berth/state";
/// Where host caches appear inside.
pub const CACHE_DIR: &str = "/berth/cache";
/// Docker's default `/dev/shm`, which berth never leaves in place.
pub const DOCKER_DEFAULT_SHM: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{message}")]
    Gpu { message: String, hint: String },
    /// A GPU the spec asks for is leased by another user (`up --force` takes it anyway).
    #[error("{message}")]
    Leased { message: String, hint: String },
}

impl PlanError {
    pub fn hint(&self) -> &str {
        match self {
            PlanError::Gpu { hint, .. } | PlanError::Leased { hint, .. } => hint,
        }
    }
}

/// Everything a plan depends on besides the spec.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub host: &'a HostFacts,
    pub engine: &'a EngineFacts,
    pub user: &'a HostUser,
    /// GPUs other containers hold (for `devices = N`).
    pub busy: &'a BusyGpus,
    /// Other users' leases and other processes on each GPU (`devices = N` goes around them,
    /// `devices = [..]` is refused a leased GPU and warned of one in use).
    pub claims: &'a GpuClaims,
    /// GPUs the existing container of this environment holds (kept on re-plan).
    pub prefer: &'a [String],
    /// The image the container runs (`image::resolve`: built tag, committed image or base).
    pub image: &'a str,
    /// Work folders whose content in the image the default project mount must not hide (the
    /// project folder holds none of it: an unpacked project). `up` finds them.
    pub image_kept: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MountPlan {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
    /// berth creates the host folder before creating the container.
    pub create: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShmSource {
    /// `resources.shm` in berth.toml.
    File,
    /// Half of host RAM, at most 16 GiB.
    HostRam,
    /// Half of `resources.memory` (shm pages count against the memory limit).
    MemoryLimit,
    /// `run.ipc = "host"`: the host's /dev/shm is used.
    HostIpc,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShmPlan {
    pub bytes: u64,
    pub source: ShmSource,
}

/// The user the environment runs as, with the home berth makes for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserPlan {
    /// `uid:gid`, `0:0` or an image user's name: the container's `User`.
    pub user: String,
    /// Set for `as = "host"` with a non-root uid: berth adds a passwd entry and a home.
    pub account: Option<Account>,
    pub group_add: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortPlan {
    pub host_ip: String,
    /// `None`: chosen free when the container is created.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerPlan {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// Literal environment (never secrets).
    pub env: Vec<(String, String)>,
    /// Names of variables read from berth's own environment at every exec.
    pub host_env: Vec<String>,
    pub user: UserPlan,
    pub workdir: String,
    pub mounts: Vec<MountPlan>,
    pub shm: ShmPlan,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub gpu: GpuPlan,
    pub ports: Vec<PortPlan>,
    pub ipc: Option<String>,
    pub network: Option<String>,
    pub cap_add: Vec<String>,
    /// `[run] devices` plus the GPU nodes.
    pub devices: Vec<String>,
    pub ulimits: BTreeMap<String, i64>,
    /// Keep-alive run under the engine's init as PID 1.
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub config_hash: String,
}

impl ContainerPlan {
    pub fn project_dir(&self) -> Option<&str> {
        self.labels.get(LABEL_PROJECT).map(String::as_str)
    }
}

/// Compute the plan for `spec` on a host.
pub fn plan(spec: &Spec, inputs: &Inputs<'_>) -> Result<ContainerPlan, PlanError> {
    let gpu = gpu::plan_gpus(
        spec.gpu.vendor,
        &spec.gpu.devices,
        inputs.host,
        inputs.engine,
        inputs.busy,
        inputs.claims,
        inputs.prefer,
    )?;
    // A rootless engine maps the container's root to the host user: `as = "host"` is root there.
    let rootless = crate::engine::kind::EngineKind::of(inputs.engine).is_rootless();
    let user = plan_user(&spec.user, inputs.user, &gpu, rootless);
    let mut env = portable::env(spec);
    let host_env = portable::host_env(spec);
    if let Some(acct) = &user.account {
        env.push(("HOME".into(), acct.home.clone()));
        env.push(("USER".into(), acct.name.clone()));
    }
    let mounts = plan_mounts(spec, inputs.user, &gpu, inputs.image_kept);
    if gpu.wsl_lib.is_some() {
        env.push(("LD_LIBRARY_PATH".into(), "/usr/lib/wsl/lib".into()));
    }
    portable::normalise_env(&mut env);

    let mut devices = gpu.devices.clone();
    devices.extend(spec.run.devices.iter().cloned());
    let ulimits =
        rules::ulimits_fitted(spec, gpu.mode != GpuMode::None, |u| ulimits::fit_engine(u, inputs.engine));

    let mut plan = ContainerPlan {
        name: container_name(&inputs.user.name, &spec.name, &spec.project_dir),
        hostname: identity::hostname(&spec.name),
        image: inputs.image.to_string(),
        labels: BTreeMap::new(),
        env,
        host_env,
        user,
        workdir: spec.workdir.clone(),
        mounts,
        shm: rules::shm(spec, rules::shm_for_ram(inputs.host.mem_total)),
        memory: spec.resources.memory,
        cpus: spec.resources.cpus,
        gpu,
        ports: rules::ports(spec),
        ipc: spec.run.ipc.clone(),
        network: spec.run.network.clone(),
        cap_add: spec.run.cap_add.clone(),
        devices,
        ulimits,
        entrypoint: vec!["sleep".into()],
        cmd: vec!["infinity".into()],
        config_hash: String::new(),
    };
    identity::stamp(&mut plan, spec, inputs.user);
    Ok(plan)
}

/// The container's user. On a rootless engine the container's uid 0 is the host user and any
/// other uid a subordinate one, so `as = "host"` runs as uid 0: files in mounts stay the
/// host user's on both sides.
fn plan_user(mode: &UserMode, user: &HostUser, gpu: &GpuPlan, rootless: bool) -> UserPlan {
    let group_add = gpu.group_ids.iter().copied().filter(|g| *g != user.gid).collect();
    match mode {
        UserMode::Root => UserPlan { user: "0:0".into(), account: None, group_add: gpu.group_ids.clone() },
        UserMode::Named(n) => {
            // An image user has another uid than the owner: `.berth` opens to the owner's
            // group only (`jobs::private`), so the container gets that group.
            let mut group_add = gpu.group_ids.clone();
            group_add.push(user.gid);
            group_add.sort_unstable();
            group_add.dedup();
            UserPlan { user: n.clone(), account: None, group_add }
        }
        UserMode::Host if user.uid == 0 || rootless => {
            UserPlan { user: "0:0".into(), account: None, group_add }
        }
        UserMode::Host => UserPlan {
            user: format!("{}:{}", user.uid, user.gid),
            account: Some(Account {
                name: user.name.clone(),
                uid: user.uid,
                gid: user.gid,
                home: format!("/home/{}", user.name),
            }),
            group_add,
        },
    }
}

/// The portable mounts resolved on this host, plus WSL2's driver folder.
fn plan_mounts(spec: &Spec, user: &HostUser, gpu: &GpuPlan, image_kept: &[String]) -> Vec<MountPlan> {
    let mut mounts: Vec<MountPlan> = portable::mounts(spec)
        .iter()
        .enumerate()
        // The default mount (no `mounts` written) never hides the image's own work folder.
        .filter(|(_, m)| {
            !(m.kind == portable::MountKind::User && spec.mounts.is_empty() && image_kept.contains(&m.target))
        })
        .map(|(i, m)| MountPlan {
            // The file's own mounts were resolved when it was read (`~` from its HOME).
            source: match (m.kind, spec.mounts.get(i)) {
                (portable::MountKind::User, Some(written)) => written.source.clone(),
                _ => m.resolve(&spec.project_dir, &user.home),
            },
            target: m.target.clone(),
            read_only: m.read_only,
            create: m.create,
        })
        .collect();
    if let Some(lib) = &gpu.wsl_lib {
        mounts.push(MountPlan {
            source: PathBuf::from(lib),
            target: lib.clone(),
            read_only: true,
            create: false,
        });
    }
    mounts
}

#[cfg(test)]
mod tests;
