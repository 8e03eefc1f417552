//! A shared GPU server: `top` names whose each GPU process is (recorded `nvidia-4-shared`),
//! `up` chooses around other users' processes and leases, and `berth lease` between two real
//! Unix users on the real engine (the lease folder is a temporary one, `BERTH_LEASE_DIR`).

use std::path::{Path, PathBuf};

use crate::support::*;

fn recorded(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts").join(name).display().to_string()
}

/// A lease folder like /var/tmp, the default: fresh, the test runner's (root's in CI), mode 1777.
fn lease_dir() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::Builder::new().prefix("berth-leases-").tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let dir = tmp.path().to_path_buf();
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

/// Two real Unix users (made when missing): a lease's holder is named by the user database.
const A: &str = "berth-lease-a";
const B: &str = "berth-lease-b";

fn as_user(name: &str, host: &str, leases: &Path) -> TestEnv {
    let uid = real_user(name);
    let mut env = TestEnv::new();
    env.as_user = Some((uid, uid, name.into()));
    chown_tree(env.root.path(), uid, uid);
    on_host(&mut env, host, leases);
    env
}

fn leases_of(env: &TestEnv, dir: &Path) -> Vec<serde_json::Value> {
    let ls: serde_json::Value =
        serde_json::from_str(&env.berth(dir, &["lease", "ls", "--json"]).ok().stdout).unwrap();
    ls["leases"].as_array().unwrap().clone()
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "two Unix users need root to make them and switch between them")]
fn another_users_lease_refuses_listed_gpus_until_forced_or_expired() {
    let (_tmp, leases) = lease_dir();
    let a = as_user(A, "nvidia-2", &leases);
    let b = as_user(B, "nvidia-2", &leases);
    let a_dir = a.root.path().to_path_buf();
    a.berth(&a_dir, &["lease", "--gpus", "1", "--for", "1h", "--note", "thesis run"]).ok();
    let held = leases_of(&a, &a_dir);
    let a_expires = held[0]["expires"].clone();

    let dir = b.project("want1", "[gpu]\ndevices = [1]\n");
    let refused = b.berth(&dir, &["up", "--no-start"]).code(4);
    assert!(refused.stderr.contains(&format!("GPU 1 is leased by {A} until 20")), "{}", refused.stderr);
    assert!(refused.stderr.contains("(in 59m)") || refused.stderr.contains("(in 1h)"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert!(b.containers_of(&dir).is_empty(), "nothing was made");

    // B can neither release nor extend A's lease, through berth or around it.
    let release = b.berth(&dir, &["lease", "release", "--gpus", "1"]).code(4);
    assert!(release.stderr.contains(&format!("only {A} can release it")), "{}", release.stderr);
    b.berth(&dir, &["lease", "release", "--all"]).ok();
    let extend = b.berth(&dir, &["lease", "--gpus", "1", "--for", "8h"]).code(4);
    assert!(extend.stderr.contains(&format!("leased by {A}")), "{}", extend.stderr);
    let file = std::fs::read_dir(&leases).unwrap().next().unwrap().unwrap().path();
    let mut remove = std::process::Command::new("setpriv");
    let b_uid = real_user(B);
    remove
        .args([&format!("--reuid={b_uid}"), &format!("--regid={b_uid}"), "--clear-groups", "rm", "-f"])
        .arg(&file);
    let removed = remove.stderr(std::process::Stdio::null()).status().unwrap();
    assert!(!removed.success(), "the folder's sticky bit keeps B from removing it");
    let held = leases_of(&a, &a_dir);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!((held[0]["holder"].as_str(), &held[0]["expires"]), (Some(A), &a_expires));

    // --force proceeds, and A sees it.
    let forced = b.berth(&dir, &["up", "--no-start", "--force"]).ok();
    assert!(forced.stderr.contains(&format!("took GPU 1 over {A}'s lease")), "{}", forced.stderr);
    assert_eq!(b.containers_of(&dir).len(), 1);
    let seen = a.berth(&a_dir, &["lease", "ls"]).ok();
    assert!(seen.stdout.contains(B), "{}", seen.stdout);
    assert!(seen.stdout.contains(&format!("taken over {A}'s lease (--force)")), "{}", seen.stdout);

    // A lease that ended no longer blocks: A's lease on GPU 0 made two hours ago for one hour.
    let past = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 7200;
    let mut a_then = as_user(A, "nvidia-2", &leases);
    a_then.env.push(("BERTH_NOW".into(), past.to_string()));
    a_then.berth(&a_dir, &["lease", "--gpus", "0", "--for", "1h"]).ok();
    assert_eq!(leases_of(&a_then, &a_dir).len(), 3, "A's two and B's takeover, seen two hours ago");
    let dir0 = b.project("want0", "[gpu]\ndevices = [0]\n");
    b.berth(&dir0, &["up", "--no-start"]).ok();
    assert_eq!(b.containers_of(&dir0).len(), 1);
}

/// Regression: nothing showed that `berth run` honours another user's lease. The environment
/// runs on the real engine (no GPU here); the job is planned on the recorded two-GPU host, where
/// A leased GPU 1.
#[test]
#[cfg_attr(not(berth_root_tests), ignore = "two Unix users need root to make them and switch between them")]
fn run_refuses_a_job_on_a_gpu_another_user_leased_until_taken_over() {
    let (_tmp, leases) = lease_dir();
    let a = as_user(A, "nvidia-2", &leases);
    a.berth(a.root.path(), &["lease", "--gpus", "1", "--for", "1h"]).ok();
    let mut b = as_user(B, "nvidia-2", &leases);
    let dir = b.project("jobs", "");
    let host = b.env.iter().position(|(k, _)| k == "BERTH_HOST_ROOT").unwrap();
    let recorded = b.env.remove(host);
    b.berth(&dir, &["up"]).ok();
    b.env.push(recorded);

    let refused = b.berth(&dir, &["run", "--name", "both", "--", "true"]).code(4);
    assert!(refused.stderr.contains("the job would run on a GPU another user leased"), "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("GPU 1 is leased by {A} until")), "{}", refused.stderr);
    assert!(!dir.join(".berth/jobs/both").exists(), "no job was started");
    // The environment's GPU 0 is the host's GPU 0: nobody leased it.
    b.berth(&dir, &["run", "--name", "first", "--gpus", "0", "--", "true"]).ok();
    // Taken over with --force, the GPU is B's to use until A's lease would have ended.
    let taken = b.berth(&dir, &["lease", "--gpus", "1", "--for", "30m", "--force"]).ok();
    assert!(taken.stderr.contains(&format!("over {A}'s lease")), "{}", taken.stderr);
    b.berth(&dir, &["run", "--name", "both", "--", "true"]).ok();
}

/// Regression: two users leasing one GPU at the same moment both got it (17 times in 20 here).
/// Of two leases taken at once at most one stands; whoever loses is told who holds it.
#[test]
#[cfg_attr(not(berth_root_tests), ignore = "two Unix users need root to make them and switch between them")]
fn two_users_leasing_one_gpu_at_once_never_both_hold_it() {
    let (_tmp, leases) = lease_dir();
    let a = as_user(A, "nvidia-2", &leases);
    let b = as_user(B, "nvidia-2", &leases);
    for round in 0..12 {
        let start = |env: &TestEnv| {
            env.command(env.root.path(), &["lease", "--gpus", "0", "--for", "1h"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (start(&a), start(&b));
        let outs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
        let won = outs.iter().filter(|o| o.status.success()).count();
        let held = leases_of(&a, a.root.path());
        assert!(held.len() <= 1, "round {round}: both hold GPU 0: {held:?}");
        assert_eq!(held.len(), won, "round {round}: a lease for each success: {held:?}");
        for lost in outs.iter().filter(|o| !o.status.success()) {
            let err = String::from_utf8_lossy(&lost.stderr);
            assert!(err.contains("leased by berth-lease-"), "round {round}: {err}");
        }
        for env in [&a, &b] {
            env.berth(env.root.path(), &["lease", "release", "--all"]).ok();
        }
    }
}

/// Regression: B's stopped environment (`devices = 1`, on GPU 3, the only free one) was started
/// again on GPU 3 after A had leased it, with only "no free GPU was left" said.
#[test]
#[cfg_attr(not(berth_root_tests), ignore = "two Unix users need root to make them and switch between them")]
fn a_stopped_environment_is_not_resumed_on_a_gpu_leased_since() {
    let (_tmp, leases) = lease_dir();
    let a = as_user(A, "nvidia-4-shared", &leases);
    let b = as_user(B, "nvidia-4-shared", &leases);
    let dir = b.project("resume", "[gpu]\ndevices = 1\n");
    let first = b.berth(&dir, &["up", "--no-start"]).ok();
    assert!(first.stderr.contains("chose GPU 3"), "{}", first.stderr);
    // Everyone sees whose environment holds which host GPU.
    let all = a.berth(a.root.path(), &["ls", "--all-users"]).ok().stdout;
    let row = all.lines().find(|l| l.contains(&dir.canonicalize().unwrap().display().to_string())).unwrap();
    assert!(row.contains("nvidia 3") && row.ends_with(B), "{all}");
    a.berth(a.root.path(), &["lease", "--gpus", "3", "--for", "2h"]).ok();
    let refused = b.berth(&dir, &["up", "--no-start"]).code(4);
    assert!(
        refused.stderr.contains(&format!("while it was stopped: GPU 3 is leased by {A} until")),
        "{}",
        refused.stderr
    );
    let forced = b.berth(&dir, &["up", "--no-start", "--force"]).ok();
    assert!(forced.stderr.contains(&format!("took GPU 3 over {A}'s lease")), "{}", forced.stderr);
    let seen = a.berth(a.root.path(), &["lease", "ls"]).ok();
    assert!(seen.stdout.contains(&format!("taken over {A}'s lease (--force)")), "{}", seen.stdout);
}
