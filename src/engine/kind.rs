//! Which engine answers (Docker, rootless Docker, Podman, rootless Podman) and the limits its
//! own process runs under.
//!
//! A local engine is found without an API call: the unix socket's peer credentials name the
//! engine's process, whose `/proc/PID/comm` and `/proc/PID/limits` say what it is and which
//! resource limits it can hand to a container. Podman asks for `nofile` and `nproc` limits of
//! its own when a create leaves them out, and where the host caps them lower the start fails
//! ("error setting rlimit type 7: operation not permitted"); the plan reads these limits to ask
//! only for what the engine can apply.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Endpoint;
use super::facts::EngineFacts;

/// The engine's process as seen from this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", default)]
pub struct EngineProcess {
    /// `/proc/PID/comm`: `dockerd`, `podman`.
    pub name: String,
    /// The uid the engine runs as (not 0: a rootless engine).
    pub uid: u32,
    pub limits: HardLimits,
    /// The engine may give containers hard limits above its own: it runs as root with
    /// CAP_SYS_RESOURCE (`CapEff` in `/proc/PID/status`). Some VMs and containers withhold that
    /// capability even from root (the VM of issue 15: "error setting rlimit type 8" for an
    /// unlimited `memlock`), and a rootless engine never has it in the host's user namespace.
    pub raises_limits: bool,
}

/// Hard resource limits; `None`: unlimited or unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", default)]
pub struct HardLimits {
    pub nofile: Option<u64>,
    pub nproc: Option<u64>,
    pub memlock: Option<u64>,
    pub stack: Option<u64>,
}

impl HardLimits {
    /// The hard limit for a `ulimit` name as berth's spec writes it (`nofile`, `memlock`).
    pub fn get(&self, name: &str) -> Option<u64> {
        match name {
            "nofile" => self.nofile,
            "nproc" => self.nproc,
            "memlock" => self.memlock,
            "stack" => self.stack,
            _ => None,
        }
    }
}

/// The four engines berth tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EngineKind {
    Docker,
    RootlessDocker,
    Podman,
    RootlessPodman,
}

impl EngineKind {
    pub fn of(facts: &EngineFacts) -> EngineKind {
        let rootless = facts.rootless || facts.process.as_ref().is_some_and(|p| p.uid != 0);
        match (facts.is_podman(), rootless) {
            (false, false) => EngineKind::Docker,
            (false, true) => EngineKind::RootlessDocker,
            (true, false) => EngineKind::Podman,
            (true, true) => EngineKind::RootlessPodman,
        }
    }

    pub fn is_podman(self) -> bool {
        matches!(self, EngineKind::Podman | EngineKind::RootlessPodman)
    }

    pub fn is_rootless(self) -> bool {
        matches!(self, EngineKind::RootlessDocker | EngineKind::RootlessPodman)
    }

    pub fn describe(self) -> &'static str {
        match self {
            EngineKind::Docker => "Docker",
            EngineKind::RootlessDocker => "rootless Docker",
            EngineKind::Podman => "Podman (rootful)",
            EngineKind::RootlessPodman => "rootless Podman",
        }
    }
}

/// Where Podman looks for the init it runs as PID 1 (`init_path` in containers.conf).
pub const PODMAN_INIT: &str = "/usr/libexec/podman/catatonit";

/// An engine refusal whose cause berth knows, as (what happened, how to fix it).
pub fn known_refusal(message: &str) -> Option<(String, String)> {
    if message.contains("container-init binary not found") {
        // Podman without catatonit; berth runs every environment under the engine's init so
        // that processes left by `exec` are reaped and `stop` is immediate.
        let path = message.split("stat ").nth(1).and_then(|r| r.split(':').next()).unwrap_or(PODMAN_INIT);
        return Some((
            format!(
                "Podman has no init to run as the environment's PID 1 ({path} is missing); berth runs \
                 every environment under the engine's init"
            ),
            "install catatonit on the engine's host (`sudo apt-get install catatonit` on Debian and \
             Ubuntu, `sudo dnf install catatonit` on Fedora), or point `init_path` in containers.conf \
             at an installed one; then run `berth up` again"
                .into(),
        ));
    }
    if message.contains("slirp4netns") && message.contains("/dev/net/tun") {
        // Rootless Podman's network is a tap device made by slirp4netns.
        return Some((
            "rootless Podman cannot give the environment a network: slirp4netns cannot open \
             /dev/net/tun (permission denied)"
                .into(),
            "ask an administrator to restore its usual mode, `sudo chmod 0666 /dev/net/tun` (udev's \
             default), or set `network = \"none\"` under [run] in berth.toml for an environment \
             without network"
                .into(),
        ));
    }
    if let Some(rest) = message.split("cannot expose privileged port ").nth(1) {
        // Rootless Docker (rootlesskit) and rootless Podman (rootlessport) word it alike.
        let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return Some((
            format!(
                "a rootless engine cannot open host port {port}: ports below \
                 net.ipv4.ip_unprivileged_port_start (1024 unless an administrator lowered it) are root's"
            ),
            format!(
                "choose a host port of 1024 or more in `ports` in berth.toml (a bare container port such \
                 as \"{port}\" gets a free one), or ask an administrator for `sudo sysctl \
                 net.ipv4.ip_unprivileged_port_start={port}`"
            ),
        ));
    }
    None
}

/// Where to run an engine of one's own: what a user who may not open a shared engine's socket does
/// (asking for a group that opens it would make them root on the host).
pub const OWN_ROOTLESS_ENGINE: &str = "run a rootless engine as yourself: Podman (`systemctl --user enable --now \
     podman.socket`, then `export DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock`) or Docker \
     (`dockerd-rootless-setuptool.sh install`)";

/// Whether a local socket is Podman's, by its path (`/run/podman/podman.sock`,
/// `$XDG_RUNTIME_DIR/podman/podman.sock`): all berth can tell of an engine it may not open or
/// that is not running.
pub fn is_podman_socket(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str().to_string_lossy().contains("podman"))
}

/// The fix for a local engine socket that no group membership opens: another user's rootless
/// engine, rootful Podman's (root's only), or any socket whose mode gives its group nothing.
/// `None`: a group opens it, and the fix is to be in that group.
pub fn closed_socket_fix(path: &Path, owner_uid: u32, owner: &str, mode: u32) -> Option<String> {
    if owner_uid != 0 {
        return Some(format!(
            "{} is {owner}'s rootless engine, which only {owner} may use (its containers' root is \
             {owner}); {OWN_ROOTLESS_ENGINE}",
            path.display()
        ));
    }
    if is_podman_socket(path) {
        return Some(format!(
            "rootful Podman's socket opens to root only (whoever may use it is root on this host); \
             {OWN_ROOTLESS_ENGINE}"
        ));
    }
    (mode & 0o060 != 0o060).then(|| {
        format!("only root may open it (mode {mode:o}: no group gives access); {OWN_ROOTLESS_ENGINE}")
    })
}

/// How to start the engine behind a local socket that is missing or refuses connections.
pub fn start_hint(path: &Path) -> &'static str {
    if is_podman_socket(path) {
        "start Podman's socket (`systemctl --user start podman.socket` for rootless Podman, `sudo \
         systemctl start podman.socket` for rootful), or check DOCKER_HOST"
    } else {
        "start Docker (`sudo systemctl start docker`), or point berth at your engine with DOCKER_HOST \
         or `docker context use NAME`"
    }
}

/// The engine's process behind a local unix socket; `None` for other endpoints or when the
/// process is not visible from here (another PID namespace, no /proc).
pub fn probe(endpoint: &Endpoint) -> Option<EngineProcess> {
    let Endpoint::Unix(path) = endpoint else { return None };
    probe_socket(path, Path::new("/proc"))
}

fn probe_socket(socket: &Path, proc_root: &Path) -> Option<EngineProcess> {
    let stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    let cred = rustix::net::sockopt::socket_peercred(&stream).ok()?;
    let pid = cred.pid.as_raw_nonzero().get();
    let dir = proc_root.join(pid.to_string());
    let name = std::fs::read_to_string(dir.join("comm")).ok()?.trim().to_string();
    let limits = std::fs::read_to_string(dir.join("limits")).map(|t| parse_limits(&t)).unwrap_or_default();
    let uid = cred.uid.as_raw();
    let raises_limits =
        uid == 0 && std::fs::read_to_string(dir.join("status")).is_ok_and(|t| has_sys_resource(&t));
    Some(EngineProcess { name, uid, limits, raises_limits })
}

/// CAP_SYS_RESOURCE (bit 24) in the `CapEff` line of `/proc/PID/status`.
fn has_sys_resource(status: &str) -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// The hard column of `/proc/PID/limits`.
pub fn parse_limits(text: &str) -> HardLimits {
    let hard = |label: &str| {
        let line = text.lines().find(|l| l.starts_with(label))?;
        let rest = line[label.len()..].split_whitespace().collect::<Vec<_>>();
        rest.get(1).and_then(|v| v.parse::<u64>().ok())
    };
    HardLimits {
        nofile: hard("Max open files"),
        nproc: hard("Max processes"),
        memlock: hard("Max locked memory"),
        stack: hard("Max stack size"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max stack size            8388608              unlimited            bytes     
Max processes             32768                32768                processes 
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
";

    #[test]
    fn hard_limits_are_read_from_proc_limits() {
        let l = parse_limits(LIMITS);
        assert_eq!(l.nofile, Some(20000));
        assert_eq!(l.nproc, Some(32768));
        assert_eq!(l.memlock, Some(8 << 20));
        assert_eq!(l.stack, None, "unlimited");
        assert_eq!(l.get("nofile"), Some(20000));
        assert_eq!(l.get("core"), None);
    }

    #[test]
    fn cap_sys_resource_is_read_from_the_effective_set() {
        // This VM's root: every capability but CAP_SYS_RESOURCE.
        assert!(!has_sys_resource("Name:\tdockerd\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n"));
        assert!(has_sys_resource("CapEff:\t000001ffffffffff\n"));
        assert!(!has_sys_resource("CapEff:\t0000000000000000\n"));
        assert!(!has_sys_resource("no caps here"));
    }

    #[test]
    fn kinds_come_from_the_product_and_the_engine_user() {
        let facts = |product: &str, rootless: bool, uid: Option<u32>| EngineFacts {
            product: product.into(),
            rootless,
            process: uid.map(|uid| EngineProcess {
                name: "x".into(),
                uid,
                limits: HardLimits::default(),
                raises_limits: uid == 0,
            }),
            ..Default::default()
        };
        assert_eq!(EngineKind::of(&facts("Docker", false, Some(0))), EngineKind::Docker);
        assert_eq!(EngineKind::of(&facts("Docker", true, None)), EngineKind::RootlessDocker);
        assert_eq!(EngineKind::of(&facts("Podman", false, Some(0))), EngineKind::Podman);
        assert_eq!(EngineKind::of(&facts("Podman", false, Some(1000))), EngineKind::RootlessPodman);
        // No /info asked: the process name alone says Podman.
        let by_name = EngineFacts {
            process: Some(EngineProcess {
                name: "podman".into(),
                uid: 0,
                limits: HardLimits::default(),
                raises_limits: true,
            }),
            ..Default::default()
        };
        assert_eq!(EngineKind::of(&by_name), EngineKind::Podman);
    }

    #[test]
    fn podman_without_catatonit_says_what_to_install() {
        let msg = "container create: container-init binary not found on the host: stat \
                   /usr/libexec/podman/catatonit: no such file or directory";
        let (what, fix) = known_refusal(msg).expect("known");
        assert!(what.contains("/usr/libexec/podman/catatonit is missing"), "{what}");
        assert!(fix.contains("apt-get install catatonit"), "{fix}");
        assert!(known_refusal("no such image").is_none());
    }

    #[test]
    fn rootless_podman_without_dev_net_tun_says_how_to_get_a_network() {
        let msg = "/usr/bin/slirp4netns failed: \"open(\\\"/dev/net/tun\\\"): Permission denied\\nchild failed(1)\"";
        let (what, fix) = known_refusal(msg).expect("known");
        assert!(what.contains("/dev/net/tun"), "{what}");
        assert!(fix.contains("chmod 0666 /dev/net/tun") && fix.contains("network = \"none\""), "{fix}");
    }

    #[test]
    fn a_privileged_host_port_on_a_rootless_engine_says_which_port_and_how_to_fix() {
        // Both rootless engines' words, measured here (issue 15 review).
        let podman = "rootlessport cannot expose privileged port 80, you can add \
                      'net.ipv4.ip_unprivileged_port_start=80' to /etc/sysctl.conf (currently 1024), or \
                      choose a larger port number (>= 1024): listen tcp 127.0.0.1:80: bind: permission denied";
        let docker = "driver failed programming external connectivity on endpoint x (f84b): Error starting \
                      userland proxy: error while calling PortManager.AddPort(): cannot expose privileged \
                      port 443, you can add 'net.ipv4.ip_unprivileged_port_start=443' to /etc/sysctl.conf";
        let (what, fix) = known_refusal(podman).expect("known");
        assert!(what.contains("host port 80:") && what.contains("ip_unprivileged_port_start"), "{what}");
        assert!(fix.contains("1024 or more in `ports`") && fix.contains("\"80\""), "{fix}");
        let (what, _) = known_refusal(docker).expect("known");
        assert!(what.contains("host port 443:"), "{what}");
    }

    #[test]
    fn sockets_no_group_opens_get_an_engine_of_ones_own() {
        let podman = Path::new("/run/podman/podman.sock");
        assert!(is_podman_socket(podman) && is_podman_socket(Path::new("/run/user/1000/podman/podman.sock")));
        assert!(!is_podman_socket(Path::new("/var/run/docker.sock")));
        let fix = closed_socket_fix(podman, 0, "root", 0o600).expect("rootful Podman");
        assert!(fix.starts_with("rootful Podman's socket opens to root only"), "{fix}");
        assert!(fix.contains("systemctl --user enable --now podman.socket"), "{fix}");
        let fix =
            closed_socket_fix(Path::new("/run/user/1500/docker.sock"), 1500, "ann", 0o660).expect("ann's");
        assert!(fix.contains("ann's rootless engine, which only ann may use"), "{fix}");
        let fix = closed_socket_fix(Path::new("/var/run/docker.sock"), 0, "root", 0o600).expect("mode 600");
        assert!(fix.starts_with("only root may open it (mode 600"), "{fix}");
        assert_eq!(closed_socket_fix(Path::new("/var/run/docker.sock"), 0, "root", 0o660), None);
        assert!(start_hint(podman).contains("systemctl --user start podman.socket"));
        assert!(start_hint(Path::new("/var/run/docker.sock")).contains("sudo systemctl start docker"));
    }

    #[test]
    fn the_peer_of_a_local_socket_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let p = probe(&Endpoint::Unix(sock)).expect("peer");
        // The listener is this test process.
        let own = std::fs::read_to_string("/proc/self/comm").expect("comm");
        assert_eq!(p.name, own.trim());
        assert_eq!(p.limits, parse_limits(&std::fs::read_to_string("/proc/self/limits").expect("limits")));
        assert!(probe(&Endpoint::Tcp("http://127.0.0.1:1".into())).is_none());
    }
}
