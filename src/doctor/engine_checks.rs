//! The engine's side of the host: reachable and which, socket permissions and the `docker`
//! group, daemon.json, free space under the data root, cgroups.

use serde_json::{Map, Value};

use super::facts::{DaemonJsonState, DoctorFacts, GroupEntry};
use super::{Check, gib};
use crate::host::{DeviceNode, HostUser};

/// Below this much free space under the data root, pulls and builds fail.
const DISK_FAIL: u64 = 5 << 30;
/// GPU images (CUDA, ROCm, NGC) are 10–20 GiB each; below this the next one may not fit.
const DISK_WARN: u64 = 30 << 30;

pub fn all(f: &DoctorFacts) -> Vec<Check> {
    let mut checks = vec![engine(f), socket(f)];
    checks.extend(super::engine_kind::checks(f));
    // Podman has no daemon.json (its settings live in containers.conf).
    if !is_podman(f) {
        checks.push(daemon_json(f));
    }
    checks.extend([disk(f), cgroups(f)]);
    checks
}

/// Podman answered, or (when it did not) the socket is Podman's by its path.
fn is_podman(f: &DoctorFacts) -> bool {
    match f.engine.facts() {
        Some(e) => e.is_podman(),
        None => {
            !f.remote
                && crate::engine::kind::is_podman_socket(std::path::Path::new(
                    f.endpoint.trim_start_matches("unix://"),
                ))
        }
    }
}

fn engine(f: &DoctorFacts) -> Check {
    let e = match &f.engine {
        super::facts::EngineState::Reachable(e) => e,
        super::facts::EngineState::Unreachable { message, hint } => {
            let fix = hint.clone().unwrap_or_else(|| "start it: `sudo systemctl start docker`".into());
            return Check::fail("engine", message.clone(), fix);
        }
    };
    let rootless = crate::engine::kind::EngineKind::of(e).is_rootless();
    let mode = if rootless { "rootless" } else { "rootful" };
    let desktop = if is_desktop(f) { " (Docker Desktop)" } else { "" };
    let detail = format!(
        "{} {}{desktop}, API {}, {mode}, at {}",
        e.product, e.server_version, e.api_version, f.endpoint
    );
    if e.docker_at_least(19, 3) == Some(false) {
        return Check::warn(
            "engine",
            detail,
            "Docker before 19.03 cannot pass GPUs (`--gpus`): upgrade Docker Engine",
        );
    }
    Check::ok("engine", detail)
}

/// Docker Desktop runs the engine in a VM (on Linux too).
pub fn is_desktop(f: &DoctorFacts) -> bool {
    f.engine.facts().is_some_and(|e| e.operating_system.contains("Docker Desktop"))
}

fn socket(f: &DoctorFacts) -> Check {
    if f.remote {
        if f.endpoint.starts_with("tcp://") || f.endpoint.starts_with("http://") {
            return Check::warn(
                "socket",
                format!("the engine is reached at {} without encryption or authentication", f.endpoint),
                "use ssh:// instead (DOCKER_HOST=ssh://user@host): anyone who can reach a plain tcp port is root there",
            );
        }
        return Check::ok("socket", format!("the engine is reached over {}", f.endpoint));
    }
    let path = f.endpoint.trim_start_matches("unix://");
    let Some(sock) = &f.socket else {
        return Check::skip("socket", format!("no socket at {path}"));
    };
    let group = group_name(&f.groups, sock.gid);
    let shown = format!("{path} ({}:{group} {:o})", owner_name(sock.uid, &f.user), sock.mode);
    if sock.mode & 0o002 != 0 {
        return Check::fail(
            "socket",
            format!("{shown} is world-writable: every account on this host can act as root through it"),
            format!(
                "`sudo chmod 660 {path}` (restarting the engine also resets it), and never `chmod 666` it: \
                 give access through the `{group}` group or rootless Docker"
            ),
        );
    }
    let u = &f.user;
    if u.uid == 0 {
        return Check::ok("socket", format!("{shown}; you are root"));
    }
    if u.uid == sock.uid {
        return Check::ok("socket", format!("{shown}; it is yours (rootless engine)"));
    }
    let active = u.gid == sock.gid || u.groups.contains(&sock.gid);
    if active && sock.mode & 0o060 == 0o060 {
        return Check::ok("socket", format!("{shown}; you are in group {group}"));
    }
    // No group opens rootful Podman's socket or another user's rootless engine: asking for one
    // would not help (or would make the user root on the host).
    let owner = owner_name(sock.uid, u);
    if let Some(fix) =
        crate::engine::kind::closed_socket_fix(std::path::Path::new(path), sock.uid, &owner, sock.mode)
    {
        return Check::fail("socket", format!("{shown}: you cannot open it"), fix);
    }
    if !active && listed_in(&f.groups, sock.gid, &u.name) {
        return Check::fail(
            "socket",
            format!("{shown}: you were added to group {group}, but this login does not have it yet"),
            format!("run `newgrp {group}` in this shell, or log out and back in"),
        );
    }
    Check::fail(
        "socket",
        format!("{shown}: you cannot open it (not in group {group})"),
        format!(
            "ask an administrator: `sudo usermod -aG {group} {}`, then log in again; members of {group} \
             are root-equivalent, so on shared servers rootless Docker is the safer choice",
            u.name
        ),
    )
}

pub fn group_name(groups: &[GroupEntry], gid: u32) -> String {
    groups.iter().find(|g| g.gid == gid).map_or_else(|| gid.to_string(), |g| g.name.clone())
}

pub fn listed_in(groups: &[GroupEntry], gid: u32, user: &str) -> bool {
    groups.iter().any(|g| g.gid == gid && g.members.iter().any(|m| m == user))
}

fn owner_name(uid: u32, user: &HostUser) -> String {
    match uid {
        0 => "root".into(),
        u if u == user.uid => user.name.clone(),
        u => u.to_string(),
    }
}

/// Whether `user` can open `node` for reading and writing, by its mode bits.
pub fn can_open(node: &DeviceNode, user: &HostUser) -> bool {
    let in_group = user.gid == node.gid || user.groups.contains(&node.gid);
    user.uid == 0
        || (user.uid == node.uid && node.mode & 0o600 == 0o600)
        || (in_group && node.mode & 0o060 == 0o060)
        || node.mode & 0o006 == 0o006
}

fn daemon_json(f: &DoctorFacts) -> Check {
    let path = &f.daemon_json.path;
    let restore = format!(
        "fix it by hand (`python3 -m json.tool {path}` shows where), or put back a backup ({path}.berth-backup-*)"
    );
    let map = match &f.daemon_json.state {
        DaemonJsonState::NotLocal => {
            return Check::skip(
                "daemon-json",
                "the engine runs on another machine: run `berth doctor` there",
            );
        }
        DaemonJsonState::Missing => {
            return Check::ok("daemon-json", format!("{path} absent: engine defaults"));
        }
        DaemonJsonState::Unreadable(e) => {
            return Check::skip(
                "daemon-json",
                format!("cannot read {path} ({e}); `sudo berth doctor` checks it"),
            );
        }
        DaemonJsonState::Invalid(why) => {
            return Check::fail(
                "daemon-json",
                format!("{path}: {why}; the engine will refuse to start with it at its next restart"),
                restore,
            );
        }
        DaemonJsonState::Parsed(map) => map,
    };
    if let Err(e) = crate::daemon_json::check(map) {
        return Check::fail("daemon-json", format!("{path}: {e}"), restore);
    }
    let summary = summarise(map);
    let engine = f.engine.facts();
    let want_root = map.get("data-root").and_then(Value::as_str);
    if let (Some(want), Some(e)) = (want_root, engine)
        && !e.data_root.is_empty()
        && want.trim_end_matches('/') != e.data_root
    {
        return Check::warn(
            "daemon-json",
            format!("{path} sets data-root {want}, but the engine still uses {}", e.data_root),
            "restart the engine to use it (`sudo systemctl restart docker`; `berth host configure --dry-run` lists what that stops)",
        );
    }
    let runtimes: Vec<&String> =
        map.get("runtimes").and_then(Value::as_object).map(|r| r.keys().collect()).unwrap_or_default();
    if let Some(e) = engine
        && let Some(missing) = runtimes.iter().find(|r| !e.runtimes.contains(r))
    {
        return Check::warn(
            "daemon-json",
            format!("{path} registers the runtime {missing}, which the running engine does not know yet"),
            "reload the engine: `sudo systemctl reload docker` (running containers keep running)",
        );
    }
    Check::ok("daemon-json", format!("{path} parses{summary}"))
}

/// `: data-root /data/docker, 2 registry mirrors, live-restore on`, from the keys berth knows.
fn summarise(map: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    if let Some(root) = map.get("data-root").and_then(Value::as_str) {
        parts.push(format!("data-root {root}"));
    }
    if let Some(n) = map.get("registry-mirrors").and_then(Value::as_array).map(Vec::len).filter(|n| *n > 0) {
        parts.push(format!("{n} registry mirror{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(r) = map.get("runtimes").and_then(Value::as_object).filter(|r| !r.is_empty()) {
        parts.push(format!("runtimes {}", r.keys().cloned().collect::<Vec<_>>().join(", ")));
    }
    if map.get("features").and_then(|f| f.get("cdi")) == Some(&Value::Bool(true)) {
        parts.push("CDI on".into());
    }
    if map.get("live-restore") == Some(&Value::Bool(true)) {
        parts.push("live-restore on".into());
    }
    if parts.is_empty() { String::new() } else { format!(": {}", parts.join(", ")) }
}

fn disk(f: &DoctorFacts) -> Check {
    if f.remote || is_desktop(f) {
        return Check::skip(
            "disk",
            "the engine's data root is on another machine (or in Docker Desktop's VM)",
        );
    }
    let Some(d) = &f.disk else {
        return Check::skip("disk", "could not measure free space under the engine's data root");
    };
    let used = d.used_percent();
    let detail = format!(
        "{} free of {} ({used}% used) under {}: {} on {} (mounted at {})",
        gib(d.avail_bytes),
        gib(d.total_bytes),
        d.path,
        d.fs_type,
        d.source,
        d.mount_point
    );
    let fix = "free space with `berth clean` (and `docker system df` for the rest), or move the engine to a \
               bigger disk: `sudo berth host configure --data-root /BIG/DISK/docker`";
    if d.avail_bytes < DISK_FAIL {
        return Check::fail("disk", detail, fix);
    }
    if d.avail_bytes < DISK_WARN {
        return Check::warn("disk", format!("{detail}; a GPU image needs 10–20 GiB"), fix);
    }
    if matches!(d.fs_type.as_str(), "tmpfs" | "ramfs") {
        return Check::warn("disk", format!("{detail}; images there vanish at reboot"), fix);
    }
    if d.fs_type.starts_with("nfs") {
        return Check::warn("disk", format!("{detail}; overlay2 does not work on NFS"), fix);
    }
    Check::ok("disk", detail)
}

fn cgroups(f: &DoctorFacts) -> Check {
    let Some(e) = f.engine.facts().filter(|e| !e.cgroup_version.is_empty()) else {
        return Check::skip("cgroups", "unknown without the engine");
    };
    let driver = if e.cgroup_driver.is_empty() { "unknown".into() } else { e.cgroup_driver.clone() };
    let note = match (e.cgroup_version.as_str(), e.is_podman()) {
        ("1", false) => " (v1 is deprecated from Docker 29, still supported)",
        ("1", true) => " (v1 is deprecated from Podman 5, still supported)",
        _ => "",
    };
    Check::ok("cgroups", format!("v{}, {driver} driver{note}", e.cgroup_version))
}
