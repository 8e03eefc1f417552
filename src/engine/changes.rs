//! Which changes in a container's writable layer matter (the `down` / `--recreate` guard).
//!
//! The engine reports every path that differs from the image. Much of it is noise: mount points
//! the engine made, `/tmp`, `/run`, caches, shell history, `__pycache__`, the account berth
//! itself set up. What remains (installed packages, files under `/root`, `/home`, `/opt`, ...)
//! is work a user would lose; it is listed grouped ("412 files under /usr/lib/python3").

use bollard::models::{ChangeType, FilesystemChange};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Added,
    Changed,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    pub kind: Kind,
}

/// A change as it was when seen (size and modification time as the engine reports them;
/// none for a deletion): a later look tells whether the file changed again since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub path: String,
    pub kind: Kind,
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default)]
    pub mtime: Option<String>,
}

const NOISE_TREES: &[&str] = &["/tmp", "/var/tmp", "/run", "/var/run", "/dev", "/proc", "/sys", "/berth"];
const NOISE_FILES: &[&str] = &[
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/mtab",
    // The init binary the engine bind-mounts as PID 1.
    "/sbin/docker-init",
    "/usr/sbin/docker-init",
    "/dev/init",
    // The account berth adds for `as = "host"`.
    "/etc/passwd",
    "/etc/passwd-",
    "/etc/group",
    "/etc/group-",
    "/etc/shadow",
    "/etc/gshadow",
];
const NOISE_NAMES: &[&str] = &[
    ".bash_history",
    ".ash_history",
    ".sh_history",
    ".zsh_history",
    ".python_history",
    ".lesshst",
    ".viminfo",
    ".wget-hsts",
    ".sudo_as_admin_successful",
    "__pycache__",
    ".cache",
];

/// Every change the engine reports, typed.
pub fn all(raw: &[FilesystemChange]) -> Vec<Change> {
    raw.iter()
        .map(|c| Change {
            path: c.path.clone(),
            kind: match c.kind {
                ChangeType::_1 => Kind::Added,
                ChangeType::_2 => Kind::Deleted,
                ChangeType::_0 => Kind::Changed,
            },
        })
        .collect()
}

/// The changes that matter, given the container's mount targets.
pub fn significant(raw: &[FilesystemChange], mount_targets: &[String]) -> Vec<Change> {
    let all = all(raw);
    // A folder is reported as changed whenever something inside it is: keep only leaves, and
    // judge those (a /root whose only news is /root/.cache is no news).
    let mut paths: Vec<&str> = all.iter().map(|c| c.path.as_str()).collect();
    paths.sort_unstable();
    let is_ancestor = |p: &str| {
        let prefix = format!("{}/", p.trim_end_matches('/'));
        paths.iter().any(|q| q.starts_with(&prefix))
    };
    all.iter().filter(|c| !is_ancestor(&c.path) && !is_noise(&c.path, mount_targets)).cloned().collect()
}

fn under(path: &str, tree: &str) -> bool {
    path == tree || path.starts_with(&format!("{}/", tree.trim_end_matches('/')))
}

fn is_noise(path: &str, mount_targets: &[String]) -> bool {
    if NOISE_TREES.iter().any(|t| under(path, t)) || NOISE_FILES.contains(&path) {
        return true;
    }
    if path.split('/').any(|part| NOISE_NAMES.contains(&part)) || path.ends_with(".pyc") {
        return true;
    }
    // The folders holding files the engine manages: Podman reports a bare `C /etc` for the
    // /etc/hosts, /etc/resolv.conf and /etc/hostname it mounts, without the files themselves.
    if NOISE_FILES.iter().any(|f| under(f, path)) {
        return true;
    }
    // Mount points and the folders the engine created to hold them.
    mount_targets.iter().any(|t| under(t, path) || under(path, t))
}

/// Group changes for display: one line per folder (at most four levels deep), most first.
pub fn group(changes: &[Change]) -> Vec<String> {
    let mut groups: Vec<(String, Vec<&Change>)> = Vec::new();
    for c in changes {
        let parent = c.path.rsplit_once('/').map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
        let key: String = parent.split('/').take(5).collect::<Vec<_>>().join("/");
        let key = if key.is_empty() { "/".to_string() } else { key };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(c),
            None => groups.push((key, vec![c])),
        }
    }
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    groups
        .into_iter()
        .map(|(key, items)| match items.as_slice() {
            [one] => format!("{} ({})", one.path, kind_word(one.kind)),
            many => {
                let deleted = many.iter().filter(|c| c.kind == Kind::Deleted).count();
                let tail = if deleted > 0 { format!(", {deleted} deleted") } else { String::new() };
                format!("{} files under {key}{tail}", many.len())
            }
        })
        .collect()
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Added => "added",
        Kind::Changed => "changed",
        Kind::Deleted => "deleted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(list: &[(&str, u8)]) -> Vec<FilesystemChange> {
        list.iter()
            .map(|(p, k)| FilesystemChange {
                path: p.to_string(),
                kind: match k {
                    1 => ChangeType::_1,
                    2 => ChangeType::_2,
                    _ => ChangeType::_0,
                },
            })
            .collect()
    }

    #[test]
    fn noise_alone_does_not_matter() {
        let changes = raw(&[
            ("/root", 0),
            ("/root/.cache", 1),
            ("/root/.cache/pip/x", 1),
            ("/root/.ash_history", 1),
            ("/tmp", 0),
            ("/tmp/x", 1),
            ("/workspace", 1),
            ("/data", 1),
            ("/data/set", 1),
            ("/berth", 1),
            ("/berth/state", 1),
            ("/etc", 0),
            ("/etc/passwd", 0),
            ("/home", 0),
            ("/home/alice", 1),
            ("/home/alice/proj/__pycache__/m.cpython-311.pyc", 1),
        ]);
        let mounts = vec!["/workspace".to_string(), "/data/set".to_string()];
        let sig = significant(&changes, &mounts);
        assert_eq!(sig, Vec::<Change>::new());
    }

    #[test]
    fn podmans_bare_etc_change_on_an_untouched_container_is_not_work() {
        // `podman diff` of a fresh container: only `C /etc` (its mounted hosts/resolv.conf).
        assert_eq!(significant(&raw(&[("/etc", 0)]), &[]), Vec::<Change>::new());
        // A file a user added there still counts.
        let sig = significant(&raw(&[("/etc", 0), ("/etc/myconf", 1)]), &[]);
        assert_eq!(sig, vec![Change { path: "/etc/myconf".into(), kind: Kind::Added }]);
    }

    #[test]
    fn real_work_is_listed_and_grouped() {
        let mut list: Vec<(String, u8)> = vec![("/usr".into(), 0), ("/usr/lib".into(), 0)];
        for i in 0..412 {
            list.push((format!("/usr/lib/python3/dist-packages/pkg{i}.py"), 1));
        }
        list.push(("/root".into(), 0));
        list.push(("/root/keep.txt".into(), 1));
        list.push(("/etc/apt/sources.list".into(), 2));
        let changes = raw(&list.iter().map(|(p, k)| (p.as_str(), *k)).collect::<Vec<_>>());
        let sig = significant(&changes, &[]);
        assert_eq!(sig.len(), 414);
        assert_eq!(
            group(&sig),
            vec![
                "412 files under /usr/lib/python3/dist-packages".to_string(),
                "/etc/apt/sources.list (deleted)".to_string(),
                "/root/keep.txt (added)".to_string(),
            ]
        );
    }
}
