//! WSL2: the GPU is paravirtualised by the Windows driver and reaches Linux only as `/dev/dxg`.
//!
//! There is no /dev/nvidia*, /proc/driver/nvidia or /sys/module/nvidia there; the user-mode
//! driver (libcuda, nvidia-smi) is mounted by WSL at /usr/lib/wsl/lib. `/dev/dxg` alone decides.

use super::{HostRoot, WslFacts};

const DXG: &str = "/dev/dxg";
const WSL_LIB: &str = "/usr/lib/wsl/lib";

/// WSL GPU facts, when `/dev/dxg` exists.
pub fn probe(root: &HostRoot) -> Option<WslFacts> {
    let dxg = root.device_node(DXG)?;
    let lib_dir = root.exists(WSL_LIB).then(|| WSL_LIB.to_string());
    Some(WslFacts { dxg, lib_dir })
}
