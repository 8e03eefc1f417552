//! Your keys, never copied: the caller's ssh-agent reaches `exec`, `shell` and `run` jobs
//! through the relay's socket in `.berth/`, git inside gets the host user's identity, and no
//! private key is ever inside the container. Real ssh-agent, ssh-keygen, sshd and git.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::unique;
use crate::support::*;

/// Debian 12 with the OpenSSH client and git (debootstrap; cached by tag).
const GITSSH_IMAGE: &str = "berth-test/gitssh:1";

fn ensure_gitssh_image() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gitssh-image.sh");
        let status = Command::new("bash").arg(script).arg(GITSSH_IMAGE).status().expect("gitssh-image.sh");
        assert!(status.success(), "could not build the test image {GITSSH_IMAGE}");
    });
}

/// A fresh key and an ssh-agent holding it, stopped by pid when dropped.
struct Agent {
    sock: PathBuf,
    pid: u32,
    key: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        Agent::start_as(dir, None)
    }

    /// The key, the agent and `ssh-add` as the user `as_user` (uid, gid) when given.
    fn start_as(dir: &Path, as_user: Option<(u32, u32)>) -> Agent {
        std::fs::create_dir_all(dir).expect("agent dir");
        let cmd = |program: &str| match as_user {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.args([&format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups", program]);
                c
            }
            None => Command::new(program),
        };
        let key = dir.join("id_test");
        // ssh-keygen wants a passwd entry for its user: made here, then given to the user.
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "berth-agent-test", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(ok.success());
        if let Some((uid, gid)) = as_user {
            chown_tree(dir, uid, gid);
        }
        let sock = dir.join("agent.sock");
        let out = cmd("ssh-agent").arg("-s").arg("-a").arg(&sock).output().expect("ssh-agent");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let pid = text
            .split("SSH_AGENT_PID=")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no agent pid in {text}"));
        let agent = Agent { sock, pid, key };
        let added = cmd("ssh-add").arg(&agent.key).env("SSH_AUTH_SOCK", &agent.sock).output().unwrap();
        assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
        agent
    }

    fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen").arg("-lf").arg(self.key.with_extension("pub")).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).expect("fingerprint").to_string()
    }

    /// The lines of the private key's body: what must never appear inside.
    fn secret_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.key)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 40)
            .map(str::to_string)
            .collect()
    }

    fn stop(&self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).stderr(Stdio::null()).status();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// sshd on 127.0.0.1 (its own host key; root may log in with the agent's key only) serving a
/// bare git repository; stopped by pid when dropped.
struct GitServer {
    dir: PathBuf,
    port: u16,
    repo: PathBuf,
}

impl GitServer {
    fn start(dir: &Path, authorized: &Path) -> GitServer {
        std::fs::create_dir_all(dir).unwrap();
        let sh = |script: &str| {
            let out = Command::new("bash").arg("-ec").arg(script).current_dir(dir).output().unwrap();
            assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        };
        sh("git init -q src && echo hello-from-the-git-server > src/README && git -C src add README && \
            git -C src -c user.name=server -c user.email=s@example.invalid commit -qm first && \
            git clone -q --bare src repo.git && ssh-keygen -q -t ed25519 -N '' -f host_key -C berth-test-host && mkdir -p /run/sshd");
        std::fs::copy(authorized, dir.join("authorized_keys")).unwrap();
        let d = dir.display();
        for _ in 0..20 {
            let port = 20000 + (std::process::id() as u16 ^ rand_u16()) % 40000;
            std::fs::write(
                dir.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                     AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n\
                     UsePAM no\nUseDNS no\n"
                ),
            )
            .unwrap();
            let started = Command::new("/usr/sbin/sshd")
                .arg("-f")
                .arg(dir.join("sshd_config"))
                .arg("-E")
                .arg(dir.join("sshd.log"))
                .status()
                .unwrap();
            let pid = dir.join("sshd.pid");
            for _ in 0..40 {
                if pid.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if started.success() && pid.exists() {
                return GitServer { dir: dir.to_path_buf(), port, repo: dir.join("repo.git") };
            }
        }
        panic!("sshd did not start: {}", std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default());
    }

    fn known_hosts(&self) -> String {
        let key = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        format!("[127.0.0.1]:{} {}\n", self.port, key.join(" "))
    }

    /// A shell line that clones the repository over SSH into `into` and prints its README.
    fn clone_line(&self, into: &str) -> String {
        format!(
            "GIT_SSH_COMMAND='ssh -o UserKnownHostsFile=/workspace/known_hosts -o StrictHostKeyChecking=yes \
             -o BatchMode=yes -o IdentitiesOnly=no' git clone -q ssh://root@127.0.0.1:{}{} {into} && cat {into}/README",
            self.port,
            self.repo.display()
        )
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("sshd.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    (nanos >> 7) as u16
}

fn project(env: &TestEnv, stem: &str, extra: &str) -> PathBuf {
    ensure_gitssh_image();
    env.project(
        &unique(stem),
        &format!("{extra}\n[image]\nbase = \"{GITSSH_IMAGE}\"\n[cache]\npip = false\nhuggingface = false\n"),
    )
}

fn with_agent(env: &TestEnv, agent: &Agent) -> TestEnv {
    let mut e = TestEnv {
        root: tempfile::tempdir().unwrap(),
        home: env.home.clone(),
        env: env.env.clone(),
        as_user: None,
    };
    e.env.push(("SSH_AUTH_SOCK".into(), agent.sock.display().to_string()));
    e
}

fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn exec_lists_the_callers_key_and_the_relay_follows_the_agent() {
    let mut env = TestEnv::new();
    let agent = Agent::start(&env.root.path().join("agent"));
    let dir = project(&env, "agent-exec", "");
    // Up without an agent: one appearing later needs no new container.
    env.berth(&dir, &["up"]).ok();
    let id = env.containers_of(&dir);
    let none = env.berth(&dir, &["exec", "--", "sh", "-c", "echo \"[$SSH_AUTH_SOCK]\""]).ok();
    assert!(none.stdout.contains("[]"), "no agent, no socket: {}", none.stdout);

    env.env.push(("SSH_AUTH_SOCK".into(), agent.sock.display().to_string()));
    let listed = env.berth(&dir, &["exec", "--", "ssh-add", "-l"]).ok();
    assert!(listed.stdout.contains(&agent.fingerprint()), "{}", listed.stdout);
    assert!(listed.stdout.contains("berth-agent-test"), "{}", listed.stdout);
    assert_eq!(env.containers_of(&dir), id, "the same container");
    let inside = env.berth(&dir, &["exec", "--", "sh", "-c", "echo \"$SSH_AUTH_SOCK\""]).ok();
    assert_eq!(inside.stdout.trim(), "/berth/state/ssh-agent/agent.sock");

    // Private to the owner: the folder 0700, the socket 0600.
    use std::os::unix::fs::PermissionsExt;
    let socket_dir = dir.join(".berth/ssh-agent");
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket_dir), 0o700);
    assert_eq!(mode(&socket_dir.join("agent.sock")), 0o600);

    // Status names the setting; the container mounts nothing of ~/.ssh.
    let status: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["status", "--json"]).ok().stdout).unwrap();
    assert!(status["access"].to_string().contains("[ssh] agent = true"), "{}", status["access"]);
    let mounts = env.inspect(&dir)["Mounts"].to_string();
    assert!(!mounts.contains(".ssh") && !mounts.contains("agent/"), "{mounts}");

    // The agent goes away: its relay removes the socket and exits.
    agent.stop();
    assert!(wait_until(10, || !socket_dir.join("agent.sock").exists()), "the relay outlived its agent");
    let gone = env.berth(&dir, &["exec", "--", "sh", "-c", "echo \"[$SSH_AUTH_SOCK]\""]).ok();
    assert!(gone.stdout.contains("[]"), "{}", gone.stdout);
    assert!(gone.stderr.contains("does not answer"), "{}", gone.stderr);

    // Another agent, another session: the relay is re-pointed at it.
    let second = Agent::start(&env.root.path().join("agent2"));
    let env2 = with_agent(&env, &second);
    let listed = env2.berth(&dir, &["exec", "--", "ssh-add", "-l"]).ok();
    assert!(listed.stdout.contains(&second.fingerprint()), "{}", listed.stdout);
    // `down` leaves the relay no one to serve.
    env.berth(&dir, &["down", "--force"]).ok();
    assert!(!socket_dir.join("agent.sock").exists(), "the socket outlived the environment");
}

#[test]
fn agent_false_keeps_the_agent_out_and_a_relay_from_before_stops() {
    let mut env = TestEnv::new();
    let agent = Agent::start(&env.root.path().join("agent"));
    env.env.push(("SSH_AUTH_SOCK".into(), agent.sock.display().to_string()));
    let dir = project(&env, "agent-off", "");
    env.berth(&dir, &["exec", "--", "ssh-add", "-l"]).ok();
    let socket = dir.join(".berth/ssh-agent/agent.sock");
    assert!(socket.exists());
    let text = std::fs::read_to_string(dir.join("berth.toml")).unwrap();
    std::fs::write(dir.join("berth.toml"), format!("[ssh]\nagent = false\n{text}")).unwrap();
    let off = env.berth(&dir, &["exec", "--", "sh", "-c", "echo \"[$SSH_AUTH_SOCK]\"; ssh-add -l"]);
    assert_ne!(off.code, 0, "{}", off.stdout);
    assert!(off.stdout.contains("[]"), "{}", off.stdout);
    assert!(!socket.exists(), "the socket stays while forwarding is off");
    let status: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["status", "--json"]).ok().stdout).unwrap();
    assert!(!status["access"].to_string().contains("[ssh]"), "{}", status["access"]);
    env.berth(&dir, &["down", "--force"]).ok();
}

#[test]
fn git_over_ssh_works_from_shell_and_from_a_job_and_no_key_is_inside() {
    let mut env = TestEnv::new();
    let agent = Agent::start(&env.root.path().join("agent"));
    let server = GitServer::start(&env.root.path().join("server"), &agent.key.with_extension("pub"));
    std::fs::write(
        env.home.join(".gitconfig"),
        "[user]\n\tname = Test Person Of Berth\n\temail = person@berth.invalid\n",
    )
    .unwrap();
    env.env.push(("SSH_AUTH_SOCK".into(), agent.sock.display().to_string()));
    // The host network: the container's 127.0.0.1 is the host's, where sshd listens.
    let dir = project(&env, "agent-git", "[run]\nnetwork = \"host\"\n");
    std::fs::write(dir.join("known_hosts"), server.known_hosts()).unwrap();

    // Without the agent the server refuses: the key is the only way in.
    let mut plain = env.command(&dir, &["exec", "--", "sh", "-c", &server.clone_line("/tmp/c0")]);
    plain.env_remove("SSH_AUTH_SOCK");
    let refused = plain.stdin(Stdio::null()).output().unwrap();
    assert!(!refused.status.success(), "cloned without the agent");

    // `berth shell`, through a real terminal.
    let (child, mut stdin) = pty_shell(&env, &dir);
    let typed = format!(
        "{} && git -C /tmp/c1 commit -q --allow-empty -m mine && git -C /tmp/c1 log -1 --format='%an|%ce' | tr a-z A-Z; exit\n",
        server.clone_line("/tmp/c1")
    );
    stdin.write_all(typed.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hello-from-the-git-server"), "shell clone failed: {text}");
    assert!(text.contains("TEST PERSON OF BERTH|PERSON@BERTH.INVALID"), "git identity: {text}");

    // A detached job, still cloning after the session that started it returned.
    let job_line = format!("sleep 2; {}", server.clone_line("/tmp/c2"));
    env.berth(&dir, &["run", "--name", "clone", "--", "sh", "-c", &job_line]).ok();
    let log = env.berth(&dir, &["logs", "-f", "clone"]);
    assert_eq!(log.code, 0, "job clone failed: {} {}", log.stdout, log.stderr);
    assert!(log.stdout.contains("hello-from-the-git-server"), "{}", log.stdout);

    // No file inside the container or its image holds the private key.
    let secrets = agent.secret_lines();
    assert!(!secrets.is_empty());
    let id = env.containers_of(&dir).remove(0);
    let export = Command::new("docker").args(["export", &id]).output().unwrap();
    assert!(export.status.success() && export.stdout.len() > 1_000_000);
    let haystack = String::from_utf8_lossy(&export.stdout);
    for line in &secrets {
        assert!(!haystack.contains(line.as_str()), "a private key line is in the container's file system");
    }
    // The mounted folders too, as the container sees them.
    let grep = env.berth(
        &dir,
        &[
            "exec",
            "--",
            "grep",
            "-rlsF",
            "--exclude-dir=proc",
            "--exclude-dir=sys",
            "--exclude-dir=dev",
            &secrets[0],
            "/",
        ],
    );
    assert_eq!(grep.code, 1, "found the key in: {}", grep.stdout);
    env.berth(&dir, &["down", "--force"]).ok();
}

#[test]
fn forwarding_off_takes_the_socket_away_before_anything_runs_inside() {
    let mut env = TestEnv::new();
    let agent = Agent::start(&env.root.path().join("agent"));
    env.env.push(("SSH_AUTH_SOCK".into(), agent.sock.display().to_string()));
    // The image's `env`, as berth runs it to find the Python environment, notes whether the
    // relay's socket is there (berth's first exec in a session).
    let path = "/workspace/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let dir = project(&env, "agent-first", &format!("[env]\nPATH = \"{path}\"\n"));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let spy = "#!/bin/sh\n[ -S /berth/state/ssh-agent/agent.sock ] && echo present >> /workspace/seen || \
               echo gone >> /workspace/seen\nexec /usr/bin/env \"$@\"\n";
    std::fs::write(dir.join("bin/env"), spy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("bin/env"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.join(".berth/ssh-agent/agent.sock");
    let on = std::fs::read_to_string(dir.join("berth.toml")).unwrap();
    let off = format!("[ssh]\nagent = false\n{on}");

    env.berth(&dir, &["exec", "--", "ssh-add", "-l"]).ok();
    assert!(socket.exists(), "the relay serves the environment");
    // Forwarding switched off (or a pack unpacked with --force over this folder): the next
    // session's first look inside already finds no socket.
    std::fs::write(dir.join("berth.toml"), &off).unwrap();
    let _ = std::fs::remove_file(dir.join(".berth/python.json"));
    let _ = std::fs::remove_file(dir.join("seen"));
    env.berth(&dir, &["exec", "--", "true"]).ok();
    let seen = std::fs::read_to_string(dir.join("seen")).unwrap();
    assert!(!seen.is_empty() && seen.lines().all(|l| l == "gone"), "{seen}");

    // `up` alone, with no session after it, takes it away too: starting the container runs the
    // image's shell (the account's setup) before any session.
    std::fs::write(dir.join("berth.toml"), &on).unwrap();
    env.berth(&dir, &["exec", "--", "ssh-add", "-l"]).ok();
    assert!(socket.exists());
    env.berth(&dir, &["stop"]).ok();
    std::fs::write(dir.join("berth.toml"), &off).unwrap();
    env.berth(&dir, &["up"]).ok();
    assert!(!socket.exists(), "a relay from before still serves an environment that says no");
    env.berth(&dir, &["down", "--force"]).ok();
}

/// The command lines of the relays serving `dir`'s socket (berth's own: not a process inside a
/// container that calls itself one, which the host's `ps` lists too).
fn relays_of(dir: &Path) -> Vec<String> {
    let out = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let want = dir.join(".berth/ssh-agent").display().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("ssh-agent-relay") && l.ends_with(&want))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_job_keeps_its_agent_when_a_later_shorter_session_re_pointed_the_relay_and_ended() {
    let env = TestEnv::new();
    let first = Agent::start(&env.root.path().join("agent-a"));
    let second = Agent::start(&env.root.path().join("agent-b"));
    let a = with_agent(&env, &first);
    let dir = project(&a, "agent-two", "");
    // A job started from the first session (say in tmux), using the agent a while later.
    let job = "sleep 4; ssh-add -l";
    a.berth(&dir, &["run", "--name", "later", "--", "sh", "-c", job]).ok();
    // A second login (its own forwarded agent) runs a command, then logs out.
    let b = with_agent(&env, &second);
    let listed = b.berth(&dir, &["exec", "--", "ssh-add", "-l"]).ok();
    assert!(listed.stdout.contains(&second.fingerprint()), "{}", listed.stdout);
    second.stop();
    // The first session's agent still lives: the job reaches it.
    let log = a.berth(&dir, &["logs", "-f", "later"]);
    assert_eq!(log.code, 0, "the job lost its agent: {} {}", log.stdout, log.stderr);
    assert!(log.stdout.contains(&first.fingerprint()), "{}", log.stdout);
    a.berth(&dir, &["down", "--force"]).ok();
}

#[test]
fn a_relay_impostor_inside_the_container_cannot_hand_the_next_relay_another_host_socket() {
    ensure_python_image();
    let mut env = TestEnv::new();
    let agent = Agent::start(&env.root.path().join("agent"));
    env.env.push(("SSH_AUTH_SOCK".into(), agent.sock.display().to_string()));
    let dir = env.project(
        &unique("agent-impostor"),
        &format!("[image]\nbase = \"{PYTHON_IMAGE}\"\n[cache]\npip = false\nhuggingface = false\n"),
    );
    env.berth(&dir, &["exec", "--", "true"]).ok();
    assert!(dir.join(".berth/ssh-agent/agent.sock").exists(), "a relay serves the environment");
    // A process inside takes the socket's place with the command line of a relay whose "agent"
    // is the engine's socket.
    let forge = format!(
        "import os, socket\nd = '/berth/state/ssh-agent'\ns = socket.socket(socket.AF_UNIX)\n\
         s.bind(d + '/fake'); s.listen(8); os.rename(d + '/fake', d + '/agent.sock')\n\
         os.set_inheritable(s.fileno(), True)\nopen('/workspace/forged', 'w').close()\n\
         os.execv('/bin/sh', ['berth', '-c', 'sleep 60; true', 'ssh-agent-relay', '--upstream', \
         '/var/run/docker.sock', '{}'])\n",
        dir.join(".berth/ssh-agent").display()
    );
    env.berth(&dir, &["run", "--name", "impostor", "--", "python3", "-c", &forge]).ok();
    assert!(wait_until(10, || dir.join("forged").exists()), "the impostor did not start");
    // The next session starts a relay of its own, serving its own agent only.
    env.berth(&dir, &["exec", "--", "true"]).ok();
    let relays = relays_of(&dir);
    assert!(!relays.is_empty(), "no relay serves the environment");
    for r in &relays {
        assert!(!r.contains("docker.sock"), "a relay forwards to the engine's socket: {r}");
    }
    env.berth(&dir, &["kill", "impostor"]).ok();
    env.berth(&dir, &["down", "--force"]).ok();
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "switching to another uid needs root")]
fn a_user_who_is_not_root_reaches_their_agent_as_themselves_and_as_an_image_user() {
    ensure_gitssh_image();
    // The image with a user of its own (uid 1000), made once from the test image.
    let dev_image = "berth-test/gitssh-dev:1";
    if !docker(&["image", "inspect", dev_image]).status.success() {
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", dev_image, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let dockerfile = format!("FROM {GITSSH_IMAGE}\nRUN useradd -m -u 1000 dev\n");
        child.stdin.take().unwrap().write_all(dockerfile.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "could not build {dev_image}");
    }
    let mut env = TestEnv::new();
    env.as_user = Some((4242, 4242, "alice".into()));
    let as_host = project(&env, "agent-alice", "");
    let as_dev = env.project(
        &unique("agent-alice-dev"),
        &format!(
            "[image]\nbase = \"{dev_image}\"\n[user]\nas = \"dev\"\n[cache]\npip = false\nhuggingface = false\n"
        ),
    );
    let agent = Agent::start_as(&env.root.path().join("agent"), Some((4242, 4242)));
    env.env.push(("SSH_AUTH_SOCK".into(), agent.sock.display().to_string()));
    for (dir, user) in [(&as_host, "alice"), (&as_dev, "dev")] {
        let listed = env.berth(dir, &["exec", "--", "sh", "-c", "id -un; ssh-add -l"]).ok();
        assert!(listed.stdout.starts_with(&format!("{user}\n")), "{}", listed.stdout);
        assert!(listed.stdout.contains(&agent.fingerprint()), "{user}: {} {}", listed.stdout, listed.stderr);
        env.berth(dir, &["run", "--name", "keys", "--", "ssh-add", "-l"]).ok();
        let log = env.berth(dir, &["logs", "-f", "keys"]);
        assert_eq!(log.code, 0, "{user}'s job: {} {}", log.stdout, log.stderr);
        assert!(log.stdout.contains(&agent.fingerprint()), "{}", log.stdout);
    }
    // Private all the same: the folder and socket are alice's (and, for dev, her own group's).
    use std::os::unix::fs::MetadataExt;
    let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
    let sock = |d: &Path| d.join(".berth/ssh-agent/agent.sock");
    assert_eq!((meta(&sock(&as_host)).uid(), meta(&sock(&as_host)).mode() & 0o777), (4242, 0o600));
    assert_eq!((meta(&sock(&as_dev)).gid(), meta(&sock(&as_dev)).mode() & 0o777), (4242, 0o660));
    for dir in [&as_host, &as_dev] {
        env.berth(dir, &["down", "--force"]).ok();
    }
}
