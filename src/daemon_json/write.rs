//! Writing daemon.json safely: a timestamped copy of the old file beside it first, then the new
//! text into a temporary file in the same folder, synced and renamed over the original, so a
//! crash leaves either the old file or the new one, never half of one.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `daemon.json.berth-backup-20261123T101500Z` (then `-1`, `-2`, ... if that exists).
pub fn backup_path(path: &Path, now: std::time::SystemTime) -> PathBuf {
    let stamp: String =
        crate::jobs::store::rfc3339(now).chars().filter(|c| !matches!(c, '-' | ':')).collect();
    let name =
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "daemon.json".into());
    let base = path.with_file_name(format!("{name}.berth-backup-{stamp}"));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    candidate
}

/// Back the existing file up (when there is one), then replace it atomically with `text`,
/// keeping its permissions and owner. Returns the backup's path.
pub fn write_with_backup(path: &Path, text: &str) -> std::io::Result<Option<PathBuf>> {
    let old = std::fs::metadata(path).ok();
    let backup = match &old {
        Some(_) => {
            let backup = backup_path(path, std::time::SystemTime::now());
            std::fs::copy(path, &backup)?;
            // On disk before the new file is renamed in: a crash must not leave an empty backup.
            std::fs::File::open(&backup)?.sync_all()?;
            keep_owner(&backup, old.as_ref());
            Some(backup)
        }
        None => None,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".daemon.json.berth-").tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    let mode = old.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    keep_owner(tmp.path(), old.as_ref());
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename is durable only once the folder is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(backup)
}

/// Give `path` the old file's owner; only root can, and only root needs to (for anyone else the
/// new file is already theirs, like the old one was).
fn keep_owner(path: &Path, old: Option<&std::fs::Metadata>) {
    if let Some(m) = old {
        let _ = std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()));
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
        let backup = write_with_backup(&path, "{\n  \"a\": 2\n}\n").expect("write").expect("a backup");
        assert_eq!(std::fs::read_to_string(&backup).expect("read"), "{\"a\": 1}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\n  \"a\": 2\n}\n");
        assert_eq!(std::fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".daemon.json.berth-"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary file is left behind");
    }

    #[test]
    fn a_new_file_needs_no_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        assert_eq!(write_with_backup(&path, "{}\n").expect("write"), None);
        assert_eq!(std::fs::metadata(&path).expect("meta").mode() & 0o777, 0o644);
    }
}
