//! `berth doctor` on this machine (a real engine, no GPU) and on the recorded hosts, through the
//! binary: the table, `--json`, and the exit code (1 only when a check fails).

use std::path::Path;

use crate::support::*;

fn recorded(name: &str) -> String {
    format!("{}/tests/hosts/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn doctor_on(tree: &str, args: &[&str]) -> Run {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), recorded(tree)));
    let dir = env.root.path().to_path_buf();
    env.berth(&dir, args)
}

#[test]
fn doctor_tells_the_truth_about_this_machine() {
    let env = TestEnv::new();
    let dir = env.root.path().to_path_buf();
    let run = env.berth(&dir, &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    let checks = report["checks"].as_array().expect("checks");
    let row =
        |id: &str| checks.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no {id}: {checks:?}"));
    let version = docker_ok(&["version", "--format", "{{.Server.Version}}"]);
    assert_eq!(row("engine")["status"], "ok");
    assert!(row("engine")["detail"].as_str().unwrap().contains(&version), "{}", row("engine")["detail"]);
    assert_eq!(row("daemon-json")["status"], "ok", "this machine's daemon.json parses");
    assert!(row("disk")["detail"].as_str().unwrap().contains("free of"));
    let gpu_less = ["/proc/driver/nvidia", "/dev/kfd", "/dev/dxg"].iter().all(|p| !Path::new(p).exists());
    if gpu_less {
        assert_eq!(row("gpus")["detail"], "no GPU found: environments run on the CPU");
    }
    let failed = checks.iter().any(|c| c["status"] == "fail");
    assert_eq!(run.code, i32::from(failed), "exit 1 exactly when a check failed");
    assert_eq!(report["ok"], !failed);

    let table = env.berth(&dir, &["doctor"]);
    assert!(
        table.stdout.lines().any(|l| l.starts_with("✓  engine") && l.contains(&version)),
        "{}",
        table.stdout
    );
    assert!(
        table.stderr.contains("passed")
            || table.stderr.contains("problem")
            || table.stderr.contains("warning")
    );
}

#[test]
fn doctor_on_recorded_hosts_exits_by_what_it_found() {
    let cases = [
        ("nvidia-2", 0, "gpu-reload"),
        ("nvidia-no-toolkit", 1, "nvidia-toolkit"),
        ("nvidia-systemd-nocdi", 0, "gpu-reload"),
        ("amd-igpu-2", 0, "amd-groups"),
        ("socket-666", 1, "socket"),
        ("docker-group-pending", 1, "socket"),
    ];
    for (tree, code, problem) in cases {
        let run = doctor_on(tree, &["doctor"]);
        assert_eq!(run.code, code, "{tree}:\n{}{}", run.stdout, run.stderr);
        let line = run.stdout.lines().position(|l| l.contains(&format!("  {problem} "))).expect(problem);
        let row = run.stdout.lines().nth(line).unwrap_or_default();
        assert!(row.starts_with('!') || row.starts_with('✗'), "{tree}: {row}");
        let fix = run.stdout.lines().nth(line + 1).unwrap_or_default();
        assert!(fix.trim_start().starts_with("fix: "), "{tree}: a fix line follows the problem: {fix}");
    }
    let wsl = doctor_on("wsl2", &["doctor", "--json"]).code(0);
    let report: serde_json::Value = serde_json::from_str(&wsl.stdout).expect("json");
    assert_eq!(report["failures"], 0);
    assert!(report["checks"].as_array().unwrap().iter().any(|c| c["id"] == "wsl-gpu" && c["status"] == "ok"));
}

#[test]
fn doctor_on_a_podman_gpu_host_lists_the_cdi_names_podman_reads() {
    // Issue 15 review: on Podman doctor showed Docker's nvidia runtime rows, which Podman never uses.
    let run = doctor_on("podman-nvidia-2", &["doctor", "--json"]).code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let checks = report["checks"].as_array().expect("checks");
    let ids: Vec<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, ["engine", "socket", "podman-init", "disk", "cgroups", "nvidia-driver", "cdi-spec"]);
    let cdi = checks.iter().find(|c| c["id"] == "cdi-spec").expect("cdi-spec row");
    assert_eq!(cdi["status"], "ok");
    assert!(
        cdi["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("/etc/cdi/nvidia.yaml names nvidia.com/gpu=0, 1, all"),
        "{cdi}"
    );
}

#[test]
fn doctor_gives_an_engine_that_never_answers_ten_seconds_and_reports_it() {
    // A socket that accepts connections and says nothing: a hung engine.
    let mut env = TestEnv::new();
    let sock = env.root.path().join("hung.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    env.env.push(("DOCKER_HOST".into(), format!("unix://{}", sock.display())));
    let dir = env.root.path().to_path_buf();
    let started = std::time::Instant::now();
    let run = env.berth(&dir, &["doctor", "--json"]).code(1);
    let took = started.elapsed();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let engine = report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == "engine").cloned();
    let engine = engine.expect("engine row");
    assert_eq!(engine["status"], "fail");
    assert!(engine["detail"].as_str().unwrap_or("").contains("did not answer within 10 s"), "{engine}");
    assert!(
        took >= std::time::Duration::from_secs(10) && took < std::time::Duration::from_secs(30),
        "{took:?}"
    );
}
