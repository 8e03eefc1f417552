//! A non-root host user in the `docker` group: files in mounts are theirs, their home inside is
//! writable and persistent, and `ls` shows each user their own environments.

use crate::support::*;

const UID: u32 = 4242;

fn as_alice() -> TestEnv {
    let mut env = TestEnv::new();
    env.as_user = Some((UID, UID, "alice".into()));
    chown_tree(env.root.path(), UID, UID);
    env
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "switching to another uid needs root")]
fn files_written_inside_belong_to_the_host_user_and_home_persists() {
    use std::os::unix::fs::MetadataExt;
    let env = as_alice();
    let dir = env.project("mine", "");
    env.berth(&dir, &["up"]).ok();
    let who = env
        .berth(&dir, &["exec", "--", "sh", "-c", "id -u; id -un; echo $HOME; touch /workspace/result.txt"])
        .ok();
    assert_eq!(who.stdout, format!("{UID}\nalice\n/home/alice\n"));
    let meta = std::fs::metadata(dir.join("result.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (UID, UID));
    env.berth(&dir, &["exec", "--", "sh", "-c", "echo kept > ~/notes.txt"]).ok();
    env.berth(&dir, &["stop"]).ok();
    env.berth(&dir, &["up"]).ok();
    let notes = env.berth(&dir, &["exec", "--", "cat", "/home/alice/notes.txt"]).ok();
    assert_eq!(notes.stdout, "kept\n");
    let c = env.inspect(&dir);
    assert_eq!(c["Config"]["User"], format!("{UID}:{UID}"));
    assert_eq!(c["Config"]["Labels"]["dev.berth.owner"], "alice");
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "switching to another uid needs root")]
fn ls_shows_the_callers_environments() {
    let mut env = as_alice();
    let dir = env.project("alices", "");
    env.berth(&dir, &["up"]).ok();
    let mine = env.berth(&dir, &["ls", "--json"]).ok();
    let has = |out: &str| {
        serde_json::from_str::<Vec<serde_json::Value>>(out)
            .unwrap()
            .iter()
            .any(|e| e["project"] == dir.to_str().unwrap())
    };
    assert!(has(&mine.stdout), "alice sees her environment");
    env.as_user = None;
    let root = env.berth(&dir, &["ls", "--json"]).ok();
    assert!(!has(&root.stdout), "another user does not see it by default");
    let all = env.berth(&dir, &["ls", "--json", "--all-users"]).ok();
    assert!(has(&all.stdout));
}
