//! Host facts: the GPUs, device nodes, groups and memory of the machine berth runs on.
//!
//! Everything is read from sysfs, procfs and devfs below a [`HostRoot`], so every branch can be
//! tested against a recorded host tree (`tests/hosts/<name>/`). Probing never fails: what cannot
//! be read is simply absent from the facts.

mod amd;
pub mod cdi;
mod memory;
mod nvidia;
mod root;
pub mod user;
mod wsl;

#[cfg(test)]
mod tests;

pub use root::HostRoot;
pub use user::HostUser;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Nvidia,
    Amd,
}

impl Vendor {
    /// The name berth.toml and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvidia",
            Vendor::Amd => "amd",
        }
    }
}

/// A device node as the host sees it (path is the host's absolute path, never root-prefixed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceNode {
    pub path: String,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o660`, ...).
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    pub vendor: Vendor,
    /// Host index: NVIDIA in PCI bus order (nvidia-smi's), AMD in KFD topology order (rocm-smi's).
    pub index: u32,
    /// PCI address, `0000:3b:00.0`.
    pub pci: String,
    pub model: Option<String>,
    /// `GPU-...` (NVIDIA from /proc/driver/nvidia/gpus/*/information; AMD from KFD unique_id).
    pub uuid: Option<String>,
    /// AMD: `/dev/dri/renderD<minor>` from KFD's `drm_render_minor`.
    pub render_node: Option<DeviceNode>,
    /// AMD: `gfx1030`, `gfx90a`, ...
    pub gfx_target: Option<String>,
    /// AMD: KFD topology node id on the host (a container renumbers: `image::compat::gfx_advice`).
    pub kfd_node: Option<u32>,
    /// An integrated GPU (APU): never picked by `all` or a count, only when listed.
    pub integrated: bool,
    pub vram_bytes: Option<u64>,
    /// Kernel driver bound to the PCI device (`nvidia`, `amdgpu`, `nouveau`, `vfio-pci`).
    pub kernel_driver: Option<String>,
    /// NVIDIA: `/dev/nvidia<minor>`.
    pub device_node: Option<DeviceNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvidiaDriver {
    pub version: String,
    /// The open kernel module (vs proprietary), when /proc says so.
    pub open_module: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WslFacts {
    pub dxg: DeviceNode,
    /// `/usr/lib/wsl/lib` when present.
    pub lib_dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// NVIDIA GPUs first (by index), then AMD (by index).
    pub gpus: Vec<Gpu>,
    pub nvidia_driver: Option<NvidiaDriver>,
    /// `/dev/kfd`, when present.
    pub kfd: Option<DeviceNode>,
    /// KFD topology nodes that are not GPUs (CPU sockets): every container sees them, so they
    /// take part in the node numbering ROCm uses inside (`HSA_OVERRIDE_GFX_VERSION_<n>`).
    pub kfd_cpu_nodes: Vec<u32>,
    pub wsl: Option<WslFacts>,
    /// Total RAM in bytes from /proc/meminfo (0 if unreadable).
    pub mem_total: u64,
    /// Online CPUs from /sys/devices/system/cpu/online (0 if unreadable).
    pub cpus: u32,
}

impl HostFacts {
    /// Probe the host below `root`.
    pub fn probe(root: &HostRoot) -> HostFacts {
        let mut gpus = nvidia::probe_gpus(root);
        gpus.extend(amd::probe_gpus(root));
        HostFacts {
            gpus,
            nvidia_driver: nvidia::probe_driver(root),
            kfd: root.device_node("/dev/kfd"),
            kfd_cpu_nodes: amd::cpu_nodes(root),
            wsl: wsl::probe(root),
            mem_total: memory::total_bytes(root),
            cpus: memory::online_cpus(root),
        }
    }

    pub fn gpus_of(&self, vendor: Vendor) -> impl Iterator<Item = &Gpu> {
        self.gpus.iter().filter(move |g| g.vendor == vendor)
    }
}
