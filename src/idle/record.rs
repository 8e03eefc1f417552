//! What `berth idle --check` remembers about each environment between runs: when it first saw
//! it, when it last saw it busy, and what it saw then. One small JSON file per container, written
//! atomically, so a crash or a reboot loses at most one check.
//!
//! Where: a user's checks keep theirs in `$XDG_STATE_HOME/berth/idle` (default
//! `~/.local/state/berth/idle`, 0700); root's (the system timer's) in `/var/lib/berth/idle`
//! (0711: no one else can list it), each file given to the environment's owner (0600) so that
//! their `berth status` can read it and no one else can. The owner could edit theirs, but only to
//! keep their own environment running longer, which a running job does too.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The system timer's folder.
pub const SYSTEM_DIR: &str = "/var/lib/berth/idle";

/// Bigger than any record berth writes: a file beyond this is not believed.
const MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub container: String,
    pub environment: String,
    /// Seconds since the epoch of the first check that saw this container.
    pub first_seen: u64,
    /// Of the last check that saw it busy.
    pub last_busy: Option<u64>,
    /// Of the last check.
    pub checked: u64,
    /// What kept it alive at the last check (empty: idle).
    pub signals: Vec<String>,
    /// The stop-after that applied then (seconds; none: never).
    pub stop_after: Option<u64>,
    /// When it will be stopped if it stays idle (none: busy now, or never).
    pub stops_at: Option<u64>,
    /// When the check stopped it.
    #[serde(default)]
    pub stopped: Option<u64>,
}

/// The folder this process keeps its records in.
pub fn own_dir() -> PathBuf {
    let user = crate::host::HostUser::current();
    if user.uid == 0 {
        return PathBuf::from(SYSTEM_DIR);
    }
    let state = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
    state.unwrap_or_else(|| user.home.join(".local/state")).join("berth/idle")
}

/// Every folder a record of this user's environment may be in: their own and the system's.
pub fn readable_dirs() -> Vec<PathBuf> {
    let own = own_dir();
    let system = PathBuf::from(SYSTEM_DIR);
    if own == system { vec![own] } else { vec![own, system] }
}

fn file(dir: &Path, container: &str) -> Option<PathBuf> {
    // A container id is hex; anything else must not become a path.
    (!container.is_empty() && container.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| dir.join(format!("{container}.json")))
}

/// The record in `dir` for `container`; none when missing, too big or not a record.
pub fn read(dir: &Path, container: &str) -> Option<Record> {
    let path = file(dir, container)?;
    let f = std::fs::File::open(&path).ok()?;
    if f.metadata().ok()?.len() > MAX_BYTES {
        return None;
    }
    let r: Record = serde_json::from_reader(std::io::Read::take(f, MAX_BYTES)).ok()?;
    (r.container == container).then_some(r)
}

/// The newest record of `container` this user can read (their own checks', the system timer's).
pub fn newest(container: &str) -> Option<Record> {
    readable_dirs().iter().filter_map(|d| read(d, container)).max_by_key(|r| r.checked)
}

/// Writes `record` into `dir` (made private first), given to `owner` when root writes it.
pub fn write(dir: &Path, record: &Record, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    make_dir(dir)?;
    let path = file(dir, &record.container).ok_or_else(|| anyhow::anyhow!("not a container id"))?;
    let bytes = serde_json::to_vec_pretty(record)?;
    let opts = crate::fsutil::Atomic { mode: 0o600, owner, before_rename: None };
    crate::fsutil::write_atomic_with(&path, &bytes, opts)
}

fn make_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let system = dir == Path::new(SYSTEM_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| crate::fsutil::io_failure(dir, "create the folder", &e))?;
    // The system folder lets owners reach their own file by name, and lists nothing.
    let mode = if system { 0o711 } else { 0o700 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| crate::fsutil::io_failure(dir, "set the permissions of", &e))?;
    Ok(())
}

/// Removes the records in `dir` of containers not in `alive` (removed since).
pub fn prune(dir: &Path, alive: &[String]) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".json")
            && file(dir, id).is_some()
            && !alive.iter().any(|a| a == id)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
