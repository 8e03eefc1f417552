//! The engine accepted the plan: what `docker inspect` shows of containers berth created.

use std::path::Path;

use crate::support::*;

fn recorded(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts").join(name).display().to_string()
}

#[test]
fn shm_mounts_labels_and_user_are_as_planned() {
    let env = TestEnv::new();
    let data = env.root.path().join("datasets/idrid");
    std::fs::create_dir_all(&data).unwrap();
    let toml = format!(
        "mounts = [\".:/workspace\", \"{}:/data/idrid\", \"./out:/workspace/out\"]\n[resources]\nshm = \"1g\"\nmemory = \"2g\"\n",
        data.display()
    );
    let dir = env.project("accepted", &toml);
    env.berth(&dir, &["up"]).ok();
    let c = env.inspect(&dir);
    assert_eq!(c["HostConfig"]["ShmSize"], 1u64 << 30);
    assert_eq!(c["HostConfig"]["Memory"], 2u64 << 30);
    assert_eq!(c["HostConfig"]["Init"], true);
    assert_eq!(c["HostConfig"]["Privileged"], false);
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
    let mounts = c["Mounts"].as_array().unwrap();
    let find = |dst: &str| {
        mounts.iter().find(|m| m["Destination"] == dst).unwrap_or_else(|| panic!("no mount at {dst}"))
    };
    assert_eq!(find("/data/idrid")["RW"], false, "a dataset from outside the project is read-only");
    assert_eq!(find("/workspace")["RW"], true);
    assert_eq!(find("/workspace/out")["RW"], true);
    assert!(dir.join("out").is_dir(), "a missing source inside the project is created");
    assert_eq!(find("/berth/state")["Source"], dir.join(".berth").display().to_string());
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["dev.berth.managed"], "true");
    assert_eq!(labels["dev.berth.project"], dir.display().to_string());
    assert!(labels["dev.berth.config-hash"].as_str().unwrap().len() >= 12);
    assert!(!labels["dev.berth.owner"].as_str().unwrap().is_empty());
    // Inside, /dev/shm really is 1 GiB, not Docker's 64 MB.
    let df = env.berth(&dir, &["exec", "--", "df", "-k", "/dev/shm"]).ok();
    assert!(df.stdout.contains("1048576"), "{}", df.stdout);
    // The dataset cannot be written.
    let w = env.berth(&dir, &["exec", "--", "touch", "/data/idrid/x"]);
    assert_ne!(w.code, 0);
}

#[test]
fn a_missing_mount_source_outside_the_project_is_bad_input() {
    let env = TestEnv::new();
    let dir = env.project("missing", "mounts = [\"/nonexistent/berth-test-data:/data\"]\n");
    let r = env.berth(&dir, &["up"]).code(2);
    assert!(r.stderr.contains("berth.toml:1:"), "{}", r.stderr);
    assert!(env.containers_of(&dir).is_empty());
}

#[test]
fn nvidia_plan_becomes_the_gpus_device_request() {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), recorded("nvidia-2")));
    let dir = env.project("nvidia", "[gpu]\ndevices = [1]\n");
    env.berth(&dir, &["up", "--no-start"]).ok();
    let c = env.inspect(&dir);
    assert_eq!(c["State"]["Status"], "created");
    let reqs = c["HostConfig"]["DeviceRequests"].as_array().unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["Driver"], "");
    assert_eq!(reqs[0]["Capabilities"], serde_json::json!([["gpu"]]));
    let ids = reqs[0]["DeviceIDs"].as_array().unwrap();
    assert_eq!(ids.len(), 1);
    assert!(ids[0].as_str().unwrap().starts_with("GPU-"), "{ids:?}");
    let ulimits = c["HostConfig"]["Ulimits"].as_array().unwrap();
    // Unlimited, unless the engine may not raise limits (root without CAP_SYS_RESOURCE, as in
    // this VM): then its own hard limit, which is what a start can apply.
    let memlock = ulimits.iter().find(|u| u["Name"] == "memlock").expect("a memlock ulimit");
    let (raises, hard) = dockerd_memlock();
    let expected = if raises { -1 } else { hard.map_or(-1, |h| h as i64) };
    assert_eq!((memlock["Soft"].as_i64(), memlock["Hard"].as_i64()), (Some(expected), Some(expected)));

    // Starting it on this GPU-less engine fails with the cause and the fix.
    let r = env.berth(&dir, &["up"]).code(1);
    assert!(r.stderr.contains("could not select device driver"), "{}", r.stderr);
    assert!(r.stderr.contains("NVIDIA Container Toolkit"), "{}", r.stderr);
}

#[test]
fn nvidia_all_asks_for_every_gpu() {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), recorded("nvidia-2")));
    let dir = env.project("nvidia-all", "");
    env.berth(&dir, &["up", "--no-start"]).ok();
    let req = &env.inspect(&dir)["HostConfig"]["DeviceRequests"][0];
    assert_eq!(req["Count"], -1);
}

#[test]
fn amd_plan_becomes_devices_and_numeric_groups() {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), recorded("amd-igpu-2")));
    let dir = env.project("amd", "");
    env.berth(&dir, &["up", "--no-start"]).ok();
    let c = env.inspect(&dir);
    let devices: Vec<String> = c["HostConfig"]["Devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["PathOnHost"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        devices,
        vec!["/dev/kfd", "/dev/dri/renderD129", "/dev/dri/renderD130"],
        "the iGPU (renderD128) is left out"
    );
    assert_eq!(c["HostConfig"]["GroupAdd"], serde_json::json!(["110"]));
    assert!(c["HostConfig"]["DeviceRequests"].as_array().is_none_or(|a| a.is_empty()));
}

#[test]
fn an_unknown_gpu_index_is_bad_input() {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), recorded("nvidia-2")));
    let dir = env.project("gpu9", "[gpu]\ndevices = [9]\n");
    let r = env.berth(&dir, &["up"]).code(2);
    assert!(r.stderr.contains("GPU 9"), "{}", r.stderr);
    assert!(env.containers_of(&dir).is_empty());
}

/// Whether the Docker engine here may raise hard limits (root with CAP_SYS_RESOURCE), and its
/// own hard `memlock` (`None`: unlimited), read from the process behind the socket.
fn dockerd_memlock() -> (bool, Option<u64>) {
    let stream = std::os::unix::net::UnixStream::connect("/var/run/docker.sock").expect("docker.sock");
    let cred = rustix::net::sockopt::socket_peercred(&stream).expect("peer");
    let dir = format!("/proc/{}", cred.pid.as_raw_nonzero());
    let status = std::fs::read_to_string(format!("{dir}/status")).expect("status");
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    let limits = std::fs::read_to_string(format!("{dir}/limits")).expect("limits");
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok());
    (cred.uid.as_raw() == 0 && caps & (1 << 24) != 0, hard)
}
