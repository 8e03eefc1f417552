//! `berth host configure` on a temporary daemon.json holding keys berth does not know: they
//! survive, in place; a timestamped backup is left beside it; a file that does not parse is
//! refused and left as it was.

use crate::support::*;

const ORIGINAL: &str = r#"{
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "log-opts": { "max-size": "10m", "max-file": "3" },
  "default-address-pools": [{ "base": "10.200.0.0/16", "size": 24 }],
  "dns": ["10.0.0.2"]
}
"#;

fn backups(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("daemon.json.berth-backup-"))
        .collect()
}

#[test]
fn configure_merges_backs_up_and_keeps_every_other_key() {
    let env = TestEnv::new();
    let dir = env.root.path().join("etc-docker");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("daemon.json");
    std::fs::write(&file, ORIGINAL).unwrap();
    let config = file.to_str().unwrap();
    let args = ["host", "configure", "--config", config, "--registry-mirror", "https://mirror.example.com"];

    let dry = env
        .berth(&dir, &[&args[..], &["--live-restore", "--data-root", "/srv/docker", "--dry-run"]].concat())
        .ok();
    assert!(dry.stdout.contains("+  \"live-restore\": true"), "{}", dry.stdout);
    assert!(dry.stdout.contains("+  \"data-root\": \"/srv/docker\""), "{}", dry.stdout);
    assert!(dry.stderr.contains("dry run"), "{}", dry.stderr);
    assert!(
        dry.stderr.contains("sudo systemctl restart docker"),
        "data-root needs a restart: {}",
        dry.stderr
    );
    assert!(
        dry.stderr.contains("stay there"),
        "moving data-root warns about what stays behind: {}",
        dry.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ORIGINAL, "a dry run writes nothing");
    assert!(backups(&dir).is_empty());

    let real = env.berth(&dir, &[&args[..], &["--live-restore", "--nvidia-runtime"]].concat()).ok();
    assert!(
        real.stderr.contains("sudo systemctl reload docker"),
        "reloadable changes need no restart: {}",
        real.stderr
    );
    let saved = backups(&dir);
    assert_eq!(saved.len(), 1, "one backup");
    assert_eq!(
        std::fs::read_to_string(&saved[0]).unwrap(),
        ORIGINAL,
        "the backup is the old file, byte for byte"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let new: serde_json::Value = serde_json::from_str(&text).expect("the new file is valid JSON");
    let old: serde_json::Value = serde_json::from_str(ORIGINAL).unwrap();
    for key in ["storage-driver", "log-driver", "log-opts", "default-address-pools", "dns"] {
        assert_eq!(new[key], old[key], "{key} survives");
    }
    assert_eq!(new["registry-mirrors"], serde_json::json!(["https://mirror.example.com"]));
    assert_eq!(new["live-restore"], true);
    assert_eq!(new["runtimes"]["nvidia"]["path"], "nvidia-container-runtime");
    let order: Vec<usize> = ["storage-driver", "log-opts", "dns", "registry-mirrors"]
        .iter()
        .map(|k| text.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "keys keep their order, new ones come last:\n{text}");

    let again = env.berth(&dir, &[&args[..], &["--live-restore", "--json"]].concat()).ok();
    let outcome: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(
        (outcome["written"].clone(), outcome["changes"].clone()),
        (false.into(), serde_json::json!([]))
    );
    assert_eq!(backups(&dir).len(), 1, "nothing to change, nothing written");
}

#[test]
fn a_daemon_json_that_does_not_parse_is_refused_and_left_alone() {
    let env = TestEnv::new();
    let dir = env.root.path().to_path_buf();
    let file = dir.join("daemon.json");
    let broken = "{\n  \"data-root\": \"/srv/docker\",\n  \"dns\": [\"10.0.0.2\",]\n}\n";
    std::fs::write(&file, broken).unwrap();
    let run =
        env.berth(&dir, &["host", "configure", "--config", file.to_str().unwrap(), "--live-restore"]).code(2);
    assert!(run.stderr.contains("line 3"), "says where: {}", run.stderr);
    assert!(run.stderr.contains("berth changed nothing") && run.stderr.contains("hint:"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), broken);
    assert!(backups(&dir).is_empty());
    let nothing = env.berth(&dir, &["host", "configure", "--config", file.to_str().unwrap()]).code(2);
    assert!(nothing.stderr.contains("nothing to change"), "{}", nothing.stderr);
}

/// Runs `berth host configure --config FILE ARGS...` without waiting for it.
fn spawn_configure(env: &TestEnv, dir: &std::path::Path, file: &std::path::Path, args: &[&str]) -> std::process::Child {
    let mut all = vec!["host", "configure", "--config", file.to_str().unwrap()];
    all.extend_from_slice(args);
    env.command(dir, &all)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth")
}

fn finish(child: std::process::Child) -> Run {
    let out = child.wait_with_output().expect("wait for berth");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn two_configures_at_once_both_say_wrote_and_both_changes_survive() {
    let env = TestEnv::new();
    let dir = env.root.path().to_path_buf();
    for round in 0..12 {
        let file = dir.join(format!("daemon-{round}.json"));
        std::fs::write(&file, ORIGINAL).unwrap();
        let a = spawn_configure(&env, &dir, &file, &["--registry-mirror", "https://mirror.example.com"]);
        let b = spawn_configure(&env, &dir, &file, &["--live-restore"]);
        let (a, b) = (finish(a).ok(), finish(b).ok());
        let text = std::fs::read_to_string(&file).unwrap();
        let new: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            (new["registry-mirrors"].clone(), new["live-restore"].clone()),
            (serde_json::json!(["https://mirror.example.com"]), true.into()),
            "round {round}: both changes are in the file:\n{text}\nfirst: {}\nsecond: {}",
            a.stderr,
            b.stderr
        );
        assert_eq!(new["dns"], serde_json::json!(["10.0.0.2"]), "round {round}: other keys survive");
        assert!(a.stderr.contains("wrote") && b.stderr.contains("wrote"), "{}\n{}", a.stderr, b.stderr);
        let prefix = format!("daemon-{round}.json.berth-backup-");
        let saved = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(&prefix))
            .count();
        assert_eq!(saved, 2, "round {round}: each run backed up what it changed");
    }
}
