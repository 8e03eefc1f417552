//! The test harness: a temporary project and home per test, the real `berth` binary, the real
//! engine, and cleanup of every container the test's projects own (by label), even on failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;

pub const IMAGE: &str = "berth-test/busybox:1";

/// Debian 12 with python3 and pip (debootstrap; about a minute the first time, then cached).
pub const PYTHON_IMAGE: &str = "berth-test/python:1";

static IMAGE_ONCE: Once = Once::new();
static PYTHON_ONCE: Once = Once::new();

pub fn ensure_python_image() {
    PYTHON_ONCE.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/python-image.sh");
        let status =
            Command::new("bash").arg(script).arg(PYTHON_IMAGE).status().expect("run python-image.sh");
        assert!(status.success(), "could not build the test image {PYTHON_IMAGE}");
    });
}

/// Build the offline test image once per run (cached by tag across runs).
pub fn ensure_image() {
    IMAGE_ONCE.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/test-image.sh");
        let status = Command::new("bash").arg(script).arg(IMAGE).status().expect("run test-image.sh");
        assert!(status.success(), "could not build the test image {IMAGE}");
    });
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("run docker")
}

pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The result of one berth invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "berth failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// One test's world: a temp root holding a home and any number of projects.
pub struct TestEnv {
    pub root: tempfile::TempDir,
    pub home: PathBuf,
    /// Extra environment for every berth run (e.g. BERTH_HOST_ROOT).
    pub env: Vec<(String, String)>,
    /// Run berth as this uid:gid (with the docker group) instead of the test's own user.
    pub as_user: Option<(u32, u32, String)>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        ensure_image();
        let root = tempfile::Builder::new().prefix("berth-it-").tempdir().expect("tempdir");
        let home = root.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        TestEnv { root, home, env: Vec::new(), as_user: None }
    }

    /// A project folder with this berth.toml (the test image is the default base).
    pub fn project(&self, name: &str, toml: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).expect("project dir");
        let toml = if toml.contains("[image]") {
            toml.to_string()
        } else {
            format!("{toml}\n[image]\nbase = \"{IMAGE}\"\n")
        };
        std::fs::write(dir.join("berth.toml"), toml).expect("write berth.toml");
        if let Some((uid, gid, _)) = &self.as_user {
            chown_tree(self.root.path(), *uid, *gid);
        }
        dir
    }

    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let bin = env!("CARGO_BIN_EXE_berth");
        let mut cmd = match &self.as_user {
            Some((uid, gid, _)) => {
                let docker_gid = docker_socket_gid();
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                    &format!("--groups={docker_gid}"),
                    bin,
                ]);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(args).current_dir(dir).env("HOME", &self.home).env("NO_COLOR", "1");
        cmd.env_remove("BERTH_HOST_ROOT");
        if let Some((_, _, name)) = &self.as_user {
            cmd.env("USER", name);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn berth(&self, dir: &Path, args: &[&str]) -> Run {
        let out = self.command(dir, args).stdin(Stdio::null()).output().expect("run berth");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Ids of the containers whose project label is `dir`.
    pub fn containers_of(&self, dir: &Path) -> Vec<String> {
        let dir = dir.canonicalize().unwrap_or(dir.to_path_buf());
        let filter = format!("label=dev.berth.project={}", dir.display());
        let out = docker_ok(&["ps", "-aq", "--no-trunc", "--filter", &filter]);
        out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
    }

    /// `docker inspect` of a project's only container, as JSON.
    pub fn inspect(&self, dir: &Path) -> serde_json::Value {
        let ids = self.containers_of(dir);
        assert_eq!(ids.len(), 1, "expected one container for {}", dir.display());
        let text = docker_ok(&["inspect", &ids[0]]);
        let v: serde_json::Value = serde_json::from_str(&text).expect("inspect json");
        v[0].clone()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Everything berth made for projects under this root, whatever the test did.
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            "label=dev.berth.managed=true",
            "--format",
            "{{.ID}} {{.Label \"dev.berth.project\"}}",
        ]);
        let root = self.root.path().canonicalize().unwrap_or(self.root.path().to_path_buf());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((id, project)) = line.split_once(' ')
                && Path::new(project).starts_with(&root)
            {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        // Images berth built or committed for these projects.
        let ids = docker(&["image", "ls", "-q", "--no-trunc", "--filter", "label=dev.berth.managed=true"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let project =
                docker(&["image", "inspect", "-f", "{{index .Config.Labels \"dev.berth.project\"}}", id]);
            let project = String::from_utf8_lossy(&project.stdout).trim().to_string();
            if !project.is_empty() && Path::new(&project).starts_with(&root) {
                let _ = docker(&["rmi", "-f", id]);
            }
        }
        // Files made inside containers as other users must not block removing the temp root.
        let _ = Command::new("chmod").args(["-R", "u+rwX"]).arg(self.root.path()).status();
    }
}

pub fn docker_socket_gid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/var/run/docker.sock").map(|m| m.gid()).unwrap_or(0)
}

pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let status =
        Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(path).status().expect("chown");
    assert!(status.success());
}

pub fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false)
}

/// The uid of the real Unix user `name`, made with `useradd` (no home, no login) when missing:
/// for tests where a user's name must show (a lease's holder), not only a uid. Needs root; tests
/// that call it carry `#[cfg_attr(not(berth_root_tests), ignore = "why")]`. Parallel tests may
/// add users at once, and `useradd` refuses while another holds /etc/passwd's lock: it retries.
pub fn real_user(name: &str) -> u32 {
    let uid = || {
        let out = Command::new("id").args(["-u", name]).output().expect("id");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().expect("uid"))
    };
    for _ in 0..50 {
        if let Some(u) = uid() {
            return u;
        }
        let _ = Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", name]).status();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    uid().unwrap_or_else(|| panic!("cannot make the user {name} (useradd)"))
}

/// A host root for `BERTH_HOST_ROOT` that is this machine with GPUs: the recorded `nvidia-2`'s
/// two GPUs (sysfs, driver), nvidia-smi's answers naming the real processes `on_gpus`
/// (`(host pid, MiB, GPU index)`), and this machine's own procfs (each pid a link to `/proc`),
/// users and `/tmp` (where test projects live). No `containers.json`: berth asks the real engine
/// which containers exist. Build it after the processes start: later pids are not linked.
pub fn live_gpu_host(at: &Path, on_gpus: &[(u32, u64, u32)]) -> PathBuf {
    let recorded = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts/nvidia-2");
    let root = at.join("live-host");
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("nvidia-smi")).unwrap();
    let copied = Command::new("cp").arg("-a").arg(recorded.join("sys")).arg(&root).status().unwrap();
    assert!(copied.success());
    let copied =
        Command::new("cp").arg("-a").arg(recorded.join("proc/driver")).arg(root.join("proc")).status();
    assert!(copied.unwrap().success());
    std::fs::copy("/etc/passwd", root.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink("/tmp", root.join("tmp")).unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            std::os::unix::fs::symlink(entry.path(), root.join("proc").join(&name)).unwrap();
        }
    }
    let gpus = std::fs::read_to_string(recorded.join("nvidia-smi/query-gpu.csv")).unwrap();
    std::fs::write(root.join("nvidia-smi/query-gpu.csv"), &gpus).unwrap();
    set_gpu_processes(&root, on_gpus);
    root
}

/// Replace what nvidia-smi says runs on the GPUs of a [`live_gpu_host`].
pub fn set_gpu_processes(root: &Path, on_gpus: &[(u32, u64, u32)]) {
    let gpus = std::fs::read_to_string(root.join("nvidia-smi/query-gpu.csv")).unwrap();
    let uuid = |index: u32| -> String {
        let line = gpus.lines().find(|l| l.starts_with(&format!("{index},"))).expect("a GPU of nvidia-2");
        line.split(',').nth(1).unwrap().trim().to_string()
    };
    let apps: String =
        on_gpus.iter().map(|(pid, mib, gpu)| format!("{pid}, {mib}, {}\n", uuid(*gpu))).collect();
    std::fs::write(root.join("nvidia-smi/query-compute-apps.csv"), apps).unwrap();
}

/// The host pid of the process in container `id` whose command line starts with `command`
/// (`docker top`; a job's wrapper also names the command, later in its line).
pub fn host_pid_in(id: &str, command: &str) -> u32 {
    for _ in 0..50 {
        let out = docker_ok(&["top", id, "-eo", "pid,args"]);
        let found = out.lines().skip(1).find_map(|l| {
            let (pid, args) = l.trim().split_once(char::is_whitespace)?;
            args.trim_start().starts_with(command).then(|| pid.parse().unwrap())
        });
        if let Some(pid) = found {
            return pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no `{command}` in container {id}");
}

/// A container berth did not make (`docker run -d`), removed when dropped.
pub struct PlainContainer {
    pub name: String,
    pub id: String,
}

impl PlainContainer {
    pub fn run(name: &str, labels: &[&str], cmd: &[&str]) -> PlainContainer {
        let mut args = vec!["run", "-d", "--name", name];
        for l in labels {
            args.extend(["--label", l]);
        }
        args.push(IMAGE);
        args.extend(cmd);
        let id = docker_ok(&args).trim().to_string();
        PlainContainer { name: name.to_string(), id }
    }

    /// The host pid of its main process.
    pub fn pid(&self) -> u32 {
        docker_ok(&["inspect", "-f", "{{.State.Pid}}", &self.id]).trim().parse().unwrap()
    }
}

impl Drop for PlainContainer {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.id]);
    }
}

/// `berth shell` in a real pseudo-terminal (util-linux `script`) with the test's environment,
/// given time to start; the caller types into the returned stdin and then waits for the child.
pub fn pty_shell(env: &TestEnv, dir: &Path) -> (std::process::Child, std::process::ChildStdin) {
    let base = env.command(dir, &[]);
    let bin = env!("CARGO_BIN_EXE_berth");
    let mut script = Command::new("script");
    script.args(["-qec", &format!("{bin} shell"), "/dev/null"]).current_dir(dir);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let mut child = script.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("script");
    let stdin = child.stdin.take().expect("stdin");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    (child, stdin)
}
