//! Your keys, never copied: `berth shell`, `exec` and `run` jobs reach the caller's ssh-agent,
//! and git inside signs commits with the host user's name and email.
//!
//! How the agent gets in: a relay (`berth ssh-agent-relay`, hidden, one per environment, started
//! detached by the first session that needs it) listens on `.berth/ssh-agent/agent.sock`, which
//! the environment already mounts (at `/berth/state/ssh-agent/agent.sock`), and forwards each
//! connection to the first of its agents that answers. Each session re-points it: when the
//! caller's `$SSH_AUTH_SOCK` is not the one the running relay serves first, a new relay serving
//! it first, then the running relay's agents that still answer, takes the socket's name over
//! (an atomic rename) and the old one finishes its open connections and exits. A relay exits
//! when none of its agents answers or its socket is removed. So a detached job keeps an agent
//! while the one of the session that started it lives, even after a later session re-pointed
//! the relay and ended, and a later session with another agent serves it too.
//!
//! Why a relay: a symlink to the host's socket cannot be resolved inside the container, and a
//! hard link only works on one file system. Who may connect: the socket is 0600 (0660 for an
//! image user's group, see `jobs::private`) in a 0700 folder, so the container's user and the
//! owner reach it, nobody else on the host. Which agents the relay serves come from sessions'
//! own environments (the earlier ones through the running relay's command line, believed only
//! of a process outside the container), never from anything the container could write. No private key is ever
//! copied, mounted or written; `~/.ssh` is not mounted.
//!
//! Off with `[ssh] agent = false`; an access-widening setting (`plan::access`), so a pack's
//! environment gets it only with consent.

pub mod relay;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::host::HostUser;
use crate::jobs::private::{self, Sharing};
use crate::output::Printer;
use crate::spec::{Spec, UserMode};

/// The hidden subcommand that runs the relay.
pub const RELAY_COMMAND: &str = "ssh-agent-relay";

/// Where the relay's socket appears inside the environment: `SSH_AUTH_SOCK` there.
pub fn inside() -> String {
    format!("{}/{}/{}", crate::plan::STATE_DIR, crate::state::SSH_AGENT, crate::state::SSH_AGENT_SOCKET)
}

/// The variables a session (`shell`, `exec`, a job) gets from the caller: git's identity, and
/// `SSH_AUTH_SOCK` when the caller's agent is forwarded (the relay is then running). Problems
/// are warnings: the session runs without an agent rather than not at all.
pub fn session_env(spec: &Spec, user: &HostUser, out: &Printer) -> Vec<String> {
    let mut env = git_identity(spec);
    if !spec.ssh.agent {
        keep_out(spec);
        return env;
    }
    let Some(upstream) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) else {
        return env;
    };
    let upstream = std::path::absolute(PathBuf::from(&upstream)).unwrap_or_else(|_| PathBuf::from(upstream));
    if let Err(e) = UnixStream::connect(&upstream) {
        out.warn(format!(
            "your ssh-agent ($SSH_AUTH_SOCK = {}) does not answer ({e}): the environment gets no ssh-agent",
            upstream.display()
        ));
        return env;
    }
    let sharing = Sharing::of(&spec.user, user);
    if let Some(why) = unreachable_for(&spec.user, sharing, user.gid) {
        out.warn(why);
        return env;
    }
    match ensure_relay(&spec.project_dir, sharing, &upstream) {
        Ok(()) => {
            if !spec.env.iter().any(|v| v.key == "SSH_AUTH_SOCK") {
                env.push(format!("SSH_AUTH_SOCK={}", inside()));
            }
        }
        Err(e) => out.warn(format!("your ssh-agent is not forwarded into the environment: {e:#}")),
    }
    env
}

/// Why the container's user could not open the relay's socket, when it could not: an image
/// user (another uid than the caller's) reaches it through the caller's primary group only, and
/// berth opens nothing to a group other users share (`jobs::private::Sharing`). Said, rather than
/// handing the session an `SSH_AUTH_SOCK` that answers "Permission denied".
fn unreachable_for(mode: &UserMode, sharing: Sharing, gid: u32) -> Option<String> {
    match (mode, sharing) {
        (UserMode::Named(name), Sharing::Owner) => Some(format!(
            "the image user {name} cannot reach your ssh-agent: berth opens its socket to your primary \
             group only when no other user shares it, and gid {gid} is shared; this session runs without \
             an agent (run berth with a group of your own, `sg GROUP -c 'berth ...'`, or use `[user] as = \
             \"host\"`)"
        )),
        _ => None,
    }
}

/// `GIT_AUTHOR_*` and `GIT_COMMITTER_*` as the host's git would use them here: the caller's own
/// variables, else `git config user.name` / `user.email` read in the project folder. A name the
/// file's `[env]` sets is left to it.
fn git_identity(spec: &Spec) -> Vec<String> {
    let config = |key: &str| -> Option<String> {
        let out = Command::new("git")
            .args(["config", "--get", key])
            .current_dir(&spec.project_dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let value = String::from_utf8(out.stdout).ok()?.trim_end_matches('\n').to_string();
        (out.status.success() && !value.is_empty()).then_some(value)
    };
    let name = std::cell::OnceCell::new();
    let email = std::cell::OnceCell::new();
    let mut env = Vec::new();
    for (var, key) in [
        ("GIT_AUTHOR_NAME", "user.name"),
        ("GIT_AUTHOR_EMAIL", "user.email"),
        ("GIT_COMMITTER_NAME", "user.name"),
        ("GIT_COMMITTER_EMAIL", "user.email"),
    ] {
        if spec.env.iter().any(|v| v.key == var) {
            continue;
        }
        let own = std::env::var(var).ok().filter(|v| !v.is_empty());
        let cell = if key == "user.name" { &name } else { &email };
        let value = own.or_else(|| cell.get_or_init(|| config(key)).clone());
        if let Some(value) = value.filter(|v| !v.contains('\0')) {
            env.push(format!("{var}={value}"));
        }
    }
    env
}

/// How many agents one relay keeps: the session's own, then those of earlier sessions.
const AGENTS: usize = 4;

/// The relay's arguments after the program: also how a running relay is recognised.
fn relay_args(dir: &Path, upstreams: &[String], sharing: Sharing) -> Vec<String> {
    let mut args = vec![RELAY_COMMAND.to_string()];
    for u in upstreams {
        args.extend(["--upstream".into(), u.clone()]);
    }
    if let Sharing::Group(gid) = sharing {
        args.extend(["--group".into(), gid.to_string()]);
    }
    args.push(dir.display().to_string());
    args
}

/// The agents a relay started with `args` serves, in order.
fn upstreams_of(args: &[String]) -> Vec<String> {
    args.windows(2).filter(|w| w[0] == "--upstream").map(|w| w[1].clone()).collect()
}

/// The agents a new relay serves for a session whose agent is `upstream`: that one first, then
/// the running relay's others that still answer, so a job a session started keeps an agent
/// (the same laptop's, through another SSH login) when a later, shorter session re-pointed the
/// relay and ended.
fn next_upstreams(upstream: &str, running: &[String], answers: impl Fn(&str) -> bool) -> Vec<String> {
    let mut list = vec![upstream.to_string()];
    for u in running {
        if list.len() < AGENTS && !list.contains(u) && answers(u) {
            list.push(u.clone());
        }
    }
    list
}

/// A relay for `upstream` listens on the environment's socket: the one running already, or a
/// new one that has taken the socket over.
fn ensure_relay(project_dir: &Path, sharing: Sharing, upstream: &Path) -> anyhow::Result<()> {
    let dir = private::ssh_agent_dir(project_dir, sharing).map_err(|e| {
        anyhow::anyhow!("cannot make {}: {e}", crate::state::ssh_agent(project_dir).display())
    })?;
    let upstream = upstream.display().to_string();
    let running_args = serving(&dir);
    let running = running_args.as_deref().map(upstreams_of).unwrap_or_default();
    // The session's agent is served first already (in this folder, with this group): kept.
    if running.first() == Some(&upstream) && running_args == Some(relay_args(&dir, &running, sharing)) {
        return Ok(());
    }
    let upstreams = next_upstreams(&upstream, &running, |u| UnixStream::connect(u).is_ok());
    let args = relay_args(&dir, &upstreams, sharing);
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .current_dir("/")
        // Its own process group: a terminal's hang-up or ^C in the session does not reach it.
        .process_group(0)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start the relay: {e}"))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("the relay has no output"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(line) if line.trim() == relay::READY => Ok(()),
        Ok(line) if !line.trim().is_empty() => Err(anyhow::anyhow!("the relay failed: {}", line.trim())),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(anyhow::anyhow!("the relay did not start"))
        }
    }
}

/// The arguments of the relay listening on `dir`'s socket, when one does (by the listener's
/// credentials and its command line): a process of this host, never one inside a container (its
/// mount namespace is this process's), whose agents a new relay may keep serving. A process in
/// the container that took the socket's place is not believed: it could name any socket of the
/// host (the engine's) as an agent for the next relay to forward to.
fn serving(dir: &Path) -> Option<Vec<String>> {
    let fd = relay::open_dir(dir).ok()?;
    let path = format!("/proc/self/fd/{}/{}", fd.as_raw_fd(), crate::state::SSH_AGENT_SOCKET);
    let stream = UnixStream::connect(path).ok()?;
    let cred = rustix::net::sockopt::socket_peercred(&stream).ok()?;
    let pid = cred.pid.as_raw_nonzero();
    let ns = |of: &str| std::fs::read_link(format!("/proc/{of}/ns/mnt")).ok();
    if cred.uid.as_raw() != crate::host::HostUser::current().uid || ns(&pid.to_string())? != ns("self")? {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    words.get(1..).map(<[String]>::to_vec)
}

/// With forwarding off, the socket a relay from before still serves goes (its relay exits at
/// its next check), before anything runs inside: `up` calls this before it starts the container
/// (and runs the image's shell to set up the account), sessions before their first exec. So an
/// environment whose `berth.toml` says `agent = false` (an unpacked one, written so) never meets
/// the agent of the environment that used the folder before.
pub fn keep_out(spec: &Spec) {
    if !spec.ssh.agent {
        remove_socket(&spec.project_dir);
    }
}

/// Removes the relay's socket (a socket only; no link on the way is followed): its relay exits
/// at its next check. `.berth` is writable inside the container, so `ssh-agent` there may be a
/// link planted to a folder of the user's (`~/.ssh`, where an `agent.sock` may be their agent's
/// own): each folder is opened without following a link, and the socket removed from it.
pub fn remove_socket(project_dir: &Path) {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
    let Ok(state) = rustix::fs::open(crate::state::dir(project_dir), flags, Mode::empty()) else { return };
    let Ok(dir) = rustix::fs::openat(&state, crate::state::SSH_AGENT, flags, Mode::empty()) else { return };
    let socket = crate::state::SSH_AGENT_SOCKET;
    if rustix::fs::statat(&dir, socket, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Socket)
    {
        let _ = rustix::fs::unlinkat(&dir, socket, AtFlags::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_inside_is_under_the_mounted_state_folder() {
        assert_eq!(inside(), "/berth/state/ssh-agent/agent.sock");
    }

    #[test]
    fn an_image_user_without_a_group_of_the_callers_own_is_told_it_gets_no_agent() {
        let dev = UserMode::Named("dev".into());
        let why = unreachable_for(&dev, Sharing::Owner, 100).expect("unreachable");
        assert!(why.contains("image user dev") && why.contains("gid 100"), "{why}");
        assert_eq!(unreachable_for(&dev, Sharing::Group(1000), 1000), None);
        assert_eq!(unreachable_for(&UserMode::Host, Sharing::Owner, 100), None);
        assert_eq!(unreachable_for(&UserMode::Root, Sharing::Owner, 100), None);
    }

    #[test]
    fn removing_the_socket_never_follows_a_link_planted_in_berths_folder() {
        let root = tempfile::tempdir().expect("tempdir");
        let project = root.path().join("p");
        let victim = root.path().join("dot-ssh");
        std::fs::create_dir_all(project.join(".berth")).expect("mkdir");
        std::fs::create_dir_all(&victim).expect("mkdir");
        let _theirs = std::os::unix::net::UnixListener::bind(victim.join("agent.sock")).expect("bind");
        std::os::unix::fs::symlink(&victim, crate::state::ssh_agent(&project)).expect("symlink");
        remove_socket(&project);
        assert!(victim.join("agent.sock").exists(), "the user's own agent socket was removed");
        // The relay's own socket in a real folder goes.
        std::fs::remove_file(crate::state::ssh_agent(&project)).expect("rm link");
        std::fs::create_dir(crate::state::ssh_agent(&project)).expect("mkdir");
        let own = crate::state::ssh_agent(&project).join(crate::state::SSH_AGENT_SOCKET);
        let _relay = std::os::unix::net::UnixListener::bind(&own).expect("bind");
        remove_socket(&project);
        assert!(!own.exists());
    }

    #[test]
    fn a_relay_is_known_by_its_agents_and_folder() {
        let dir = Path::new("/p/.berth/ssh-agent");
        let a = relay_args(dir, &["/tmp/ssh-x/agent.1".into()], Sharing::Owner);
        assert_eq!(a, ["ssh-agent-relay", "--upstream", "/tmp/ssh-x/agent.1", "/p/.berth/ssh-agent"]);
        let two = ["/tmp/ssh-y/agent.2".to_string(), "/tmp/ssh-x/agent.1".to_string()];
        let g = relay_args(dir, &two, Sharing::Group(7));
        assert_eq!(&g[5..7], ["--group", "7"]);
        assert_eq!(upstreams_of(&g), two);
    }

    #[test]
    fn a_new_session_s_agent_comes_first_and_earlier_live_ones_stay_behind_it() {
        let running: Vec<String> = ["/a", "/b", "/dead", "/c", "/d"].iter().map(|s| s.to_string()).collect();
        let alive = |u: &str| u != "/dead";
        assert_eq!(next_upstreams("/new", &running, alive), ["/new", "/a", "/b", "/c"]);
        assert_eq!(next_upstreams("/b", &running, alive), ["/b", "/a", "/c", "/d"]);
        assert_eq!(next_upstreams("/new", &[], alive), ["/new"]);
    }
}
