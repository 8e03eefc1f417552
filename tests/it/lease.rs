//! A shared GPU server: `top` names whose each GPU process is (recorded `nvidia-4-shared`),
//! `up` chooses around other users' processes and leases, and `berth lease` between two real
//! Unix users on the real engine (the lease folder is a temporary one, `BERTH_LEASE_DIR`).

use std::path::{Path, PathBuf};

use crate::support::*;

fn recorded(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts").join(name).display().to_string()
}

/// A lease folder every test user can reach and make: a fresh folder like /var/tmp (1777).
fn lease_dir() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::Builder::new().prefix("berth-leases-").tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let dir = tmp.path().join("leases");
    (tmp, dir)
}

fn on_host(env: &mut TestEnv, host: &str, leases: &Path) {
    env.env.push(("BERTH_HOST_ROOT".into(), recorded(host)));
    env.env.push(("BERTH_LEASE_DIR".into(), leases.display().to_string()));
}

#[test]
fn top_names_the_foreign_container_the_other_users_environment_and_the_host_process() {
    let (_tmp, leases) = lease_dir();
    let mut env = TestEnv::new();
    on_host(&mut env, "nvidia-4-shared", &leases);
    let dir = env.root.path().to_path_buf();
    env.berth(&dir, &["lease", "--gpus", "3", "--for", "1h", "--note", "sweep tonight"]).ok();
    let run = env.berth(&dir, &["top", "--json"]).ok();
    let gpus: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(gpus.len(), 4);
    let p = |g: usize, i: usize| &gpus[g]["processes"][i];
    // GPU 0: a plain `docker run` container, bob's.
    assert_eq!(p(0, 0)["who"]["kind"], "container");
    assert_eq!(p(0, 0)["who"]["container"], "jupyter-bob");
    assert_eq!((p(0, 0)["user"].as_str(), p(0, 0)["used_mib"].as_u64()), (Some("bob"), Some(20480)));
    // GPU 1: bob's berth environment, not named to alice without --all-users.
    assert_eq!(p(1, 0)["who"]["kind"], "other-users-environment");
    assert_eq!(p(1, 0)["who"]["owner"], "bob");
    // GPU 2: carol's process on the host, and one procfs hides.
    assert_eq!((p(2, 0)["who"]["kind"].as_str(), p(2, 0)["user"].as_str()), (Some("host"), Some("carol")));
    assert_eq!(p(2, 1)["pid"], 777001);
    assert_eq!(p(2, 1)["who"]["kind"], "unseen");
    assert!(p(2, 1)["unseen"].as_str().unwrap().contains("hidepid"));
    assert!(run.stderr.contains("777001"), "{}", run.stderr);
    // GPU 3: free, and leased by the caller: a lease held idle. 0-2 are used without a lease.
    assert!(gpus[3]["processes"].as_array().unwrap().is_empty());
    assert_eq!(gpus[3]["lease_idle"], true);
    assert_eq!(gpus[3]["leases"][0]["note"], "sweep tonight");
    let unleased: Vec<bool> = gpus.iter().map(|g| g["used_without_lease"].as_bool().unwrap()).collect();
    assert_eq!(unleased, [true, true, true, false]);

    let everyone = env.berth(&dir, &["top", "--json", "--all-users"]).ok();
    let gpus: Vec<serde_json::Value> = serde_json::from_str(&everyone.stdout).unwrap();
    let who = &gpus[1]["processes"][0]["who"];
    assert_eq!((who["environment"].as_str(), who["job"].as_str()), (Some("llm"), Some("serve")));
    assert_eq!(who["container"], "berth-bob-llm-77d0e412");
}

#[test]
fn up_with_a_count_picks_the_free_gpu_and_says_why() {
    let (_tmp, leases) = lease_dir();
    let mut env = TestEnv::new();
    on_host(&mut env, "nvidia-4-shared", &leases);
    let dir = env.project("count", "[gpu]\ndevices = 1\n");
    let run = env.berth(&dir, &["up", "--no-start"]).ok();
    let ids = &env.inspect(&dir)["HostConfig"]["DeviceRequests"][0]["DeviceIDs"];
    assert_eq!(ids, &serde_json::json!(["GPU-9a7e3c21-4f6b-4d8e-a1c0-7b5d2e9f3a64"]), "GPU 3's UUID");
    assert!(run.stderr.contains("chose GPU 3"), "{}", run.stderr);
    assert!(run.stderr.contains("GPU 0 holds 20480 MiB of container jupyter-bob"), "{}", run.stderr);
    assert!(run.stderr.contains("GPU 2 holds 6144 MiB of host process (user carol"), "{}", run.stderr);
}

#[test]
fn up_with_a_gpu_in_use_warns_naming_the_container_and_its_memory() {
    let (_tmp, leases) = lease_dir();
    let mut env = TestEnv::new();
    on_host(&mut env, "nvidia-4-shared", &leases);
    let dir = env.project("listed", "[gpu]\ndevices = [0]\n");
    let run = env.berth(&dir, &["up", "--no-start"]).ok();
    assert!(
        run.stderr.contains("GPU 0 already holds 20480 MiB of container jupyter-bob (not berth) (user bob"),
        "{}",
        run.stderr
    );
    let warned = run.stderr.find("jupyter-bob").unwrap();
    let created = run.stderr.find("created ").expect("created");
    assert!(warned < created, "said before the container is made: {}", run.stderr);
}

#[test]
fn ones_own_lease_does_not_keep_one_off_a_gpu() {
    let (_tmp, leases) = lease_dir();
    let mut env = TestEnv::new();
    on_host(&mut env, "nvidia-4-shared", &leases);
    let dir = env.root.path().to_path_buf();
    env.berth(&dir, &["lease", "--gpus", "3", "--for", "1h"]).ok();
    // Root's own lease does not keep root off GPU 3.
    let mine = env.project("mine", "[gpu]\ndevices = 1\n");
    let run = env.berth(&mine, &["up", "--no-start"]).ok();
    assert!(!run.stderr.contains("chose GPU 0"), "{}", run.stderr);
    let ids = &env.inspect(&mine)["HostConfig"]["DeviceRequests"][0]["DeviceIDs"];
    assert_eq!(ids, &serde_json::json!(["GPU-9a7e3c21-4f6b-4d8e-a1c0-7b5d2e9f3a64"]));
}

const A: u32 = 4242;
const B: u32 = 4243;

fn as_user(uid: u32, name: &str, leases: &Path) -> TestEnv {
    let mut env = TestEnv::new();
    env.as_user = Some((uid, uid, name.into()));
    chown_tree(env.root.path(), uid, uid);
    on_host(&mut env, "nvidia-2", leases);
    env
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "two Unix users need root to switch between them")]
fn another_users_lease_refuses_listed_gpus_until_forced_or_expired() {
    let (_tmp, leases) = lease_dir();
    let a = as_user(A, "alice", &leases);
    let b = as_user(B, "bob", &leases);
    let a_dir = a.root.path().to_path_buf();
    a.berth(&a_dir, &["lease", "--gpus", "1", "--for", "1h", "--note", "thesis run"]).ok();

    let dir = b.project("want1", "[gpu]\ndevices = [1]\n");
    let refused = b.berth(&dir, &["up", "--no-start"]).code(4);
    assert!(refused.stderr.contains(&format!("GPU 1 is leased by uid {A} until")), "{}", refused.stderr);
    assert!(refused.stderr.contains("(in 59m)") || refused.stderr.contains("(in 1h)"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert!(b.containers_of(&dir).is_empty(), "nothing was made");

    // B can neither release nor extend A's lease.
    let release = b.berth(&dir, &["lease", "release", "--gpus", "1"]).code(4);
    assert!(release.stderr.contains(&format!("only uid {A} can release it")), "{}", release.stderr);
    b.berth(&dir, &["lease", "--gpus", "1", "--for", "8h"]).code(4);
    let held = a.berth(&a_dir, &["lease", "ls", "--json"]).ok();
    let ls: serde_json::Value = serde_json::from_str(&held.stdout).unwrap();
    assert_eq!(ls["leases"].as_array().unwrap().len(), 1, "{ls}");
    assert_eq!(ls["leases"][0]["holder_uid"], A);

    // --force proceeds, and A sees it.
    let forced = b.berth(&dir, &["up", "--no-start", "--force"]).ok();
    assert!(forced.stderr.contains("took GPU 1 over"), "{}", forced.stderr);
    assert_eq!(b.containers_of(&dir).len(), 1);
    let seen = a.berth(&a_dir, &["lease", "ls"]).ok();
    assert!(seen.stdout.contains(&format!("uid {B}")), "{}", seen.stdout);
    assert!(seen.stdout.contains(&format!("taken over uid {A}'s lease (--force)")), "{}", seen.stdout);

    // A lease that ended no longer blocks: A's lease on GPU 0 made two hours ago for one hour.
    let past = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 7200;
    let mut a_then = as_user(A, "alice", &leases);
    a_then.env.push(("BERTH_NOW".into(), past.to_string()));
    a_then.berth(&a_dir, &["lease", "--gpus", "0", "--for", "1h"]).ok();
    let dir0 = b.project("want0", "[gpu]\ndevices = [0]\n");
    b.berth(&dir0, &["up", "--no-start"]).ok();
    assert_eq!(b.containers_of(&dir0).len(), 1);
}
