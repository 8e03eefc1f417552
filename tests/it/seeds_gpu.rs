//! What the seeds' users saw about GPUs, sizes and failures (issue 12), each checked through the
//! binary on recorded hosts and by what the engine accepted.

use std::path::Path;

use crate::support::*;

fn recorded(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts").join(name).display().to_string()
}

/// The `HSA_OVERRIDE_GFX_VERSION...` assignments in a text.
fn overrides(text: &str) -> Vec<String> {
    text.split([',', ':', '(', '\n'])
        .map(str::trim)
        .filter(|s| s.starts_with("HSA_OVERRIDE_GFX_VERSION"))
        .map(str::to_string)
        .collect()
}

#[test]
fn up_and_doctor_give_the_same_per_device_gfx_advice_on_mixed_amd_gpus() {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), recorded("amd-igpu-2")));
    let dir = env.project("mixed-amd", "");
    let up = env.berth(&dir, &["up", "--no-start"]).ok();
    let doctor = env.berth(&dir, &["doctor"]);
    let advice = overrides(&up.stderr);
    assert_eq!(advice, vec!["HSA_OVERRIDE_GFX_VERSION_2 = \"10.3.0\"".to_string()], "{}", up.stderr);
    assert_eq!(overrides(&doctor.stdout), advice, "doctor:\n{}\nup:\n{}", doctor.stdout, up.stderr);
    let detail = "GPU 2 (gfx1031) is not among the targets ROCm's PyTorch wheels (any release) are built for";
    assert!(up.stderr.contains(detail) && doctor.stdout.contains(detail), "{}\n{}", up.stderr, doctor.stdout);
    assert!(!up.stderr.contains("ROCm 7"), "a busybox base carries no ROCm: {}", up.stderr);

    // After applying the advice, `up --recreate` says nothing about it.
    let toml = std::fs::read_to_string(dir.join("berth.toml")).unwrap();
    std::fs::write(dir.join("berth.toml"), format!("[env]\nHSA_OVERRIDE_GFX_VERSION_2 = \"10.3.0\"\n{toml}"))
        .unwrap();
    let again = env.berth(&dir, &["up", "--no-start", "--recreate"]).ok();
    assert!(!again.stderr.contains("HSA_OVERRIDE"), "{}", again.stderr);
    assert!(!again.stderr.contains("gfx1031"), "{}", again.stderr);
    let c = env.inspect(&dir);
    let envs = c["Config"]["Env"].as_array().unwrap();
    assert!(envs.iter().any(|e| e == "HSA_OVERRIDE_GFX_VERSION_2=10.3.0"), "{envs:?}");
}

#[test]
fn a_failed_up_leaves_no_container_for_each_cause() {
    let env = TestEnv::new();
    let causes = [
        ("user", "[user]\nas = \"no-such-user\"\n"),
        ("device", "[run]\ndevices = [\"/dev/berth-no-such-device\"]\n"),
        ("ulimit", "[run]\nulimits = { nofile = 99999999999 }\n"),
    ];
    for (name, toml) in causes {
        let dir = env.project(&format!("failed-{name}"), toml);
        let first = env.berth(&dir, &["up"]);
        assert_ne!(first.code, 0, "{name}: {}", first.stderr);
        assert!(env.containers_of(&dir).is_empty(), "{name}: a failed up left its container");
        // The next `up` fails the same way, never with drift or a need for --recreate.
        let second = env.berth(&dir, &["up"]);
        assert_ne!(second.code, 0, "{name}");
        assert!(
            !second.stderr.contains("--recreate") && !second.stderr.contains("no longer matches"),
            "{name}: {}",
            second.stderr
        );
        assert!(env.containers_of(&dir).is_empty(), "{name}");
    }
}

#[test]
fn a_host_port_clash_names_the_environment_holding_it_leaves_no_container_and_no_docker_logs_hint() {
    let env = TestEnv::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let toml = format!("ports = [\"127.0.0.1:{port}:8000\"]\n");
    let holder = env.project("port-holder", &toml);
    env.berth(&holder, &["up"]).ok();
    let dir = env.project("port-wanter", &toml);
    let r = env.berth(&dir, &["up"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(&format!("host port {port} is held by the berth environment in {}", holder.display())),
        "{}",
        r.stderr
    );
    assert!(env.containers_of(&dir).is_empty(), "the failed up left a created container");
    // The hint was "see `docker logs` for the container": the container was already removed.
    assert!(!r.stderr.contains("docker logs"), "{}", r.stderr);
    assert!(r.stderr.contains("choose another host port in `ports`"), "{}", r.stderr);
}

#[test]
fn up_while_the_engine_is_still_removing_the_container_waits_instead_of_failing() {
    let env = TestEnv::new();
    let dir = env.project("quick-again", "");
    for round in 0..4 {
        env.berth(&dir, &["up"]).ok();
        let id = env.containers_of(&dir).pop().unwrap();
        // What a `down --force` or a killed `up` leaves for a moment: a removal in progress.
        let mut rm = std::process::Command::new("docker").args(["rm", "-f", &id]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 * round));
        let r = env.berth(&dir, &["up"]);
        rm.wait().unwrap();
        assert_eq!(r.code, 0, "round {round}: {}", r.stderr);
        env.berth(&dir, &["down", "--force"]).ok();
    }
}

#[test]
fn a_gpu_request_on_a_host_without_gpus_is_an_error_not_a_cpu_only_environment() {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), recorded("none")));
    for (name, devices, asked) in [("list", "[7]", "GPU 7"), ("count", "4", "4 GPUs")] {
        let dir = env.project(&format!("no-gpu-{name}"), &format!("[gpu]\ndevices = {devices}\n"));
        let r = env.berth(&dir, &["up", "--no-start"]).code(2);
        assert!(r.stderr.contains(&format!("asks for {asked}, but this host has no GPU")), "{}", r.stderr);
        assert!(env.containers_of(&dir).is_empty());
    }
    // The default (`all`) still means "whatever the host has": CPU only here.
    let dir = env.project("no-gpu-default", "");
    env.berth(&dir, &["up", "--no-start"]).ok();
}

#[test]
fn status_with_ipc_host_says_the_hosts_shm_not_64_mib() {
    let env = TestEnv::new();
    let dir = env.project("ipc-host", "[run]\nipc = \"host\"\n");
    env.berth(&dir, &["up"]).ok();
    let c = env.inspect(&dir);
    assert_eq!(c["HostConfig"]["IpcMode"], "host");
    let st = env.berth(&dir, &["status"]).ok();
    assert!(!st.stdout.contains("64 MiB"), "{}", st.stdout);
    assert!(st.stdout.contains("the host's /dev/shm"), "{}", st.stdout);
}

#[test]
fn shm_beside_ipc_host_is_an_error_at_its_line_in_up_and_the_compose_export() {
    let env = TestEnv::new();
    let dir = env.project("ipc-shm", "[run]\nipc = \"host\"\n[resources]\nshm = \"8g\"\n");
    let up = env.berth(&dir, &["up"]).code(2);
    assert!(up.stderr.contains("berth.toml:4:7: `resources.shm`"), "{}", up.stderr);
    assert!(up.stderr.contains("run.ipc = \"host\""), "{}", up.stderr);
    assert!(env.containers_of(&dir).is_empty());
    let export = env.berth(&dir, &["export", "compose"]).code(2);
    assert!(export.stderr.contains("berth.toml:4:7: `resources.shm`"), "{}", export.stderr);
    assert!(!dir.join("compose.yaml").exists() && !dir.join("docker-compose.yml").exists());
}

#[test]
fn sizes_and_counts_the_host_cannot_give_name_their_key_and_line() {
    let env = TestEnv::new();
    let cases = [
        (
            "shm-100t",
            "[resources]\nshm = \"100t\"\n",
            "berth.toml:2:7: `resources.shm`",
            "more than this host's RAM",
        ),
        (
            "shm-over-memory",
            "[resources]\nmemory = \"1g\"\nshm = \"2g\"\n",
            "berth.toml:3:7: `resources.shm`",
            "more than `resources.memory`",
        ),
        ("cpus", "[resources]\ncpus = 4096\n", "berth.toml:2:8: `resources.cpus`", "more than this host's"),
    ];
    for (name, toml, at, what) in cases {
        let dir = env.project(name, toml);
        let r = env.berth(&dir, &["up", "--no-start"]).code(2);
        assert!(r.stderr.contains(at) && r.stderr.contains(what), "{name}: {}", r.stderr);
        assert!(!r.stderr.contains("the engine refused"), "{name}: {}", r.stderr);
        assert!(env.containers_of(&dir).is_empty(), "{name}");
    }
    // A memory limit above the host's RAM can never be reached: a warning at its line.
    let dir = env.project("memory-100t", "[resources]\nmemory = \"100t\"\nshm = \"1g\"\n");
    let r = env.berth(&dir, &["up", "--no-start"]).ok();
    assert!(
        r.stderr.contains("warning: ") && r.stderr.contains("berth.toml:2:10: `resources.memory`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_dockerfile_projects_build_names_its_own_from_not_python_slim() {
    let env = TestEnv::new();
    let dir = env.project("own-from", "[image]\ndockerfile = \"Dockerfile\"\n");
    std::fs::write(dir.join("Dockerfile"), format!("FROM {IMAGE} AS base\nRUN true\nFROM base\n")).unwrap();
    let r = env.berth(&dir, &["build"]).ok();
    assert!(r.stderr.contains(&format!("from {IMAGE}")), "{}", r.stderr);
    assert!(!r.stderr.contains("python:3.12-slim"), "{}", r.stderr);
}

#[test]
fn pack_and_ship_of_an_image_not_built_yet_say_berth_build_not_docker_pull() {
    let env = TestEnv::new();
    let dir = env.project("unbuilt", &format!("[image]\nbase = \"{IMAGE}\"\npip = [\"tqdm\"]\n"));
    for args in [&["pack"][..], &["ship", "ssh://nobody@127.0.0.1:1"][..]] {
        let r = env.berth(&dir, args);
        assert_ne!(r.code, 0);
        assert!(
            r.stderr.contains("has not been built yet") && r.stderr.contains("`berth build`"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("docker pull"), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn a_failed_push_leaves_no_tag_behind() {
    let env = TestEnv::new();
    let dir = env.project("push-fails", "");
    let target = format!("127.0.0.1:1/berth-test/failed-push:{}", std::process::id());
    let r = env.berth(&dir, &["push", &target]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(!docker(&["image", "inspect", &target]).status.success(), "the tag {target} is left behind");
    assert!(docker(&["image", "inspect", IMAGE]).status.success(), "the image itself is kept");

    // A tag that named another image before points there again.
    let other = docker_ok(&["images", "-q", "berth-test/python:1"]);
    if !other.is_empty() {
        docker_ok(&["tag", "berth-test/python:1", &target]);
        let r = env.berth(&dir, &["push", &target]);
        assert_ne!(r.code, 0);
        let id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", &target]);
        let python = docker_ok(&["image", "inspect", "--format", "{{.Id}}", "berth-test/python:1"]);
        let _ = docker(&["rmi", &target]);
        assert_eq!(id, python, "the tag was not put back");
    }
}

#[test]
fn a_berth_folder_replaced_by_a_file_is_named_with_the_fix() {
    let env = TestEnv::new();
    let dir = env.project("berth-file", "");
    std::fs::write(dir.join(".berth"), "not a folder\n").unwrap();
    for args in [&["up"][..], &["run", "--", "true"][..]] {
        let r = env.berth(&dir, args);
        assert_ne!(r.code, 0);
        let path = dir.join(".berth").display().to_string();
        assert!(
            r.stderr.contains(&path) && r.stderr.contains("a file is in the way"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert!(env.containers_of(&dir).is_empty());
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "mounting a read-only tmpfs needs root")]
fn a_berth_folder_on_a_read_only_file_system_is_named_with_the_fix() {
    let env = TestEnv::new();
    let mnt = env.root.path().join("ro");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status();
    assert!(mounted.unwrap().success(), "mount a tmpfs at {}", mnt.display());
    let project = mnt.join("p");
    std::fs::create_dir_all(project.join(".berth")).unwrap();
    std::fs::write(project.join("berth.toml"), format!("[image]\nbase = \"{IMAGE}\"\n")).unwrap();
    std::process::Command::new("mount").args(["-o", "remount,ro"]).arg(&mnt).status().unwrap();
    let r = env.berth(&project, &["up"]);
    std::process::Command::new("umount").arg(&mnt).status().unwrap();
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains(&project.join(".berth").display().to_string()), "{}", r.stderr);
    assert!(r.stderr.contains("read-only file system") && r.stderr.contains("hint:"), "{}", r.stderr);
}

#[test]
fn invalid_utf8_in_berth_toml_is_reported_at_its_line_and_column() {
    let env = TestEnv::new();
    let dir = env.project("gbk", "");
    let mut bytes = b"name = \"gbk\"\n[env]\nNOTE = \"".to_vec();
    bytes.extend_from_slice(&[0xd6, 0xd0, 0xce, 0xc4]); // "中文" in GBK
    bytes.extend_from_slice(b"\"\n");
    std::fs::write(dir.join("berth.toml"), bytes).unwrap();
    let r = env.berth(&dir, &["up"]).code(2);
    assert!(r.stderr.contains("berth.toml:3:9: byte 0xd6 is not UTF-8"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
}

/// A stand-in for a PyTorch image: the test Python image with a torch distribution (metadata
/// and `torch/version.py` only) of this version and build.
fn torch_stand_in(tag: &str, version: &str, version_py: &str) {
    ensure_python_image();
    let script = format!(
        "d=$(python3 -c 'import sysconfig;print(sysconfig.get_paths()[\"purelib\"])') && mkdir -p $d/torch $d/torch-{version}.dist-info \
         && printf 'Metadata-Version: 2.1\\nName: torch\\nVersion: {version}\\n' > $d/torch-{version}.dist-info/METADATA \
         && printf 'torch/version.py,,\\n' > $d/torch-{version}.dist-info/RECORD \
         && printf \"__version__ = '{version}'\\n{version_py}\\n\" > $d/torch/version.py \
         && printf '[global]\\nretries = 0\\ntimeout = 2\\n' > /etc/pip.conf"
    );
    let helper = docker_ok(&["create", "berth-test/python:1", "sh", "-c", &script]);
    docker_ok(&["start", "-a", &helper]);
    docker_ok(&["commit", &helper, tag]);
    docker_ok(&["rm", &helper]);
}

#[test]
fn torchvision_follows_the_images_torch_and_its_wheel_index_with_any_base() {
    let env = TestEnv::new();
    let pid = std::process::id();
    let cases = [
        // The seeds' ROCm image: torch 2.5.1 built against ROCm 6.3; 2.5's wheels exist for 6.1/6.2.
        (
            format!("berth-test/torch-rocm-{pid}:1"),
            "2.5.1+rocm6.3.2",
            "cuda = None\nhip = '6.3.42134-a9a80e791'",
            "torchvision==0.20.1 torchaudio==2.5.1 --extra-index-url https://download.pytorch.org/whl/rocm6.2",
        ),
        (
            format!("berth-test/torch-cu124-{pid}:1"),
            "2.5.1+cu124",
            "cuda: Optional[str] = '12.4'\nhip = None",
            "torchvision==0.20.1 torchaudio==2.5.1 --extra-index-url https://download.pytorch.org/whl/cu124",
        ),
    ];
    for (tag, version, version_py, want) in &cases {
        torch_stand_in(tag, version, version_py);
        // An index that refuses at once: the build fails after saying what it would install.
        let toml = format!(
            "[image]\nbase = \"{tag}\"\npip = [\"torchvision\", \"torchaudio\"]\npip-index-url = \"http://127.0.0.1:9/simple\"\n"
        );
        let dir = env.project(&format!("companions-{}", version.replace(['.', '+'], "-")), &toml);
        let r = env.berth(&dir, &["build"]);
        let log = std::fs::read_to_string(dir.join(".berth/build.log")).unwrap_or_default();
        let _ = docker(&["rmi", tag]);
        assert_ne!(r.code, 0, "no network here: the install cannot succeed");
        assert!(log.contains(&format!("berth: torch companions: {want}")), "{version}:\n{log}\n{}", r.stderr);
    }
}

#[test]
fn the_gfx_advice_names_the_rocm_release_the_image_carries() {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), recorded("amd-igpu-2")));
    let tag = format!("berth-test/rocm63-{}:1", std::process::id());
    let helper = docker_ok(&["create", IMAGE, "true"]);
    docker_ok(&["commit", "--change", "ENV ROCM_VERSION=6.3.2", &helper, &tag]);
    docker_ok(&["rm", &helper]);
    let dir = env.project("rocm63", &format!("[image]\nbase = \"{tag}\"\n"));
    let up = env.berth(&dir, &["up", "--no-start"]);
    env.berth(&dir, &["down", "--force"]);
    let _ = docker(&["rmi", &tag]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(up.stderr.contains("ROCm 6.3's PyTorch wheels"), "{}", up.stderr);
    assert!(up.stderr.contains("HSA_OVERRIDE_GFX_VERSION_2 = \"10.3.0\""), "{}", up.stderr);

    // Neither env nor tag: the version file ROCm installs (gfx1151 is in 7.2's wheels, so a 7.2
    // image needs nothing for it; here the gfx1031 still needs the override under ROCm 7.2).
    let tag = format!("berth-test/rocm72file-{}:1", std::process::id());
    let helper = docker_ok(&[
        "create",
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /opt/rocm/.info && echo 7.2.0-43 > /opt/rocm/.info/version",
    ]);
    docker_ok(&["start", "-a", &helper]);
    docker_ok(&["commit", &helper, &tag]);
    docker_ok(&["rm", &helper]);
    let dir = env.project("rocm72file", &format!("[image]\nbase = \"{tag}\"\n"));
    let up = env.berth(&dir, &["up", "--no-start"]);
    let filter = format!("ancestor={tag}");
    let from_image = docker_ok(&["ps", "-aq", "--filter", &filter]).lines().count();
    env.berth(&dir, &["down", "--force"]);
    let _ = docker(&["rmi", &tag]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(up.stderr.contains("ROCm 7.2's PyTorch wheels"), "{}", up.stderr);
    assert_eq!(from_image, 1, "only the environment: the container that read the file is gone");
}
