//! up / exec / stop / status / down on a real engine: the Must-show path of a new user.

use crate::support::*;

#[test]
fn up_is_idempotent_work_survives_stop_and_down_guards_it() {
    let env = TestEnv::new();
    let dir = env.project("life", "");
    let first = env.berth(&dir, &["up"]).ok();
    assert!(first.stderr.contains("created"), "{}", first.stderr);
    let ids = env.containers_of(&dir);
    assert_eq!(ids.len(), 1);

    let again = env.berth(&dir, &["up"]).ok();
    assert!(again.stderr.contains("is running"), "{}", again.stderr);
    assert_eq!(env.containers_of(&dir), ids, "a second up keeps the same container");

    env.berth(&dir, &["exec", "--", "sh", "-c", "echo precious > /root/model.pt"]).ok();
    env.berth(&dir, &["stop"]).ok();
    assert_eq!(env.inspect(&dir)["State"]["Running"], false);
    let started = env.berth(&dir, &["up"]).ok();
    assert!(started.stderr.contains("started"), "{}", started.stderr);
    let cat = env.berth(&dir, &["exec", "--", "cat", "/root/model.pt"]).ok();
    assert_eq!(cat.stdout, "precious\n");
    assert_eq!(env.containers_of(&dir), ids);

    let refused = env.berth(&dir, &["down"]).code(4);
    assert!(refused.stderr.contains("/root/model.pt (added)"), "{}", refused.stderr);
    assert!(refused.stderr.contains("hint:"), "{}", refused.stderr);
    assert_eq!(env.containers_of(&dir), ids, "a refused down changes nothing");

    env.berth(&dir, &["down", "--force"]).ok();
    assert!(env.containers_of(&dir).is_empty());
    // Nothing else went: the image, the project and berth's host folder are still there.
    assert!(docker(&["image", "inspect", IMAGE]).status.success());
    assert!(dir.join("berth.toml").exists() && dir.join(".berth").is_dir());
}

#[test]
fn down_of_an_untouched_environment_needs_no_force() {
    let env = TestEnv::new();
    let dir = env.project("clean", "");
    env.berth(&dir, &["up"]).ok();
    // Noise only: caches, /tmp, shell history, work in the mounted project.
    env.berth(
        &dir,
        &[
            "exec",
            "--",
            "sh",
            "-c",
            "mkdir -p ~/.cache/x && touch ~/.cache/x/y /tmp/t ~/.ash_history /workspace/out.txt",
        ],
    )
    .ok();
    env.berth(&dir, &["down"]).ok();
    assert!(env.containers_of(&dir).is_empty());
    assert!(dir.join("out.txt").exists(), "work in the mounted project stays on the host");
}

#[test]
fn two_ups_at_the_same_moment_leave_one_container() {
    let env = TestEnv::new();
    let dir = env.project("race", "");
    let children: Vec<_> = (0..2)
        .map(|_| {
            env.command(&dir, &["up"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(env.containers_of(&dir).len(), 1);
}

#[test]
fn a_foreign_container_holding_the_name_is_left_alone() {
    let env = TestEnv::new();
    let dir = env.project("foreign", "");
    // Learn the name berth wants, then take it with a container berth did not make.
    let st = env.berth(&dir, &["status", "--json"]).ok();
    let name = serde_json::from_str::<serde_json::Value>(&st.stdout).unwrap()["container_name"]
        .as_str()
        .unwrap()
        .to_string();
    let id = docker_ok(&["create", "--name", &name, IMAGE, "sleep", "1"]);
    let refused = env.berth(&dir, &["up"]).code(4);
    assert!(refused.stderr.contains("berth did not create it"), "{}", refused.stderr);
    let down = env.berth(&dir, &["down", "--force"]).code(4);
    assert!(down.stderr.contains("berth did not create it"), "{}", down.stderr);
    let still = docker_ok(&["inspect", "-f", "{{.Id}} {{.State.Status}}", &name]);
    assert_eq!(still, format!("{id} created"), "the foreign container is untouched");
    docker_ok(&["rm", "-f", &id]);
}

#[test]
fn a_changed_file_is_drift_and_recreate_applies_it() {
    let env = TestEnv::new();
    let dir = env.project("drift", "[resources]\nshm = \"256m\"\n");
    env.berth(&dir, &["up"]).ok();
    std::fs::write(
        dir.join("berth.toml"),
        format!("[resources]\nshm = \"512m\"\n[image]\nbase = \"{IMAGE}\"\n"),
    )
    .unwrap();
    let status = env.berth(&dir, &["status"]).ok();
    assert!(status.stdout.contains("shm: 256 MiB → 512 MiB"), "{}", status.stdout);
    let refused = env.berth(&dir, &["up"]).code(4);
    assert!(refused.stderr.contains("shm: 256 MiB → 512 MiB"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--recreate"), "{}", refused.stderr);
    env.berth(&dir, &["exec", "--", "touch", "/root/work"]).ok();
    let guarded = env.berth(&dir, &["up", "--recreate"]).code(4);
    assert!(guarded.stderr.contains("/root/work"), "{}", guarded.stderr);
    env.berth(&dir, &["up", "--recreate", "--force"]).ok();
    assert_eq!(env.inspect(&dir)["HostConfig"]["ShmSize"], 512 << 20);
}

#[test]
fn status_and_ls_speak_json() {
    let env = TestEnv::new();
    let a = env.project("one/same", "name = \"same\"");
    let b = env.project("two/same", "name = \"same\"");
    let absent = env.berth(&a, &["status", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&absent.stdout).unwrap();
    assert_eq!(v["state"], "absent");
    env.berth(&a, &["up"]).ok();
    env.berth(&b, &["up"]).ok();
    assert_eq!(env.containers_of(&a).len() + env.containers_of(&b).len(), 2, "same name, two environments");
    let st = env.berth(&a, &["status", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    for key in ["name", "state", "container_id", "image", "project"] {
        assert!(!v[key].is_null(), "status --json lacks {key}: {v}");
    }
    assert_eq!(v["state"], "running");
    assert_eq!(v["image"], IMAGE);
    let ls = env.berth(&a, &["ls", "--json"]).ok();
    let list: Vec<serde_json::Value> = serde_json::from_str(&ls.stdout).unwrap();
    let ours: Vec<&serde_json::Value> = list
        .iter()
        .filter(|e| e["project"] == a.to_str().unwrap() || e["project"] == b.to_str().unwrap())
        .collect();
    assert_eq!(ours.len(), 2);
    for e in ours {
        for key in ["name", "state", "container_id", "image", "project"] {
            assert!(!e[key].is_null(), "ls --json entry lacks {key}: {e}");
        }
        assert_eq!(e["name"], "same");
    }
    let table = env.berth(&a, &["ls"]).ok();
    assert!(table.stdout.starts_with("NAME"), "{}", table.stdout);
}

#[test]
fn an_unmounted_dataset_does_not_block_stop_status_or_down() {
    let env = TestEnv::new();
    let data = env.root.path().join("nfs-dataset");
    std::fs::create_dir_all(&data).unwrap();
    let dir = env.project("nfs", &format!("mounts = [\".:/workspace\", \"{}:/data\"]\n", data.display()));
    env.berth(&dir, &["up"]).ok();
    std::fs::remove_dir_all(&data).unwrap();
    // Creating needs the source; acting on the existing environment does not.
    let status = env.berth(&dir, &["status", "--json"]).ok();
    assert!(status.stdout.contains("\"running\""), "{}", status.stdout);
    env.berth(&dir, &["stop"]).ok();
    env.berth(&dir, &["down"]).ok();
    assert!(env.containers_of(&dir).is_empty());
    let r = env.berth(&dir, &["up"]).code(2);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
}

#[test]
fn a_moved_project_finds_its_environment_and_adopt_recreates_it_here_with_its_changes() {
    let env = TestEnv::new();
    let name = format!("mvproj{}", std::process::id());
    let dir = env.project(&name, &format!("name = \"{name}\"\n"));
    env.berth(&dir, &["exec", "--", "sh", "-c", "mkdir -p /opt && echo tuned > /opt/settings.conf"]).ok();
    env.berth(&dir, &["run", "--name", "long", "--", "sleep", "300"]).ok();
    let old = env.containers_of(&dir);
    let moved = env.root.path().join(format!("{name}-renamed"));
    std::fs::rename(&dir, &moved).unwrap();

    // status shows the environment, not "no container yet".
    let status = env.berth(&moved, &["status"]).ok();
    assert!(
        status.stdout.contains("moved") && status.stdout.contains(&dir.display().to_string()),
        "{}",
        status.stdout
    );
    assert!(!status.stdout.contains("no container yet"), "{}", status.stdout);
    // No second container on the same files, silently or otherwise.
    let up = env.berth(&moved, &["up"]).code(4);
    assert!(up.stderr.contains("berth up --adopt"), "{}", up.stderr);
    assert!(env.containers_of(&moved).is_empty());
    // Its job is still seen running (it is): adopting waits for it.
    let jobs = env.berth(&moved, &["jobs"]).ok();
    assert!(jobs.stdout.contains("running"), "{}", jobs.stdout);
    let refused = env.berth(&moved, &["up", "--adopt"]).code(4);
    assert!(refused.stderr.contains("running jobs: long"), "{}", refused.stderr);
    env.berth(&moved, &["kill", "long", "--grace", "1"]).ok();
    let adopted = env.berth(&moved, &["up", "--adopt"]).ok();
    assert!(adopted.stderr.contains("adopted"), "{}", adopted.stderr);
    assert!(env.containers_of(&dir).is_empty(), "the old container is gone");
    assert_eq!(env.containers_of(&moved).len(), 1);
    assert_ne!(env.containers_of(&moved), old);
    // The writable layer came along through a commit.
    let cat = env.berth(&moved, &["exec", "--", "cat", "/opt/settings.conf"]).ok();
    assert_eq!(cat.stdout, "tuned\n");
    env.berth(&moved, &["down"]).ok();
    for id in docker_ok(&["images", "-q", &format!("berth/{name}")]).lines() {
        let _ = docker(&["rmi", "-f", id]);
    }
}

/// After `mv proj proj2` (the name follows the folder), `up --adopt` said "berth-root-proj2-… has
/// running jobs" and "committed berth-root-proj2-…": a container that did not exist, while the
/// one holding the job was berth-root-proj-….
#[test]
fn adopt_after_a_rename_names_the_container_that_exists() {
    let env = TestEnv::new();
    let name = format!("rnproj{}", std::process::id());
    let dir = env.project(&name, "");
    env.berth(&dir, &["exec", "--", "sh", "-c", "echo tuned > /etc/tuned.conf"]).ok();
    env.berth(&dir, &["run", "--name", "long", "--", "sleep", "300"]).ok();
    let old = env.inspect(&dir)["Name"].as_str().unwrap().trim_start_matches('/').to_string();
    let moved = env.root.path().join(format!("{name}-renamed"));
    std::fs::rename(&dir, &moved).unwrap();
    let refused = env.berth(&moved, &["up", "--adopt"]).code(4);
    assert!(refused.stderr.contains(&format!("{old} has running jobs: long")), "{}", refused.stderr);
    env.berth(&moved, &["kill", "long", "--grace", "1"]).ok();
    let adopted = env.berth(&moved, &["up", "--adopt"]).ok();
    assert!(adopted.stderr.contains(&format!("committed {old} as")), "{}", adopted.stderr);
    env.berth(&moved, &["down"]).ok();
    for id in docker_ok(&["images", "-q", &format!("berth/{name}-renamed")]).lines() {
        let _ = docker(&["rmi", "-f", id]);
    }
}

#[test]
fn with_berth_toml_deleted_status_stop_and_down_still_find_the_environment() {
    let env = TestEnv::new();
    let dir = env.project("notoml", "");
    env.berth(&dir, &["up"]).ok();
    std::fs::remove_file(dir.join("berth.toml")).unwrap();
    let status = env.berth(&dir, &["status"]).ok();
    assert!(status.stdout.contains("running"), "{}", status.stdout);
    assert!(status.stderr.contains("berth.toml is missing"), "{}", status.stderr);
    env.berth(&dir, &["stop"]).ok();
    assert_eq!(env.inspect(&dir)["State"]["Running"], false);
    env.berth(&dir, &["down"]).ok();
    assert!(env.containers_of(&dir).is_empty());
    // Nothing to act on: the old error, exit 2.
    env.berth(&dir, &["status"]).code(2);
}

#[test]
fn a_half_edited_berth_toml_never_locks_out_the_running_environment_and_its_jobs() {
    let env = TestEnv::new();
    let dir = env.project("typo", "");
    env.berth(&dir, &["run", "--name", "sleeper", "--", "sleep", "60"]).ok();
    let file = dir.join("berth.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{good}\nwrokdir = \"/x\"\n")).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    // From below the project too: jobs, logs and kill reach the job, naming the file's error.
    let jobs = env.berth(&dir.join("src"), &["jobs"]).ok();
    assert!(jobs.stdout.contains("sleeper"), "{}", jobs.stdout);
    assert!(jobs.stderr.contains("wrokdir") && jobs.stderr.contains("cannot be read"), "{}", jobs.stderr);
    env.berth(&dir, &["kill", "sleeper"]).ok();
    // What would change or re-create it still needs a readable file.
    let up = env.berth(&dir, &["up"]).code(2);
    assert!(up.stderr.contains("wrokdir"), "{}", up.stderr);
    env.berth(&dir, &["down", "--force"]).ok();
    assert!(env.containers_of(&dir).is_empty());
}

#[test]
fn a_copy_of_a_project_that_is_still_there_gets_its_own_environment() {
    let env = TestEnv::new();
    let name = format!("cpproj{}", std::process::id());
    let dir = env.project(&name, &format!("name = \"{name}\"\n"));
    env.berth(&dir, &["up"]).ok();
    let copy = env.root.path().join(format!("{name}-copy"));
    assert!(std::process::Command::new("cp").arg("-a").arg(&dir).arg(&copy).status().unwrap().success());
    let up = env.berth(&copy, &["up"]).ok();
    assert!(up.stderr.contains("created"), "{}", up.stderr);
    assert_eq!(env.containers_of(&dir).len(), 1);
    assert_eq!(env.containers_of(&copy).len(), 1);
}

#[test]
fn a_mount_over_files_the_image_holds_says_what_it_hides() {
    let env = TestEnv::new();
    let name = format!("hides{}", std::process::id());
    let dir = env.project(&name, "mounts = [\"./data:/data\"]\n\n[image]\ndockerfile = \"Dockerfile\"\n");
    std::fs::write(dir.join("Dockerfile"), format!("FROM {IMAGE}\nCOPY vocab.txt /data/vocab.txt\n"))
        .unwrap();
    std::fs::write(dir.join("vocab.txt"), "a b c\n").unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/train.csv"), "x\n").unwrap();
    // Written in `mounts`: made as asked, and the hidden file is named.
    let up = env.berth(&dir, &["up"]).ok();
    assert!(
        up.stderr.contains("hides what the image holds there") && up.stderr.contains("vocab.txt"),
        "{}",
        up.stderr
    );
    let ls = env.berth(&dir, &["exec", "--", "ls", "/data"]).ok();
    assert_eq!(ls.stdout, "train.csv\n");
    let image = env.inspect(&dir)["Image"].as_str().unwrap().to_string();
    env.berth(&dir, &["down"]).ok();
    let _ = docker(&["rmi", "-f", &image]);
}
