//! Writing files so that an interruption never leaves half of one: a temporary file in the same
//! folder, renamed over the target only when complete.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context as _;

/// Write `bytes` to `path` atomically with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file().sync_all().ok();
    // Temporary files are created 0600; the result must be readable as any file the user makes.
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Create the folder `path` (and its parents) for berth's own files, or fail saying which
/// folder and why in words a user can act on: a read-only file system, a file in the way, no
/// permission.
pub fn create_state_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).map_err(|e| io_failure(path, "create the folder", &e))?;
    if !path.is_dir() {
        return Err(io_failure(
            path,
            "create the folder",
            &std::io::Error::from(std::io::ErrorKind::NotADirectory),
        ));
    }
    Ok(())
}

/// An I/O error on berth's own files (`.berth/`), with the path, what berth keeps there and
/// the fix.
pub fn io_failure(path: &Path, doing: &str, e: &std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind as K;
    let p = path.display();
    let (what, hint) = match e.kind() {
        K::ReadOnlyFilesystem => (
            format!("cannot {doing} {p}: it is on a read-only file system"),
            "berth keeps its lock, job logs and build log in the project's .berth folder: work \
             from a writable copy of the project, or remount it read-write",
        ),
        K::AlreadyExists | K::NotADirectory => (
            format!("cannot {doing} {p}: a file is in the way (berth needs a folder there)"),
            "move or remove that file; berth keeps its lock, job logs and build log in .berth",
        ),
        K::PermissionDenied => (
            format!("cannot {doing} {p}: permission denied"),
            "make the project folder (and its .berth) writable by you, or ask its owner to",
        ),
        _ => return anyhow::anyhow!("cannot {doing} {p}: {e}"),
    };
    crate::error::fail(crate::error::Code::Failure, what, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_whole_files_with_the_asked_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one", 0o644).expect("write");
        write_atomic(&p, b"two", 0o644).expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert_eq!(std::fs::metadata(&p).expect("meta").mode() & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no temporary file is left");
    }
}
