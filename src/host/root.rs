//! [`HostRoot`]: the folder that stands for `/` when berth reads host facts.
//!
//! On a real host it is `/`. For tests and diagnosis it can be a recorded tree
//! (`BERTH_HOST_ROOT=tests/hosts/nvidia-2`). Git does not keep device nodes or ownership, so a
//! recorded tree lists them in `meta.txt` (`PATH UID GID MODE`, mode in octal); a path listed
//! there exists for berth even without a file behind it.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::DeviceNode;

/// Environment variable naming a recorded host tree to read instead of `/`.
pub const HOST_ROOT_ENV: &str = "BERTH_HOST_ROOT";

#[derive(Debug, Clone)]
pub struct HostRoot {
    root: PathBuf,
    /// Recorded ownership and modes, keyed by host path.
    meta: BTreeMap<String, (u32, u32, u32)>,
}

impl HostRoot {
    /// The real host.
    pub fn real() -> HostRoot {
        HostRoot { root: PathBuf::from("/"), meta: BTreeMap::new() }
    }

    /// A recorded tree (or any folder) standing for `/`.
    pub fn at(root: impl Into<PathBuf>) -> HostRoot {
        let root = root.into();
        let meta =
            std::fs::read_to_string(root.join("meta.txt")).map(|text| parse_meta(&text)).unwrap_or_default();
        HostRoot { root, meta }
    }

    /// `BERTH_HOST_ROOT` when set, else the real host.
    pub fn from_env() -> HostRoot {
        match std::env::var_os(HOST_ROOT_ENV) {
            Some(p) if !p.is_empty() => HostRoot::at(PathBuf::from(p)),
            _ => HostRoot::real(),
        }
    }

    /// Whether this is a recorded tree rather than the real `/`.
    pub fn is_recorded(&self) -> bool {
        self.root != Path::new("/")
    }

    /// The folder standing for `/`.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Where the host path `abs` (absolute, e.g. `/sys/bus/pci/devices`) lies.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub fn exists(&self, abs: &str) -> bool {
        self.meta.contains_key(abs) || self.path(abs).exists()
    }

    /// A file's text, `None` when it is missing or unreadable.
    pub fn read(&self, abs: &str) -> Option<String> {
        std::fs::read_to_string(self.path(abs)).ok()
    }

    /// A file's first line, trimmed; `None` when missing or empty.
    pub fn read_line(&self, abs: &str) -> Option<String> {
        let text = self.read(abs)?;
        let line = text.lines().next()?.trim().to_string();
        (!line.is_empty()).then_some(line)
    }

    /// Entry names of a folder, sorted; empty when it is missing.
    pub fn list(&self, abs: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(abs))
            .map(|rd| {
                rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The last component of a symbolic link's target (`driver` -> `nvidia`).
    pub fn link_name(&self, abs: &str) -> Option<String> {
        let target = std::fs::read_link(self.path(abs)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// Owner, group and permission bits of a host path: recorded ones first, else `stat`.
    pub fn owner(&self, abs: &str) -> Option<(u32, u32, u32)> {
        if let Some(m) = self.meta.get(abs) {
            return Some(*m);
        }
        let md = std::fs::metadata(self.path(abs)).ok()?;
        Some((md.uid(), md.gid(), md.mode() & 0o7777))
    }

    /// A device node, when it exists.
    pub fn device_node(&self, abs: &str) -> Option<DeviceNode> {
        if !self.exists(abs) {
            return None;
        }
        let (uid, gid, mode) = self.owner(abs)?;
        Some(DeviceNode { path: abs.to_string(), uid, gid, mode })
    }
}

fn parse_meta(text: &str) -> BTreeMap<String, (u32, u32, u32)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [path, uid, gid, mode] = f[..]
            && let (Ok(u), Ok(g), Ok(m)) = (uid.parse(), gid.parse(), u32::from_str_radix(mode, 8))
        {
            out.insert(path.to_string(), (u, g, m));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_lines_give_owner_and_mode() {
        let m = parse_meta("# comment\n/dev/kfd 0 110 660\n/dev/dri/renderD128 0 109 0660\nbad line\n");
        assert_eq!(m.get("/dev/kfd"), Some(&(0, 110, 0o660)));
        assert_eq!(m.get("/dev/dri/renderD128"), Some(&(0, 109, 0o660)));
        assert_eq!(m.len(), 2);
    }
}
