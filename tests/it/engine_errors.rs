//! An engine that cannot be reached, or used, gets an error with the cause and the fix; the
//! engine is found the way the docker CLI finds it (DOCKER_HOST, then the current context).

use crate::support::*;

#[test]
fn no_engine_at_the_socket() {
    let mut env = TestEnv::new();
    env.env.push(("DOCKER_HOST".into(), "unix:///nonexistent/berth/docker.sock".into()));
    let dir = env.project("noengine", "");
    let r = env.berth(&dir, &["up"]).code(3);
    assert!(
        r.stderr.contains("no container engine at unix:///nonexistent/berth/docker.sock"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: start Docker"), "{}", r.stderr);
}

#[test]
fn an_engine_that_refuses_connections() {
    let mut env = TestEnv::new();
    // Port 1 on loopback: nothing listens there.
    env.env.push(("DOCKER_HOST".into(), "tcp://127.0.0.1:1".into()));
    let dir = env.project("refused", "");
    let r = env.berth(&dir, &["status"]).code(3);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
}

#[test]
fn a_malformed_docker_host_is_bad_input() {
    let mut env = TestEnv::new();
    env.env.push(("DOCKER_HOST".into(), "npipe:////./pipe/docker_engine".into()));
    let dir = env.project("badhost", "");
    let r = env.berth(&dir, &["up"]).code(2);
    assert!(r.stderr.contains("unix://, tcp:// and ssh://"), "{}", r.stderr);
}

#[test]
fn the_current_docker_context_is_followed() {
    use sha2_free_context as ctx;
    let mut env = TestEnv::new();
    let config = env.root.path().join("docker-config");
    ctx::write(&config, "elsewhere", "unix:///nonexistent/context/docker.sock");
    env.env.push(("DOCKER_CONFIG".into(), config.display().to_string()));
    env.env.push(("DOCKER_HOST".into(), String::new()));
    let dir = env.project("context", "");
    let r = env.berth(&dir, &["status"]).code(3);
    assert!(
        r.stderr.contains("/nonexistent/context/docker.sock"),
        "the context's endpoint is used: {}",
        r.stderr
    );
    ctx::write(&config, "local", "unix:///var/run/docker.sock");
    env.berth(&dir, &["status"]).ok();
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "switching to another uid needs root")]
fn permission_denied_explains_the_docker_group_and_never_chmod() {
    let env = TestEnv::new();
    let dir = env.project("denied", "");
    chown_tree(env.root.path(), 4343, 4343);
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=4343", "--regid=4343", "--clear-groups", env!("CARGO_BIN_EXE_berth"), "up"])
        .current_dir(&dir)
        .env("HOME", &env.home)
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("permission denied on the engine socket"), "{stderr}");
    assert!(stderr.contains("`docker` group") && stderr.contains("newgrp docker"), "{stderr}");
    assert!(!stderr.contains("chmod"), "{stderr}");
}

#[test]
fn an_image_that_cannot_be_pulled_is_explained_and_nothing_is_created() {
    let env = TestEnv::new();
    let dir = env.project("nopull", "[image]\nbase = \"berth-test/not-here:1\"\n");
    let r = env.berth(&dir, &["up"]).code(1);
    assert!(r.stderr.contains("berth-test/not-here:1"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert!(env.containers_of(&dir).is_empty());
}

/// Writes a Docker CLI context the way `docker context create` does, without the docker CLI.
mod sha2_free_context {
    use std::path::Path;

    pub fn write(config: &Path, name: &str, host: &str) {
        // The folder is named by the sha256 of the context name; compute it with coreutils.
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s '{name}' | sha256sum | cut -d' ' -f1")])
            .output()
            .unwrap();
        let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let meta = config.join("contexts/meta").join(digest);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
        )
        .unwrap();
        std::fs::write(config.join("config.json"), format!(r#"{{"currentContext":"{name}"}}"#)).unwrap();
    }
}

#[test]
fn engine_facts_come_from_the_real_engine() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let facts = rt.block_on(async {
        let engine = berth::engine::Engine::connect().await.expect("connect");
        engine.facts().await.expect("facts")
    });
    let version = docker_ok(&["version", "--format", "{{.Server.Version}}"]);
    assert_eq!(facts.product, "Docker");
    assert_eq!(facts.server_version, version);
    assert!(facts.runtimes.contains(&"runc".to_string()), "{facts:?}");
    assert!(!facts.data_root.is_empty() && !facts.cgroup_version.is_empty(), "{facts:?}");
}

#[test]
fn ssh_docker_host_goes_through_ssh_and_dial_stdio() {
    // A stand-in `ssh` first on PATH records how berth calls it and then does what the remote
    // side would: `docker system dial-stdio` against this machine's engine.
    let mut env = TestEnv::new();
    let bin = env.root.path().join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.root.path().join("ssh.log");
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{}'\nDOCKER_HOST=unix:///var/run/docker.sock exec docker system dial-stdio\n",
        log.display()
    );
    let fake = bin.join("ssh");
    std::fs::write(&fake, script).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let dir = env.project("overssh", "");
    // Created where the engine runs; then used through ssh.
    env.berth(&dir, &["up"]).ok();
    env.env.push(("PATH".into(), path));
    env.env.push(("DOCKER_HOST".into(), "ssh://me@gpu-box:2222".into()));
    let r = env.berth(&dir, &["exec", "--", "echo", "hello over ssh"]).ok();
    assert_eq!(r.stdout, "hello over ssh\n");
    let calls = std::fs::read_to_string(&log).unwrap();
    let first = calls.lines().next().unwrap();
    assert!(first.contains("-p 2222 -- me@gpu-box docker system dial-stdio"), "{first}");
    let st: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(st["state"], "running");
    // Creating needs this machine's folders and GPUs, which a remote engine would not see.
    let other = env.project("overssh-new", "");
    let r = env.berth(&other, &["up"]).code(2);
    assert!(r.stderr.contains("run berth on the server itself"), "{}", r.stderr);
    assert!(env.containers_of(&other).is_empty());
    assert_eq!(env.containers_of(&dir).len(), 1);
}
