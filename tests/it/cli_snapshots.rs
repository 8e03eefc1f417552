//! What the user reads, whole: exit code, stdout and stderr of the commands whose words matter
//! most (refusals, their hints, first runs), compared with reviewed snapshots.

use insta::assert_snapshot;

use crate::support::*;

#[test]
fn cli_up_without_a_project_file_says_how_to_make_one() {
    let env = TestEnv::new();
    let dir = env.root.path().join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    assert_snapshot!(env.berth(&dir, &["up"]).snapshot(&env));
}

#[test]
fn cli_a_misspelt_key_is_refused_at_its_line_with_the_right_name() {
    let env = TestEnv::new();
    let dir = env.project("misspelt", "[gpu]\nvendr = \"nvidia\"\n");
    assert_snapshot!(env.berth(&dir, &["up"]).snapshot(&env));
    assert!(env.containers_of(&dir).is_empty());
}

#[test]
fn cli_first_up_says_what_it_made_and_what_reaches_the_host() {
    let env = TestEnv::new();
    let dir = env.project("first", "[resources]\nshm = \"1g\"\n");
    assert_snapshot!(env.berth(&dir, &["up"]).snapshot(&env));
    // Already right: one line, nothing announced again.
    assert_snapshot!("cli_second_up_does_nothing", env.berth(&dir, &["up"]).snapshot(&env));
    env.berth(&dir, &["down", "--force"]).ok();
}

#[test]
fn cli_stop_with_a_running_job_names_it_and_changes_nothing() {
    let env = TestEnv::new();
    let dir = env.project("busy", "[resources]\nshm = \"1g\"\n[cache]\npip = false\nhuggingface = false\n");
    env.berth(&dir, &["up"]).ok();
    env.berth(&dir, &["run", "--name", "train", "--", "sleep", "60"]).ok();
    assert_snapshot!(env.berth(&dir, &["stop"]).snapshot(&env));
    let jobs: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["jobs", "--json"]).ok().stdout).unwrap();
    assert_eq!(jobs[0]["state"], "running", "{jobs}");
    env.berth(&dir, &["kill", "train", "--grace", "1"]).ok();
    assert_snapshot!("cli_down_after_the_job_ended", env.berth(&dir, &["down"]).snapshot(&env));
}

#[test]
fn cli_down_with_changes_inside_lists_them_and_keeps_the_container() {
    let env = TestEnv::new();
    let dir =
        env.project("changed", "[resources]\nshm = \"1g\"\n[cache]\npip = false\nhuggingface = false\n");
    env.berth(&dir, &["up"]).ok();
    env.berth(&dir, &["exec", "--", "sh", "-c", "mkdir -p /opt/weights && echo w > /opt/weights/best.pt"])
        .ok();
    assert_snapshot!(env.berth(&dir, &["down"]).snapshot(&env));
    assert_eq!(env.containers_of(&dir).len(), 1, "the refused down kept the container");
    env.berth(&dir, &["down", "--force"]).ok();
}

#[test]
fn cli_status_of_a_running_environment_shows_what_it_is_and_that_it_matches() {
    let env = TestEnv::new();
    let dir = env.project("shown", "[resources]\nshm = \"1g\"\n[cache]\npip = false\nhuggingface = false\n");
    env.berth(&dir, &["up"]).ok();
    assert_snapshot!(env.berth(&dir, &["status"]).snapshot(&env));
    // A changed file is drift, named with the way to apply it.
    std::fs::write(
        dir.join("berth.toml"),
        std::fs::read_to_string(dir.join("berth.toml")).unwrap().replace("shm = \"1g\"", "shm = \"2g\""),
    )
    .unwrap();
    assert_snapshot!("cli_status_after_the_file_changed", env.berth(&dir, &["status"]).snapshot(&env));
    env.berth(&dir, &["down", "--force"]).ok();
}
