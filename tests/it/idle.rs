//! Idle environments: `berth idle --check` with an injected clock (`BERTH_NOW`) stops an
//! environment with no session, job or GPU use past its stop-after, keeping its writable layer
//! (`up` resumes it); one with a running job, an open `berth shell` or GPU memory held stays up,
//! and containers berth did not make are never touched. And the timer `host configure
//! --idle-timer` installs, by content.
//!
//! The scenarios share one test: a check acts for every environment of its user, so two idle
//! tests running at once would stop each other's.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;

const H: u64 = 3_600;

/// The check at `at`, on this machine with nvidia-smi's answer recorded (`live_gpu_host`).
fn check(env: &TestEnv, dir: &std::path::Path, at: u64, extra: &[&str]) -> serde_json::Value {
    let mut cmd = env.command(dir, &["idle", "--check", "--json"]);
    cmd.args(extra).env("BERTH_NOW", at.to_string());
    cmd.env("BERTH_HOST_ROOT", env.root.path().join("live-host"));
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&text).unwrap()
}

fn entry<'a>(report: &'a serde_json::Value, dir: &std::path::Path) -> &'a serde_json::Value {
    let dir = dir.canonicalize().unwrap();
    report["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["project"] == dir.display().to_string())
        .unwrap_or_else(|| panic!("{} not in {report}", dir.display()))
}

fn status(env: &TestEnv, dir: &std::path::Path, at: u64) -> serde_json::Value {
    let mut cmd = env.command(dir, &["status", "--json"]);
    cmd.env("BERTH_NOW", at.to_string());
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn idle_past_stop_after_is_stopped_and_kept_while_a_job_a_shell_or_gpu_memory_is_not() {
    let mut env = TestEnv::new();
    let leases = env.root.path().join("leases");
    env.env.push(("BERTH_LEASE_DIR".into(), leases.display().to_string()));
    let toml = "[idle]\nstop-after = \"4h\"\n";
    let idle = env.project("idle-quiet", toml);
    let busy_job = env.project("idle-job", toml);
    let busy_shell = env.project("idle-shell", toml);
    let busy_gpu = env.project("idle-gpu", toml);
    for d in [&idle, &busy_job, &busy_shell, &busy_gpu] {
        env.berth(d, &["up"]).ok();
    }
    // Containers berth did not make: a plain one, and one carrying the labels of an image berth
    // committed (for a project whose berth.toml asks to be stopped when idle).
    let tag = env.root.path().file_name().unwrap().to_string_lossy().to_lowercase();
    let plain = PlainContainer::run(&format!("{tag}-plain"), &[], &["sleep", "600"]);
    let copied = env.project("idle-copy", toml);
    let project = format!("dev.berth.project={}", copied.canonicalize().unwrap().display());
    let copy = PlainContainer::run(
        &format!("{tag}-copy"),
        &["dev.berth.managed=true", &project, &format!("dev.berth.owner-uid={}", whoami_uid())],
        &["sleep", "600"],
    );
    // A process left running in idle-gpu (its init, standing for a training a shell started
    // before it closed) holds 1000 MiB on GPU 0.
    let gpu_pid: u32 = docker_ok(&["inspect", "-f", "{{.State.Pid}}", &env.containers_of(&busy_gpu)[0]])
        .trim()
        .parse()
        .unwrap();
    live_gpu_host(env.root.path(), &[(gpu_pid, 1000, 0)]);
    env.berth(&idle, &["exec", "--", "sh", "-c", "echo written-before > /idle-marker"]).ok();
    let id = env.inspect(&idle)["Id"].as_str().unwrap().to_string();
    // A lease taken in the project is for its environment (GPU indices of a recorded host).
    let host = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts/nvidia-2");
    let mut lease = env.command(&idle, &["lease", "--gpus", "1", "--for", "8h"]);
    let out = lease.env("BERTH_HOST_ROOT", &host).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Another user's lease naming the same environment (written by hand; a second real user
    // needs root): root's check, which releases the environment's owner's leases with it,
    // leaves that one alone.
    let theirs = leases.join("berth-lease-theirs.json");
    if cfg!(berth_root_tests) {
        let other = real_user("berth-lease-a");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(env.root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let name = env.inspect(&idle)["Name"].as_str().unwrap().trim_start_matches('/').to_string();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let forged =
            format!(r#"{{"gpus":[0],"created":{now},"expires":{},"environment":"{name}"}}"#, now + 20 * H);
        let wrote = std::process::Command::new("setpriv")
            .args([&format!("--reuid={other}"), &format!("--regid={other}"), "--clear-groups", "sh", "-c"])
            .arg(format!("printf '%s' '{forged}' > {}", theirs.display()))
            .status()
            .unwrap();
        assert!(wrote.success());
    }

    env.berth(&busy_job, &["run", "--name", "sleeper", "--", "sleep", "600"]).ok();
    let pid = busy_job.join(".berth/jobs/sleeper/pid");
    for _ in 0..100 {
        if std::fs::read_to_string(&pid).is_ok_and(|p| !p.trim().is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut shell = crate::terminal::in_pty(&env, &busy_shell, "shell")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script");
    let mut shell_in = shell.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let first = check(&env, &idle, now, &[]);
    assert_eq!(entry(&first, &idle)["verdict"], "idle", "{first}");
    assert_eq!(entry(&first, &idle)["stops_at"], now + 4 * H, "the first check vouches only from itself");
    assert_eq!(entry(&first, &busy_job)["verdict"], "busy");
    assert!(entry(&first, &busy_job)["signals"].to_string().contains("job sleeper"), "{first}");
    assert!(entry(&first, &busy_shell)["signals"].to_string().contains("session (terminal"), "{first}");
    assert!(
        entry(&first, &busy_gpu)["signals"].to_string().contains("GPU memory (1000 MiB on GPU 0)"),
        "{first}"
    );
    let names: Vec<&str> =
        first["environments"].as_array().unwrap().iter().map(|e| e["container"].as_str().unwrap()).collect();
    assert!(!names.contains(&plain.name.as_str()) && !names.contains(&copy.name.as_str()), "{names:?}");

    // status says when it stops, and what keeps the others alive.
    let st = status(&env, &idle, now + H);
    assert!(st["idle"]["stops_at"].as_str().is_some(), "{st}");
    assert_eq!(st["idle"]["stop_after"], 4 * H);
    let st = status(&env, &busy_shell, now + H);
    assert!(st["idle"]["kept_alive_by"].to_string().contains("session"), "{st}");
    let text = env.berth(&busy_job, &["status"]).ok().stdout;
    assert!(text.contains("kept alive by job sleeper"), "{text}");

    // A dry run past the stop-after names it and stops nothing.
    let dry = check(&env, &idle, now + 5 * H, &["--dry-run"]);
    assert_eq!(entry(&dry, &idle)["action"], "would-stop", "{dry}");
    assert_eq!(env.inspect(&idle)["State"]["Running"], true);

    let later = check(&env, &idle, now + 5 * H, &[]);
    assert_eq!(entry(&later, &idle)["action"], "stopped", "{later}");
    assert_eq!(
        entry(&later, &idle)["released_leases"][0],
        "GPUs 1 (".to_string() + &whoami() + ")",
        "{later}"
    );
    assert_eq!(entry(&later, &idle)["released_leases"].as_array().map(Vec::len), Some(1), "{later}");
    if cfg!(berth_root_tests) {
        assert!(theirs.exists(), "regression: root's check released another user's lease naming it");
    }
    let left: serde_json::Value =
        serde_json::from_str(&env.berth(&idle, &["lease", "ls", "--json"]).ok().stdout).unwrap();
    assert!(!left.to_string().contains("\"gpus\":[1]"), "the lease is gone: {left}");
    assert_eq!(entry(&later, &busy_job)["action"], "kept", "{later}");
    assert_eq!(entry(&later, &busy_shell)["action"], "kept", "{later}");
    assert_eq!(entry(&later, &busy_gpu)["action"], "kept", "{later}");
    assert_eq!(env.inspect(&busy_gpu)["State"]["Running"], true);
    for c in [&plain, &copy] {
        let running = docker_ok(&["inspect", "-f", "{{.State.Running}}", &c.id]);
        assert_eq!(running.trim(), "true", "{} was left alone", c.name);
    }
    let after = env.inspect(&idle);
    assert_eq!(after["State"]["Running"], false, "stopped");
    assert_eq!(after["Id"], id.as_str(), "the same container: never removed");
    assert_eq!(env.inspect(&busy_job)["State"]["Running"], true);
    assert_eq!(env.inspect(&busy_shell)["State"]["Running"], true);
    let st = env.berth(&idle, &["status"]).ok().stdout;
    assert!(st.contains("stopped by the idle check"), "{st}");

    // `up` resumes it with its writable layer, and the next check counts afresh from itself.
    env.berth(&idle, &["up"]).ok();
    assert_eq!(env.inspect(&idle)["Id"], id.as_str());
    let marker = env.berth(&idle, &["exec", "--", "cat", "/idle-marker"]).ok().stdout;
    assert_eq!(marker.trim(), "written-before");
    let resumed = check(&env, &idle, now + 5 * H, &[]);
    assert_eq!(entry(&resumed, &idle)["action"], "kept", "{resumed}");
    assert_eq!(entry(&resumed, &idle)["stops_at"], now + 9 * H, "{resumed}");

    shell_in.write_all(b"exit 0\n").unwrap();
    drop(shell_in);
    let _ = shell.wait_with_output();
}

#[test]
fn the_timer_is_a_root_systemd_service_and_timer_or_a_cron_entry() {
    let env = TestEnv::new();
    let dir = env.root.path().join("units");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    // Root runs the binary every five minutes: one another user could replace is refused.
    let loose = env.root.path().join("berth-anyone-can-change");
    std::fs::write(&loose, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let args = ["host", "configure", "--idle-timer", "cron", "--idle-timer-dir", d, "--berth-path"];
    let r = env.command(env.root.path(), &args).arg(&loose).output().unwrap();
    assert_eq!(r.status.code(), Some(4), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("can be changed by users other than root"));
    if !is_root() {
        let r = env
            .berth(env.root.path(), &["host", "configure", "--idle-timer", "systemd", "--idle-timer-dir", d]);
        let r = r.code(4);
        assert!(r.stderr.contains("only root can change it"), "{}", r.stderr);
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "nothing was written");
    }
    let dry = [
        "host",
        "configure",
        "--idle-timer",
        "systemd",
        "--idle-timer-dir",
        d,
        "--berth-path",
        "/bin/true",
        "--dry-run",
    ];
    env.berth(env.root.path(), &dry).ok();
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "a dry run writes nothing");

    let args =
        ["host", "configure", "--idle-timer", "systemd", "--idle-timer-dir", d, "--berth-path", "/bin/true"];
    let r = env.berth(env.root.path(), &args).ok();
    assert!(r.stderr.contains("systemctl enable --now berth-idle.timer"), "{}", r.stderr);
    let service = std::fs::read_to_string(dir.join("berth-idle.service")).unwrap();
    assert!(service.contains("\nExecStart=/bin/true idle --check\n"), "{service}");
    assert!(
        service.contains("\nType=oneshot\n") && service.contains("\nProtectHome=read-only\n"),
        "{service}"
    );
    let timer = std::fs::read_to_string(dir.join("berth-idle.timer")).unwrap();
    assert!(
        timer.contains("\nOnUnitActiveSec=5min\n") && timer.contains("\nWantedBy=timers.target\n"),
        "{timer}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(dir.join("berth-idle.timer")).unwrap().permissions().mode() & 0o777, 0o644);
    let again = env.berth(env.root.path(), &args).ok();
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);

    let cron = [
        "host",
        "configure",
        "--idle-timer",
        "cron",
        "--idle-timer-dir",
        d,
        "--berth-path",
        "/bin/true",
        "--json",
    ];
    let out: serde_json::Value =
        serde_json::from_str(&env.berth(env.root.path(), &cron).ok().stdout).unwrap();
    assert_eq!(out["scheduler"], "cron");
    let entry = std::fs::read_to_string(dir.join("berth-idle")).unwrap();
    assert!(entry.ends_with("\n*/5 * * * * root /bin/true idle --check --quiet\n"), "{entry}");
}

#[test]
fn idle_without_check_says_what_to_do() {
    let env = TestEnv::new();
    let r = env.berth(env.root.path(), &["idle"]).code(2);
    assert!(r.stderr.contains("berth idle --check"), "{}", r.stderr);
}

fn whoami_uid() -> String {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn whoami() -> String {
    let out = std::process::Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
