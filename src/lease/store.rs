//! The lease folder: one JSON file per lease, its owner uid the holder (see the module header).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Lease, Record};
use crate::error::{Code, fail};

/// Largest lease file read (anything bigger is not berth's).
const MAX_FILE: u64 = 64 * 1024;

/// The lease folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// The caller's uid.
    uid: u32,
}

/// What the folder holds now.
#[derive(Debug, Default)]
pub struct Listing {
    /// Leases not expired, oldest first.
    pub leases: Vec<Lease>,
    /// Files that could not be read as leases, and why (they are not counted).
    pub skipped: Vec<String>,
    /// Set when the folder's owner is another user, who can remove anyone's files in it.
    pub owner_note: Option<String>,
}

impl Store {
    /// `BERTH_LEASE_DIR`, else [`super::DEFAULT_DIR`]; made (mode 1777) when missing.
    pub fn open() -> anyhow::Result<Store> {
        let dir = std::env::var_os("BERTH_LEASE_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(super::DEFAULT_DIR));
        Store::at(&dir, crate::host::HostUser::current().uid)
    }

    /// The folder at `dir` for the user `uid`, made when missing.
    pub fn at(dir: &Path, uid: u32) -> anyhow::Result<Store> {
        match std::fs::create_dir(dir) {
            Ok(()) => {
                // The umask narrowed it: everyone may add a lease, only owners remove theirs.
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
                    .with_context(|| format!("making {} shared (mode 1777)", dir.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("creating the lease folder {}", dir.display()))
                );
            }
        }
        let meta = std::fs::symlink_metadata(dir)
            .with_context(|| format!("reading the lease folder {}", dir.display()))?;
        if !meta.is_dir() {
            return Err(fail(
                Code::Refused,
                format!(
                    "the lease folder {} is not a folder (a link or a file is in its place)",
                    dir.display()
                ),
                format!(
                    "ask whoever made it to remove it; berth makes the folder itself (mode 1777) at {}",
                    dir.display()
                ),
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o1777 != 0o1777 {
            if meta.uid() == uid {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
                    .with_context(|| format!("making {} shared (mode 1777)", dir.display()))?;
            } else {
                return Err(fail(
                    Code::Refused,
                    format!(
                        "the lease folder {} has mode {mode:o}: leases there would not be shared, or could be \
                         removed by anyone",
                        dir.display()
                    ),
                    format!("its owner (or root) can fix it with `chmod 1777 {}`", dir.display()),
                ));
            }
        }
        Ok(Store { dir: dir.to_path_buf(), uid })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Every lease not expired at `now`. The caller's own expired leases are removed on the way.
    pub fn list(&self, now: u64) -> anyhow::Result<Listing> {
        let mut out = Listing::default();
        let rd = std::fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))?;
        if let Ok(meta) = std::fs::metadata(&self.dir)
            && meta.uid() != 0
            && meta.uid() != self.uid
        {
            out.owner_note = Some(format!(
                "the lease folder {} belongs to {}, who can remove anyone's leases in it (a folder root owns \
                 cannot be: `sudo chown root {}`)",
                self.dir.display(),
                holder_name(meta.uid()),
                self.dir.display()
            ));
        }
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json").filter(|_| !name.starts_with('.')) else { continue };
            let path = entry.path();
            match read_lease(&path, id) {
                Ok(l) if l.record.expires > now => out.leases.push(l),
                Ok(l) => {
                    if l.holder_uid == self.uid {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Err(why) => out.skipped.push(format!("{}: {why}", path.display())),
            }
        }
        out.leases.sort_by(|a, b| (a.record.created, &a.id).cmp(&(b.record.created, &b.id)));
        Ok(out)
    }

    /// Write a new lease held by the caller.
    pub fn create(&self, record: Record) -> anyhow::Result<Lease> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let id = format!("{}-{nanos}-{}", self.uid, std::process::id());
        self.write(&id, &record)?;
        Ok(self.lease(id, record))
    }

    /// Replace one of the caller's leases with `record` (fewer GPUs, a new expiry).
    pub fn replace(&self, lease: &Lease, record: Record) -> anyhow::Result<Lease> {
        self.own(lease)?;
        self.write(&lease.id, &record)?;
        Ok(self.lease(lease.id.clone(), record))
    }

    /// Remove one of the caller's leases.
    pub fn remove(&self, lease: &Lease) -> anyhow::Result<()> {
        self.own(lease)?;
        match std::fs::remove_file(self.path(&lease.id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(anyhow::Error::new(e).context(format!("removing {}", self.path(&lease.id).display())))
            }
            _ => Ok(()),
        }
    }

    fn own(&self, lease: &Lease) -> anyhow::Result<()> {
        if lease.holder_uid != self.uid {
            return Err(fail(
                Code::Refused,
                format!("the lease on GPU {} is {}'s", join(&lease.record.gpus), lease.holder),
                format!("only {} can release or change it; it ends on its own at its expiry", lease.holder),
            ));
        }
        Ok(())
    }

    fn lease(&self, id: String, record: Record) -> Lease {
        let expires_at = crate::jobs::store::rfc3339(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(record.expires),
        );
        Lease { id, holder_uid: self.uid, holder: holder_name(self.uid), record, expires_at }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn write(&self, id: &str, record: &Record) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(record)?;
        json.push(b'\n');
        crate::fsutil::write_atomic(&self.path(id), &json, 0o644)
            .with_context(|| format!("writing a lease in {}", self.dir.display()))
    }
}

/// Read one lease file: the holder from its owner, the rest from its content.
fn read_lease(path: &Path, id: &str) -> Result<Lease, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a plain file".into());
    }
    if meta.len() > MAX_FILE {
        return Err(format!("{} bytes, too big for a lease", meta.len()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let record: Record = serde_json::from_str(&text).map_err(|e| format!("not a berth lease ({e})"))?;
    let expires_at =
        crate::jobs::store::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(record.expires));
    Ok(Lease {
        id: id.to_string(),
        holder_uid: meta.uid(),
        holder: holder_name(meta.uid()),
        record,
        expires_at,
    })
}

/// The user database's name for `uid`, else `uid N` (never a name a file's content gave).
pub fn holder_name(uid: u32) -> String {
    crate::host::user::name_of(uid).unwrap_or_else(|| format!("uid {uid}"))
}

fn join(gpus: &[u32]) -> String {
    gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// Release the leases made for the environment `container` (a berth container name) that the
/// caller may remove: their own, or anyone's when the caller is root (a host-wide idle check).
/// Returns what was released. Expired leases are not returned. For `berth idle --check` and
/// `berth down`-like steps; never fails because a lease vanished meanwhile.
pub fn release_for_environment(container: &str) -> anyhow::Result<Vec<Lease>> {
    let store = Store::open()?;
    let now = super::now();
    let listing = store.list(now)?;
    let mut released = Vec::new();
    for lease in listing.leases {
        if lease.record.environment.as_deref() != Some(container) {
            continue;
        }
        if lease.holder_uid != store.uid && store.uid != 0 {
            continue;
        }
        match std::fs::remove_file(store.path(&lease.id)) {
            Ok(()) => released.push(lease),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("releasing lease {}", lease.id))),
        }
    }
    Ok(released)
}
