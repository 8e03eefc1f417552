//! The decisions `berth up` and every export share: shm, GPU ulimits, ports and the GPU vendor.
//!
//! Each rule takes only the spec and a stated default where `up` would ask the host (the host's
//! RAM for shm, the host's GPUs for `gpu.vendor = "auto"`), so `plan` calls it with the host's
//! value and `render` with a fixed one: the two can never decide differently for the same file.

use std::collections::BTreeMap;

use super::{PortPlan, ShmPlan, ShmSource, limits};
use crate::host::Vendor;
use crate::spec::{Spec, VendorChoice};

/// shm when the file sets none and the host's RAM is large (or unknown to an export): 16 GiB.
pub const SHM_CAP: u64 = 16 << 30;
/// shm when `up` cannot read the host's RAM: still 32 times Docker's default, and fits any
/// real machine.
pub const SHM_RAM_UNKNOWN: u64 = 2 << 30;
/// The vendor an export assumes for `gpu.vendor = "auto"`.
pub const EXPORT_VENDOR: Vendor = Vendor::Nvidia;

/// What NVIDIA's and AMD's images ask for: pinned memory for NCCL/RCCL, deep stacks.
const GPU_ULIMITS: [(&str, i64); 2] = [("memlock", -1), ("stack", 67_108_864)];

/// The container's ulimits: the GPU ones when it has GPUs, then the file's `[run] ulimits`
/// (which win), sorted by name.
pub fn ulimits(spec: &Spec, gpus: bool) -> BTreeMap<String, i64> {
    ulimits_fitted(spec, gpus, |_| {})
}

/// [`ulimits`], with berth's own defaults first fitted to the engine by `fit` (what a rootless
/// engine or Podman can apply: `ulimits::fit_engine`); the file's own are never changed.
pub fn ulimits_fitted(
    spec: &Spec,
    gpus: bool,
    fit: impl FnOnce(&mut BTreeMap<String, i64>),
) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    if gpus {
        out.extend(GPU_ULIMITS.iter().map(|(k, v)| (k.to_string(), *v)));
    }
    fit(&mut out);
    out.extend(spec.run.ulimits.clone());
    out
}

/// The shm `up` would choose from the host's RAM (`mem_total` 0: unreadable): half of it, at
/// most [`SHM_CAP`], whole MiB.
pub fn shm_for_ram(mem_total: u64) -> u64 {
    let bytes = if mem_total == 0 { SHM_RAM_UNKNOWN } else { (mem_total / 2).min(SHM_CAP) };
    bytes & !((1 << 20) - 1)
}

/// `/dev/shm` for the spec: none of its own with `run.ipc = "host"`, the file's size, or
/// `default` (from the host's RAM for `up`, [`SHM_CAP`] for exports) but never more than half
/// of `resources.memory`, because shm pages count against the memory limit.
pub fn shm(spec: &Spec, default: u64) -> ShmPlan {
    if limits::uses_host_shm(spec.run.ipc.as_deref()) {
        return ShmPlan { bytes: 0, source: ShmSource::HostIpc };
    }
    if let Some(bytes) = spec.resources.shm {
        return ShmPlan { bytes, source: ShmSource::File };
    }
    match spec.resources.memory {
        Some(mem) if mem / 2 < default => {
            ShmPlan { bytes: (mem / 2) & !((1 << 20) - 1), source: ShmSource::MemoryLimit }
        }
        _ => ShmPlan { bytes: default, source: ShmSource::HostRam },
    }
}

/// The published ports, as written.
pub fn ports(spec: &Spec) -> Vec<PortPlan> {
    spec.ports
        .iter()
        .map(|p| PortPlan {
            host_ip: p.host_ip.clone(),
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: p.protocol.clone(),
        })
        .collect()
}

/// The GPU vendor of an export (`None`: no GPUs): `--vendor` (`flag`) or the file's, and
/// [`EXPORT_VENDOR`] for `"auto"`, which is then an assumption (`true`) the file must state.
pub fn export_vendor(file: VendorChoice, flag: Option<VendorChoice>) -> (Option<Vendor>, bool) {
    match flag.unwrap_or(file) {
        VendorChoice::Gpu(v) => (Some(v), false),
        VendorChoice::None => (None, false),
        VendorChoice::Auto => (Some(EXPORT_VENDOR), true),
    }
}
