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
fn spawn_configure(
    env: &TestEnv,
    dir: &std::path::Path,
    file: &std::path::Path,
    args: &[&str],
) -> std::process::Child {
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

/// The names in `dir` other than berth's lock file.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".berth-lock"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_symlinked_daemon_json_stays_a_link_and_its_target_is_written() {
    let env = TestEnv::new();
    let etc = env.root.path().join("etc-docker");
    let real_dir = env.root.path().join("config");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&real_dir).unwrap();
    let real = real_dir.join("daemon.json");
    std::fs::write(&real, ORIGINAL).unwrap();
    let link = etc.join("daemon.json");
    std::os::unix::fs::symlink("../config/daemon.json", &link).unwrap();

    let run =
        env.berth(&etc, &["host", "configure", "--config", link.to_str().unwrap(), "--live-restore"]).ok();
    assert!(run.stderr.contains("link"), "says it wrote through the link: {}", run.stderr);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(std::fs::read_link(&link).unwrap(), std::path::Path::new("../config/daemon.json"));
    let new: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(new["live-restore"], true, "the target has the change");
    assert_eq!(new["dns"], serde_json::json!(["10.0.0.2"]));
    let saved = backups(&real_dir);
    assert_eq!(saved.len(), 1, "the backup lies beside the file it copies");
    assert_eq!(std::fs::read_to_string(&saved[0]).unwrap(), ORIGINAL);
    assert_eq!(listing(&etc), ["daemon.json"], "nothing else beside the link");

    // A link to nothing is refused: berth would create a file wherever it points.
    let dangling = etc.join("dangling.json");
    std::os::unix::fs::symlink("../unmounted/daemon.json", &dangling).unwrap();
    let refused = env
        .berth(&etc, &["host", "configure", "--config", dangling.to_str().unwrap(), "--live-restore"])
        .code(2);
    assert!(
        refused.stderr.contains("does not exist") && refused.stderr.contains("hint:"),
        "{}",
        refused.stderr
    );
    assert!(!env.root.path().join("unmounted").exists(), "nothing created where it points");
    assert_eq!(listing(&etc), ["daemon.json", "dangling.json"]);
}

#[test]
fn a_write_that_fails_leaves_the_old_file_and_no_stray_backup() {
    let env = TestEnv::new();
    let dir = env.root.path().join("etc-docker");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("daemon.json");
    std::fs::write(&file, ORIGINAL).unwrap();
    // A target that fills up: the old file (and so its backup) fits, the new one does not. Works
    // as root too, unlike a read-only folder.
    let long_root = format!("/srv/{}", "d".repeat(3000));
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "trap '' XFSZ; ulimit -f 2; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(["host", "configure", "--config", file.to_str().unwrap(), "--data-root", &long_root])
        .current_dir(&dir)
        .env("HOME", &env.home)
        .env("NO_COLOR", "1");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("File too large"), "the write failed, as it should here: {stderr}");
    assert!(stderr.contains("left as it was") && stderr.contains("hint:"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ORIGINAL, "the original is intact");
    assert_eq!(listing(&dir), ["daemon.json"], "no backup and no temporary file are left");
}

#[test]
fn the_hint_for_a_broken_daemon_json_names_only_backups_that_exist() {
    let env = TestEnv::new();
    let dir = env.root.path().join("etc-docker");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("daemon.json");
    std::fs::write(&file, "{\"dns\": [\"10.0.0.2\",]}\n").unwrap();
    let args = ["host", "configure", "--config", file.to_str().unwrap(), "--live-restore"];
    let none = env.berth(&dir, &args).code(2);
    assert!(none.stderr.contains("hint:"), "{}", none.stderr);
    assert!(!none.stderr.contains("berth-backup"), "there is no backup to name: {}", none.stderr);

    let older = dir.join("daemon.json.berth-backup-20261101T080000Z");
    let newer = dir.join("daemon.json.berth-backup-20261118T110640Z");
    std::fs::write(&older, "{}\n").unwrap();
    std::fs::write(&newer, ORIGINAL).unwrap();
    let some = env.berth(&dir, &args).code(2);
    let hint = some.stderr.lines().find(|l| l.starts_with("hint:")).unwrap_or_default().to_string();
    assert!(hint.contains(&format!("sudo cp {} {}", newer.display(), file.display())), "{hint}");
    assert!(hint.contains("1 older"), "{hint}");
}

#[test]
fn a_configure_waits_for_one_already_writing_and_then_says_who_holds_it() {
    let env = TestEnv::new();
    let dir = env.root.path().join("etc-docker");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("daemon.json");
    std::fs::write(&file, ORIGINAL).unwrap();
    // Another configure in the middle of its write holds this lock.
    let lock = std::fs::File::create(dir.join(".daemon.json.berth-lock")).unwrap();
    lock.lock().unwrap();
    let started = std::time::Instant::now();
    let run =
        env.berth(&dir, &["host", "configure", "--config", file.to_str().unwrap(), "--live-restore"]).code(1);
    assert!(started.elapsed() >= std::time::Duration::from_secs(9), "it waited");
    assert!(run.stderr.contains("waiting for another `berth host configure`"), "{}", run.stderr);
    assert!(
        run.stderr.contains("another `berth host configure` is changing") && run.stderr.contains("hint:"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ORIGINAL);
    assert!(backups(&dir).is_empty());

    // Released in time, the waiting run goes on and writes.
    let waiting = spawn_configure(&env, &dir, &file, &["--live-restore"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ORIGINAL, "nothing written while it waits");
    drop(lock);
    let done = finish(waiting).ok();
    assert!(done.stderr.contains("wrote"), "{}", done.stderr);
    let new: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(new["live-restore"], true);
}

#[test]
fn a_configure_killed_mid_write_leaves_the_old_or_the_new_file_and_nothing_for_long() {
    let env = TestEnv::new();
    let dir = env.root.path().join("etc-docker");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("daemon.json");
    std::fs::write(&file, ORIGINAL).unwrap();
    // What a configure killed between writing its temporary file and renaming it leaves behind.
    std::fs::write(dir.join(".daemon.json.Ab3dE9.tmp"), "{\"half\": ").unwrap();
    std::fs::write(dir.join(".daemon.json.berth-backup-20261130T190231Z.Xy12Zq.tmp"), "{\"ha").unwrap();
    // Someone else's file is not berth's to remove.
    std::fs::write(dir.join(".other.json.Ab3dE9.tmp"), "{}").unwrap();

    // Kills spread over a whole run: each leaves the file old or new, whole.
    let timed = std::time::Instant::now();
    finish(spawn_configure(&env, &dir, &file, &["--cdi", "--dry-run"])).ok();
    let span = timed.elapsed().as_micros() as u64;
    for i in 0..20u64 {
        std::fs::write(&file, ORIGINAL).unwrap();
        let mut child = spawn_configure(&env, &dir, &file, &["--live-restore"]);
        std::thread::sleep(std::time::Duration::from_micros(span * i / 20));
        let _ = child.kill();
        let _ = child.wait();
        let text = std::fs::read_to_string(&file).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("kill {i}: {e}:\n{text}"));
        assert!(text == ORIGINAL || value["live-restore"] == true, "kill {i}: old or new:\n{text}");
        for b in backups(&dir) {
            assert_eq!(std::fs::read_to_string(&b).unwrap(), ORIGINAL, "kill {i}: a backup is whole");
        }
    }
    std::fs::write(&file, ORIGINAL).unwrap();
    env.berth(&dir, &["host", "configure", "--config", file.to_str().unwrap(), "--live-restore"]).ok();
    let temporaries: Vec<String> = listing(&dir).into_iter().filter(|n| n.ends_with(".tmp")).collect();
    assert_eq!(temporaries, [".other.json.Ab3dE9.tmp"], "the next configure removes what a killed one left");
}
