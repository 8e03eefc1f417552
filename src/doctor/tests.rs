//! Doctor on the recorded hosts of `tests/hosts/`: each reports the problems a user of that host
//! has, with the fix; then every other branch, by changing one fact of a recorded host.

use super::facts::{CdiSpec, DaemonJsonState, DoctorFacts, EngineState};
use super::*;
use crate::host::HostRoot;

fn facts(tree: &str) -> DoctorFacts {
    collect::recorded(&HostRoot::at(format!("{}/tests/hosts/{tree}", env!("CARGO_MANIFEST_DIR"))))
}

/// `(id, status)` of every row.
fn rows(f: &DoctorFacts) -> Vec<(&'static str, Status)> {
    diagnose(f).iter().map(|c| (c.id, c.status)).collect()
}

fn check(f: &DoctorFacts, id: &str) -> Check {
    diagnose(f).into_iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no {id} row: {:?}", rows(f)))
}

use Status::{Fail, Ok as Pass, Skip, Warn};

fn nvidia_spec(path: &str, driver: &str) -> CdiSpec {
    CdiSpec {
        path: path.into(),
        kind: "nvidia.com/gpu".into(),
        devices: vec!["0".into(), "1".into(), "all".into()],
        driver_versions: vec![driver.into()],
    }
}

const ENGINE_ROWS: [(&str, Status); 5] =
    [("engine", Pass), ("socket", Pass), ("daemon-json", Pass), ("disk", Pass), ("cgroups", Pass)];

fn with_engine_rows(gpu_rows: &[(&'static str, Status)]) -> Vec<(&'static str, Status)> {
    ENGINE_ROWS.iter().copied().chain(gpu_rows.iter().copied()).collect()
}

#[test]
fn two_nvidia_gpus_with_the_runtime_warn_only_about_daemon_reload() {
    let f = facts("nvidia-2");
    assert_eq!(
        rows(&f),
        with_engine_rows(&[("nvidia-driver", Pass), ("nvidia-toolkit", Pass), ("gpu-reload", Warn)])
    );
    assert!(
        check(&f, "nvidia-driver")
            .detail
            .contains("550.144.03 (proprietary module), 2 GPUs: NVIDIA RTX A6000 ×2")
    );
    assert!(check(&f, "nvidia-toolkit").detail.contains("nvidia runtime is registered"));
    assert!(Report::new("t".into(), diagnose(&f)).ok, "warnings alone pass");
}

#[test]
fn nvidia_without_the_toolkit_fails_and_says_how_to_install_it() {
    let f = facts("nvidia-no-toolkit");
    assert_eq!(
        rows(&f),
        with_engine_rows(&[("nvidia-driver", Pass), ("nvidia-toolkit", Fail), ("gpu-reload", Pass)])
    );
    let c = check(&f, "nvidia-toolkit");
    let fix = c.fix.expect("a fix");
    assert!(
        fix.contains("nvidia-container-toolkit") && fix.contains("berth host configure --nvidia-runtime"),
        "{fix}"
    );
    assert!(!Report::new("t".into(), diagnose(&f)).ok);
}

#[test]
fn systemd_cgroups_without_cdi_warn_about_daemon_reload_and_say_how_to_use_cdi() {
    let f = facts("nvidia-systemd-nocdi");
    assert_eq!(
        rows(&f),
        with_engine_rows(&[("nvidia-driver", Pass), ("nvidia-toolkit", Pass), ("gpu-reload", Warn)])
    );
    assert!(check(&f, "nvidia-toolkit").detail.contains("hook is installed"));
    let c = check(&f, "gpu-reload");
    assert!(
        c.detail.contains("systemctl daemon-reload") && c.detail.contains("NVML: Unknown Error"),
        "{}",
        c.detail
    );
    let fix = c.fix.expect("a fix");
    for step in [
        "nvidia-ctk cdi generate",
        "berth host configure --cdi",
        "systemctl restart docker",
        "berth up --recreate",
    ] {
        assert!(fix.contains(step), "{step} missing from: {fix}");
    }
}

#[test]
fn a_dgx_with_cdi_and_a_fresh_spec_passes_everything() {
    let f = facts("nvidia-8");
    assert_eq!(
        rows(&f),
        with_engine_rows(&[
            ("nvidia-driver", Pass),
            ("nvidia-toolkit", Pass),
            ("cdi-spec", Pass),
            ("gpu-reload", Pass)
        ])
    );
    assert!(check(&f, "disk").detail.contains("under /raid/docker: ext4 on /dev/md0 (mounted at /raid)"));
    assert!(check(&f, "cdi-spec").detail.contains("/var/run/cdi/nvidia.yaml matches driver 570.124.06"));
}

#[test]
fn an_old_driver_and_a_full_disk_are_warned_about() {
    let f = facts("nvidia-old-driver");
    assert_eq!(check(&f, "disk").status, Warn);
    assert!(check(&f, "disk").fix.expect("fix").contains("berth clean"));
    let driver = check(&f, "nvidia-driver");
    assert_eq!(driver.status, Warn);
    assert!(driver.detail.contains("CUDA 12 needs 525.60.13"), "{}", driver.detail);
}

#[test]
fn amd_user_outside_the_render_group_and_a_consumer_gfx_target() {
    let f = facts("amd-igpu-2");
    assert_eq!(with_engine_rows(&[("amd-devices", Pass), ("amd-groups", Warn), ("amd-gfx", Warn)]), rows(&f));
    assert_eq!(
        check(&f, "amd-devices").detail,
        "/dev/kfd, renderD128, renderD129, renderD130 (group render, 110)"
    );
    let groups = check(&f, "amd-groups");
    assert!(groups.detail.contains("not in group render (gid 110)"), "{}", groups.detail);
    assert_eq!(groups.fix.as_deref(), Some("`sudo usermod -aG render bob`, then log in again"));
    let gfx = check(&f, "amd-gfx");
    assert!(
        gfx.detail.contains("GPU 2 (gfx1031)") && !gfx.detail.contains("GPU 1 (gfx1100)"),
        "{}",
        gfx.detail
    );
    // Two discrete GPUs, one needing the override: the per-node form, numbered as ROCm counts
    // inside a container that has the two cards but not the iGPU (CPU 0, gfx1100 1, gfx1031 2),
    // not host KFD node 3; and no ROCm release named, since no image is known here.
    assert!(
        gfx.fix.as_deref().is_some_and(|f| f.contains("HSA_OVERRIDE_GFX_VERSION_2 = \"10.3.0\"")
            && !f.contains("HSA_OVERRIDE_GFX_VERSION =")),
        "{:?}",
        gfx.fix
    );
    assert!(!gfx.detail.contains("ROCm 7"), "{}", gfx.detail);
}

#[test]
fn amd_groups_fail_under_a_rootless_engine_and_say_newgrp_when_already_added() {
    let mut f = facts("amd-igpu-2");
    if let EngineState::Reachable(e) = &mut f.engine {
        e.rootless = true;
    }
    assert_eq!(check(&f, "amd-groups").status, Fail);
    f.groups.iter_mut().filter(|g| g.name == "render").for_each(|g| g.members.push("bob".into()));
    assert!(check(&f, "amd-groups").fix.expect("fix").contains("newgrp render"));
    f.user.groups.push(110);
    assert_eq!(check(&f, "amd-groups").status, Pass);
}

#[test]
fn wsl2_passes_with_dxg_and_the_runtime() {
    let f = facts("wsl2");
    assert_eq!(rows(&f), with_engine_rows(&[("wsl-gpu", Pass), ("nvidia-toolkit", Pass)]));
}

#[test]
fn wsl_without_dxg_or_without_its_libraries_is_reported() {
    let mut f = facts("wsl2");
    if let Some(w) = &mut f.host.wsl {
        w.lib_dir = None;
    }
    assert_eq!(check(&f, "wsl-gpu").status, Fail);
    f.host.wsl = None;
    assert_eq!(check(&f, "wsl-gpu").status, Warn);
    assert!(check(&f, "wsl-gpu").fix.expect("fix").contains("wsl --update"));
}

#[test]
fn a_world_writable_socket_is_a_security_failure() {
    let f = facts("socket-666");
    assert_eq!(
        rows(&f),
        [
            ("engine", Pass),
            ("socket", Fail),
            ("daemon-json", Pass),
            ("disk", Pass),
            ("cgroups", Pass),
            ("gpus", Pass)
        ]
    );
    let c = check(&f, "socket");
    assert!(c.detail.contains("world-writable") && c.detail.contains("act as root"), "{}", c.detail);
    assert!(c.fix.expect("fix").contains("sudo chmod 660 /var/run/docker.sock"));
}

#[test]
fn a_fresh_docker_group_member_is_told_to_newgrp() {
    let f = facts("docker-group-pending");
    assert_eq!(
        rows(&f),
        [
            ("engine", Fail),
            ("socket", Fail),
            ("daemon-json", Pass),
            ("disk", Pass),
            ("cgroups", Skip),
            ("gpus", Pass)
        ]
    );
    assert!(check(&f, "socket").fix.expect("fix").contains("newgrp docker"));
    assert!(check(&f, "engine").detail.contains("permission denied"));
}

#[test]
fn a_user_outside_the_docker_group_is_told_to_ask_for_it() {
    let mut f = facts("docker-group-pending");
    f.groups.iter_mut().for_each(|g| g.members.clear());
    let c = check(&f, "socket");
    assert_eq!(c.status, Fail);
    assert!(c.fix.expect("fix").contains("sudo usermod -aG docker dave"));
    f.user.uid = 0;
    assert_eq!(check(&f, "socket").status, Pass);
}

#[test]
fn the_build_machine_like_host_passes() {
    let f = facts("none");
    assert_eq!(with_engine_rows(&[("gpus", Pass)]), rows(&f));
    assert!(check(&f, "cgroups").detail.starts_with("v1, cgroupfs driver"));
}

#[test]
fn a_daemon_json_that_does_not_parse_fails() {
    let mut f = facts("none");
    f.daemon_json.state = match crate::daemon_json::parse("{\"data-root\": \"/x\",}") {
        Err(e) => DaemonJsonState::Invalid(e.to_string()),
        Ok(_) => panic!("a trailing comma must not parse"),
    };
    let c = check(&f, "daemon-json");
    assert_eq!(c.status, Fail);
    assert!(c.detail.contains("does not parse") && c.detail.contains("refuse to start"), "{}", c.detail);
    f.daemon_json.state = DaemonJsonState::Parsed(
        crate::daemon_json::parse(r#"{"live-restore": "yes"}"#).expect("json").to_map(),
    );
    assert_eq!(check(&f, "daemon-json").status, Fail, "wrong types fail too");
}

#[test]
fn daemon_json_changes_the_engine_has_not_picked_up_are_warned_about() {
    let mut f = facts("none");
    f.daemon_json.state = DaemonJsonState::Parsed(
        crate::daemon_json::parse(r#"{"data-root": "/data/docker"}"#).expect("json").to_map(),
    );
    assert!(check(&f, "daemon-json").detail.contains("still uses /var/lib/docker"));
    f.daemon_json.state = DaemonJsonState::Parsed(
        crate::daemon_json::parse(r#"{"runtimes": {"nvidia": {"path": "x"}}}"#).expect("json").to_map(),
    );
    assert!(check(&f, "daemon-json").fix.expect("fix").contains("systemctl reload docker"));
}

#[test]
fn stale_and_unused_cdi_specs_are_reported() {
    let mut f = facts("nvidia-8");
    f.cdi_specs = vec![nvidia_spec("/etc/cdi/nvidia.yaml", "550.54.15")];
    let c = check(&f, "cdi-spec");
    assert_eq!(c.status, Warn);
    assert!(c.detail.contains("generated for driver 550.54.15, but 570.124.06 is loaded"), "{}", c.detail);
    assert!(c.fix.expect("fix").contains("nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"));

    let mut f = facts("nvidia-2");
    f.cdi_specs = vec![nvidia_spec("/etc/cdi/nvidia.yaml", "550.144.03")];
    let c = check(&f, "cdi-spec");
    assert!(c.detail.contains("does not use CDI"), "{}", c.detail);
    assert!(c.fix.expect("fix").contains("berth host configure --cdi"));
    // With a fresh spec, the daemon-reload fix skips generating one.
    assert!(!check(&f, "gpu-reload").fix.expect("fix").contains("cdi generate"));
}

#[test]
fn docker_desktop_and_snap_docker_cannot_pass_gpus() {
    let mut f = facts("nvidia-no-toolkit");
    if let EngineState::Reachable(e) = &mut f.engine {
        e.data_root = "/var/snap/docker/common/var-lib-docker".into();
    }
    assert!(check(&f, "nvidia-toolkit").fix.expect("fix").contains("snap remove docker"));
    if let EngineState::Reachable(e) = &mut f.engine {
        e.operating_system = "Docker Desktop".into();
    }
    assert_eq!(check(&f, "engine-gpu").status, Fail);
    assert_eq!(check(&f, "disk").status, Skip, "Desktop's data root is in its VM");
}

#[test]
fn podman_with_a_cdi_spec_lists_its_gpu_names_instead_of_dockers_rows() {
    // Issue 15 review: doctor judged Podman by Docker's nvidia runtime and hook, which Podman
    // never uses; the spec files are what it reads.
    let f = facts("podman-nvidia-2");
    assert_eq!(
        rows(&f),
        [
            ("engine", Pass),
            ("socket", Pass),
            ("podman-init", Pass),
            ("disk", Pass),
            ("cgroups", Pass),
            ("nvidia-driver", Pass),
            ("cdi-spec", Pass)
        ]
    );
    let c = check(&f, "cdi-spec");
    assert_eq!(
        c.detail,
        "/etc/cdi/nvidia.yaml names nvidia.com/gpu=0, 1, all and 2 by UUID: Podman passes the GPUs by these \
         names, and they survive `systemctl daemon-reload`"
    );
}

#[test]
fn podman_without_a_cdi_spec_fails_and_says_how_to_make_one() {
    let mut f = facts("podman-nvidia-2");
    f.cdi_specs.clear();
    let c = check(&f, "cdi-spec");
    assert_eq!(c.status, Fail);
    assert!(
        c.detail.contains("no CDI spec names nvidia.com/gpu devices (looked in /etc/cdi, /var/run/cdi)"),
        "{}",
        c.detail
    );
    assert!(c.fix.expect("fix").contains("sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"));
    assert!(!Report::new("t".into(), diagnose(&f)).ok);
    assert!(rows(&f).iter().all(|(id, _)| *id != "nvidia-toolkit" && *id != "gpu-reload"), "{:?}", rows(&f));
}

#[test]
fn podman_with_a_spec_missing_a_gpu_or_made_for_another_driver_is_warned() {
    let mut f = facts("podman-nvidia-2");
    f.cdi_specs[0].devices.retain(|d| d == "0" || d == "all" || d.starts_with("GPU-6513"));
    let c = check(&f, "cdi-spec");
    assert_eq!(c.status, Warn);
    assert!(c.detail.contains("names no device for GPU 1"), "{}", c.detail);
    assert!(c.fix.expect("fix").contains("--output=/etc/cdi/nvidia.yaml"));
    let mut f = facts("podman-nvidia-2");
    f.cdi_specs[0].driver_versions = vec!["535.183.01".into()];
    let c = check(&f, "cdi-spec");
    assert_eq!(c.status, Warn);
    assert!(c.detail.contains("generated for driver 535.183.01, but 550.144.03 is loaded"), "{}", c.detail);
}

#[test]
fn drivers_other_than_nvidia_are_reported() {
    let mut f = facts("nvidia-2");
    f.host.nvidia_driver = None;
    f.host.gpus.iter_mut().for_each(|g| g.kernel_driver = Some("nouveau".into()));
    let c = check(&f, "nvidia-driver");
    assert_eq!(c.status, Fail);
    assert!(c.detail.contains("nouveau has them"));
    let mut f = facts("nvidia-2");
    f.host.gpus[1].kernel_driver = Some("vfio-pci".into());
    assert!(check(&f, "nvidia-driver").detail.contains("GPU 1 (0000:65:00.0) is bound to vfio-pci"));
}

#[test]
fn a_remote_engine_skips_local_checks_and_plain_tcp_is_warned_about() {
    let mut f = facts("none");
    f.remote = true;
    f.endpoint = "ssh://me@gpu-box".into();
    f.daemon_json.state = DaemonJsonState::NotLocal;
    assert_eq!(check(&f, "socket").status, Pass);
    assert_eq!(check(&f, "disk").status, Skip);
    assert_eq!(check(&f, "daemon-json").status, Skip);
    f.endpoint = "tcp://10.0.0.2:2375".into();
    assert_eq!(check(&f, "socket").status, Warn);
}

#[test]
fn nearly_full_and_memory_backed_disks() {
    let mut f = facts("none");
    let Some(d) = &mut f.disk else { panic!("df.txt is recorded") };
    d.avail_bytes = 2 << 30;
    assert_eq!(check(&f, "disk").status, Fail);
    let Some(d) = &mut f.disk else { panic!("df.txt is recorded") };
    d.avail_bytes = 100 << 30;
    d.fs_type = "tmpfs".into();
    assert!(check(&f, "disk").detail.contains("vanish at reboot"));
}

#[test]
fn the_table_shows_one_fix_under_each_problem() {
    let f = facts("socket-666");
    insta::assert_snapshot!(render(&diagnose(&f)));
}

#[test]
fn a_rootful_podman_socket_gets_rootless_advice_and_no_daemon_json_row() {
    // Issue 15 review: a user on rootful Podman's socket (root:root 600) was told to join the
    // `docker` group and `sudo usermod -aG root`, and got Docker's daemon.json row.
    use crate::host::DeviceNode;
    let mut f = facts("docker-group-pending");
    f.groups.iter_mut().for_each(|g| g.members.clear());
    f.endpoint = "unix:///run/podman/podman.sock".into();
    f.socket = Some(DeviceNode { path: "/run/podman/podman.sock".into(), uid: 0, gid: 0, mode: 0o600 });
    assert_eq!(
        rows(&f),
        [("engine", Fail), ("socket", Fail), ("disk", Pass), ("cgroups", Skip), ("gpus", Pass)]
    );
    let fix = check(&f, "socket").fix.expect("fix");
    assert!(
        fix.contains("rootful Podman") && fix.contains("systemctl --user enable --now podman.socket"),
        "{fix}"
    );
    assert!(!fix.contains("usermod"), "{fix}");
}

#[test]
fn no_group_is_suggested_for_a_socket_no_group_opens() {
    use crate::host::DeviceNode;
    let mut f = facts("docker-group-pending");
    f.groups.iter_mut().for_each(|g| g.members.clear());
    // root-owned, mode 600: no group gives access.
    f.socket = Some(DeviceNode { path: "/var/run/docker.sock".into(), uid: 0, gid: 0, mode: 0o600 });
    let fix = check(&f, "socket").fix.expect("fix");
    assert!(fix.contains("only root may open it") && !fix.contains("usermod"), "{fix}");
    // Another user's rootless engine.
    f.socket =
        Some(DeviceNode { path: "/run/user/1500/docker.sock".into(), uid: 1500, gid: 1500, mode: 0o660 });
    let fix = check(&f, "socket").fix.expect("fix");
    assert!(fix.contains("1500's rootless engine") && fix.contains("dockerd-rootless-setuptool.sh"), "{fix}");
    // Docker's usual socket still gets the group advice.
    f.socket = Some(DeviceNode { path: "/var/run/docker.sock".into(), uid: 0, gid: 999, mode: 0o660 });
    assert!(check(&f, "socket").fix.expect("fix").contains("usermod -aG"));
}
