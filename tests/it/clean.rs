//! `berth clean` on an engine that also holds containers and images berth did not create, and
//! another user's environment: only the caller's reclaimable berth items go, the space freed is
//! reported, and a container holding work needs --force.
//!
//! berth runs as a uid of its own (so other tests' and other people's environments on this
//! engine are never in its scope); the test, as root, makes the foreign things around it.

use std::process::Command;

use crate::support::*;

/// Images and containers the test made outside berth; removed even when an assertion fails.
struct Made {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        for i in &self.images {
            let _ = docker(&["rmi", "-f", i]);
        }
    }
}

fn exists(kind: &str, what: &str) -> bool {
    docker(&[kind, "inspect", what]).status.success()
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "switching to another uid needs root")]
fn clean_removes_only_the_callers_reclaimable_berth_items_and_reports_the_space() {
    let uid = 20_000 + std::process::id() % 20_000;
    let mut env = TestEnv::new();
    env.as_user = Some((uid, uid, format!("cleaner{uid}")));
    chown_tree(env.root.path(), uid, uid);
    let tag = format!("berth-clean-test-{uid}");
    let mut made = Made { containers: vec![], images: vec![] };

    // The caller's environments: one stopped and untouched, one stopped holding work, one running.
    // No network: nothing here needs one, and the engine's default bridge is shared with others.
    let toml = "[run]\nnetwork = \"none\"\n";
    let idle = env.project("idle", toml);
    env.berth(&idle, &["up"]).ok();
    env.berth(&idle, &["exec", "--", "sh", "-c", "head -c 600000 /dev/urandom > /tmp/blob"]).ok();
    let work = env.project("work", toml);
    env.berth(&work, &["up"]).ok();
    env.berth(&work, &["exec", "--", "sh", "-c", "echo weights > ~/model.pt"]).ok();
    let live = env.project("live", toml);
    env.berth(&live, &["up"]).ok();
    let idle_id = env.containers_of(&idle)[0].clone();
    let work_id = env.containers_of(&work)[0].clone();
    let live_id = env.containers_of(&live)[0].clone();

    // berth images: an untagged snapshot of `idle`; a tagged snapshot of `live`, then two builds
    // of `live` (imported with the labels a berth build sets), each newer than the one before.
    let dangling = docker_ok(&["commit", &idle_id]);
    made.images.push(dangling.clone());
    let snapshot = format!("berth/{tag}-live:commit-1");
    made.images.push(docker_ok(&["commit", &live_id, &snapshot]));
    let tar = env.root.path().join("x.tar");
    let status =
        Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&idle).arg("berth.toml").status().unwrap();
    assert!(status.success());
    let live_project = live.canonicalize().unwrap();
    let build = |name: &str| {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        docker_ok(&[
            "import",
            "--change",
            "LABEL dev.berth.managed=true",
            "--change",
            &format!("LABEL dev.berth.owner-uid={uid}"),
            "--change",
            &format!("LABEL dev.berth.project={}", live_project.display()),
            tar.to_str().unwrap(),
            name,
        ])
    };
    let older = format!("berth/{tag}-live:b1");
    let newer = format!("berth/{tag}-live:b2");
    made.images.push(build(&older));
    made.images.push(build(&newer));
    env.berth(&idle, &["stop"]).ok();
    env.berth(&work, &["stop"]).ok();

    // Things berth did not make: a stopped container, its snapshot, an imported image.
    let foreign = format!("foreign-{tag}");
    made.containers.push(foreign.clone());
    docker_ok(&["create", "--network", "none", "--name", &foreign, IMAGE, "true"]);
    let foreign_snapshot = docker_ok(&["commit", &foreign]);
    made.images.push(foreign_snapshot.clone());
    let imported = format!("foreign-{tag}/x:1");
    let tar = env.root.path().join("x.tar");
    let status =
        Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&idle).arg("berth.toml").status().unwrap();
    assert!(status.success());
    made.images.push(docker_ok(&["import", tar.to_str().unwrap(), &imported]));
    // Another user's stopped environment, and its snapshot.
    let other_project = env.root.path().canonicalize().unwrap().join("others");
    let others = docker_ok(&[
        "create",
        "--network",
        "none",
        "--label",
        "dev.berth.managed=true",
        "--label",
        &format!("dev.berth.owner-uid={}", uid + 1),
        "--label",
        &format!("dev.berth.project={}", other_project.display()),
        IMAGE,
        "true",
    ]);
    made.containers.push(others.clone());
    let others_snapshot = docker_ok(&["commit", &others]);
    made.images.push(others_snapshot.clone());

    // Looking changes nothing and lists exactly the caller's reclaimable items.
    let look = json(&env.berth(&idle, &["clean", "--dry-run", "--json"]).ok().stdout);
    let items = look["items"].as_array().unwrap();
    let find =
        |id: &str| items.iter().find(|i| i["id"].as_str().is_some_and(|x| x == id || x.starts_with(id)));
    let item_ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(items.len(), 5, "idle, work (kept), both snapshots (one kept), the older build: {item_ids:?}");
    assert_eq!(find(&idle_id).unwrap()["remove"], true, "{:#}", find(&idle_id).unwrap());
    assert_eq!(find(&work_id).unwrap()["remove"], false);
    assert!(find(&work_id).unwrap()["kept_because"].as_str().unwrap().contains("model.pt"));
    assert_eq!(find(&dangling).unwrap()["reason"], "dangling");
    assert!(find(&dangling).unwrap()["bytes"].as_u64().unwrap() >= 600_000, "the snapshot's own layer");
    assert_eq!(items.iter().find(|i| i["name"] == older).unwrap()["reason"], "superseded");
    let kept_snapshot = items.iter().find(|i| i["name"] == snapshot).unwrap();
    assert_eq!(
        (kept_snapshot["reason"].as_str(), kept_snapshot["remove"].as_bool()),
        (Some("superseded"), Some(false))
    );
    assert!(look["reclaimable_bytes"].as_u64().unwrap() >= 600_000);
    assert_eq!(look["freed_bytes"], 0);
    assert!(exists("container", &idle_id) && exists("image", &dangling));

    // Without a terminal to ask, it refuses rather than guess.
    env.berth(&idle, &["clean"]).code(4);
    assert!(exists("container", &idle_id));

    let done = env.berth(&idle, &["clean", "--yes"]).ok();
    assert!(done.stderr.contains("removed 3 items, freed"), "{}", done.stderr);
    assert!(done.stderr.contains("keeping container"), "{}", done.stderr);
    assert!(!exists("container", &idle_id), "the untouched stopped environment went");
    assert!(!exists("image", &dangling), "the untagged snapshot went");
    assert!(!exists("image", &older), "the superseded build went");
    assert!(exists("image", &snapshot), "a superseded snapshot needs --force");
    assert!(exists("container", &work_id), "the environment holding work stays");
    assert!(
        exists("container", &live_id) && exists("image", &newer),
        "the running one and its newest image stay"
    );
    for foreign_thing in [&foreign, &others] {
        assert!(exists("container", foreign_thing), "{foreign_thing} is not the caller's");
    }
    for image in [&foreign_snapshot, &imported, &others_snapshot] {
        assert!(exists("image", image), "{image} is not the caller's");
    }
    assert!(exists("image", IMAGE));

    let forced = env.berth(&idle, &["clean", "--yes", "--force"]).ok();
    assert!(forced.stderr.contains("removed 2 items,"), "{}", forced.stderr);
    assert!(!exists("container", &work_id) && !exists("image", &snapshot));
    let empty = json(&env.berth(&idle, &["clean", "--dry-run", "--json"]).ok().stdout);
    assert_eq!(empty["items"], serde_json::json!([]));
}
