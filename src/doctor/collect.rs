//! Gathering [`DoctorFacts`]: from the real host and engine, or from a recorded host tree.
//!
//! A recorded tree (`BERTH_HOST_ROOT`) supplies everything as files, never the test machine's
//! own state: `engine.json` (or `engine-error.txt`: the message, then the hint, the engine gave),
//! `id.txt` (output of `id`), `etc/group`, `etc/docker/daemon.json`, `df.txt` (output of
//! `df -PT -k` on the data root), `meta.txt` entries for `/var/run/docker.sock`, CDI specs under
//! `etc/cdi` or `var/run/cdi`. The real host reads the same paths under `/` and asks the engine.

use std::path::PathBuf;

use super::facts::{self, DaemonJson, DaemonJsonState, Disk, DoctorFacts, EngineState};
use crate::engine::Endpoint;
use crate::engine::facts::EngineFacts;
use crate::host::cdi;
use crate::host::{HostFacts, HostRoot, HostUser};

const SOCKET: &str = "/var/run/docker.sock";
const DAEMON_JSON: &str = "/etc/docker/daemon.json";
const DEFAULT_DATA_ROOT: &str = "/var/lib/docker";
/// Where the NVIDIA Container Toolkit puts the hook that makes `--gpus` work.
const HOOKS: [&str; 4] = [
    "/usr/bin/nvidia-container-runtime-hook",
    "/usr/local/bin/nvidia-container-runtime-hook",
    "/usr/bin/nvidia-container-toolkit",
    "/usr/local/bin/nvidia-container-toolkit",
];

/// Facts for `root`: a recorded tree's files, or the real host and its engine.
pub async fn collect(root: &HostRoot) -> DoctorFacts {
    let host = HostFacts::probe(root);
    if root.is_recorded() { recorded(root) } else { real(root, host).await }
}

/// Facts of a recorded host tree, from its files alone.
pub fn recorded(root: &HostRoot) -> DoctorFacts {
    let host = HostFacts::probe(root);
    let tree = root.dir();
    let engine = match std::fs::read_to_string(tree.join("engine.json")) {
        Ok(text) => match EngineFacts::from_json(&text) {
            Ok(e) => EngineState::Reachable(e),
            Err(e) => EngineState::Unreachable {
                message: format!("{}/engine.json: {e}", tree.display()),
                hint: None,
            },
        },
        Err(_) => {
            let text = std::fs::read_to_string(tree.join("engine-error.txt")).unwrap_or_default();
            let mut lines = text.lines();
            let message = lines.next().unwrap_or("no engine recorded for this host").to_string();
            let hint = lines.next().map(str::to_string);
            EngineState::Unreachable { message, hint }
        }
    };
    let user = std::fs::read_to_string(tree.join("id.txt"))
        .ok()
        .and_then(|t| facts::parse_id(&t))
        .unwrap_or_else(HostUser::current);
    let data_root = engine.facts().map(|e| e.data_root.clone()).filter(|r| !r.is_empty());
    let data_root = data_root.unwrap_or_else(|| DEFAULT_DATA_ROOT.into());
    let disk =
        std::fs::read_to_string(tree.join("df.txt")).ok().and_then(|t| facts::parse_df(&t, &data_root));
    common(root, host, engine, format!("unix://{SOCKET}"), false, user, disk)
}

async fn real(root: &HostRoot, host: HostFacts) -> DoctorFacts {
    let resolved = crate::engine::resolve();
    let (endpoint, remote, socket_path) = match &resolved {
        Ok((Endpoint::Unix(p), _)) => (format!("unix://{}", p.display()), false, Some(p.clone())),
        Ok((e @ Endpoint::Tcp(addr), _)) => (e.to_string(), !is_loopback(addr), None),
        Ok((e, _)) => (e.to_string(), true, None),
        Err(_) => (format!("unix://{SOCKET}"), false, Some(PathBuf::from(SOCKET))),
    };
    let engine = match crate::environment::engine_within(10).await {
        Ok((_, facts)) => EngineState::Reachable(facts),
        Err(err) => {
            let message = err.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
            let hint = crate::error::hint_of(&err);
            EngineState::Unreachable { message, hint }
        }
    };
    let user = HostUser::current();
    let mut facts = common(root, host, engine, endpoint, remote, user, None);
    facts.socket = socket_path.and_then(|p| root.device_node(&p.to_string_lossy()));
    if remote {
        facts.daemon_json.state = DaemonJsonState::NotLocal;
    } else {
        let from_file = match &facts.daemon_json.state {
            DaemonJsonState::Parsed(m) => m.get("data-root").and_then(|v| v.as_str()).map(str::to_string),
            _ => None,
        };
        let data_root = facts.engine.facts().map(|e| e.data_root.clone()).filter(|r| !r.is_empty());
        let data_root = data_root.or(from_file).unwrap_or_else(|| DEFAULT_DATA_ROOT.into());
        facts.disk = measure(root, &data_root);
    }
    facts
}

/// The facts read the same way from a tree and from `/`.
fn common(
    root: &HostRoot,
    host: HostFacts,
    engine: EngineState,
    endpoint: String,
    remote: bool,
    user: HostUser,
    disk: Option<Disk>,
) -> DoctorFacts {
    let rootless = engine.facts().is_some_and(|e| e.rootless);
    let json_path = if rootless {
        format!("{}/.config/docker/daemon.json", user.home.display())
    } else {
        DAEMON_JSON.to_string()
    };
    let spec_dirs = engine.facts().map(|e| e.cdi_spec_dirs.clone()).unwrap_or_default();
    DoctorFacts {
        engine,
        endpoint,
        remote,
        socket: root.device_node(SOCKET),
        groups: root.read("/etc/group").map(|t| facts::parse_groups(&t)).unwrap_or_default(),
        daemon_json: DaemonJson { state: read_daemon_json(root, &json_path), path: json_path },
        disk,
        cdi_specs: cdi::find_specs(root, &spec_dirs)
            .into_iter()
            .filter(cdi::CdiSpec::is_nvidia_gpu)
            .collect(),
        nvidia_hook: HOOKS.iter().any(|h| root.exists(h)),
        wsl_kernel: root
            .read_line("/proc/sys/kernel/osrelease")
            .is_some_and(|r| r.to_lowercase().contains("microsoft")),
        kind: super::engine_kind::gather(root, &user),
        user,
        host,
    }
}

fn read_daemon_json(root: &HostRoot, path: &str) -> DaemonJsonState {
    match std::fs::read_to_string(root.path(path)) {
        Ok(text) => match crate::daemon_json::parse(&text) {
            Ok(map) => DaemonJsonState::Parsed(map.to_map()),
            Err(e) => DaemonJsonState::Invalid(e.to_string()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DaemonJsonState::Missing,
        Err(e) => DaemonJsonState::Unreadable(e.to_string()),
    }
}

/// Free space under the real data root and the filesystem holding it.
fn measure(root: &HostRoot, data_root: &str) -> Option<Disk> {
    let real = std::fs::canonicalize(data_root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| data_root.into());
    let st = rustix::fs::statvfs(real.as_str()).ok()?;
    let mountinfo = root.read("/proc/self/mountinfo").unwrap_or_default();
    let (source, fs_type, mount_point) =
        facts::mount_of(&mountinfo, &real).unwrap_or_else(|| ("?".into(), "?".into(), "?".into()));
    Some(Disk {
        path: data_root.to_string(),
        source,
        fs_type,
        mount_point,
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        used_bytes: st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(st.f_frsize),
        avail_bytes: st.f_bavail.saturating_mul(st.f_frsize),
    })
}

/// `http://127.0.0.1:2375`, `http://localhost:2375`: a tcp engine on this machine.
fn is_loopback(addr: &str) -> bool {
    let host = addr.split("://").nth(1).unwrap_or(addr);
    host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")
}
