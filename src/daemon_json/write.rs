//! Writing daemon.json safely. Under a lock (an exclusive `flock` on `.NAME.berth-lock` beside
//! the file, so two berths never merge into the same old text), a timestamped copy of the old
//! file goes beside it, then the new text is written with [`fsutil::write_atomic_with`]: a
//! temporary file, synced, a re-read of the original that must still be what was merged from, a
//! rename, a synced folder. A crash leaves the old file or the new one, never half of one; a
//! failed write leaves the old file and no backup. A symbolic link is followed and its target
//! written, so the link stays.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fsutil;

/// `daemon.json.berth-backup-20261123T101500Z` (then `-1`, `-2`, ... if that exists).
pub fn backup_path(path: &Path, now: std::time::SystemTime) -> PathBuf {
    let stamp: String =
        crate::jobs::store::rfc3339(now).chars().filter(|c| !matches!(c, '-' | ':')).collect();
    let base = path.with_file_name(format!("{}{stamp}", backup_prefix(path)));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    candidate
}

fn backup_prefix(path: &Path) -> String {
    let name =
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "daemon.json".into());
    format!("{name}.berth-backup-")
}

/// The backups berth made of `path` that are there now, newest first.
pub fn backups(path: &Path) -> Vec<PathBuf> {
    let prefix = backup_prefix(path);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    // The names hold the UTC time, so the newest sorts last.
    found.sort();
    found.reverse();
    found
}

/// Remove what a berth killed while writing `path` or its backup left beside it. Call it holding
/// [`lock`], so that no write is under way.
pub fn remove_stale_temporaries(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else { return };
    let backup = backup_prefix(path);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fsutil::remove_stale_temporaries(dir, |of| of == name || of.starts_with(&backup));
}

/// Why the file a path names cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{} is a symbolic link to {}, which does not exist", link.display(), target.display())]
    Dangling { link: PathBuf, target: PathBuf },
    #[error("{} is a symbolic link that never reaches a file (a loop)", link.display())]
    Loop { link: PathBuf },
    #[error("cannot follow {}: {source}", link.display())]
    Io { link: PathBuf, source: std::io::Error },
}

/// The file to read and write for `path`: `path` itself, or the file its chain of symbolic links
/// ends at, so that writing replaces that file and keeps the links. A link to nothing is refused
/// rather than followed: berth would create a file wherever it points (often a volume that is not
/// mounted).
pub fn resolve(path: &Path) -> Result<PathBuf, LinkError> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && current == path => return Ok(current),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LinkError::Dangling { link: path.into(), target: current });
            }
            Err(source) => return Err(LinkError::Io { link: current, source }),
        };
        if !meta.file_type().is_symlink() {
            return Ok(current);
        }
        let to =
            std::fs::read_link(&current).map_err(|source| LinkError::Io { link: current.clone(), source })?;
        current = match current.parent() {
            Some(dir) if to.is_relative() => dir.join(to),
            _ => to,
        };
    }
    Err(LinkError::Loop { link: path.into() })
}

/// An exclusive hold on writing a file, for as long as it lives.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

/// `.NAME.berth-lock` beside `path`: the file berth locks while it changes `path`. It stays (a
/// lock file that is removed can be locked twice); it holds nothing.
pub fn lock_path(path: &Path) -> PathBuf {
    let name =
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "daemon.json".into());
    path.with_file_name(format!(".{name}.berth-lock"))
}

/// Wait up to `timeout` for the lock on `path` (calling `waiting` once if it is held);
/// `Ok(None)` when it is still held then. The kernel drops it when its holder exits, however it
/// exits, so a killed berth never leaves it held.
pub fn lock(path: &Path, timeout: Duration, waiting: impl FnOnce()) -> std::io::Result<Option<Lock>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path(path))?;
    let until = Instant::now() + timeout;
    let mut waiting = Some(waiting);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(Lock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        if let Some(say) = waiting.take() {
            say();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `path` no longer holds the text the new one was merged from.
#[derive(Debug, thiserror::Error)]
#[error("{} changed while berth was writing it", .0.display())]
pub struct Changed(pub PathBuf);

/// Back the existing file up (when there is one), then replace it atomically with `text`, keeping
/// its permissions and owner, provided it still holds `original` (`None`: it did not exist) just
/// before the rename; else the error is [`Changed`]. Call it holding [`lock`]. On any error `path`
/// is as it was and no backup or temporary file is left. Returns the backup's path.
pub fn write_with_backup(path: &Path, original: Option<&str>, text: &str) -> anyhow::Result<Option<PathBuf>> {
    let old = std::fs::metadata(path).ok();
    let mode = old.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
    let owner = old.as_ref().map(|m| (m.uid(), m.gid()));
    // The backup is what was merged from; whole or absent, like the file itself.
    let backup = match original {
        Some(before) => {
            let backup = backup_path(path, std::time::SystemTime::now());
            let opts = fsutil::Atomic { mode, owner, before_rename: None };
            fsutil::write_atomic_with(&backup, before.as_bytes(), opts)?;
            Some(backup)
        }
        None => None,
    };
    let mut unchanged = || {
        let now = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {} again", path.display()))),
        };
        if now.as_deref() == original.map(str::as_bytes) { Ok(()) } else { Err(Changed(path.into()).into()) }
    };
    let opts = fsutil::Atomic { mode, owner, before_rename: Some(&mut unchanged) };
    match fsutil::write_atomic_with(path, text.as_bytes(), opts) {
        Ok(()) => Ok(backup),
        Err(e) => {
            if let Some(b) = &backup {
                let _ = std::fs::remove_file(b);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn backups_are_timestamped_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let first = backup_path(&path, t);
        assert_eq!(
            first.file_name().and_then(|n| n.to_str()),
            Some("daemon.json.berth-backup-20261118T110640Z")
        );
        std::fs::write(&first, "x").expect("write");
        assert_eq!(
            backup_path(&path, t).file_name().and_then(|n| n.to_str()),
            Some("daemon.json.berth-backup-20261118T110640Z-1")
        );
    }

    #[test]
    fn the_old_file_is_kept_and_the_new_one_keeps_its_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, "{\"a\": 1}").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let backup = write_with_backup(&path, Some("{\"a\": 1}"), "{\n  \"a\": 2\n}\n")
            .expect("write")
            .expect("a backup");
        assert_eq!(std::fs::read_to_string(&backup).expect("read"), "{\"a\": 1}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\n  \"a\": 2\n}\n");
        assert_eq!(std::fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary file is left behind");
        assert_eq!(std::fs::metadata(&backup).expect("meta").mode() & 0o777, 0o600, "the backup too");
    }

    #[test]
    fn a_new_file_needs_no_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        assert_eq!(write_with_backup(&path, None, "{}\n").expect("write"), None);
        assert_eq!(std::fs::metadata(&path).expect("meta").mode() & 0o777, 0o644);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".berth-lock"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_changed_meanwhile_is_not_replaced_and_leaves_no_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, "{\"b\": 1}").expect("write");
        let err = write_with_backup(&path, Some("{\"a\": 1}"), "{\"a\": 2}").expect_err("changed");
        assert!(err.downcast_ref::<Changed>().is_some(), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"b\": 1}");
        assert_eq!(names(dir.path()), ["daemon.json"], "no backup, no temporary file");
        // A file that appeared since it was read as missing is not replaced either.
        let err = write_with_backup(&path, None, "{}").expect_err("appeared");
        assert!(err.downcast_ref::<Changed>().is_some(), "{err:#}");
    }

    #[test]
    fn a_symlink_is_followed_to_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.json");
        std::fs::write(&real, "{}").expect("write");
        let link = dir.path().join("daemon.json");
        std::os::unix::fs::symlink("real.json", &link).expect("symlink");
        let chain = dir.path().join("chain.json");
        std::os::unix::fs::symlink(&link, &chain).expect("symlink");
        assert_eq!(resolve(&link).expect("resolves"), real);
        assert_eq!(resolve(&chain).expect("resolves"), real);
        assert_eq!(resolve(&real).expect("resolves"), real);
        let missing = dir.path().join("none.json");
        assert_eq!(resolve(&missing).expect("a missing file is created"), missing);
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink("gone/daemon.json", &dangling).expect("symlink");
        let err = resolve(&dangling).expect_err("dangling");
        assert!(
            matches!(&err, LinkError::Dangling { target, .. } if *target == dir.path().join("gone/daemon.json"))
        );
        let looped = dir.path().join("loop.json");
        std::os::unix::fs::symlink("loop.json", &looped).expect("symlink");
        assert!(matches!(resolve(&looped), Err(LinkError::Loop { .. })));
    }

    #[test]
    fn backups_are_listed_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        assert!(backups(&path).is_empty());
        for stamp in ["20261118T110640Z", "20261120T090000Z", "20261118T110640Z-1"] {
            std::fs::write(dir.path().join(format!("daemon.json.berth-backup-{stamp}")), "{}")
                .expect("write");
        }
        std::fs::write(dir.path().join("other.json.berth-backup-20261121T000000Z"), "{}").expect("write");
        let found: Vec<String> = backups(&path)
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found,
            [
                "daemon.json.berth-backup-20261120T090000Z",
                "daemon.json.berth-backup-20261118T110640Z-1",
                "daemon.json.berth-backup-20261118T110640Z"
            ]
        );
    }

    #[test]
    fn a_held_lock_is_waited_for_then_given_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        let held = lock(&path, Duration::ZERO, || {}).expect("lock").expect("free");
        let mut waited = false;
        let second = lock(&path, Duration::from_millis(200), || waited = true).expect("lock");
        assert!(second.is_none() && waited, "held elsewhere: waits, then gives up");
        drop(held);
        assert!(lock(&path, Duration::ZERO, || {}).expect("lock").is_some(), "free once dropped");
    }
}
