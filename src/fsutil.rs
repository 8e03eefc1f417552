//! Writing files so that an interruption never leaves half of one: a temporary file in the same
//! folder, synced, renamed over the target only when complete, and the folder synced so that the
//! rename itself survives a crash.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context as _;

/// Write `bytes` to `path` atomically with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    write_atomic_with(path, bytes, Atomic { mode, ..Atomic::default() })
}

/// How [`write_atomic_with`] writes, beyond the bytes.
#[derive(Default)]
pub struct Atomic<'a> {
    /// Permission bits of the new file.
    pub mode: u32,
    /// Owner and group of the new file, as far as the writer may give them (only root can give a
    /// file away, and only root needs to: for anyone else the old file was already theirs).
    pub owner: Option<(u32, u32)>,
    /// Runs once the new file is complete and on disk, just before it replaces `path`; an error
    /// stops the write and leaves `path` as it was (e.g. a re-read that finds it changed meanwhile).
    pub before_rename: Option<&'a mut dyn FnMut() -> anyhow::Result<()>>,
}

impl std::fmt::Debug for Atomic<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Atomic").field("mode", &self.mode).field("owner", &self.owner).finish_non_exhaustive()
    }
}

/// [`write_atomic`] with an owner and a last check before the rename. The temporary file is
/// `.NAME.XXXXXX.tmp` beside `path`; on any error it is removed and `path` is untouched.
pub fn write_atomic_with(path: &Path, bytes: &[u8], opts: Atomic<'_>) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    tmp.as_file_mut().write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    // A full disk may only show here: a file that did not reach the disk must not replace one that
    // did. A filesystem that cannot sync at all (EINVAL) is no reason to refuse the write.
    match tmp.as_file().sync_all() {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) && e.kind() != std::io::ErrorKind::Unsupported => {
            return Err(anyhow::Error::new(e).context(format!("writing {}", path.display())));
        }
        _ => {}
    }
    // Temporary files are created 0600; the result must be readable as any file the user makes.
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(opts.mode))?;
    if let Some((uid, gid)) = opts.owner {
        let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid));
    }
    if let Some(check) = opts.before_rename {
        check()?;
    }
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("writing {}", path.display()))?;
    // The rename is durable only once the folder is synced; the new file is in place either way.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Remove the temporary files [`write_atomic`] left in `dir` when it was killed mid-write
/// (`.NAME.XXXXXX.tmp`), for the files whose NAME `of` accepts. Only for a caller that knows no
/// other write to those files is under way (it holds a lock), since those names are also what a
/// running write uses. Returns what it removed.
pub fn remove_stale_temporaries(dir: &Path, of: impl Fn(&str) -> bool) -> Vec<std::path::PathBuf> {
    let target = |file: &str| -> Option<String> {
        let rest = file.strip_prefix('.')?.strip_suffix(".tmp")?;
        let (name, random) = rest.rsplit_once('.')?;
        (random.len() == 6 && random.chars().all(|c| c.is_ascii_alphanumeric())).then(|| name.to_string())
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| target(&e.file_name().to_string_lossy()).is_some_and(|name| of(&name)))
        .map(|e| e.path())
        .filter(|p| std::fs::remove_file(p).is_ok())
        .collect()
}

/// Create the folder `path` (and its parents) for berth's own files, or fail saying which
/// folder and why in words a user can act on: a read-only file system, a file in the way, no
/// permission.
pub fn create_state_dir(path: &Path) -> anyhow::Result<()> {
    // berth's own folders are private to their owner (`jobs::private` may open `.berth` later).
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(path)
        .map_err(|e| io_failure(path, "create the folder", &e))?;
    if !path.is_dir() {
        return Err(io_failure(
            path,
            "create the folder",
            &std::io::Error::from(std::io::ErrorKind::NotADirectory),
        ));
    }
    Ok(())
}

/// A file berth writes in its own folders (a lock, the build log), opened for writing (made
/// with `mode` when missing) without following a link. `.berth` is writable from inside the
/// container, so a link planted there must never make berth truncate or write what it points
/// to (for a root caller, `/etc/shadow`): a link in the way is removed, never its target; a
/// FIFO or a device is an error, before anything is written.
pub fn open_own_file(path: &Path, truncate: bool, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(truncate)
            .mode(mode)
            // Non-blocking: opening a FIFO with no reader fails instead of waiting forever.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    let file = match open() {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            std::fs::remove_file(path)?;
            open()?
        }
        other => other?,
    };
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
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
    fn an_own_file_never_writes_through_a_planted_link_or_into_a_fifo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let precious = dir.path().join("precious");
        std::fs::write(&precious, "keep me").expect("write");
        let lock = dir.path().join("lock");
        std::os::unix::fs::symlink(&precious, &lock).expect("symlink");
        let mut f = open_own_file(&lock, true, 0o600).expect("opens");
        f.write_all(b"log").expect("write");
        assert_eq!(std::fs::read_to_string(&precious).expect("read"), "keep me");
        assert!(!std::fs::symlink_metadata(&lock).expect("meta").is_symlink());
        assert_eq!(std::fs::read_to_string(&lock).expect("read"), "log");
        assert_eq!(std::fs::metadata(&lock).expect("meta").mode() & 0o777, 0o600);
        // Reopened without truncating, an existing file keeps what it holds.
        drop(open_own_file(&lock, false, 0o600).expect("opens"));
        assert_eq!(std::fs::read_to_string(&lock).expect("read"), "log");
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        assert!(open_own_file(&fifo, true, 0o600).is_err(), "a FIFO without a reader must not hang");
    }

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

    #[test]
    fn a_failed_last_check_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f.json");
        std::fs::write(&p, "old").expect("write");
        let mut checked = 0;
        let mut check = || {
            checked += 1;
            anyhow::bail!("changed meanwhile")
        };
        let opts = Atomic { mode: 0o644, owner: None, before_rename: Some(&mut check) };
        let err = write_atomic_with(&p, b"new", opts).expect_err("the check fails");
        assert_eq!(err.to_string(), "changed meanwhile");
        assert_eq!(checked, 1);
        assert_eq!(std::fs::read(&p).expect("read"), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no temporary file is left");
    }

    #[test]
    fn stale_temporaries_of_that_file_only_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            ".f.json.Ab3dE9.tmp",
            ".f.json.bak-1.Qw12Er.tmp",
            ".f.json.berth-lock",
            ".g.json.Ab3dE9.tmp",
            ".f.json.toolong1.tmp",
            "f.json",
        ] {
            std::fs::write(dir.path().join(name), "x").expect("write");
        }
        let mut removed =
            remove_stale_temporaries(dir.path(), |n| n == "f.json" || n.starts_with("f.json.bak-"));
        removed.sort();
        assert_eq!(
            removed,
            [dir.path().join(".f.json.Ab3dE9.tmp"), dir.path().join(".f.json.bak-1.Qw12Er.tmp")]
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".f.json.berth-lock", ".f.json.toolong1.tmp", ".g.json.Ab3dE9.tmp", "f.json"]);
    }
}
