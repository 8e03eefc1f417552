//! `berth code`: brings the environment up and opens VS Code attached to it (a stand-in `code`
//! on PATH records what it was asked), or prints the command for a machine that reaches this
//! one over SSH.

use std::path::Path;
use std::process::Stdio;

use crate::support::TestEnv;

/// The JSON inside `vscode-remote://attached-container+<hex><folder>`, and the folder.
fn decode(uri: &str) -> (serde_json::Value, String) {
    let rest = uri.strip_prefix("vscode-remote://attached-container+").expect("attached-container URI");
    let hex_len = rest.find('/').expect("a folder");
    let bytes: Vec<u8> =
        (0..hex_len).step_by(2).map(|i| u8::from_str_radix(&rest[i..i + 2], 16).expect("hex")).collect();
    (serde_json::from_slice(&bytes).expect("json"), rest[hex_len..].to_string())
}

fn fake_code(bin: &Path, record: &Path) {
    std::fs::create_dir_all(bin).expect("bin");
    let script = format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", record.display());
    let path = bin.join("code");
    std::fs::write(&path, script).expect("fake code");
    assert!(std::process::Command::new("chmod").arg("755").arg(&path).status().expect("chmod").success());
}

#[test]
fn code_brings_the_environment_up_and_opens_vs_code_on_its_work_folder() {
    let mut env = TestEnv::new();
    let bin = env.root.path().join("bin");
    let record = env.root.path().join("code-args");
    fake_code(&bin, &record);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    env.env.push(("PATH".into(), path));
    let dir = env.project("coded", "[gpu]\nvendor = \"none\"\n");

    let out = env
        .command(&dir, &["code"])
        .env_remove("SSH_CONNECTION")
        .stdin(Stdio::null())
        .output()
        .expect("berth");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let args = std::fs::read_to_string(&record).expect("code was started");
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(args[0], "--folder-uri", "{args:?}");
    let (json, folder) = decode(args[1]);
    let inspect = env.inspect(&dir);
    let name = inspect["Name"].as_str().expect("name");
    assert_eq!(json["containerName"], name, "{json}");
    assert!(json.get("settings").is_none(), "a local engine needs no host: {json}");
    assert_eq!(folder, "/workspace");
    assert_eq!(inspect["State"]["Running"], true, "code brings the environment up");

    // From a laptop that reaches this server over SSH: print, never start VS Code here.
    std::fs::remove_file(&record).expect("reset");
    let run = env.berth(&dir, &["code", "--ssh", "me@gpu-box"]).ok();
    let uri =
        run.stdout.trim().strip_prefix("code --folder-uri ").expect("a code command").trim_matches('\'');
    let (json, _) = decode(uri);
    assert_eq!(json["settings"]["host"], "ssh://me@gpu-box", "{json}");
    assert!(!record.exists(), "--ssh prints the command instead of starting VS Code");

    // In an SSH session on the server: the address comes from SSH_CONNECTION.
    let out = env
        .command(&dir, &["--json", "code"])
        .env("SSH_CONNECTION", "10.1.2.3 50000 10.9.8.7 2222")
        .stdin(Stdio::null())
        .output()
        .expect("berth");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let host = doc["docker_host"].as_str().expect("docker_host");
    assert!(host.starts_with("ssh://") && host.ends_with("@10.9.8.7:2222"), "{doc}");
    assert_eq!(doc["launched"], false);
    assert!(!record.exists());
}
