//! Paths inside a project folder, checked, and a folder opened so that nothing written or read
//! through it can leave it: every step below the root is opened with `O_NOFOLLOW`, so a symlink
//! planted anywhere on the way (by a hostile stream, a bug, or a user) is refused, never followed.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// A checked path inside a project: `/`-separated, relative, no `.`, `..` or empty parts, no
/// NUL, and never inside berth's own `.berth` folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    pub fn parse(text: &str) -> Result<RelPath, String> {
        if text.is_empty() {
            return Err("an empty path".into());
        }
        if text.starts_with('/') {
            return Err("an absolute path".into());
        }
        if text.len() > 4096 || text.contains('\0') {
            return Err("not a path berth accepts (too long, or a NUL byte)".into());
        }
        for part in text.split('/') {
            match part {
                "" => return Err("an empty part (`//` or a trailing `/`)".into()),
                "." | ".." => return Err(format!("a `{part}` part")),
                p if p.len() > 255 => return Err("a name longer than 255 bytes".into()),
                _ => {}
            }
        }
        if text.split('/').any(|p| p == crate::state::DIR) {
            return Err(format!("inside berth's own {} folder", crate::state::DIR));
        }
        Ok(RelPath(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folders above it and its own name.
    fn split(&self) -> (Vec<&str>, &str) {
        let mut parts: Vec<&str> = self.0.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        (parts, name)
    }

    pub fn join(&self, name: &str) -> Result<RelPath, String> {
        RelPath::parse(&format!("{}/{name}", self.0))
    }

    /// Whether it is `prefix` or inside it.
    pub fn is_within(&self, prefix: &RelPath) -> bool {
        self.0 == prefix.0 || self.0.strip_prefix(&prefix.0).is_some_and(|rest| rest.starts_with('/'))
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a symlink at `link` whose target is `target` stays inside the project: a relative
/// target whose `..` parts all come first and do not climb above the project. Links that hold
/// to that rule can only reach inside, however they chain.
pub fn link_stays_inside(link: &RelPath, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let depth = link.as_str().matches('/').count();
    let mut climbed = 0;
    let mut descended = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if descended => return false,
            ".." => climbed += 1,
            p if p == crate::state::DIR => return false,
            _ => descended = true,
        }
    }
    climbed <= depth
}

/// What is at a path, not following a symlink there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File { size: u64, mtime: (i64, u32), mode: u32 },
    Symlink,
    Dir,
    Other,
}

/// Why a path could not be reached below the root.
#[derive(Debug)]
pub enum Blocked {
    /// A folder on the way is a symlink or not a folder.
    Parent(String),
    Io(std::io::Error),
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::Parent(p) => write!(f, "{p} is a symlink or a file, not a folder"),
            Blocked::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A project folder, opened once.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    pub path: PathBuf,
}

const DIR_FLAGS: OFlags =
    OFlags::DIRECTORY.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC).union(OFlags::RDONLY);

impl Root {
    /// Opens `path` (the root itself may be reached through a symlink: the user chose it).
    pub fn open(path: &Path) -> std::io::Result<Root> {
        let fd = rustix::fs::open(path, OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY, Mode::empty())?;
        Ok(Root { fd, path: path.to_path_buf() })
    }

    /// The folder holding `rel`, opened step by step without following symlinks; missing folders
    /// are made (0755) when `create` says so, else `Ok(None)`.
    fn parent(&self, rel: &RelPath, create: bool) -> Result<Option<OwnedFd>, Blocked> {
        let (dirs, _) = rel.split();
        let mut fd = rustix::io::dup(&self.fd).map_err(|e| Blocked::Io(e.into()))?;
        for (i, dir) in dirs.iter().enumerate() {
            let so_far = || dirs[..=i].join("/");
            let next = match rustix::fs::openat(&fd, *dir, DIR_FLAGS, Mode::empty()) {
                Ok(next) => next,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&fd, *dir, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(Blocked::Io(e.into())),
                    }
                    rustix::fs::openat(&fd, *dir, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
                        Errno::LOOP | Errno::NOTDIR => Blocked::Parent(so_far()),
                        e => Blocked::Io(e.into()),
                    })?
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP | Errno::NOTDIR) => return Err(Blocked::Parent(so_far())),
                Err(e) => return Err(Blocked::Io(e.into())),
            };
            fd = next;
        }
        Ok(Some(fd))
    }

    /// What is at `rel` now (`None`: nothing).
    pub fn kind(&self, rel: &RelPath) -> Result<Option<Kind>, Blocked> {
        let Some(dir) = self.parent(rel, false)? else { return Ok(None) };
        let (_, name) = rel.split();
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(kind_of(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Blocked::Io(e.into())),
        }
    }

    /// Opens the regular file at `rel` for reading (a symlink there is refused).
    pub fn open_file(&self, rel: &RelPath) -> Result<File, Blocked> {
        let dir = self.parent(rel, false)?.ok_or_else(|| Blocked::Io(std::io::ErrorKind::NotFound.into()))?;
        let (_, name) = rel.split();
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Blocked::Io(e.into()))?;
        let file = File::from(fd);
        match file.metadata() {
            Ok(m) if m.is_file() => Ok(file),
            Ok(_) => Err(Blocked::Io(std::io::Error::other("not a regular file"))),
            Err(e) => Err(Blocked::Io(e)),
        }
    }

    /// Reads the target of the symlink at `rel`.
    pub fn read_link(&self, rel: &RelPath) -> Result<String, Blocked> {
        let dir = self.parent(rel, false)?.ok_or_else(|| Blocked::Io(std::io::ErrorKind::NotFound.into()))?;
        let (_, name) = rel.split();
        let target = rustix::fs::readlinkat(&dir, name, Vec::new()).map_err(|e| Blocked::Io(e.into()))?;
        Ok(target.to_string_lossy().into_owned())
    }

    /// Bytes free for an unprivileged writer on the root's file system.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        let st = rustix::fs::fstatvfs(&self.fd)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// The names in the folder `rel` (`None`: the root), with what each is.
    pub fn list(&self, rel: Option<&RelPath>) -> Result<Vec<(String, Kind)>, Blocked> {
        let dir = match rel {
            None => rustix::io::dup(&self.fd).map_err(|e| Blocked::Io(e.into()))?,
            Some(rel) => {
                let parent = self
                    .parent(rel, false)?
                    .ok_or_else(|| Blocked::Io(std::io::ErrorKind::NotFound.into()))?;
                let (_, name) = rel.split();
                rustix::fs::openat(&parent, name, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
                    Errno::LOOP | Errno::NOTDIR => Blocked::Parent(rel.to_string()),
                    e => Blocked::Io(e.into()),
                })?
            }
        };
        let mut out = Vec::new();
        let entries = rustix::fs::Dir::read_from(&dir).map_err(|e| Blocked::Io(e.into()))?;
        for entry in entries {
            let entry = entry.map_err(|e| Blocked::Io(e.into()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            match rustix::fs::statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => out.push((name, kind_of(&st))),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(Blocked::Io(e.into())),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Writes the file `rel` whole or not at all: `fill` writes a temporary file beside it
    /// (`.NAME.XXXXXX.berth-sync`, 0600 until complete), which gets `mode` and `mtime` and then
    /// replaces `rel` only if `still_ok` agrees at that moment. A symlink at `rel` is replaced,
    /// never followed; a folder there is an error. Returns `Ok(false)` when `still_ok` declined.
    pub fn write_file<E>(
        &self,
        rel: &RelPath,
        mode: u32,
        mtime: (i64, u32),
        fill: impl FnOnce(&mut File) -> Result<bool, E>,
        still_ok: impl FnOnce(Option<Kind>) -> bool,
    ) -> Result<Result<bool, Blocked>, E> {
        let dir = match self.parent(rel, true) {
            Ok(Some(dir)) => dir,
            Ok(None) => return Ok(Err(Blocked::Io(std::io::ErrorKind::NotFound.into()))),
            Err(e) => return Ok(Err(e)),
        };
        let (_, name) = rel.split();
        remove_stale_temporaries(&dir, name);
        let (tmp_name, fd) = match create_temporary(&dir, name) {
            Ok(t) => t,
            Err(e) => return Ok(Err(Blocked::Io(e))),
        };
        let mut file = File::from(fd);
        let cleanup = |dir: &OwnedFd| {
            let _ = rustix::fs::unlinkat(dir, tmp_name.as_str(), AtFlags::empty());
        };
        let complete = match fill(&mut file) {
            Ok(complete) => complete,
            Err(e) => {
                cleanup(&dir);
                return Err(e);
            }
        };
        if !complete {
            cleanup(&dir);
            return Ok(Ok(false));
        }
        let finish = || -> std::io::Result<()> {
            file.sync_all()
                .or_else(|e| if e.raw_os_error() == Some(libc::EINVAL) { Ok(()) } else { Err(e) })?;
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode & 0o777))?;
            let ts = rustix::fs::Timespec { tv_sec: mtime.0, tv_nsec: i64::from(mtime.1) };
            rustix::fs::futimens(&file, &rustix::fs::Timestamps { last_access: ts, last_modification: ts })?;
            Ok(())
        };
        if let Err(e) = finish() {
            cleanup(&dir);
            return Ok(Err(Blocked::Io(e)));
        }
        let now = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(kind_of(&st)),
            Err(Errno::NOENT) => None,
            Err(e) => {
                cleanup(&dir);
                return Ok(Err(Blocked::Io(e.into())));
            }
        };
        if matches!(now, Some(Kind::Dir)) || !still_ok(now) {
            cleanup(&dir);
            return Ok(Ok(false));
        }
        if let Err(e) = rustix::fs::renameat(&dir, tmp_name.as_str(), &dir, name) {
            cleanup(&dir);
            return Ok(Err(Blocked::Io(e.into())));
        }
        let _ = rustix::fs::fsync(&dir);
        Ok(Ok(true))
    }

    /// Makes the symlink `rel` → `target` (replacing a symlink or file there, never a folder),
    /// if `still_ok` agrees with what is there.
    pub fn write_link(
        &self,
        rel: &RelPath,
        target: &str,
        still_ok: impl FnOnce(Option<Kind>) -> bool,
    ) -> Result<bool, Blocked> {
        let dir = self.parent(rel, true)?.ok_or_else(|| Blocked::Io(std::io::ErrorKind::NotFound.into()))?;
        let (_, name) = rel.split();
        let now = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(kind_of(&st)),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(Blocked::Io(e.into())),
        };
        if matches!(now, Some(Kind::Dir)) || !still_ok(now) {
            return Ok(false);
        }
        let tmp = format!(".{name}.{}.berth-sync", random_suffix());
        rustix::fs::symlinkat(target, &dir, tmp.as_str()).map_err(|e| Blocked::Io(e.into()))?;
        if let Err(e) = rustix::fs::renameat(&dir, tmp.as_str(), &dir, name) {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
            return Err(Blocked::Io(e.into()));
        }
        Ok(true)
    }
}

fn kind_of(st: &rustix::fs::Stat) -> Kind {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Kind::File {
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec as u32),
            mode: st.st_mode & 0o777,
        },
        FileType::Symlink => Kind::Symlink,
        FileType::Directory => Kind::Dir,
        _ => Kind::Other,
    }
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:06x}", h.finish() & 0xff_ffff)
}

/// Whether `file` is a temporary file of a sync (`.NAME.XXXXXX.berth-sync`): never sent back.
pub fn is_temporary(file: &str) -> bool {
    file.starts_with('.') && file.ends_with(".berth-sync")
}

fn create_temporary(dir: &OwnedFd, name: &str) -> std::io::Result<(String, OwnedFd)> {
    // A name beside the target may be too long for the file system: then a short one.
    for attempt in 0..8 {
        let tmp = if name.len() > 200 || attempt > 3 {
            format!(".{}.berth-sync", random_suffix())
        } else {
            format!(".{name}.{}.berth-sync", random_suffix())
        };
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, tmp.as_str(), flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok((tmp, fd)),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::other("could not make a temporary file"))
}

/// Removes what an interrupted sync (killed before it could clean up) left beside `name`. Only
/// called under the sync's lock, so no running sync owns them.
fn remove_stale_temporaries(dir: &OwnedFd, name: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy();
        if let Some(rest) = file.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".berth-sync"))
            && rest.len() == 6
            && rest.chars().all(|c| c.is_ascii_hexdigit())
        {
            let _ = rustix::fs::unlinkat(dir, entry.file_name(), AtFlags::empty());
        }
    }
}

/// Takes an exclusive lock on `path` (made 0600 if missing) for as long as the file is open.
pub fn lock(path: &Path) -> std::io::Result<File> {
    let file = crate::fsutil::open_own_file(path, false, 0o600)?;
    rustix::fs::flock(file.as_fd(), rustix::fs::FlockOperation::LockExclusive)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_inside_are_accepted() {
        for good in ["a", "a/b.py", ".gitignore", "work_dirs/.hidden/x", "a..b", "...", "x/.berthx"] {
            assert!(RelPath::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            ".",
            "..",
            ".berth/lock",
            "x/.berth/y",
            "a\0b",
        ] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?} is refused");
        }
        assert!(RelPath::parse(&"a/".repeat(3000)).is_err());
    }

    #[test]
    fn symlinks_may_only_point_inside() {
        let at = |p: &str| RelPath::parse(p).expect("path");
        assert!(link_stays_inside(&at("latest.pth"), "epoch_9.pth"));
        assert!(link_stays_inside(&at("configs/base.py"), "../common/base.py"));
        assert!(link_stays_inside(&at("a/b/c"), "../../x"));
        assert!(!link_stays_inside(&at("a/b/c"), "../../../x"), "climbs above the project");
        assert!(!link_stays_inside(&at("data"), "/data/imagenet"));
        assert!(!link_stays_inside(&at("a/l"), "x/../../.."), "`..` after a name can go anywhere");
        assert!(!link_stays_inside(&at("l"), ".berth/lock"));
        assert!(!link_stays_inside(&at("l"), ""));
    }

    #[test]
    fn nothing_is_written_or_read_through_a_symlinked_folder() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).expect("link");
        let r = Root::open(root.path()).expect("open");
        let rel = RelPath::parse("escape/pwned").expect("path");
        let res = r
            .write_file::<std::io::Error>(
                &rel,
                0o644,
                (0, 0),
                |f| {
                    std::io::Write::write_all(f, b"x")?;
                    Ok(true)
                },
                |_| true,
            )
            .expect("no fill error");
        assert!(matches!(res, Err(Blocked::Parent(ref p)) if p == "escape"), "{res:?}");
        assert_eq!(std::fs::read_dir(outside.path()).expect("ls").count(), 0);
        std::fs::write(outside.path().join("secret"), "s").expect("write");
        assert!(r.open_file(&RelPath::parse("escape/secret").expect("path")).is_err());
        // A symlink as the leaf is replaced, not written through.
        std::os::unix::fs::symlink(outside.path().join("target"), root.path().join("leaf")).expect("link");
        let leaf = RelPath::parse("leaf").expect("path");
        let res = r
            .write_file::<std::io::Error>(
                &leaf,
                0o644,
                (1_600_000_000, 5),
                |f| {
                    std::io::Write::write_all(f, b"mine")?;
                    Ok(true)
                },
                |_| true,
            )
            .expect("fill");
        assert!(matches!(res, Ok(true)));
        assert!(!outside.path().join("target").exists());
        assert_eq!(std::fs::read(root.path().join("leaf")).expect("read"), b"mine");
        assert!(matches!(
            r.kind(&leaf),
            Ok(Some(Kind::File { size: 4, mtime: (1_600_000_000, 5), mode: 0o644 }))
        ));
    }

    #[test]
    fn a_declined_or_failed_write_leaves_no_temporary() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = Root::open(root.path()).expect("open");
        let rel = RelPath::parse("sub/f").expect("path");
        let res = r.write_file(
            &rel,
            0o644,
            (0, 0),
            |f| {
                std::io::Write::write_all(f, b"half").map_err(|e| e.to_string())?;
                Err::<bool, String>("the stream ended".into())
            },
            |_| true,
        );
        assert!(res.is_err());
        let res = r.write_file::<String>(&rel, 0o644, (0, 0), |_| Ok(true), |_| false).expect("fill");
        assert!(matches!(res, Ok(false)));
        assert_eq!(std::fs::read_dir(root.path().join("sub")).expect("ls").count(), 0);
    }
}
