//! Host probing against the recorded host trees in `tests/hosts/<name>/`.
//!
//! Each test asserts what a user would see on that host: which GPUs, in which order, with which
//! device nodes, groups and driver. Every tree's `engine.json` must parse as well.

use super::*;
use crate::engine::facts::EngineFacts;

const TREES: [&str; 9] = [
    "nvidia-2",
    "nvidia-8",
    "nvidia-old-driver",
    "amd-igpu-2",
    "wsl2",
    "none",
    "nvidia-no-toolkit",
    "nvidia-systemd-nocdi",
    "socket-666",
];
const GIB: u64 = 1 << 30;

fn tree(name: &str) -> String {
    format!("{}/tests/hosts/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn probe(name: &str) -> HostFacts {
    HostFacts::probe(&HostRoot::at(tree(name)))
}

fn node(path: &str, uid: u32, gid: u32, mode: u32) -> Option<DeviceNode> {
    Some(DeviceNode { path: path.to_string(), uid, gid, mode })
}

fn pcis(facts: &HostFacts) -> Vec<&str> {
    facts.gpus.iter().map(|g| g.pci.as_str()).collect()
}

#[test]
fn two_a6000s_in_pci_order_with_their_minors_and_the_sysfs_driver_version() {
    let facts = probe("nvidia-2");
    assert_eq!(pcis(&facts), ["0000:17:00.0", "0000:65:00.0"], "audio functions are not GPUs");
    let [a, b] = &facts.gpus[..] else { panic!("two GPUs expected: {:?}", facts.gpus) };
    assert_eq!((a.index, b.index), (0, 1));
    assert_eq!(a.vendor, Vendor::Nvidia);
    assert_eq!(a.model.as_deref(), Some("NVIDIA RTX A6000"));
    assert_eq!(a.uuid.as_deref(), Some("GPU-6513270e-269e-4d37-b2a7-4de452e6b438"));
    assert_eq!(b.uuid.as_deref(), Some("GPU-d23f0824-128b-4f33-8c5c-7fd0a6a3a450"));
    assert_eq!(a.kernel_driver.as_deref(), Some("nvidia"));
    assert_eq!(a.device_node, node("/dev/nvidia0", 0, 0, 0o666));
    assert_eq!(b.device_node, node("/dev/nvidia1", 0, 0, 0o666));
    assert!(!a.integrated && a.render_node.is_none() && a.gfx_target.is_none());
    let driver = facts.nvidia_driver.expect("driver");
    assert_eq!((driver.version.as_str(), driver.open_module), ("550.144.03", false));
    assert_eq!((facts.kfd, facts.wsl), (None, None));
    assert_eq!(facts.mem_total, 131_758_100 * 1024);
}

#[test]
fn eight_h100s_are_indexed_by_pci_address_not_by_device_minor() {
    let facts = probe("nvidia-8");
    let expected = [
        ("0000:18:00.0", 2, "GPU-9531985d-5d9d-49f8-9818-e811892f902b"),
        ("0000:2a:00.0", 3, "GPU-8d116ece-1738-47d9-bd9c-172411e20b8f"),
        ("0000:3a:00.0", 0, "GPU-a170b338-3926-4059-b28c-105d1fb17c23"),
        ("0000:5d:00.0", 1, "GPU-0cb1e29c-658c-4a14-95e6-0af593bd04cf"),
        ("0000:9a:00.0", 6, "GPU-36f675cc-81e7-4ef5-a8e2-5d940ed90475"),
        ("0000:ab:00.0", 7, "GPU-0fd630f1-f29d-4da9-953f-48f1a09f76b5"),
        ("0000:ba:00.0", 4, "GPU-90c192cf-d3ac-44af-8f21-ddb66cad4a26"),
        ("0000:db:00.0", 5, "GPU-6b0d549b-6f03-475a-9600-a35a099950d8"),
    ];
    assert_eq!(facts.gpus.len(), 8, "NVSwitches and NICs are not GPUs: {:?}", pcis(&facts));
    for ((gpu, (pci, minor, uuid)), index) in facts.gpus.iter().zip(expected).zip(0..) {
        assert_eq!((gpu.index, gpu.pci.as_str(), gpu.uuid.as_deref()), (index, pci, Some(uuid)));
        let path = format!("/dev/nvidia{minor}");
        assert_eq!(gpu.device_node, node(&path, 0, 0, 0o666), "GPU {index}");
        assert_eq!(gpu.model.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    }
    let driver = facts.nvidia_driver.expect("driver from /proc alone");
    assert_eq!((driver.version.as_str(), driver.open_module), ("570.124.06", true));
    assert!(facts.mem_total > 1900 * GIB, "{}", facts.mem_total);
}

#[test]
fn the_old_driver_host_reports_470() {
    let facts = probe("nvidia-old-driver");
    assert_eq!(pcis(&facts), ["0000:01:00.0"]);
    assert_eq!(facts.gpus[0].model.as_deref(), Some("NVIDIA GeForce RTX 3090"));
    let driver = facts.nvidia_driver.expect("driver");
    assert_eq!((driver.version.as_str(), driver.open_module), ("470.256.02", false));
    assert_eq!(facts.mem_total / GIB, 62);
}

#[test]
fn amd_gpus_follow_kfd_order_and_the_igpu_is_not_the_first_discrete_one() {
    let facts = probe("amd-igpu-2");
    assert_eq!(facts.gpus_of(Vendor::Nvidia).count(), 0);
    assert!(facts.nvidia_driver.is_none());
    let got: Vec<_> = facts
        .gpus
        .iter()
        .map(|g| (g.index, g.kfd_node, g.pci.as_str(), g.gfx_target.as_deref(), g.integrated))
        .collect();
    assert_eq!(
        got,
        [
            (0, Some(1), "0000:10:00.0", Some("gfx1036"), true),
            (1, Some(2), "0000:03:00.0", Some("gfx1100"), false),
            (2, Some(3), "0000:0b:00.0", Some("gfx1031"), false),
        ]
    );
    let discrete: Vec<_> = facts.gpus.iter().filter(|g| !g.integrated).collect();
    assert_eq!(discrete[0].render_node, node("/dev/dri/renderD129", 0, 110, 0o660));
    assert_eq!(discrete[1].render_node, node("/dev/dri/renderD130", 0, 110, 0o660));
    assert_eq!(facts.gpus[0].render_node, node("/dev/dri/renderD128", 0, 110, 0o660));
    assert_eq!(facts.kfd, node("/dev/kfd", 0, 110, 0o660));
}

#[test]
fn amd_gpus_carry_uuid_vram_and_driver() {
    let facts = probe("amd-igpu-2");
    let [igpu, xtx, rx6700] = &facts.gpus[..] else { panic!("three GPUs expected") };
    assert_eq!(igpu.uuid, None, "an APU has no unique_id");
    assert_eq!(xtx.uuid.as_deref(), Some("GPU-2217beaddbc496cb"));
    assert_eq!(rx6700.uuid.as_deref(), Some("GPU-6b4cb2424a23d596"));
    assert_eq!(igpu.vram_bytes, Some(512 << 20));
    assert_eq!(xtx.vram_bytes, Some(25_753_026_560));
    assert_eq!(rx6700.vram_bytes, Some(12_868_124_672));
    assert_eq!(xtx.kernel_driver.as_deref(), Some("amdgpu"));
    assert_eq!(xtx.vendor, Vendor::Amd);
    assert_eq!(xtx.model, None, "consumer Radeons have no FRU product name");
    assert!(xtx.device_node.is_none());
    assert_eq!(facts.mem_total / GIB, 62);
}

#[test]
fn wsl_shows_dxg_and_no_linux_gpus() {
    let facts = probe("wsl2");
    assert!(facts.gpus.is_empty(), "the GPU-PV adapter is not an NVIDIA PCI GPU: {:?}", facts.gpus);
    assert!(facts.nvidia_driver.is_none());
    let wsl = facts.wsl.expect("WSL facts");
    assert_eq!(Some(wsl.dxg), node("/dev/dxg", 0, 0, 0o666));
    assert_eq!(wsl.lib_dir.as_deref(), Some("/usr/lib/wsl/lib"));
    assert_eq!(facts.mem_total / GIB, 31);
}

#[test]
fn a_host_without_gpus_has_only_ram() {
    let facts = probe("none");
    assert!(facts.gpus.is_empty(), "an emulated VGA is not a GPU");
    assert_eq!((facts.nvidia_driver, facts.kfd, facts.wsl), (None, None, None));
    assert_eq!(facts.mem_total, 24_683_656 * 1024);
}

#[test]
fn an_empty_root_probes_to_nothing() {
    let empty = tempfile::tempdir().expect("tempdir");
    let facts = HostFacts::probe(&HostRoot::at(empty.path()));
    assert!(facts.gpus.is_empty());
    assert_eq!((facts.nvidia_driver, facts.kfd, facts.wsl, facts.mem_total), (None, None, None, 0));
}

#[test]
fn every_tree_has_a_parsable_engine_and_a_readme() {
    for name in TREES {
        let dir = tree(name);
        let text = std::fs::read_to_string(format!("{dir}/engine.json")).expect("engine.json");
        let engine = EngineFacts::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(engine.product, "Docker", "{name}");
        assert!(!engine.server_version.is_empty(), "{name}");
        assert!(std::path::Path::new(&format!("{dir}/README.md")).exists(), "{name}");
    }
}

#[test]
fn every_recorded_host_is_described() {
    let dir = format!("{}/tests/hosts", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&dir).expect("tests/hosts") {
        let path = entry.expect("entry").path();
        assert!(path.join("README.md").exists(), "{} has no README.md", path.display());
        let engine = path.join("engine.json").exists() || path.join("engine-error.txt").exists();
        assert!(engine, "{}: engine.json or engine-error.txt says what its engine answered", path.display());
    }
}

#[test]
fn engines_match_their_hosts() {
    let engine = |name: &str| {
        let text = std::fs::read_to_string(format!("{}/engine.json", tree(name))).expect("engine.json");
        EngineFacts::from_json(&text).expect("parses")
    };
    let dgx = engine("nvidia-8");
    assert!(dgx.has_cdi_vendor("nvidia.com"));
    for gpu in &probe("nvidia-8").gpus {
        let by_index = format!("nvidia.com/gpu={}", gpu.index);
        let by_uuid = format!("nvidia.com/gpu={}", gpu.uuid.as_deref().unwrap_or_default());
        assert!(dgx.cdi_devices.contains(&by_index) && dgx.cdi_devices.contains(&by_uuid));
    }
    assert!(!engine("nvidia-2").has_cdi_vendor("nvidia.com"));
    assert!(engine("nvidia-2").runtimes.iter().any(|r| r == "nvidia"));
    let none = engine("none");
    assert_eq!((none.cgroup_version.as_str(), none.cgroup_driver.as_str()), ("1", "cgroupfs"));
}
