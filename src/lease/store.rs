//! The lease folder: one JSON file per lease, `berth-lease-<id>.json`, its owner uid the holder
//! (see the module header).
//!
//! Every read goes through one open file descriptor, opened without following a link and
//! without waiting on a pipe: the owner, size and kind checked are those of the bytes read, so
//! a file swapped for a link to `/dev/zero` or a FIFO between two steps cannot make a reader
//! hang or read without end.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Lease, MAX_NOTE, MAX_SECS, Record};
use crate::error::{Code, fail};

/// Largest lease file read (anything bigger is not berth's).
const MAX_FILE: u64 = 64 * 1024;
/// Lease files are `berth-lease-<id>.json`; nothing else in the folder is read.
const PREFIX: &str = "berth-lease-";
const SUFFIX: &str = ".json";
/// A temporary file of the caller's own older than this was left by a berth killed mid-write.
const STALE_TEMPORARY_SECS: u64 = 600;

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

/// `BERTH_LEASE_DIR`, else [`super::DEFAULT_DIR`].
fn configured_dir() -> PathBuf {
    std::env::var_os("BERTH_LEASE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(super::DEFAULT_DIR))
}

impl Store {
    /// The folder `BERTH_LEASE_DIR` names, else [`super::DEFAULT_DIR`]; made (mode 1777) when
    /// missing.
    pub fn open() -> anyhow::Result<Store> {
        Store::at(&configured_dir(), crate::host::HostUser::current().uid)
    }

    /// Every lease, for a command that only reads them (`top`, `up`): none when the folder
    /// does not exist yet (nothing was ever leased), and it is not made.
    pub fn list_if_any(now: u64) -> anyhow::Result<Listing> {
        if std::fs::symlink_metadata(configured_dir()).is_err() {
            return Ok(Listing::default());
        }
        Store::open()?.list(now)
    }

    /// The folder at `dir` for the user `uid`, made (mode 1777) when missing; one that exists
    /// must already be shared that way.
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
                    "ask whoever made it to remove it, or unset BERTH_LEASE_DIR to use {}",
                    super::DEFAULT_DIR
                ),
            ));
        }
        // A folder that was there already is never widened, even the caller's own: a
        // `BERTH_LEASE_DIR` naming one's home by mistake must not make it world-writable.
        let mode = meta.mode() & 0o7777;
        if mode & 0o1777 != 0o1777 {
            return Err(fail(
                Code::Refused,
                format!(
                    "the lease folder {} has mode {mode:o}: leases there would not be shared, or could be \
                     removed by anyone",
                    dir.display()
                ),
                format!(
                    "if it is meant for leases, its owner (or root) can share it with `chmod 1777 {}`; else point \
                     BERTH_LEASE_DIR at a new folder (berth makes it), or unset it to use {}",
                    dir.display(),
                    super::DEFAULT_DIR
                ),
            ));
        }
        Ok(Store { dir: dir.to_path_buf(), uid })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Every lease not expired at `now`. The caller's own expired leases, and the temporary
    /// files a berth of theirs killed mid-write left, are removed on the way.
    pub fn list(&self, now: u64) -> anyhow::Result<Listing> {
        let mut out = Listing::default();
        let rd = std::fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))?;
        if let Ok(meta) = std::fs::metadata(&self.dir)
            && meta.uid() != 0
            && meta.uid() != self.uid
        {
            out.owner_note = Some(format!(
                "the lease folder {} belongs to {}, who can remove anyone's leases in it (the default, {}, \
                 belongs to root)",
                self.dir.display(),
                holder_name(meta.uid()),
                super::DEFAULT_DIR
            ));
        }
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!(".{PREFIX}")) && name.ends_with(".tmp") {
                self.remove_if_stale(&entry.path());
                continue;
            }
            let Some(id) = name.strip_prefix(PREFIX).and_then(|n| n.strip_suffix(SUFFIX)) else { continue };
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

    /// A temporary lease file of the caller's, written long enough ago that no berth is still
    /// writing it.
    fn remove_if_stale(&self, path: &Path) {
        let Ok(meta) = std::fs::symlink_metadata(path) else { return };
        let age = crate::clock::now().saturating_sub(u64::try_from(meta.mtime()).unwrap_or(0));
        if meta.is_file() && meta.uid() == self.uid && age > STALE_TEMPORARY_SECS {
            let _ = std::fs::remove_file(path);
        }
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

    /// [`Store::create`], then look again: when another user's lease on the same GPUs appeared
    /// meanwhile (one not in `seen`, the leases the caller knowingly takes over), two users
    /// leased at once. The new lease is removed again and the other leases are returned, so
    /// that of two leases taken at the same moment at most one stands (both may step back: the
    /// safe side). The folder has no lock another user could hold forever.
    pub fn create_alone(
        &self,
        record: Record,
        seen: &[String],
        now: u64,
    ) -> anyhow::Result<Result<Lease, Vec<Lease>>> {
        let made = self.create(record)?;
        let listing = self.list(now)?;
        let raced: Vec<Lease> = super::foreign_on(&listing.leases, &made.record.gpus, self.uid, now)
            .into_iter()
            .filter(|l| !seen.contains(&l.id))
            .cloned()
            .collect();
        if raced.is_empty() {
            return Ok(Ok(made));
        }
        self.remove(&made)?;
        Ok(Err(raced))
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
        let expires_at = crate::clock::rfc3339(record.expires);
        Lease { id, holder_uid: self.uid, holder: holder_name(self.uid), record, expires_at }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{PREFIX}{id}{SUFFIX}"))
    }

    fn write(&self, id: &str, record: &Record) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(record)?;
        json.push(b'\n');
        crate::fsutil::write_atomic(&self.path(id), &json, 0o644)
            .with_context(|| format!("writing a lease in {}", self.dir.display()))
    }
}

/// Read one lease file: the holder from its owner, the rest from its content, all through one
/// descriptor. What berth would never have written is bounded here, whoever wrote the file by
/// hand: a lease ends at most [`MAX_SECS`] after its file last changed (its ctime, which no user
/// can set back), the note is one line of at most [`MAX_NOTE`] characters, and the names of the
/// holders it took over are the user database's for their uids.
fn read_lease(path: &Path, id: &str) -> Result<Lease, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "not a plain file (a link)".to_string(),
            _ => e.to_string(),
        })?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a plain file".into());
    }
    if meta.len() > MAX_FILE {
        return Err(format!("{} bytes, too big for a lease", meta.len()));
    }
    let mut text = String::new();
    file.take(MAX_FILE).read_to_string(&mut text).map_err(|e| e.to_string())?;
    let mut record: Record = serde_json::from_str(&text).map_err(|e| format!("not a berth lease ({e})"))?;
    let changed = u64::try_from(meta.ctime()).unwrap_or(0);
    record.expires = record.expires.min(changed.saturating_add(MAX_SECS));
    if let Some(note) = &mut record.note {
        *note = note.lines().next().unwrap_or_default().chars().take(MAX_NOTE).collect();
    }
    for o in &mut record.over {
        o.holder = holder_name(o.holder_uid);
    }
    Ok(Lease {
        id: id.to_string(),
        holder_uid: meta.uid(),
        holder: holder_name(meta.uid()),
        expires_at: crate::clock::rfc3339(record.expires),
        record,
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
/// caller may remove: their own, or, when the caller is root (a host-wide idle check), those of
/// `owner_uid`, the environment's owner, only: a lease another user wrote naming someone else's
/// environment is not released with it. Returns what was released. Expired leases are not
/// returned. Never fails because a lease vanished meanwhile.
pub fn release_for_environment(container: &str, owner_uid: Option<u32>) -> anyhow::Result<Vec<Lease>> {
    let store = Store::open()?;
    let now = crate::clock::now();
    let listing = store.list(now)?;
    let mut released = Vec::new();
    for lease in listing.leases {
        if lease.record.environment.as_deref() != Some(container) {
            continue;
        }
        let allowed =
            lease.holder_uid == store.uid || (store.uid == 0 && owner_uid == Some(lease.holder_uid));
        if !allowed {
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
