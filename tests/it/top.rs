//! `berth top` on recorded hosts (nvidia-smi answers, procfs, KFD sysfs, the engine's container
//! list and job pid files kept in the tree) and on this GPU-less machine.

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
