//! `berth remote` and `berth --on NAME <command>` against a "GPU server" on loopback
//! (`tests/support/remote-server.sh`): an sshd logged into as other Unix users (`berthsrv`,
//! `berthbare`, in the docker group) in front of this host's engine, each ssh key carrying the
//! server's own recorded host tree (BERTH_HOST_ROOT). The laptop is the test's temporary home.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fixtures::unique;
use crate::support::*;

struct Server {
    dir: PathBuf,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The one server of this test binary, stopped by pid when the binary exits.
fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("berth-srv-").tempdir().expect("tempdir").keep();
        // The server's users reach its berth (DIR/bin) through this folder.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join("tests/support/remote-server.sh"))
            .arg(&dir)
            .arg(std::process::id().to_string())
            .arg(env!("CARGO_BIN_EXE_berth"))
            .arg(root.join("tests/hosts"))
            .output()
            .expect("run remote-server.sh");
        assert!(
            out.status.success(),
            "could not start the server: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Server { dir }
    })
}

/// A laptop ([`laptop`]); when it goes, so do its ssh processes (the shared connection would
/// otherwise stay 15 minutes), each stopped by its pid.
struct Laptop(TestEnv);

impl std::ops::Deref for Laptop {
    type Target = TestEnv;
    fn deref(&self) -> &TestEnv {
        &self.0
    }
}

impl std::ops::DerefMut for Laptop {
    fn deref_mut(&mut self) -> &mut TestEnv {
        &mut self.0
    }
}

impl Drop for Laptop {
    fn drop(&mut self) {
        for pid in laptop_ssh_pids(&self.0) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// A laptop: its own home, config and private runtime folder, BERTH_SSH pointing at the
/// server's ssh config, and the servers named `srv` (no GPUs), `gpu` (two AMD GPUs recorded)
/// and `bare` (no berth there).
fn laptop() -> Laptop {
    let srv = server();
    let mut env = TestEnv::new();
    let run = env.root.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    env.env.push(("XDG_RUNTIME_DIR".into(), run.display().to_string()));
    env.env.push(("BERTH_SSH".into(), format!("ssh -F {}", srv.dir.join("ssh_config").display())));
    let home = env.home.clone();
    for (name, host) in [("srv", "srv"), ("gpu", "srv-amd"), ("bare", "bare")] {
        env.berth(&home, &["remote", "add", name, &format!("ssh://{host}")]).ok();
    }
    Laptop(env)
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The project's folder on the server (`~USER/berth/<name>-<8 hex>`): the only one with its name.
fn server_dir(user: &str, name: &str) -> PathBuf {
    let base = PathBuf::from(format!("/home/{user}/berth"));
    let found: Vec<PathBuf> = std::fs::read_dir(&base)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).and_then(|n| n.rsplit_once('-')).is_some_and(
                |(stem, hex)| stem == name && hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()),
            )
        })
        .collect();
    assert_eq!(found.len(), 1, "one folder for {name} under {}: {found:?}", base.display());
    found.into_iter().next().unwrap()
}

/// Containers whose project label is `dir` (on the server: the same engine here).
fn containers_at(dir: &Path) -> Vec<String> {
    let filter = format!("label=dev.berth.project={}", dir.display());
    let out = docker_ok(&["ps", "-aq", "--no-trunc", "--filter", &filter]);
    out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

/// Removes the server's side of a test (its containers and folder), even on failure.
struct ServerProject(Option<PathBuf>);

impl Drop for ServerProject {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            for id in containers_at(dir) {
                let _ = docker(&["rm", "-f", "-v", &id]);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn remote_add_ls_rm_keep_a_private_file_and_refuse_bad_addresses() {
    let env = TestEnv::new();
    let home = env.home.clone();
    env.berth(&home, &["remote", "add", "gpu1", "ssh://me@gpu-box:2222/scratch/me"]).ok();
    let file = home.join(".config/berth/remotes.toml");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let ls = env.berth(&home, &["remote", "ls", "--json"]).ok();
    let listed: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    assert_eq!(listed[0]["name"], "gpu1");
    assert_eq!(listed[0]["url"], "ssh://me@gpu-box:2222/scratch/me");
    assert_eq!(listed[0]["port"], 2222);
    assert_eq!(listed[0]["base"], "/scratch/me");
    let before = std::fs::read(&file).unwrap();

    let again = env.berth(&home, &["remote", "add", "gpu1", "ssh://other"]).code(4);
    assert!(again.stderr.contains("already called `gpu1`"), "{}", again.stderr);
    for bad in ["me@host", "ssh://me@host:0", "ssh://-oProxyCommand=touch/x", "ssh://me@host/a/../b"] {
        let r = env.berth(&home, &["remote", "add", "x", bad]).code(2);
        assert!(r.stderr.contains("hint: write it as ssh://user@host"), "{bad}: {}", r.stderr);
    }
    env.berth(&home, &["remote", "add", "bad name", "ssh://h"]).code(2);
    assert_eq!(std::fs::read(&file).unwrap(), before, "refused commands change nothing");

    let on = env.berth(&home, &["--on", "nowhere", "status"]).code(2);
    assert!(
        on.stderr.contains("no server is called `nowhere`") && on.stderr.contains("gpu1"),
        "{}",
        on.stderr
    );
    env.berth(&home, &["remote", "rm", "gpu1"]).ok();
    env.berth(&home, &["remote", "rm", "gpu1"]).code(2);
    let ls = env.berth(&home, &["remote", "ls", "--json"]).ok();
    assert_eq!(ls.stdout.trim(), "[]");
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "needs root: makes the server's users and starts its sshd")]
fn up_on_the_server_plans_with_its_gpus_and_makes_nothing_on_the_laptop() {
    let env = laptop();
    let name = unique("rgpu");
    let dir = env.project(&name, &format!("name = \"{name}\"\n"));
    let up = env.berth(&dir, &["--on", "gpu", "up", "--no-start"]);
    let server = ServerProject(std::panic::catch_unwind(|| server_dir("berthsrv", &name)).ok());
    let up = up.ok();
    let there = server.0.clone().expect("the project's folder on the server");
    assert!(there.join("berth.toml").is_file(), "the project was synced");
    let ids = containers_at(&there);
    assert_eq!(ids.len(), 1, "{}", up.stderr);
    let c: serde_json::Value = serde_json::from_str(&docker_ok(&["inspect", &ids[0]])).unwrap();
    let labels = &c[0]["Config"]["Labels"];
    assert_eq!(labels["dev.berth.owner-uid"], uid_of("berthsrv").to_string().as_str());
    assert_eq!(labels["dev.berth.owner"], "berthsrv");
    // The server's recorded GPUs (two AMD), not the laptop's (none).
    let devices: Vec<String> = c[0]["HostConfig"]["Devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["PathOnHost"].as_str().unwrap().to_string())
        .collect();
    assert!(devices.contains(&"/dev/kfd".to_string()), "{devices:?}");
    assert!(env.containers_of(&dir).is_empty(), "nothing on the laptop's engine for the laptop's folder");
    // The server's files are its user's.
    assert_eq!(std::fs::metadata(&there).unwrap().uid(), uid_of("berthsrv"));
    // Another command in the same session reuses the connection and the same folder.
    let status = env.berth(&dir, &["--on", "gpu", "status"]).ok();
    assert!(status.stdout.contains(&name), "{}", status.stdout);
    env.berth(&dir, &["--on", "gpu", "down"]).ok();
    assert!(containers_at(&there).is_empty());
}

/// Every ssh process of this laptop (its runtime folder is in their command lines; the master
/// renames itself `ssh: SOCKET [mux]`).
fn laptop_ssh_pids(env: &TestEnv) -> Vec<i32> {
    let run = env.root.path().join("run").display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if (text.starts_with("ssh ") || text.starts_with("ssh: ")) && text.contains(&run) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "needs root: makes the server's users and starts its sshd")]
fn run_uses_the_edited_file_and_the_job_outlives_the_laptops_ssh() {
    ensure_python_image();
    let env = laptop();
    let name = unique("rrun");
    let dir = env.project(&name, &format!("name = \"{name}\"\n[image]\nbase = \"{PYTHON_IMAGE}\"\n"));
    std::fs::write(dir.join("train.py"), "print('version one')\n").unwrap();
    let up = env.berth(&dir, &["--on", "srv", "up"]);
    let server = ServerProject(std::panic::catch_unwind(|| server_dir("berthsrv", &name)).ok());
    up.ok();
    let there = server.0.clone().unwrap();
    assert_eq!(std::fs::read_to_string(there.join("train.py")).unwrap(), "print('version one')\n");

    // Edited on the laptop: the run sees the edit.
    std::fs::write(
        dir.join("train.py"),
        "import time\nprint('version two', flush=True)\ntime.sleep(6)\nprint('done', flush=True)\nraise SystemExit(7)\n",
    )
    .unwrap();
    let run = env.berth(&dir, &["--on", "srv", "run", "--name", "train", "--", "python3", "train.py"]).ok();
    assert!(run.stderr.contains("1 file sent"), "only the edited file travels: {}", run.stderr);

    // Follow it, then cut the laptop's ssh (master and session) mid-run.
    let mut follow = env
        .command(&dir, &["--on", "srv", "logs", "-f", "train"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    assert!(first.contains("version two"), "{first}");
    let pids = laptop_ssh_pids(&env);
    assert!(pids.len() >= 2, "a master and a session: {pids:?}");
    // One may have ended by itself meanwhile: each is killed on its own.
    for pid in &pids {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    // SIGKILL is delivered, not yet acted on, when `kill` returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !laptop_ssh_pids(&env).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(laptop_ssh_pids(&env), Vec::<i32>::new(), "every ssh of the laptop is gone");
    let cut = follow.wait().unwrap();
    assert_ne!(cut.code(), Some(7), "the follower lost its connection before the job ended");

    // The job went on; a new `logs -f` opens a new connection and returns the job's code.
    let jobs = env.berth(&dir, &["--on", "srv", "jobs"]).ok();
    assert!(jobs.stderr.contains("stale") || jobs.stderr.is_empty(), "{}", jobs.stderr);
    assert!(jobs.stdout.contains("train"), "{}", jobs.stdout);
    let started = Instant::now();
    let logs = env.berth(&dir, &["--on", "srv", "logs", "-f", "train"]).code(7);
    assert!(logs.stdout.contains("version two") && logs.stdout.contains("done"), "{}", logs.stdout);
    assert!(started.elapsed() < Duration::from_secs(60));
    env.berth(&dir, &["--on", "srv", "down", "--force"]).ok();
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "needs root: makes the server's users and starts its sshd")]
fn shell_on_the_server_through_a_pty_types_resizes_interrupts_and_returns_the_code() {
    let env = laptop();
    let name = unique("rsh");
    let dir = env.project(&name, &format!("name = \"{name}\"\n"));
    let up = env.berth(&dir, &["--on", "srv", "up"]);
    let _server = ServerProject(std::panic::catch_unwind(|| server_dir("berthsrv", &name)).ok());
    up.ok();
    let cmd = env.command(&dir, &[]);
    let bin = env!("CARGO_BIN_EXE_berth");
    let mut script = Command::new("script");
    script
        .args(["-qec", &format!("stty cols 123 rows 45 && {bin} --on srv shell"), "/dev/null"])
        .current_dir(&dir);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let started = Instant::now();
    let mut child = script.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("script");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    stdin.write_all(b"echo typed-$((40+2)); stty size\n").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    stdin.write_all(b"sleep 60\n").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    stdin.write_all(b"\x03").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    stdin.write_all(b"echo after-interrupt; exit 5\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(text.contains("typed-42"), "{text}");
    assert!(text.contains("45 123"), "the window size reached the shell: {text}");
    assert!(text.contains("after-interrupt"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(40), "Ctrl-C did not interrupt `sleep 60`");
    env.berth(&dir, &["--on", "srv", "down", "--force"]).ok();
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "needs root: makes the server's users and starts its sshd")]
fn a_server_without_berth_gets_this_one_in_the_users_home_with_yes() {
    let env = laptop();
    let installed = Path::new("/home/berthbare/.local/share/berth");
    let _ = std::fs::remove_dir_all(installed);
    let name = unique("rbare");
    let dir = env.project(&name, &format!("name = \"{name}\"\n"));

    let refused = env.berth(&dir, &["--on", "bare", "up"]).code(4);
    assert!(
        refused.stderr.contains("has no berth") && refused.stderr.contains("--yes"),
        "{}",
        refused.stderr
    );
    assert!(!installed.exists(), "nothing copied without --yes");

    let up = env.berth(&dir, &["--on", "bare", "--yes", "up"]);
    let server = ServerProject(std::panic::catch_unwind(|| server_dir("berthbare", &name)).ok());
    let up = up.ok();
    assert!(up.stderr.contains("copied berth"), "{}", up.stderr);
    let copy = installed.join(format!("bin/berth-{}", env!("CARGO_PKG_VERSION")));
    let meta = std::fs::metadata(&copy).expect("the copy");
    assert_eq!(meta.uid(), uid_of("berthbare"), "the user's own file, no root");
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    assert_eq!(containers_at(server.0.as_ref().unwrap()).len(), 1);
    // The next command finds it without asking.
    let status = env.berth(&dir, &["--on", "bare", "status"]).ok();
    assert!(!status.stderr.contains("copied"), "{}", status.stderr);
    env.berth(&dir, &["--on", "bare", "down"]).ok();
}

/// The sync through the real ssh: ignored files stay home, a file made or edited on the server
/// survives the next sync (and is named), and `fetch` brings results back, keeping a newer
/// local file unless `--force`.
#[test]
#[cfg_attr(not(berth_root_tests), ignore = "needs root: makes the server's users and starts its sshd")]
fn sync_keeps_the_servers_files_and_fetch_brings_results_back() {
    ensure_image();
    let env = laptop();
    let name = unique("rsync");
    let dir = env.project(&name, &format!("name = \"{name}\"\n[image]\nbase = \"{IMAGE}\"\n"));
    std::fs::write(dir.join("train.py"), "print(1)\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "*.log\n").unwrap();
    std::fs::write(dir.join("debug.log"), "laptop noise\n").unwrap();
    let up = env.berth(&dir, &["--on", "srv", "up", "--no-start"]);
    let server = ServerProject(std::panic::catch_unwind(|| server_dir("berthsrv", &name)).ok());
    up.ok();
    let there = server.0.clone().unwrap();
    assert_eq!(std::fs::read_to_string(there.join("train.py")).unwrap(), "print(1)\n");
    assert!(!there.join("debug.log").exists(), "ignored files stay on the laptop");
    assert_eq!(std::fs::metadata(&there).unwrap().permissions().mode() & 0o777, 0o700);

    // On the server: a checkpoint, and train.py edited there.
    let srv_uid = uid_of("berthsrv");
    let as_server = |rel: &str, text: &str| {
        let p = there.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        chown_tree(&there, srv_uid, srv_uid);
    };
    as_server("work_dirs/epoch_1.pth", "server weights");
    as_server("train.py", "print('edited on the server')\n");
    std::fs::write(dir.join("train.py"), "print(2)\n").unwrap();
    let again = env.berth(&dir, &["--on", "srv", "up", "--no-start"]).ok();
    assert!(
        again.stderr.contains("train.py: changed on the server"),
        "the kept file is named: {}",
        again.stderr
    );
    assert_eq!(std::fs::read_to_string(there.join("train.py")).unwrap(), "print('edited on the server')\n");

    // Results come back.
    let fetched = env.berth(&dir, &["--on", "srv", "fetch", "work_dirs"]).ok();
    assert!(fetched.stderr.contains("fetched 1 file"), "{}", fetched.stderr);
    assert_eq!(std::fs::read_to_string(dir.join("work_dirs/epoch_1.pth")).unwrap(), "server weights");
    // A newer local file is kept without --force, replaced with it.
    std::fs::write(dir.join("work_dirs/epoch_1.pth"), "mine").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(dir.join("work_dirs/epoch_1.pth"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let kept = env.berth(&dir, &["--on", "srv", "fetch", "work_dirs/epoch_1.pth"]).ok();
    assert!(kept.stderr.contains("newer on the laptop"), "{}", kept.stderr);
    assert_eq!(std::fs::read_to_string(dir.join("work_dirs/epoch_1.pth")).unwrap(), "mine");
    env.berth(&dir, &["--on", "srv", "fetch", "--force", "work_dirs/epoch_1.pth"]).ok();
    assert_eq!(std::fs::read_to_string(dir.join("work_dirs/epoch_1.pth")).unwrap(), "server weights");
    env.berth(&dir, &["--on", "srv", "down"]).ok();
}

/// Seed 004's user renames the laptop folder while a job runs: the project keeps its folder,
/// its environment and its jobs on the server (the record in `.berth` moved with it).
#[test]
#[cfg_attr(not(berth_root_tests), ignore = "needs root: makes the server's users and starts its sshd")]
fn a_renamed_laptop_folder_keeps_its_folder_environment_and_jobs_there() {
    ensure_python_image();
    let env = laptop();
    let name = unique("rmv");
    let dir = env.project(&name, &format!("name = \"{name}\"\n[image]\nbase = \"{PYTHON_IMAGE}\"\n"));
    std::fs::write(
        dir.join("train.py"),
        "import time\ntime.sleep(4)\nprint('trained', flush=True)\nraise SystemExit(4)\n",
    )
    .unwrap();
    let up = env.berth(&dir, &["--on", "srv", "up"]);
    let server = ServerProject(std::panic::catch_unwind(|| server_dir("berthsrv", &name)).ok());
    up.ok();
    let there = server.0.clone().unwrap();
    env.berth(&dir, &["--on", "srv", "run", "--name", "train", "--", "python3", "train.py"]).ok();

    let moved = dir.with_file_name(format!("{name}-renamed"));
    std::fs::rename(&dir, &moved).unwrap();
    let jobs = env.berth(&moved, &["--on", "srv", "jobs"]).ok();
    assert!(jobs.stdout.contains("train"), "the job is still seen: {}{}", jobs.stdout, jobs.stderr);
    assert!(jobs.stderr.contains("keeps its folder"), "{}", jobs.stderr);
    let logs = env.berth(&moved, &["--on", "srv", "logs", "-f", "train"]).code(4);
    assert!(logs.stdout.contains("trained"), "{}", logs.stdout);
    env.berth(&moved, &["--on", "srv", "up"]).ok();
    assert_eq!(containers_at(&there).len(), 1, "one environment, not a second one");
    assert_eq!(server_dir("berthsrv", &name), there, "no second folder there");
    env.berth(&moved, &["--on", "srv", "down", "--force"]).ok();
}

/// The common case costs one ssh session: sync and command in one call, no check before it.
#[test]
#[cfg_attr(not(berth_root_tests), ignore = "needs root: makes the server's users and starts its sshd")]
fn a_command_with_nothing_to_sync_is_one_ssh_session() {
    let mut env = laptop();
    let log = env.root.path().join("ssh-calls");
    let wrapper = env.root.path().join("ssh-logged");
    std::fs::write(&wrapper, format!("#!/bin/sh\necho \"$*\" >>'{}'\nexec ssh \"$@\"\n", log.display()))
        .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = server().dir.join("ssh_config");
    for (k, v) in env.env.iter_mut() {
        if k == "BERTH_SSH" {
            *v = format!("{} -F {}", wrapper.display(), config.display());
        }
    }
    let name = unique("rone");
    let dir = env.project(&name, &format!("name = \"{name}\"\n"));
    let up = env.berth(&dir, &["--on", "srv", "up", "--no-start"]);
    let _server = ServerProject(std::panic::catch_unwind(|| server_dir("berthsrv", &name)).ok());
    up.ok();
    for args in [&["--on", "srv", "up", "--no-start"][..], &["--on", "srv", "status"][..]] {
        std::fs::write(&log, "").unwrap();
        env.berth(&dir, args).ok();
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(calls.matches("ControlPath=").count(), 1, "{args:?}: {calls}");
        // No `ssh -O check` (a word of its own: temporary folders' random names hold "-O" too).
        assert!(calls.contains("serve-on") && !calls.split_whitespace().any(|w| w == "-O"), "{calls}");
    }
    env.berth(&dir, &["--on", "srv", "down"]).ok();
}
