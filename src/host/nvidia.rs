//! NVIDIA GPUs and kernel driver, read from sysfs and procfs without `nvidia-smi`.
//!
//! GPUs are the PCI display functions (base class 0x03) of vendor 0x10de, indexed in PCI address
//! order, which is nvidia-smi's order. Model, UUID and device minor come from /proc/driver/nvidia,
//! so a card bound to nouveau or vfio-pci is still listed, with those facts absent.

use super::{Gpu, HostRoot, NvidiaDriver, Vendor};

const PCI_DEVICES: &str = "/sys/bus/pci/devices";
const VENDOR_NVIDIA: u32 = 0x10de;
/// PCI base class "display controller" (VGA 0x0300, 3D 0x0302, other 0x0380).
const CLASS_DISPLAY: u32 = 0x03;

/// NVIDIA GPUs in PCI address order; index = position in that order.
pub fn probe_gpus(root: &HostRoot) -> Vec<Gpu> {
    let mut addrs: Vec<(PciKey, String)> = root
        .list(PCI_DEVICES)
        .into_iter()
        .filter(|addr| is_display_of(root, addr, VENDOR_NVIDIA))
        .filter_map(|addr| Some((pci_key(&addr)?, addr)))
        .collect();
    // Sort numerically: domains may have more than four hex digits (VMD puts devices in 10000:),
    // where name order and bus order disagree.
    addrs.sort();
    addrs.into_iter().zip(0..).map(|((_, pci), index)| gpu_at(root, pci, index)).collect()
}

/// The loaded kernel module's version: /sys/module/nvidia/version first (one bare version), else
/// the first line of /proc/driver/nvidia/version, which alone tells the open module apart.
pub fn probe_driver(root: &HostRoot) -> Option<NvidiaDriver> {
    let proc_line = root.read_line("/proc/driver/nvidia/version");
    let version = root
        .read_line("/sys/module/nvidia/version")
        .filter(|v| is_version(v))
        .or_else(|| proc_line.as_deref().and_then(proc_version))?;
    let open_module = proc_line.is_some_and(|l| l.contains("Open Kernel Module"));
    Some(NvidiaDriver { version, open_module })
}

fn gpu_at(root: &HostRoot, pci: String, index: u32) -> Gpu {
    let info = root.read(&format!("/proc/driver/nvidia/gpus/{pci}/information")).unwrap_or_default();
    let device_node = info_field(&info, "Device Minor")
        .and_then(|m| m.parse::<u32>().ok())
        .and_then(|minor| root.device_node(&format!("/dev/nvidia{minor}")));
    Gpu {
        vendor: Vendor::Nvidia,
        index,
        kernel_driver: root.link_name(&format!("{PCI_DEVICES}/{pci}/driver")),
        model: info_field(&info, "Model").map(str::to_string),
        uuid: info_field(&info, "GPU UUID").filter(|u| u.starts_with("GPU-")).map(str::to_string),
        pci,
        render_node: None,
        gfx_target: None,
        kfd_node: None,
        integrated: false,
        // The nvidia module exposes no VRAM size in sysfs (BAR sizes are not VRAM); NVML knows.
        vram_bytes: None,
        device_node,
    }
}

/// Whether the PCI function `addr` is a display controller of `vendor` (HDMI audio functions of
/// the same card, class 0x0403xx, and NVSwitch bridges, 0x0680xx, are not).
fn is_display_of(root: &HostRoot, addr: &str, vendor: u32) -> bool {
    let hex =
        |file: &str| root.read_line(&format!("{PCI_DEVICES}/{addr}/{file}")).and_then(|s| parse_hex(&s));
    hex("vendor") == Some(vendor) && hex("class").is_some_and(|c| c >> 16 == CLASS_DISPLAY)
}

/// `0x10de` / `0x030200` as sysfs writes them.
fn parse_hex(text: &str) -> Option<u32> {
    let digits = text.trim().trim_start_matches("0x").trim_start_matches("0X");
    u32::from_str_radix(digits, 16).ok()
}

/// (domain, bus, device, function) of `0000:3b:00.0`.
type PciKey = (u32, u32, u32, u32);

fn pci_key(addr: &str) -> Option<PciKey> {
    let (domain, rest) = addr.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let h = |s: &str| u32::from_str_radix(s, 16).ok();
    Some((h(domain)?, h(bus)?, h(dev)?, h(func)?))
}

/// The value of `key:` in an `information` file (`Model: \t\t NVIDIA RTX A6000`).
fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        let v = v.trim();
        (k.trim() == key && !v.is_empty()).then_some(v)
    })
}

/// The version in `NVRM version: NVIDIA UNIX [Open ]Kernel Module [for x86_64]  580.95.05  ...`:
/// the first version-shaped token after "Kernel Module" (the date after it has none).
fn proc_version(line: &str) -> Option<String> {
    let tail = line.split_once("Kernel Module").map_or(line, |(_, t)| t);
    tail.split_whitespace().find(|t| is_version(t)).map(str::to_string)
}

/// `\d+\.\d+(\.\d+)?`, whole token.
fn is_version(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proprietary_proc_line_gives_the_version_not_the_date() {
        let line = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.146.02  Thu Dec 19 18:56:32 UTC 2023";
        assert_eq!(proc_version(line).as_deref(), Some("535.146.02"));
    }

    #[test]
    fn open_proc_line_skips_the_architecture() {
        let line = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build  \
                    (dvs-builder@U22-I3-AF03-09-1)  Tue Sep 23 09:39:49 UTC 2025";
        assert_eq!(proc_version(line).as_deref(), Some("580.95.05"));
        let arm = "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  570.124.06  Release Build";
        assert_eq!(proc_version(arm).as_deref(), Some("570.124.06"));
    }

    #[test]
    fn two_part_versions_count_and_garbage_does_not() {
        assert_eq!(
            proc_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.86  Thu").as_deref(),
            Some("570.86")
        );
        assert_eq!(proc_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  unknown"), None);
        assert!(!is_version("x86_64"));
        assert!(!is_version("1.2.3.4"));
        assert!(!is_version("550."));
        assert!(is_version("470.256.02"));
    }

    #[test]
    fn information_fields_are_trimmed_and_keyed_exactly() {
        let info = "Model: \t\t NVIDIA H100 80GB HBM3\nGPU UUID: \t GPU-5f1e\nBus Location: \t 0000:18:00.0\nDevice Minor: \t 3\n";
        assert_eq!(info_field(info, "Model"), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(info_field(info, "Bus Location"), Some("0000:18:00.0"));
        assert_eq!(info_field(info, "Device Minor"), Some("3"));
        assert_eq!(info_field(info, "Minor"), None);
    }

    #[test]
    fn pci_addresses_sort_by_number_not_by_name() {
        let mut keys = [pci_key("10000:01:00.0"), pci_key("ffff:db:00.0"), pci_key("0000:9a:00.0")];
        keys.sort();
        assert_eq!(keys, [pci_key("0000:9a:00.0"), pci_key("ffff:db:00.0"), pci_key("10000:01:00.0")]);
        assert_eq!(pci_key("0000:3b:00.1"), Some((0, 0x3b, 0, 1)));
        assert_eq!(pci_key("not-a-bdf"), None);
        assert_eq!(parse_hex("0x030200\n"), Some(0x030200));
    }
}
