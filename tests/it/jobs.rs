//! Jobs that survive: run, jobs, logs -f, kill, exit diagnosis, and gpu-check on a GPU-less host.

use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

fn jobs_json(env: &TestEnv, dir: &std::path::Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&env.berth(dir, &["jobs", "--json"]).ok().stdout).unwrap()
}

/// Wait until job `name`'s wrapper has started its command (it wrote the command's pid).
fn wait_running(dir: &std::path::Path, name: &str) {
    let pid = dir.join(".berth/jobs").join(name).join("pid");
    for _ in 0..100 {
        if std::fs::read_to_string(&pid).is_ok_and(|p| !p.trim().is_empty()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("job {name} did not start: no pid in {}", pid.display());
}

/// Delete a folder as `git clean -fdx` does, while a job may still be writing its first files there.
fn git_clean(dir: std::path::PathBuf) {
    for _ in 0..50 {
        if std::fs::remove_dir_all(&dir).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("could not delete {}", dir.display());
}

fn job<'a>(list: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    list.iter().find(|j| j["name"] == name).unwrap_or_else(|| panic!("no job {name} in {list:?}"))
}

#[test]
fn a_job_outlives_a_killed_berth_and_logs_f_returns_its_code() {
    let env = TestEnv::new();
    let dir = env.project("survive", "");
    let started = env
        .berth(&dir, &["run", "--name", "train", "--", "sh", "-c", "echo begin; sleep 3; echo done; exit 4"])
        .ok();
    assert!(started.stderr.contains("berth logs train -f"), "{}", started.stderr);
    // A follower killed with SIGKILL (a dropped SSH session, a closed laptop) changes nothing.
    let mut follower = env.command(&dir, &["logs", "train", "-f"]).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let pid = follower.id().to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let _ = follower.wait();
    assert_eq!(job(&jobs_json(&env, &dir), "train")["state"], "running");
    let followed = env.berth(&dir, &["logs", "train", "-f"]).code(4);
    assert_eq!(followed.stdout, "begin\ndone\n");
    let log = std::fs::read_to_string(dir.join(".berth/jobs/train/log")).unwrap();
    assert_eq!(log, "begin\ndone\n", "the log is on the host");
    let list = jobs_json(&env, &dir);
    let j = job(&list, "train");
    assert_eq!((j["state"].as_str(), j["exit_code"].as_i64()), (Some("exited"), Some(4)));
    for key in ["name", "state", "exit_code", "started", "finished", "diagnosis"] {
        assert!(j.get(key).is_some(), "jobs --json lacks {key}");
    }
}

#[test]
fn a_job_over_its_memory_limit_is_reported_as_out_of_memory() {
    let env = TestEnv::new();
    let dir = env.project("oom", "[resources]\nmemory = \"64m\"\n");
    env.berth(
        &dir,
        &[
            "run",
            "--name",
            "hog",
            "--",
            "sh",
            "-c",
            "x=$(head -c 268435456 /dev/zero | tr '\\000' a); echo ${#x}",
        ],
    )
    .ok();
    let r = env.berth(&dir, &["logs", "hog", "-f"]).code(137);
    assert!(r.stderr.contains("out of memory") && r.stderr.contains("the limit was 64 MiB"), "{}", r.stderr);
    let list = jobs_json(&env, &dir);
    assert_eq!(job(&list, "hog")["diagnosis"]["kind"], "oom");
    assert!(job(&list, "hog")["diagnosis"]["fix"].as_str().unwrap().contains("resources.memory"));
}

#[test]
fn segfaults_and_shm_bus_errors_are_named() {
    let env = TestEnv::new();
    let dir = env.project("crash", "[resources]\nshm = \"96m\"\n");
    env.berth(&dir, &["run", "--name", "seg", "--", "sh", "-c", "kill -SEGV $$"]).ok();
    let bus = "echo 'RuntimeError: DataLoader worker (pid 7579) is killed by signal: Bus error. It is possible that \
               dataloader workers are out of shared memory. Please try to raise your shared memory limit.'; exit 1";
    env.berth(&dir, &["run", "--name", "loader", "--", "sh", "-c", bus]).ok();
    env.berth(&dir, &["logs", "seg", "-f"]).code(139);
    let r = env.berth(&dir, &["logs", "loader", "-f"]).code(1);
    assert!(r.stderr.contains("shared memory (/dev/shm) is too small"), "{}", r.stderr);
    assert!(r.stderr.contains("it is 96 MiB") && r.stderr.contains("resources.shm"), "{}", r.stderr);
    let list = jobs_json(&env, &dir);
    assert_eq!(job(&list, "seg")["diagnosis"]["kind"], "segfault");
    assert_eq!(job(&list, "loader")["diagnosis"]["kind"], "shm");
}

#[test]
fn stopping_the_environment_interrupts_running_jobs_and_down_refuses_while_they_run() {
    let env = TestEnv::new();
    let dir = env.project("interrupt", "");
    env.berth(&dir, &["run", "--name", "long", "--", "sleep", "300"]).ok();
    let status = env.berth(&dir, &["status", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["running_jobs"], serde_json::json!(["long"]));
    let refused = env.berth(&dir, &["down"]).code(4);
    assert!(refused.stderr.contains("running jobs: long"), "{}", refused.stderr);
    env.berth(&dir, &["stop", "--force"]).ok();
    let list = jobs_json(&env, &dir);
    assert_eq!(job(&list, "long")["state"], "interrupted");
    // Still interrupted (not running again) once the environment is back.
    env.berth(&dir, &["up"]).ok();
    assert_eq!(job(&jobs_json(&env, &dir), "long")["state"], "interrupted");
}

#[test]
fn kill_sends_term_then_reports_the_end() {
    let env = TestEnv::new();
    let dir = env.project("kill", "");
    env.berth(&dir, &["run", "--name", "stubborn", "--", "sh", "-c", "trap '' TERM; sleep 300"]).ok();
    env.berth(&dir, &["run", "--name", "polite", "--", "sleep", "300"]).ok();
    let r = env.berth(&dir, &["kill", "polite"]).ok();
    assert!(r.stderr.contains("exit 143"), "{}", r.stderr);
    let r = env.berth(&dir, &["kill", "stubborn", "--grace", "1"]).ok();
    assert!(r.stderr.contains("SIGKILL") && r.stderr.contains("exit 137"), "{}", r.stderr);
    let again = env.berth(&dir, &["kill", "polite"]).code(2);
    assert!(again.stderr.contains("not running"), "{}", again.stderr);
}

#[test]
fn run_narrows_gpus_only_where_there_are_gpus() {
    let env = TestEnv::new();
    let dir = env.project("nogpu", "");
    let r = env.berth(&dir, &["run", "--gpus", "0", "--", "true"]).code(2);
    assert!(r.stderr.contains("this environment has no GPU"), "{}", r.stderr);
}

#[test]
fn gpu_check_without_a_gpu_says_so_and_why() {
    let env = TestEnv::new();
    let dir = env.project("gpucheck", "");
    let r = env.berth(&dir, &["gpu-check"]).code(1);
    assert!(r.stdout.contains("no GPU is visible"), "{}", r.stdout);
    assert!(r.stdout.contains("no NVIDIA or AMD GPU"), "{}", r.stdout);
    assert!(!r.stdout.contains("Traceback") && !r.stderr.contains("Traceback"));
    let json = env.berth(&dir, &["gpu-check", "--json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["checks"][0]["name"], "gpu");
    assert_eq!(v["checks"][0]["status"], "fail");
}

#[test]
fn gpu_check_with_python_but_no_torch_names_what_is_missing() {
    ensure_python_image();
    let env = TestEnv::new();
    let dir = env.project("gpucheck-py", &format!("[image]\nbase = \"{PYTHON_IMAGE}\"\n"));
    let r = env.berth(&dir, &["gpu-check", "--json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let check = |name: &str| v["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned();
    assert_eq!(check("python").unwrap()["status"], "pass");
    let torch = check("torch").unwrap();
    assert_eq!(torch["status"], "fail");
    assert!(torch["detail"].as_str().unwrap().contains("torch does not import"), "{torch}");
    assert!(!r.stdout.contains("Traceback") && !r.stderr.contains("Traceback"));
}

#[test]
fn stop_refuses_while_a_job_runs_and_never_kills_it_silently() {
    let env = TestEnv::new();
    let dir = env.project("stopjobs", "");
    env.berth(&dir, &["run", "--name", "train", "--", "sleep", "300"]).ok();
    let refused = env.berth(&dir, &["stop"]).code(4);
    assert!(refused.stderr.contains("running jobs: train"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(env.inspect(&dir)["State"]["Running"], true);
    assert_eq!(job(&jobs_json(&env, &dir), "train")["state"], "running");
    env.berth(&dir, &["stop", "--force"]).ok();
    assert_eq!(env.inspect(&dir)["State"]["Running"], false);
    assert_eq!(job(&jobs_json(&env, &dir), "train")["state"], "interrupted");
}

#[test]
fn a_job_never_starts_into_a_container_being_stopped() {
    let env = TestEnv::new();
    let dir = env.project("stoprace", "");
    env.berth(&dir, &["up"]).ok();
    let id = env.containers_of(&dir)[0].clone();
    // Another berth holds the project's lock while it stops the container (as `berth stop` does).
    let lock = dir.join(".berth/lock");
    let mut stopper = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", &format!("sleep 1.5; docker stop -t 0 {id} >/dev/null")])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let run = env.berth(&dir, &["run", "--name", "late", "--", "sleep", "100"]).code(4);
    assert!(stopper.wait().unwrap().success());
    assert!(run.stderr.contains("was stopped while the job was being started"), "{}", run.stderr);
    assert!(!dir.join(".berth/jobs/late").exists(), "a job folder was left for a job that never ran");
}

/// `berth run` killed right after it recorded the job (meta.json written, the job never started),
/// and one killed before even that (an empty job folder).
fn record_unstarted_job(env: &TestEnv, dir: &std::path::Path, name: &str) {
    let c = env.inspect(dir);
    let meta = serde_json::json!({
        "name": name,
        "cmd": ["python", "train.py"],
        "started": "2026-01-01T00:00:00Z",
        "gpus": [],
        "container_id": c["Id"],
        "container_started": c["State"]["StartedAt"],
    });
    let job = dir.join(".berth/jobs").join(name);
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(job.join("meta.json"), meta.to_string()).unwrap();
}

#[test]
fn a_job_whose_run_was_killed_before_it_started_is_lost_not_running_forever() {
    let env = TestEnv::new();
    let dir = env.project("lostrun", "");
    env.berth(&dir, &["up"]).ok();
    record_unstarted_job(&env, &dir, "train");
    let list = jobs_json(&env, &dir);
    let j = job(&list, "train");
    assert_eq!(j["state"], "lost", "{j}");
    assert!(j["diagnosis"]["cause"].as_str().unwrap().contains("never started"), "{j}");
    // logs -f does not hang, kill acts on it, down is not blocked by it.
    let start = std::time::Instant::now();
    let logs = env.berth(&dir, &["logs", "train", "-f"]).code(1);
    assert!(start.elapsed() < Duration::from_secs(20), "logs -f took {:?}", start.elapsed());
    assert!(logs.stderr.contains("never started"), "{}", logs.stderr);
    let kill = env.berth(&dir, &["kill", "train"]).ok();
    assert!(kill.stderr.contains("was lost"), "{}", kill.stderr);
    // An empty job folder (berth run killed before it wrote meta.json) never blocks the name.
    std::fs::create_dir_all(dir.join(".berth/jobs/again")).unwrap();
    env.berth(&dir, &["run", "--name", "again", "--", "echo", "hi"]).ok();
    assert_eq!(env.berth(&dir, &["logs", "again", "-f"]).ok().stdout, "hi\n");
    env.berth(&dir, &["down"]).ok();
}

#[test]
fn a_job_after_git_clean_deleted_berth_folder_is_refused_or_lost_never_running_forever() {
    let env = TestEnv::new();
    let dir = env.project("gitclean", "");
    env.berth(&dir, &["run", "--name", "long", "--", "sleep", "300"]).ok();
    // Once the job runs (its wrapper wrote its pid; deleted before that, the job never starts)...
    wait_running(&dir, "long");
    // ...`git clean -fdx` while the environment runs: its mount of .berth shows a deleted folder.
    git_clean(dir.join(".berth"));
    // The job whose folder went still runs: down and stop do not kill it silently.
    let refused = env.berth(&dir, &["down"]).code(4);
    assert!(refused.stderr.contains("long (its job folder was deleted)"), "{}", refused.stderr);
    env.berth(&dir, &["stop"]).code(4);
    let run = env.berth(&dir, &["run", "--name", "train", "--", "echo", "hi"]).code(1);
    assert!(run.stderr.contains("no longer sees the project's .berth"), "{}", run.stderr);
    assert!(run.stderr.contains("berth stop && berth up"), "{}", run.stderr);
    assert!(!dir.join(".berth/jobs/train").exists());
    // A job recorded anyway (a berth of before this check) is lost, with the reason.
    record_unstarted_job(&env, &dir, "old");
    let list = jobs_json(&env, &dir);
    let j = job(&list, "old");
    assert_eq!(j["state"], "lost", "{j}");
    assert!(j["diagnosis"]["cause"].as_str().unwrap().contains("the job folder was deleted"), "{j}");
    env.berth(&dir, &["down", "--force"]).ok();
    // After the fix it names, jobs run again.
    env.berth(&dir, &["up"]).ok();
    env.berth(&dir, &["run", "--name", "train", "--", "echo", "hi"]).ok();
    assert_eq!(env.berth(&dir, &["logs", "train", "-f"]).ok().stdout, "hi\n");
}

/// After `git clean -fdx` deleted .berth under a running job, `stop` and `down` refused naming the
/// job and hinted `berth kill NAME`, yet `berth jobs` said "no jobs yet" and `berth kill` said
/// "no job named ...": only --force could end it.
#[test]
fn a_job_whose_folder_git_clean_deleted_is_listed_and_stopped_by_berth_kill() {
    let env = TestEnv::new();
    let dir = env.project("gitcleankill", "");
    env.berth(&dir, &["run", "--name", "long", "--", "sleep", "300"]).ok();
    // Deleted later, once the job runs (its wrapper wrote its pid).
    wait_running(&dir, "long");
    git_clean(dir.join(".berth"));
    let list = jobs_json(&env, &dir);
    let j = job(&list, "long");
    assert_eq!(j["state"], "running", "{j}");
    assert!(j["diagnosis"]["cause"].as_str().unwrap().contains("job folder was deleted"), "{j}");
    assert!(j["diagnosis"]["fix"].as_str().unwrap().contains("berth kill long"), "{j}");
    let kill = env.berth(&dir, &["kill", "long"]).ok();
    assert!(kill.stderr.contains("job long stopped"), "{}", kill.stderr);
    // Nothing of it is left: the environment stops without --force.
    assert!(jobs_json(&env, &dir).is_empty());
    env.berth(&dir, &["stop"]).ok();
    env.berth(&dir, &["down"]).ok();
}

/// Unmounts a tmpfs when dropped (lazily: a container may still hold it).
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "mounting a small tmpfs over .berth needs root")]
fn a_job_that_cannot_write_its_exit_on_a_full_disk_is_lost_with_the_reason() {
    let env = TestEnv::new();
    let dir = env.project("fulldisk", "");
    let berth_dir = dir.join(".berth");
    std::fs::create_dir_all(&berth_dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&berth_dir)
        .status()
        .unwrap();
    assert!(mounted.success());
    let _tmpfs = Tmpfs(berth_dir.clone());
    env.berth(&dir, &["run", "--name", "train", "--", "sh", "-c", "sleep 3; exit 3"]).ok();
    // The disk fills while the job runs.
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", berth_dir.join("filler").display()))
        .stderr(Stdio::null())
        .status();
    std::thread::sleep(Duration::from_secs(4));
    let list = jobs_json(&env, &dir);
    let j = job(&list, "train");
    assert_eq!(j["state"], "lost", "{j}");
    let cause = j["diagnosis"]["cause"].as_str().unwrap();
    assert!(cause.contains("no space left on device under") && cause.contains(".berth"), "{j}");
    let logs = env.berth(&dir, &["logs", "train", "-f"]).code(1);
    assert!(logs.stderr.contains("no space left on device"), "{}", logs.stderr);
    env.berth(&dir, &["kill", "train"]).ok();
    env.berth(&dir, &["down"]).ok();
}

#[test]
fn docker_habits_before_the_command_are_refused_not_run() {
    let env = TestEnv::new();
    let dir = env.project("habits", "");
    // `docker run -d`'s habit: never the job `-d -- jupyter lab` failing inside with setsid's usage.
    let detached = env.berth(&dir, &["run", "-d", "--", "echo", "hi"]).code(2);
    assert!(
        detached.stderr.contains("`-d` is not an option of berth run (a job always runs detached"),
        "{}",
        detached.stderr
    );
    assert!(detached.stderr.contains("hint: options go before `--`"), "{}", detached.stderr);
    assert!(!dir.join(".berth/jobs").exists(), "a job folder was made");
    assert!(env.containers_of(&dir).is_empty(), "nothing is started, the environment neither");
    let user = env.berth(&dir, &["exec", "-u", "root", "--", "id"]).code(2);
    assert!(user.stderr.contains("`-u` is not an option of berth exec"), "{}", user.stderr);
    assert!(env.containers_of(&dir).is_empty());
}
