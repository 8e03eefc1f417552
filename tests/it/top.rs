//! `berth top` on recorded hosts (nvidia-smi answers, procfs, KFD sysfs, the engine's container
//! list and job pid files kept in the tree) and on this GPU-less machine.

use std::process::Command;

use crate::support::*;

fn top_on(tree: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), format!("{}/tests/hosts/{tree}", env!("CARGO_MANIFEST_DIR"))));
    let dir = env.root.path().to_path_buf();
    let run = env.berth(&dir, &[&["top", "--json"], args].concat()).ok();
    serde_json::from_str(&run.stdout).expect("a JSON array")
}

/// `(pid, who)` per GPU, `who` as the table words it.
fn summary(gpus: &[serde_json::Value]) -> Vec<Vec<(u64, String)>> {
    gpus.iter()
        .map(|g| {
            g["processes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let who = &p["who"];
                    let words = match who["kind"].as_str().unwrap() {
                        "environment" => format!("{} job {}", who["environment"], who["job"]),
                        "other-users-environment" => format!("env of {}", who["owner"]),
                        "container" => format!("container {}", who["container"]),
                        "unknown-container" => "unknown container".to_string(),
                        other => other.to_string(),
                    };
                    (p["pid"].as_u64().unwrap(), words)
                })
                .collect()
        })
        .collect()
}

#[test]
fn nvidia_processes_are_matched_to_environments_jobs_containers_and_the_host() {
    let gpus = top_on("nvidia-2", &[]);
    assert_eq!(gpus.len(), 2);
    assert_eq!((gpus[0]["used_mib"].as_u64(), gpus[0]["total_mib"].as_u64()), (Some(29734), Some(49140)));
    assert_eq!(
        summary(&gpus),
        [
            vec![
                (412345, "\"sdcnet\" job \"train\"".to_string()),
                (501234, "container \"jupyter\"".to_string()),
                (412399, "\"sdcnet\" job null".to_string()),
            ],
            vec![(600001, "env of \"bob\"".to_string()), (3100, "host".to_string())],
        ]
    );
    let everyone = top_on("nvidia-2", &["--all-users"]);
    assert_eq!(summary(&everyone)[1][0], (600001, "\"llm\" job \"serve\"".to_string()));
}

#[test]
fn amd_processes_come_from_kfd_sysfs() {
    let gpus = top_on("amd-igpu-2", &[]);
    assert_eq!(gpus.len(), 3);
    assert_eq!(
        summary(&gpus),
        [
            vec![],
            vec![(7001, "\"sd\" job \"gen\"".to_string()), (7200, "unknown container".to_string())],
            vec![(7100, "host".to_string())],
        ]
    );
    assert_eq!(gpus[1]["processes"][0]["used_mib"], 15360);
    assert_eq!(gpus[2]["processes"][0]["user"], "ollama");
}

#[test]
fn top_on_a_machine_without_gpus_says_so() {
    // The recorded GPU-less host: the same on every machine, one with GPUs too.
    let env = TestEnv::new();
    let dir = env.root.path().to_path_buf();
    let none = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts/none");
    let top =
        |args: &[&str]| env.command(&dir, args).env("BERTH_HOST_ROOT", &none).output().expect("run berth");
    let run = top(&["top"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("no GPUs to show"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json = top(&["top", "--json"]);
    assert_eq!(String::from_utf8_lossy(&json.stdout).trim(), "[]");
}

/// On the real engine, with this machine's procfs (only nvidia-smi's answer is recorded): a
/// berth job, a plain `docker run` container, a `docker run` carrying berth's image labels
/// (what running an image berth committed gives) and another user's process on the host are
/// each named for what they are, with their users and memory. Regression: the labelled plain
/// container was named as the caller's environment.
#[test]
#[cfg_attr(not(berth_root_tests), ignore = "the host process runs as another real user")]
fn real_containers_jobs_and_host_processes_are_attributed_on_the_real_engine() {
    let env = TestEnv::new();
    let dir = env.project("live-top", "");
    env.berth(&dir, &["up"]).ok();
    env.berth(&dir, &["run", "--name", "train", "--", "sleep", "301"]).ok();
    let id = env.inspect(&dir)["Id"].as_str().unwrap().to_string();
    let job = host_pid_in(&id, "sleep 301");
    let pid_file = dir.join(".berth/jobs/train/pid");
    for _ in 0..100 {
        if std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let tag = env.root.path().file_name().unwrap().to_string_lossy().to_lowercase();
    let plain = PlainContainer::run(&format!("{tag}-jupyter"), &[], &["sleep", "302"]);
    let project = format!("dev.berth.project={}", dir.canonicalize().unwrap().display());
    let copy = PlainContainer::run(
        &format!("{tag}-copy"),
        &["dev.berth.managed=true", &project, "dev.berth.owner-uid=0"],
        &["sleep", "303"],
    );
    let other = real_user("berth-lease-a");
    let mut host = Command::new("setpriv")
        .args([&format!("--reuid={other}"), &format!("--regid={other}"), "--clear-groups", "sleep", "304"])
        .spawn()
        .unwrap();
    let host_pid = host.id();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let root = live_gpu_host(
        env.root.path(),
        &[(job, 9000, 0), (plain.pid(), 20480, 0), (copy.pid(), 4096, 1), (host_pid, 512, 1)],
    );
    let mut env = env;
    env.env.push(("BERTH_HOST_ROOT".into(), root.display().to_string()));
    env.env.push(("BERTH_LEASE_DIR".into(), env.root.path().join("leases").display().to_string()));
    let run = env.berth(&dir, &["top", "--json"]).ok();
    let _ = host.kill();
    let _ = host.wait();
    let gpus: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let p = |g: usize, i: usize| &gpus[g]["processes"][i];
    let who = |g: usize, i: usize| (p(g, i)["pid"].as_u64().unwrap() as u32, p(g, i)["who"].clone());
    assert_eq!(who(0, 0).0, plain.pid(), "most memory first: {gpus:?}");
    assert_eq!(who(0, 0).1, serde_json::json!({"kind": "container", "container": plain.name}));
    assert_eq!(p(0, 0)["user"], "root");
    assert_eq!(who(0, 1).0, job);
    assert_eq!(who(0, 1).1["kind"], "environment", "{gpus:?}");
    assert_eq!(
        (who(0, 1).1["environment"].as_str(), who(0, 1).1["job"].as_str()),
        (Some("live-top"), Some("train"))
    );
    assert_eq!(who(1, 0).1, serde_json::json!({"kind": "container", "container": copy.name}), "{gpus:?}");
    assert_eq!((who(1, 1).0, who(1, 1).1["kind"].as_str()), (host_pid, Some("host")));
    assert_eq!(p(1, 1)["user"], "berth-lease-a");
    assert_eq!(p(1, 1)["used_mib"], 512);
    assert_eq!(
        (gpus[0]["utilization_percent"].as_u64(), gpus[1]["utilization_percent"].as_u64()),
        (Some(92), Some(64))
    );
    let text = env.berth(&dir, &["top"]).ok().stdout;
    assert!(text.contains("GPU 0  NVIDIA RTX A6000  29734 / 49140 MiB  92% busy"), "{text}");
    assert!(text.contains(&format!("container {} (not berth)", copy.name)), "{text}");
}
