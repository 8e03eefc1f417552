//! Snapshot tests: the exact create request for every recorded host, and the GPU choices a
//! user would notice (which cards, which device nodes, which groups).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::*;
use crate::engine::create::create_body_json;
use crate::host::HostRoot;
use crate::spec::parse_str;

const PROJECT: &str = "/home/alice/sdcnet";

fn host(name: &str) -> (HostFacts, EngineFacts) {
    let dir = format!("{}/tests/hosts/{name}", env!("CARGO_MANIFEST_DIR"));
    let facts = HostFacts::probe(&HostRoot::at(&dir));
    let engine = std::fs::read_to_string(format!("{dir}/engine.json")).expect("engine.json");
    (facts, EngineFacts::from_json(&engine).expect("engine.json parses"))
}

fn plan_on(name: &str, toml: &str, busy: &[&str], prefer: &[&str]) -> Result<ContainerPlan, PlanError> {
    let (facts, engine) = host(name);
    let spec = parse_str(toml, &Path::new(PROJECT).join("berth.toml")).expect("spec parses");
    let user = HostUser::fixed(1000, 1000, "alice");
    let busy: BusyGpus = busy.iter().map(|s| s.to_string()).collect();
    let prefer: Vec<String> = prefer.iter().map(|s| s.to_string()).collect();
    plan(
        &spec,
        &Inputs {
            host: &facts,
            engine: &engine,
            user: &user,
            busy: &busy,
            claims: &crate::plan::GpuClaims::default(),
            prefer: &prefer,
            image: &spec.image.base,
            image_kept: &[],
        },
    )
}

const FULL: &str = r#"
name = "sdcnet"
mounts = [".:/workspace", "./work_dirs:/workspace/work_dirs"]
ports = ["8888", "127.0.0.1:6006:6006"]
[resources]
memory = "64g"
cpus = 8
[env]
PYTHONUNBUFFERED = "1"
HF_TOKEN = { from-host = true }
"#;

#[test]
fn every_recorded_host_has_a_stable_plan() {
    for name in ["nvidia-2", "nvidia-8", "amd-igpu-2", "wsl2", "none", "nvidia-old-driver"] {
        let plan = plan_on(name, FULL, &[], &[]).expect("plan");
        insta::assert_json_snapshot!(format!("create-{name}"), create_body_json(&plan));
    }
}

#[test]
fn nvidia_all_is_the_gpus_all_request() {
    let plan = plan_on("nvidia-2", "", &[], &[]).unwrap();
    assert_eq!(plan.gpu.mode, GpuMode::Nvidia);
    assert_eq!(
        plan.gpu.device_requests,
        vec![DeviceRequestPlan {
            driver: String::new(),
            count: -1,
            device_ids: vec![],
            capabilities: vec![vec!["gpu".into()]]
        }]
    );
    assert_eq!(plan.ulimits.get("memlock"), Some(&-1));
}

#[test]
fn nvidia_list_asks_for_exactly_those_gpus_by_uuid() {
    let plan = plan_on("nvidia-2", "[gpu]\ndevices = [1]\n", &[], &[]).unwrap();
    let req = &plan.gpu.device_requests[0];
    assert_eq!(req.count, 0);
    assert_eq!(req.device_ids.len(), 1);
    assert!(req.device_ids[0].starts_with("GPU-"));
    assert_eq!(plan.gpu.selected[0].index, 1);
}

#[test]
fn nvidia_with_cdi_uses_cdi_names() {
    let plan = plan_on("nvidia-8", "[gpu]\ndevices = [0, 5]\n", &[], &[]).unwrap();
    let req = &plan.gpu.device_requests[0];
    assert_eq!(req.driver, "cdi");
    assert_eq!(req.device_ids.len(), 2);
    assert!(req.device_ids.iter().all(|d| d.starts_with("nvidia.com/gpu=")));
    let all = plan_on("nvidia-8", "", &[], &[]).unwrap();
    assert_eq!(all.gpu.device_requests[0].device_ids, vec!["nvidia.com/gpu=all".to_string()]);
}

/// Podman's recorded engine facts with `edit` applied.
fn plan_on_podman(toml: &str, edit: impl FnOnce(&mut EngineFacts)) -> Result<ContainerPlan, PlanError> {
    let (facts, mut engine) = host("podman-nvidia-2");
    edit(&mut engine);
    let spec = parse_str(toml, &Path::new(PROJECT).join("berth.toml")).unwrap();
    let user = HostUser::fixed(1000, 1000, "alice");
    plan(
        &spec,
        &Inputs {
            host: &facts,
            engine: &engine,
            user: &user,
            busy: &BusyGpus::new(),
            claims: &crate::plan::GpuClaims::default(),
            prefer: &[],
            image: &spec.image.base,
            image_kept: &[],
        },
    )
}

#[test]
fn podman_gets_cdi_names_as_devices_never_a_device_request() {
    // Issue 15 review: Podman 4.3's Docker-compatible API dropped the device request and the
    // environment came up without GPUs.
    let plan = plan_on_podman("[gpu]\ndevices = [0]\n", |_| {}).unwrap();
    assert!(plan.gpu.device_requests.is_empty(), "{:?}", plan.gpu.device_requests);
    // The spec names GPU 0 by its UUID too, which keeps naming the same card.
    assert_eq!(plan.gpu.cdi_devices, ["nvidia.com/gpu=GPU-6513270e-269e-4d37-b2a7-4de452e6b438"]);
    assert_eq!(plan.labels[LABEL_CDI], "nvidia.com/gpu=GPU-6513270e-269e-4d37-b2a7-4de452e6b438");
    let all = plan_on_podman("", |_| {}).unwrap();
    assert_eq!(all.gpu.cdi_devices, ["nvidia.com/gpu=all"]);
    // A spec that names GPUs by index only: the index.
    let by_index =
        plan_on_podman("[gpu]\ndevices = [1]\n", |e| e.cdi_devices.retain(|d| !d.contains("GPU-"))).unwrap();
    assert_eq!(by_index.gpu.cdi_devices, ["nvidia.com/gpu=1"]);
    // Docker on the same host keeps its device request.
    let docker = plan_on("nvidia-2", "[gpu]\ndevices = [0]\n", &[], &[]).unwrap();
    assert!(docker.gpu.cdi_devices.is_empty() && !docker.labels.contains_key(LABEL_CDI));
    assert_eq!(docker.gpu.device_requests.len(), 1);
}

#[test]
fn podman_without_a_cdi_spec_is_refused_with_the_command_that_makes_one() {
    let err = plan_on_podman("", |e| e.cdi_devices.clear()).unwrap_err();
    assert!(err.to_string().contains("no CDI spec on this host names nvidia.com/gpu devices"), "{err}");
    assert!(err.to_string().contains("(looked in /etc/cdi, /var/run/cdi)"), "{err}");
    assert!(
        err.hint().contains("sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"),
        "{}",
        err.hint()
    );
    // Another kind's devices do not count.
    let err = plan_on_podman("", |e| e.cdi_devices = vec!["amd.com/gpu=0".into()]).unwrap_err();
    assert!(matches!(err, PlanError::Gpu { .. }), "{err}");
}

#[test]
fn podman_with_a_spec_missing_the_chosen_gpu_says_which() {
    let err = plan_on_podman("[gpu]\ndevices = [1]\n", |e| {
        e.cdi_devices = vec!["nvidia.com/gpu=0".into(), "nvidia.com/gpu=all".into()];
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("names no device for GPU 1 (GPU-d23f0824-128b-4f33-8c5c-7fd0a6a3a450) (it names nvidia.com/gpu=0, all)"),
        "{text}"
    );
    let err = plan_on_podman("", |e| e.cdi_devices = vec!["nvidia.com/gpu=0".into()]).unwrap_err();
    assert!(err.to_string().contains("names no device for `all`"), "{err}");
}

#[test]
fn podman_whose_spec_folders_berth_cannot_read_gets_index_names_unchecked() {
    // A remote engine: its own start says what is missing.
    let plan = plan_on_podman("[gpu]\ndevices = [1]\n", |e| {
        e.cdi_spec_dirs.clear();
        e.cdi_devices.clear();
    })
    .unwrap();
    assert_eq!(plan.gpu.cdi_devices, ["nvidia.com/gpu=1"]);
}

#[test]
fn podmans_own_create_request_is_stable() {
    let plan = plan_on_podman(FULL, |_| {}).unwrap();
    insta::assert_json_snapshot!("libpod-podman-nvidia-2", crate::engine::create::libpod_body_json(&plan));
}

#[test]
fn a_count_prefers_gpus_nobody_holds() {
    let (facts, _) = host("nvidia-8");
    let busy: Vec<String> = facts.gpus.iter().take(3).filter_map(|g| g.uuid.clone()).collect();
    let busy: Vec<&str> = busy.iter().map(String::as_str).collect();
    let plan = plan_on("nvidia-8", "[gpu]\ndevices = 2\n", &busy, &[]).unwrap();
    let picked: Vec<u32> = plan.gpu.selected.iter().map(|g| g.index).collect();
    assert_eq!(picked, vec![3, 4]);
    assert_eq!(
        plan.gpu.notes,
        ["chose GPU 3, 4: GPU 0 is used by another container; GPU 1 is used by another container; GPU 2 is \
          used by another container"]
    );
}

#[test]
fn other_users_leases_are_never_taken_by_a_count_and_refuse_a_list() {
    let (facts, _) = host("nvidia-2");
    let claims = crate::plan::GpuClaims {
        leased: [(0, "leased by alice until 2026-11-30 23:15 UTC (in 52m)".to_string())].into(),
        used: [(1, vec!["8000 MiB of container jupyter (user bob, pid 7)".to_string()])].into(),
        force: false,
    };
    let plan_with = |toml: &str, claims: &crate::plan::GpuClaims| {
        let spec = crate::spec::parse_str(toml, std::path::Path::new("/p/berth.toml")).unwrap();
        let engine = crate::engine::facts::EngineFacts::default();
        let user = crate::host::HostUser::fixed(1000, 1000, "carol");
        crate::plan::plan(
            &spec,
            &Inputs {
                host: &facts,
                engine: &engine,
                user: &user,
                busy: &BusyGpus::new(),
                claims,
                prefer: &[],
                image: "img",
                image_kept: &[],
            },
        )
    };
    let one = plan_with("[gpu]\ndevices = 1\n", &claims).unwrap();
    assert_eq!(one.gpu.selected[0].index, 1, "the used GPU rather than the leased one");
    assert!(one.gpu.notes.iter().any(|n| n.contains("no free GPU was left: GPU 1 holds 8000 MiB")));
    let two = plan_with("[gpu]\ndevices = 2\n", &claims).unwrap_err();
    assert!(matches!(two, PlanError::Leased { .. }), "{two}");
    let listed = plan_with("[gpu]\ndevices = [0]\n", &claims).unwrap_err();
    assert!(listed.to_string().contains("GPU 0 is leased by alice until"), "{listed}");
    let forced = crate::plan::GpuClaims { force: true, ..claims };
    let taken = plan_with("[gpu]\ndevices = [0]\n", &forced).unwrap();
    assert!(taken.gpu.notes[0].contains("taken anyway (--force)"));
}

/// Regression: a stopped environment with `devices = 1` was started again on the GPU it held
/// although another user had leased it meanwhile.
#[test]
fn a_stopped_environment_does_not_resume_on_a_gpu_another_user_leased_since() {
    let (facts, _) = host("nvidia-2");
    let held = facts.gpus[0].uuid.clone().unwrap();
    let spec = crate::spec::parse_str("[gpu]\ndevices = 1\n", std::path::Path::new("/p/berth.toml")).unwrap();
    let engine = crate::engine::facts::EngineFacts::default();
    let user = crate::host::HostUser::fixed(1000, 1000, "carol");
    let mut claims = crate::plan::GpuClaims {
        leased: [(0, "leased by alice until 2026-11-30 23:15 UTC (in 52m)".to_string())].into(),
        ..Default::default()
    };
    let plan_with = |claims: &crate::plan::GpuClaims| {
        let inputs = Inputs {
            host: &facts,
            engine: &engine,
            user: &user,
            busy: &BusyGpus::new(),
            claims,
            prefer: std::slice::from_ref(&held),
            image: "img",
            image_kept: &[],
        };
        crate::plan::plan(&spec, &inputs)
    };
    let refused = plan_with(&claims).unwrap_err();
    assert!(matches!(refused, PlanError::Leased { .. }), "{refused}");
    assert!(
        refused.to_string().contains("while it was stopped: GPU 0 is leased by alice until"),
        "{refused}"
    );
    claims.force = true;
    let forced = plan_with(&claims).unwrap();
    assert_eq!(forced.gpu.selected[0].index, 0);
    assert!(forced.gpu.notes.iter().any(|n| n.contains("GPU 0 is leased by alice") && n.contains("--force")));
}

#[test]
fn a_count_keeps_the_gpus_the_environment_already_holds() {
    let (facts, _) = host("nvidia-8");
    let held = facts.gpus[6].uuid.clone().unwrap();
    let plan = plan_on("nvidia-8", "[gpu]\ndevices = 1\n", &[], &[held.as_str()]).unwrap();
    assert_eq!(plan.gpu.selected[0].index, 6);
}

#[test]
fn a_count_says_when_it_must_share() {
    let plan = plan_on("nvidia-2", "[gpu]\ndevices = 2\n", &["0"], &[]).unwrap();
    assert_eq!(plan.gpu.selected.len(), 2);
    assert_eq!(plan.gpu.notes.len(), 1);
    assert!(plan.gpu.notes[0].contains("GPU 0"));
}

#[test]
fn unknown_gpus_and_too_many_are_errors() {
    let err = plan_on("nvidia-2", "[gpu]\ndevices = [5]\n", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("GPU 5"), "{err}");
    let err = plan_on("nvidia-2", "[gpu]\ndevices = 3\n", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("asks for 3 GPUs"), "{err}");
    let err = plan_on("none", "[gpu]\nvendor = \"nvidia\"\n", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("no NVIDIA GPU"), "{err}");
}

#[test]
fn an_image_user_gets_the_owners_group_to_reach_the_private_state_folder() {
    let plan = plan_on("amd-igpu-2", "[user]\nas = \"trainer\"\n", &[], &[]).unwrap();
    assert_eq!(plan.user.user, "trainer");
    assert_eq!(plan.user.group_add, vec![110, 1000]);
    let host = plan_on("none", "", &[], &[]).unwrap();
    assert!(host.user.group_add.is_empty(), "the host user is the owner: no group needed");
}

#[test]
fn amd_passes_kfd_and_only_the_discrete_render_nodes_with_numeric_groups() {
    let plan = plan_on("amd-igpu-2", "", &[], &[]).unwrap();
    assert_eq!(plan.gpu.mode, GpuMode::Amd);
    assert_eq!(plan.devices, vec!["/dev/kfd", "/dev/dri/renderD129", "/dev/dri/renderD130"]);
    assert_eq!(plan.user.group_add, vec![110]);
    assert!(plan.gpu.device_requests.is_empty());
    let one = plan_on("amd-igpu-2", "[gpu]\ndevices = 1\n", &[], &[]).unwrap();
    assert_eq!(one.devices, vec!["/dev/kfd", "/dev/dri/renderD129"]);
}

#[test]
fn wsl_uses_dxg_and_the_driver_libraries() {
    let plan = plan_on("wsl2", "", &[], &[]).unwrap();
    assert_eq!(plan.gpu.mode, GpuMode::Wsl);
    assert_eq!(plan.devices, vec!["/dev/dxg"]);
    assert!(plan.mounts.iter().any(|m| m.target == "/usr/lib/wsl" && m.read_only));
    assert!(plan.env.contains(&("LD_LIBRARY_PATH".into(), "/usr/lib/wsl/lib".into())));
}

#[test]
fn shm_is_never_dockers_64_mb() {
    let (none, _) = host("none");
    let plan = plan_on("none", "", &[], &[]).unwrap();
    assert_eq!(plan.shm.source, ShmSource::HostRam);
    assert_eq!(plan.shm.bytes, (none.mem_total / 2).min(16 << 30) & !((1 << 20) - 1));
    assert!(plan.shm.bytes > DOCKER_DEFAULT_SHM);
    let capped = plan_on("nvidia-8", "", &[], &[]).unwrap();
    assert_eq!(capped.shm.bytes, 16 << 30);
    let mem = plan_on("none", "[resources]\nmemory = \"2g\"\n", &[], &[]).unwrap();
    assert_eq!((mem.shm.bytes, mem.shm.source), (1 << 30, ShmSource::MemoryLimit));
    let file = plan_on("none", "[resources]\nshm = \"3g\"\n", &[], &[]).unwrap();
    assert_eq!((file.shm.bytes, file.shm.source), (3 << 30, ShmSource::File));
}

#[test]
fn host_user_gets_uid_gid_a_home_and_no_secret_values() {
    let plan = plan_on("none", FULL, &[], &[]).unwrap();
    assert_eq!(plan.user.user, "1000:1000");
    assert_eq!(plan.user.account.as_ref().unwrap().home, "/home/alice");
    assert_eq!(plan.host_env, vec!["HF_TOKEN".to_string()]);
    let body = create_body_json(&plan).to_string();
    assert!(!body.contains("HF_TOKEN"), "secret names or values must not reach the container config");
}

#[test]
fn safe_defaults_hold_unless_run_asks() {
    let plan = plan_on("none", "", &[], &[]).unwrap();
    let body = create_body_json(&plan);
    let hc = &body["HostConfig"];
    assert_eq!(hc["Privileged"], false);
    assert!(hc.get("CapAdd").is_none() && hc.get("IpcMode").is_none() && hc.get("NetworkMode").is_none());
    assert!(hc.get("SecurityOpt").is_none());
    assert_eq!(hc["Init"], true);
    assert_eq!(hc["RestartPolicy"]["Name"], "unless-stopped");
    let opted = plan_on("none", "[run]\nipc = \"host\"\ncap-add = [\"SYS_PTRACE\"]\n", &[], &[]).unwrap();
    let body = create_body_json(&opted);
    assert_eq!(body["HostConfig"]["IpcMode"], "host");
    assert_eq!(body["HostConfig"]["CapAdd"][0], "SYS_PTRACE");
    assert!(body["HostConfig"].get("ShmSize").is_none());
}

#[test]
fn the_config_hash_follows_what_the_container_cannot_change() {
    let a = plan_on("none", FULL, &[], &[]).unwrap();
    let b = plan_on("none", FULL, &[], &[]).unwrap();
    assert_eq!(a.config_hash, b.config_hash);
    let c = plan_on("none", &format!("{FULL}\n[gpu]\nvendor = \"none\"\n[user]\nas = \"root\"\n"), &[], &[])
        .unwrap();
    assert_ne!(a.config_hash, c.config_hash);
}

#[test]
fn the_default_mount_is_left_out_only_where_the_image_keeps_its_files() {
    let (facts, engine) = host("none");
    let user = HostUser::fixed(1000, 1000, "alice");
    let kept = vec!["/app".to_string()];
    let targets = |toml: &str| -> Vec<String> {
        let spec = parse_str(toml, &Path::new(PROJECT).join("berth.toml")).expect("spec parses");
        let inputs = Inputs {
            host: &facts,
            engine: &engine,
            user: &user,
            busy: &BusyGpus::new(),
            claims: &crate::plan::GpuClaims::default(),
            prefer: &[],
            image: &spec.image.base,
            image_kept: &kept,
        };
        let mounts = plan(&spec, &inputs).expect("plan").mounts;
        mounts.into_iter().map(|m| m.target).filter(|t| !t.starts_with("/berth/")).collect()
    };
    assert!(targets("workdir = \"/app\"\n").is_empty());
    assert_eq!(targets("workdir = \"/workspace\"\n"), ["/workspace"]);
    // Written mounts are made as written.
    assert_eq!(targets("workdir = \"/app\"\nmounts = [\".:/app\"]\n"), ["/app"]);
}
