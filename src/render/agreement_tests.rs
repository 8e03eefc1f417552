//! The compose export and `berth up` describe the same container: for one spec on every
//! recorded host (`tests/hosts/*`), the rendered compose service and the plan `up` executes
//! agree on shm, ulimits, devices, groups, ports and variables. Only what the host decides
//! differs, and each difference is named here: the GPU device nodes compose grants as a whole
//! (`/dev/dri`) and `up` narrows to the chosen cards, group names against numeric ids, the
//! account variables of `as = "host"` and WSL2's driver library.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{ExportOptions, ExportPlan, compose};
use crate::engine::facts::EngineFacts;
use crate::host::{HostFacts, HostRoot, HostUser, Vendor};
use crate::plan::{self, BusyGpus, GpuMode, Inputs};
use crate::spec::{Spec, VendorChoice, parse_str};

const PROJECT: &str = "/home/alice/agree";

/// Three ways the file decides shm (its own size, half the memory limit, the host's IPC), each
/// with ports, ulimits, devices and variables that both sides must carry.
fn specs() -> Vec<(&'static str, Spec)> {
    let common = r#"
name = "agree"
mounts = [".:/workspace"]
ports = ["8888", "127.0.0.1:6006:6006", "0.0.0.0:7000:7000/udp"]
[env]
PYTHONUNBUFFERED = "1"
PRICE = "$5"
HF_TOKEN = { from-host = true }
[cache]
pip = true
"#;
    let cases = [
        (
            "shm-from-file",
            "[resources]\nshm = \"8g\"\nmemory = \"32g\"\n[run]\nulimits = { nofile = 65536 }\n",
        ),
        ("shm-from-memory", "[resources]\nmemory = \"3g\"\n[run]\nulimits = { stack = 8388608 }\n"),
        ("ipc-host", "[run]\nipc = \"host\"\ndevices = [\"/dev/fuse\"]\n"),
    ];
    cases
        .into_iter()
        .map(|(name, extra)| {
            let text = format!("{common}{extra}");
            let mut spec = parse_str(&text, &Path::new(PROJECT).join("berth.toml")).expect("spec parses");
            // The fake project folder does not exist here; on a real machine the code folder would.
            spec.mounts[0].create = false;
            (name, spec)
        })
        .collect()
}

fn recorded_hosts() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/hosts")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A compose file's single service, as key -> lines (the scalar, or the items of a list or map),
/// quotes removed. Enough of YAML for what `compose::render` writes.
fn service(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut key = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let unquote = |s: &str| s.trim().trim_matches('"').replace("\\\"", "\"");
        if let Some(rest) = line.strip_prefix("    ").filter(|r| !r.starts_with(' ')) {
            let (k, v) = rest.split_once(':').expect("a key");
            key = k.to_string();
            let v = v.trim();
            out.insert(key.clone(), if v.is_empty() { vec![] } else { vec![unquote(v)] });
        } else if let Some(item) = line.strip_prefix("      ") {
            let item = item.strip_prefix("- ").unwrap_or(item);
            out.get_mut(&key).expect("under a key").push(unquote(item));
        }
    }
    out
}

/// Group ids of `names` in the recorded host's /etc/group.
fn group_ids(host_dir: &Path, names: &[&str]) -> BTreeSet<u32> {
    let text = std::fs::read_to_string(host_dir.join("etc/group")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && names.contains(&f[0])).then(|| f[2].parse().ok()).flatten()
        })
        .collect()
}

#[test]
fn compose_export_and_up_agree_on_every_recorded_host() {
    let user = HostUser::fixed(1000, 1000, "alice");
    let mut checked = 0;
    for host_name in recorded_hosts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts").join(&host_name);
        let facts = HostFacts::probe(&HostRoot::at(&dir));
        let engine = std::fs::read_to_string(dir.join("engine.json"))
            .map(|t| EngineFacts::from_json(&t).expect("engine.json parses"))
            .unwrap_or_default();
        for (case, spec) in specs() {
            let at = format!("{host_name}, {case}");
            let inputs = Inputs {
                host: &facts,
                engine: &engine,
                user: &user,
                busy: &BusyGpus::new(),
                claims: &crate::plan::GpuClaims::default(),
                prefer: &[],
                image: &spec.image.base,
                image_kept: &[],
            };
            let up = plan::plan(&spec, &inputs).unwrap_or_else(|e| panic!("{at}: plan: {e}"));
            // The export for this host: `--vendor` set to what `up` found here.
            let vendor = match up.gpu.mode {
                GpuMode::None => VendorChoice::None,
                GpuMode::Amd => VendorChoice::Gpu(Vendor::Amd),
                GpuMode::Nvidia | GpuMode::Wsl => VendorChoice::Gpu(Vendor::Nvidia),
            };
            let opts = ExportOptions { vendor: Some(vendor), ..ExportOptions::default() };
            let export = ExportPlan::new(&spec, &opts).unwrap_or_else(|e| panic!("{at}: export: {e}"));
            let text = compose::render(&export, ".").unwrap_or_else(|e| panic!("{at}: compose: {e}")).text;
            let svc = service(&text);
            let get = |k: &str| svc.get(k).cloned().unwrap_or_default();

            // shm: the same size, or none of its own with the host's IPC.
            let up_shm =
                (up.shm.source != plan::ShmSource::HostIpc).then(|| super::docker_size(up.shm.bytes));
            assert_eq!(get("shm_size").first().cloned(), up_shm, "{at}: shm");
            assert_eq!(get("ipc").first().cloned(), up.ipc, "{at}: ipc");

            // ulimits: the same names and values.
            let up_ulimits: Vec<String> = up.ulimits.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            assert_eq!(get("ulimits"), up_ulimits, "{at}: ulimits");

            // ports: the same addresses, ports and protocols.
            let up_ports: Vec<String> = up
                .ports
                .iter()
                .map(|p| {
                    let host = p.host_port.map(|h| h.to_string()).unwrap_or_default();
                    let proto = if p.protocol == "tcp" { String::new() } else { format!("/{}", p.protocol) };
                    format!("{}:{host}:{}{proto}", p.host_ip, p.container_port)
                })
                .collect();
            assert_eq!(get("ports"), up_ports, "{at}: ports");

            // variables: every literal one, with the same value (compose doubles `$`), plus the
            // from-host names; `up` adds only the account's and WSL2's.
            let mut host_only: Vec<&str> = Vec::new();
            if up.user.account.is_some() {
                host_only.extend(["HOME", "USER"]);
            }
            if up.gpu.wsl_lib.is_some() {
                host_only.push("LD_LIBRARY_PATH");
            }
            let mut up_env: Vec<String> = up
                .env
                .iter()
                .filter(|(k, _)| !host_only.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={}", v.replace('$', "$$")))
                .collect();
            up_env.extend(up.host_env.iter().cloned());
            assert_eq!(get("environment"), up_env, "{at}: environment");

            // devices: the file's own the same; GPU nodes inside what compose grants.
            let compose_devices = get("devices");
            for d in &spec.run.devices {
                assert!(compose_devices.contains(d) && up.devices.contains(d), "{at}: device {d}");
            }
            let up_gpu_nodes: Vec<&String> =
                up.devices.iter().filter(|d| !spec.run.devices.contains(d)).collect();
            match up.gpu.mode {
                GpuMode::Amd => {
                    assert!(compose_devices.contains(&"/dev/kfd".to_string()), "{at}: /dev/kfd");
                    assert!(compose_devices.contains(&"/dev/dri".to_string()), "{at}: /dev/dri");
                    for node in &up_gpu_nodes {
                        assert!(*node == "/dev/kfd" || node.starts_with("/dev/dri/"), "{at}: {node}");
                    }
                }
                GpuMode::Nvidia => {
                    assert!(up_gpu_nodes.is_empty(), "{at}: NVIDIA GPUs are a device request");
                    assert!(text.contains("driver: nvidia"), "{at}: compose reserves NVIDIA GPUs");
                    assert!(
                        !up.gpu.device_requests.is_empty() || !up.gpu.cdi_devices.is_empty(),
                        "{at}: up requests NVIDIA GPUs (a device request; CDI names on Podman)"
                    );
                }
                GpuMode::Wsl => assert_eq!(up_gpu_nodes, vec!["/dev/dxg"], "{at}: WSL2's device"),
                GpuMode::None => {
                    let compose_gpu_nodes = compose_devices.iter().filter(|d| !spec.run.devices.contains(d));
                    assert!(
                        up_gpu_nodes.is_empty() && compose_gpu_nodes.count() == 0,
                        "{at}: no GPU devices"
                    );
                    assert!(!text.contains("driver: nvidia"), "{at}: no NVIDIA reservation");
                }
            }

            // groups: compose names video and render; `up` adds the ids of the nodes' groups,
            // which are those groups on this host.
            let up_groups: BTreeSet<u32> = up.user.group_add.iter().copied().collect();
            match up.gpu.mode {
                GpuMode::Amd => {
                    assert_eq!(
                        get("group_add"),
                        ["${BERTH_VIDEO_GID:-video}", "${BERTH_RENDER_GID:-render}"],
                        "{at}: compose groups"
                    );
                    assert!(!up_groups.is_empty(), "{at}: up adds the GPU nodes' groups");
                    assert!(
                        up_groups.is_subset(&group_ids(&dir, &["video", "render"])),
                        "{at}: {up_groups:?}"
                    );
                }
                _ => assert!(get("group_add").is_empty(), "{at}: compose adds no groups"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 3 * 8, "every recorded host was checked ({checked} cases)");
}
