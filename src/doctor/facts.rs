//! [`DoctorFacts`]: everything the checks look at, gathered before any check runs.
//!
//! The checks are pure functions of these facts, so a recorded host (a tree under
//! `tests/hosts/`) and the real one go through the same code; only gathering differs
//! (`collect`). The small text formats recorded hosts keep (`id`, `/etc/group`, `df -PT`,
//! mountinfo) are parsed here.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::facts::EngineFacts;
pub use crate::host::cdi::CdiSpec;
use crate::host::{DeviceNode, HostFacts, HostUser};

#[derive(Debug, Clone)]
pub struct DoctorFacts {
    pub host: HostFacts,
    pub engine: EngineState,
    /// `unix:///var/run/docker.sock`, `ssh://gpu-box`, ...
    pub endpoint: String,
    /// The engine runs on another machine (ssh://, or tcp:// to another host): host checks
    /// describe this machine, not the engine's.
    pub remote: bool,
    /// Owner and mode of the engine's unix socket, when it is one and exists.
    pub socket: Option<DeviceNode>,
    pub user: HostUser,
    /// The group database (`/etc/group`).
    pub groups: Vec<GroupEntry>,
    pub daemon_json: DaemonJson,
    pub disk: Option<Disk>,
    /// NVIDIA CDI spec files found on the host (kind `nvidia.com/gpu`).
    pub cdi_specs: Vec<CdiSpec>,
    /// `nvidia-container-runtime-hook` is installed: classic `--gpus` works without a runtime
    /// entry in daemon.json.
    pub nvidia_hook: bool,
    /// The kernel is WSL's (`/proc/sys/kernel/osrelease` names Microsoft).
    pub wsl_kernel: bool,
    /// What the engine-specific checks read (Podman's init, /etc/subuid, ...).
    pub kind: super::engine_kind::KindFacts,
}

#[derive(Debug, Clone)]
pub enum EngineState {
    Reachable(EngineFacts),
    Unreachable { message: String, hint: Option<String> },
}

impl EngineState {
    pub fn facts(&self) -> Option<&EngineFacts> {
        match self {
            EngineState::Reachable(f) => Some(f),
            EngineState::Unreachable { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DaemonJson {
    pub path: String,
    pub state: DaemonJsonState,
}

#[derive(Debug, Clone)]
pub enum DaemonJsonState {
    /// The engine runs elsewhere; its file cannot be read from here.
    NotLocal,
    Missing,
    Parsed(Map<String, Value>),
    Invalid(String),
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// The folder asked about (the engine's data root).
    pub path: String,
    /// The device or source (`/dev/nvme0n1p2`).
    pub source: String,
    pub fs_type: String,
    pub mount_point: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// Free for unprivileged use (what `df` calls Available).
    pub avail_bytes: u64,
}

impl Disk {
    /// Used share in percent, as `df` counts it (blocks reserved for root excluded).
    pub fn used_percent(&self) -> u64 {
        match self.used_bytes + self.avail_bytes {
            0 => 0,
            all => (self.used_bytes * 100).div_ceil(all).min(100),
        }
    }
}

/// Parse `/etc/group`.
pub fn parse_groups(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.trim().split(':').collect();
            let [name, _, gid, members, ..] = f[..] else { return None };
            Some(GroupEntry {
                name: name.to_string(),
                gid: gid.parse().ok()?,
                members: members.split(',').filter(|m| !m.is_empty()).map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Parse the output of `id` (`uid=1000(alice) gid=1000(alice) groups=1000(alice),44(video)`), as
/// recorded hosts keep it in `id.txt`.
pub fn parse_id(text: &str) -> Option<HostUser> {
    let field = |key: &str| text.split_whitespace().find_map(|w| w.strip_prefix(key));
    let number = |s: &str| s.split('(').next()?.parse::<u32>().ok();
    let uid_field = field("uid=")?;
    let uid = number(uid_field)?;
    let gid = number(field("gid=")?)?;
    let name = uid_field.split_once('(').map(|(_, n)| n.trim_end_matches(')').to_string())?;
    let mut groups: Vec<u32> =
        field("groups=").map(|g| g.split(',').filter_map(number).collect()).unwrap_or_default();
    groups.sort_unstable();
    groups.dedup();
    let home = if uid == 0 { "/root".into() } else { format!("/home/{name}") };
    Some(HostUser { uid, gid, name, home: home.into(), groups })
}

/// Parse `df -PT -k PATH` output (the second line), as recorded hosts keep it in `df.txt`.
pub fn parse_df(text: &str, path: &str) -> Option<Disk> {
    let line = text.lines().nth(1)?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let [source, fs_type, blocks, used, avail, _pct, mount_point, ..] = f[..] else { return None };
    Some(Disk {
        path: path.to_string(),
        source: source.to_string(),
        fs_type: fs_type.to_string(),
        mount_point: mount_point.to_string(),
        total_bytes: blocks.parse::<u64>().ok()? * 1024,
        used_bytes: used.parse::<u64>().ok()? * 1024,
        avail_bytes: avail.parse::<u64>().ok()? * 1024,
    })
}

/// The mount holding `path` in `/proc/self/mountinfo`: `(source, fs_type, mount_point)` of the
/// longest mount point that contains it.
pub fn mount_of(mountinfo: &str, path: &str) -> Option<(String, String, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = unescape(left.split_whitespace().nth(4)?);
            let mut r = right.split_whitespace();
            let fs_type = r.next()?.to_string();
            let source = unescape(r.next().unwrap_or(""));
            Some((source, fs_type, mount_point))
        })
        .filter(|(_, _, mp)| mp == "/" || path == mp || path.starts_with(&format!("{mp}/")))
        .max_by_key(|(_, _, mp)| mp.len())
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_output_gives_the_user_and_active_groups() {
        let u = parse_id("uid=1000(alice) gid=1000(alice) groups=1000(alice),27(sudo),999(docker)\n")
            .expect("parses");
        assert_eq!((u.uid, u.gid, u.name.as_str()), (1000, 1000, "alice"));
        assert_eq!(u.groups, [27, 999, 1000]);
        assert_eq!(
            parse_id("uid=0(root) gid=0(root) groups=0(root)").expect("root").home,
            std::path::Path::new("/root")
        );
        assert!(parse_id("nonsense").is_none());
    }

    #[test]
    fn group_lines_give_gid_and_members() {
        let g = parse_groups("root:x:0:\ndocker:x:999:alice,bob\nbroken\nrender:x:110:\n");
        assert_eq!(g.len(), 3);
        assert_eq!(
            g[1],
            GroupEntry { name: "docker".into(), gid: 999, members: vec!["alice".into(), "bob".into()] }
        );
        assert!(g[2].members.is_empty());
    }

    #[test]
    fn df_lines_give_sizes_in_bytes() {
        let text = "Filesystem     Type 1024-blocks      Used Available Capacity Mounted on\n\
                    /dev/nvme0n1p2 ext4  960302096 901234567  10266944      99% /\n";
        let d = parse_df(text, "/var/lib/docker").expect("parses");
        assert_eq!(
            (d.source.as_str(), d.fs_type.as_str(), d.mount_point.as_str()),
            ("/dev/nvme0n1p2", "ext4", "/")
        );
        assert_eq!((d.total_bytes, d.avail_bytes), (960302096 * 1024, 10266944 * 1024));
        assert_eq!(d.used_percent(), 99);
    }

    #[test]
    fn the_longest_mount_point_holds_the_path() {
        let mi = "22 1 254:0 / / rw,relatime - ext4 /dev/vda1 rw\n\
                  40 22 254:16 / /var/lib/docker rw - xfs /dev/vdb rw\n\
                  41 22 0:5 / /var/lib/docker2 rw - tmpfs tmpfs rw\n\
                  42 22 0:6 / /mnt/my\\040disk rw - ext4 /dev/sdc1 rw\n";
        assert_eq!(mount_of(mi, "/var/lib/docker").map(|m| m.1), Some("xfs".into()));
        assert_eq!(mount_of(mi, "/var/lib/docker/overlay2").map(|m| m.2), Some("/var/lib/docker".into()));
        assert_eq!(mount_of(mi, "/var/lib/dockerfoo").map(|m| m.2), Some("/".into()));
        assert_eq!(mount_of(mi, "/mnt/my disk/docker").map(|m| m.0), Some("/dev/sdc1".into()));
    }
}
