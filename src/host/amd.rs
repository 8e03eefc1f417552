//! AMD GPUs from the KFD topology (`/sys/class/kfd/kfd/topology/nodes/<n>/properties`).
//!
//! GPU nodes are those with SIMDs or a gfx target; CPU nodes share the numbering. Index = position
//! among GPU nodes in node-id order (rocm-smi's); the render node comes from `drm_render_minor`,
//! never from "renderD128 is the first GPU", and small-VRAM or APU nodes are marked integrated.

use std::collections::BTreeMap;

use super::{Gpu, HostRoot, Vendor};

const KFD_NODES: &str = "/sys/class/kfd/kfd/topology/nodes";
/// Below this a Radeon GPU is an iGPU with a UMA carve-out (ollama's rule), not a discrete card.
const IGPU_VRAM_LIMIT: u64 = 1 << 30;

/// A node's `properties` file: `key value` lines, values decimal.
type Props = BTreeMap<String, u64>;

/// AMD GPUs in KFD node order; index = position among GPU nodes.
pub fn probe_gpus(root: &HostRoot) -> Vec<Gpu> {
    let mut ids: Vec<u32> = root.list(KFD_NODES).iter().filter_map(|n| n.parse().ok()).collect();
    // Numeric order: the listing is by name, where node 10 comes before node 2.
    ids.sort_unstable();
    ids.into_iter()
        .filter_map(|id| Some((id, read_props(root, id)?)))
        .filter(|(_, props)| is_gpu(props))
        .zip(0..)
        .map(|((id, props), index)| gpu_at(root, id, &props, index))
        .collect()
}

/// KFD nodes without a GPU (CPU sockets), in node-id order.
pub fn cpu_nodes(root: &HostRoot) -> Vec<u32> {
    let mut ids: Vec<u32> = root.list(KFD_NODES).iter().filter_map(|n| n.parse().ok()).collect();
    ids.sort_unstable();
    ids.into_iter().filter(|id| read_props(root, *id).is_some_and(|p| !is_gpu(&p))).collect()
}

fn read_props(root: &HostRoot, node: u32) -> Option<Props> {
    root.read(&format!("{KFD_NODES}/{node}/properties")).map(|text| parse_props(&text))
}

fn parse_props(text: &str) -> Props {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once(char::is_whitespace)?;
            Some((key.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

fn prop(props: &Props, key: &str) -> u64 {
    props.get(key).copied().unwrap_or(0)
}

fn is_gpu(props: &Props) -> bool {
    prop(props, "simd_count") > 0 || prop(props, "gfx_target_version") > 0
}

fn gpu_at(root: &HostRoot, node: u32, props: &Props, index: u32) -> Gpu {
    let pci = pci_address(prop(props, "domain"), prop(props, "location_id"));
    let minor = prop(props, "drm_render_minor");
    let render_node = (minor > 0).then(|| format!("/dev/dri/renderD{minor}"));
    let vram_bytes = vram_bytes(root, minor, &pci);
    let apu_node = prop(props, "cpu_cores_count") > 0;
    let device = format!("/sys/bus/pci/devices/{pci}");
    Gpu {
        vendor: Vendor::Amd,
        index,
        // Only boards with a FRU EEPROM (Instinct, some Pro) carry a product name.
        model: root.read_line(&format!("{device}/product_name")),
        kernel_driver: root.link_name(&format!("{device}/driver")),
        uuid: Some(prop(props, "unique_id")).filter(|&id| id != 0).map(|id| format!("GPU-{id:016x}")),
        render_node: render_node.and_then(|path| root.device_node(&path)),
        gfx_target: gfx_target(prop(props, "gfx_target_version")),
        kfd_node: Some(node),
        integrated: apu_node || vram_bytes.is_some_and(|v| v < IGPU_VRAM_LIMIT),
        vram_bytes,
        device_node: None,
        pci,
    }
}

/// `0000:03:00.0` from KFD's `domain` and `location_id` (bus << 8 | device << 3 | function), the
/// decoding ROCm's container toolkit uses.
fn pci_address(domain: u64, location_id: u64) -> String {
    let bus = (location_id >> 8) & 0xff;
    let dev = (location_id >> 3) & 0x1f;
    let func = location_id & 0x7;
    format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}")
}

/// `gfx_target_version` (major·10000 + minor·100 + stepping) as LLVM names it: minor and
/// stepping are one hex digit each, so 90010 is gfx90a and 100300 is gfx1030.
fn gfx_target(version: u64) -> Option<String> {
    if version == 0 {
        return None;
    }
    let (major, minor, stepping) = (version / 10000, version / 100 % 100, version % 100);
    Some(format!("gfx{major}{minor:x}{stepping:x}"))
}

/// VRAM size in bytes, through the render node's device (the PCI device itself as fallback).
fn vram_bytes(root: &HostRoot, minor: u64, pci: &str) -> Option<u64> {
    let read = |path: String| root.read_line(&path)?.parse().ok();
    (minor > 0)
        .then(|| read(format!("/sys/class/drm/renderD{minor}/device/mem_info_vram_total")))
        .flatten()
        .or_else(|| read(format!("/sys/bus/pci/devices/{pci}/mem_info_vram_total")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gfx_target_versions_name_llvm_targets() {
        let table = [
            (90008, "gfx908"),
            (90010, "gfx90a"),
            (90402, "gfx942"),
            (100300, "gfx1030"),
            (100301, "gfx1031"),
            (100306, "gfx1036"),
            (110000, "gfx1100"),
            (110001, "gfx1101"),
            (110501, "gfx1151"),
            (120001, "gfx1201"),
        ];
        for (version, name) in table {
            assert_eq!(gfx_target(version).as_deref(), Some(name), "{version}");
        }
        assert_eq!(gfx_target(0), None);
    }

    #[test]
    fn location_id_decodes_to_a_pci_address() {
        assert_eq!(pci_address(0, 0x0300), "0000:03:00.0");
        assert_eq!(pci_address(0, (0xc1 << 8) | (2 << 3) | 1), "0000:c1:02.1");
        assert_eq!(pci_address(1, 0x1000), "0001:10:00.0");
    }

    #[test]
    fn properties_parse_and_skip_malformed_lines() {
        let props = parse_props(
            "cpu_cores_count 0\nsimd_count 192\nunique_id 9731329219530815349\nbogus\nname gfx1100\n",
        );
        assert_eq!(prop(&props, "simd_count"), 192);
        assert_eq!(prop(&props, "unique_id"), 9731329219530815349);
        assert_eq!(prop(&props, "missing"), 0);
        assert_eq!(props.len(), 3);
        assert!(is_gpu(&props));
        assert!(!is_gpu(&parse_props("cpu_cores_count 32\nsimd_count 0\ngfx_target_version 0\n")));
    }

    #[test]
    fn a_combined_apu_node_is_integrated_whatever_its_vram() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = dir.path().join("sys/class/kfd/kfd/topology/nodes/0");
        std::fs::create_dir_all(&node).expect("mkdir");
        let text = "cpu_cores_count 4\nsimd_count 32\ngfx_target_version 80003\ndrm_render_minor 128\n";
        std::fs::write(node.join("properties"), text).expect("write");
        let gpus = probe_gpus(&HostRoot::at(dir.path()));
        assert_eq!(gpus.len(), 1);
        assert!(gpus[0].integrated);
        assert_eq!(gpus[0].gfx_target.as_deref(), Some("gfx803"));
        assert_eq!(gpus[0].render_node, None, "no /dev/dri/renderD128 on this host");
    }
}
