//! berth's host files are the project owner's alone: `<project>/.berth/` is 0700 and every file
//! berth makes in it 0600, so a job that prints its environment (its `from-host` secrets) shows
//! it to nobody else on a shared machine.
//!
//! One exception, the narrowest that works: jobs that run as an image user (`[user] as =
//! "name"`) have another uid than the owner, so the container gets the owner's primary group
//! and the folders open to that group only (`.berth` 0750, a job folder 2770, its files 0660).
//! A job folder is made here with every file its wrapper writes already in place, owned by the
//! owner, so no file in it ever belongs to another user; one that another user could have
//! written is reported as such, never believed (see [`untrusted`]).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::host::HostUser;
use crate::spec::UserMode;

/// The files a job's wrapper writes (see `wrapper`), made before it starts.
const JOB_FILES: [&str; 5] = ["log", "pid", "oom-before", "oom-after", "exit.tmp"];

/// Who besides the owner may enter berth's folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// The owner alone: jobs run as the host user, or as root (who needs no permission).
    Owner,
    /// The owner's primary group too (this gid), which the container is given: jobs run as an
    /// image user whose uid is not the owner's.
    Group(u32),
}

impl Sharing {
    /// The owner's primary group opens berth's folders only when it is the owner's own: on a
    /// server whose users share one primary group (`users`, `staff`), opening the folders to it
    /// would open every job log and record to every colleague. Then berth keeps them to the
    /// owner, and `run` refuses jobs as an image user ([`shared_group_refusal`]).
    pub fn of(mode: &UserMode, user: &HostUser) -> Sharing {
        match mode {
            UserMode::Named(_) if group_sharers(user).is_empty() => Sharing::Group(user.gid),
            UserMode::Named(_) | UserMode::Host | UserMode::Root => Sharing::Owner,
        }
    }

    fn dir_mode(self) -> u32 {
        match self {
            Sharing::Owner => 0o700,
            Sharing::Group(_) => 0o750,
        }
    }

    fn job_dir_mode(self) -> u32 {
        match self {
            Sharing::Owner => 0o700,
            // setgid: whatever the job adds keeps the owner's group.
            Sharing::Group(_) => 0o2770,
        }
    }

    fn file_mode(self) -> u32 {
        match self {
            Sharing::Owner => 0o600,
            Sharing::Group(_) => 0o660,
        }
    }

    /// Sets `path`'s mode (and group, when shared) to `mode`: exact, whatever the umask.
    fn apply(self, path: &Path, mode: u32) -> io::Result<()> {
        if let Sharing::Group(gid) = self {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
}

/// Other (non-root) users who share `user`'s primary group, by the host's `/etc/passwd` (their
/// primary group) and `/etc/group` (its members).
pub fn group_sharers(user: &HostUser) -> Vec<String> {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    sharers(user.gid, user.uid, &user.name, &read("/etc/passwd"), &read("/etc/group"))
}

fn sharers(gid: u32, uid: u32, name: &str, passwd: &str, group: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let (Some(n), Some(Ok(u)), Some(Ok(g))) =
            (f.first(), f.get(2).map(|x| x.parse::<u32>()), f.get(3).map(|x| x.parse::<u32>()))
        else {
            continue;
        };
        if g == gid && u != uid && u != 0 && *n != name {
            out.push(n.to_string());
        }
    }
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.get(2).and_then(|g| g.parse::<u32>().ok()) != Some(gid) {
            continue;
        }
        let members = f.get(3).copied().unwrap_or_default().split(',').map(str::trim);
        out.extend(members.filter(|m| !m.is_empty() && *m != name && *m != "root").map(str::to_string));
    }
    out.sort();
    out.dedup();
    out
}

/// Why a job cannot run as the image user `image_user` when berth's folders must stay the
/// owner's alone (their primary group is shared), or `None` when it can.
pub fn shared_group_refusal(mode: &UserMode, user: &HostUser) -> Option<anyhow::Error> {
    let UserMode::Named(image_user) = mode else { return None };
    let others = group_sharers(user);
    if others.is_empty() {
        return None;
    }
    let shown: Vec<&str> = others.iter().take(5).map(String::as_str).collect();
    let more = if others.len() > shown.len() {
        format!(" and {} more", others.len() - shown.len())
    } else {
        String::new()
    };
    Some(crate::error::fail(
        crate::error::Code::Refused,
        format!(
            "a job as the image user {image_user} writes its log through your primary group (gid {}), \
             which other users share ({}{more}): they could read the log and rewrite the job's record; nothing was started",
            user.gid,
            shown.join(", ")
        ),
        "run berth with a group of your own (`sg GROUP -c 'berth run ...'`, a group no one else is in), \
         or run jobs as yourself: `[user] as = \"host\"`",
    ))
}

/// `<project>/.berth`, created or tightened to what `sharing` allows, with its `.gitignore`.
pub fn state_dir(project_dir: &Path, sharing: Sharing) -> io::Result<PathBuf> {
    let dir = crate::state::dir(project_dir);
    private_dir(&dir, sharing)?;
    crate::state::ignore_in_git(&dir);
    Ok(dir)
}

fn private_dir(dir: &Path, sharing: Sharing) -> io::Result<()> {
    match fs::DirBuilder::new().mode(sharing.dir_mode()).create(dir) {
        Ok(()) => {}
        // A symlink or a file in the way is never followed or changed.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !is_symlink(dir) && dir.is_dir() => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(io::ErrorKind::NotADirectory.into()),
        Err(e) => return Err(e),
    }
    sharing.apply(dir, sharing.dir_mode())
}

/// `<project>/.berth/ssh-agent`, created or tightened like `.berth` itself (0700, or 0750 for
/// an image user's group): the ssh-agent relay's socket lives in it.
pub fn ssh_agent_dir(project_dir: &Path, sharing: Sharing) -> io::Result<PathBuf> {
    state_dir(project_dir, sharing)?;
    let dir = crate::state::ssh_agent(project_dir);
    // berth never makes a link there: one planted from inside the container goes (the link,
    // never what it points to), so it cannot keep the agent out of the environment for good.
    if is_symlink(&dir) {
        fs::remove_file(&dir)?;
    }
    private_dir(&dir, sharing)?;
    Ok(dir)
}

/// A file berth writes in `.berth` (a log), created or truncated with the owner-only mode.
pub fn private_file(path: &Path, sharing: Sharing) -> io::Result<fs::File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(sharing.file_mode())
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // An existing file keeps its old mode through `open`; a new one had the umask applied.
    if let Sharing::Group(gid) = sharing {
        std::os::unix::fs::fchown(&file, None, Some(gid))?;
    }
    file.set_permissions(fs::Permissions::from_mode(sharing.file_mode()))?;
    Ok(file)
}

/// Makes the folder of a new job `name` (exclusively: `AlreadyExists` if it is taken), with
/// every file its wrapper writes already there, owned by the owner and private to them.
pub fn new_job_dir(project_dir: &Path, name: &str, sharing: Sharing) -> io::Result<PathBuf> {
    let jobs = state_dir(project_dir, sharing)?.join("jobs");
    private_dir(&jobs, sharing)?;
    let dir = jobs.join(name);
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    sharing.apply(&dir, sharing.job_dir_mode())?;
    for file in JOB_FILES {
        let f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.join(file))?;
        if let Sharing::Group(gid) = sharing {
            std::os::unix::fs::fchown(&f, None, Some(gid))?;
        }
        f.set_permissions(fs::Permissions::from_mode(sharing.file_mode()))?;
    }
    Ok(dir)
}

/// Removes a job folder that a `berth run` killed before it recorded its job left behind: no
/// `meta.json`, nothing in it but the empty files [`new_job_dir`] makes (no symlink, nothing
/// else). Returns whether the folder is gone; anything else in it is left untouched.
pub fn reclaim_unstarted(job_dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(job_dir) else { return false };
    let mut files = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { return false };
        let name = entry.file_name();
        let known = JOB_FILES.iter().any(|f| name == *f);
        let empty_file = entry.metadata().is_ok_and(|m| m.file_type().is_file() && m.len() == 0);
        if !known || !empty_file {
            return false;
        }
        files.push(entry.path());
    }
    files.iter().all(|f| fs::remove_file(f).is_ok()) && fs::remove_dir(job_dir).is_ok()
}

/// Tightens an existing `.berth` (made by an older berth: 0755 folders, 0644 logs, 0777 job
/// folders) to what `sharing` allows. Only what the caller owns can be changed; anything else
/// stays as it is and [`untrusted`] reports it.
pub fn tighten(project_dir: &Path, sharing: Sharing, owner: u32) {
    let dir = crate::state::dir(project_dir);
    let owned = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.uid() == owner && !m.is_symlink());
    if !owned(&dir) {
        return;
    }
    let _ = sharing.apply(&dir, sharing.dir_mode());
    let log = crate::state::build_log(project_dir);
    if owned(&log) {
        let _ = sharing.apply(&log, sharing.file_mode());
    }
    let jobs = crate::state::jobs(project_dir);
    if !owned(&jobs) {
        return;
    }
    let _ = sharing.apply(&jobs, sharing.dir_mode());
    for job in fs::read_dir(&jobs).into_iter().flatten().flatten().map(|e| e.path()) {
        if !owned(&job) || !job.is_dir() {
            continue;
        }
        let _ = sharing.apply(&job, sharing.job_dir_mode());
        for file in fs::read_dir(&job).into_iter().flatten().flatten().map(|e| e.path()) {
            if owned(&file) {
                let _ = sharing.apply(&file, sharing.file_mode());
            }
        }
    }
}

/// Why a job folder cannot be believed, if it cannot: it, a file in it, or a folder above it up
/// to `.berth` could have been written by someone other than `.berth`'s owner (or root): owned
/// by another user, writable by everyone, writable by a group other than the owner's, or a
/// symlink. Such a job's state, exit code and pid are not used.
pub fn untrusted(job_dir: &Path) -> Option<String> {
    let jobs = job_dir.parent()?;
    let state = jobs.parent()?;
    let owner = match fs::symlink_metadata(state) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot check {}: {e}", state.display())),
    };
    let mut paths = vec![state.to_path_buf(), jobs.to_path_buf(), job_dir.to_path_buf()];
    let mut files: Vec<PathBuf> =
        fs::read_dir(job_dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    files.sort();
    paths.extend(files);
    paths.iter().find_map(|p| foreign_write(p, owner.uid(), owner.gid()))
}

fn foreign_write(path: &Path, owner: u32, group: u32) -> Option<String> {
    let m = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot check {}: {e}", path.display())),
    };
    let shown = path.display();
    if m.is_symlink() {
        return Some(format!("{shown} is a symlink, which berth never makes there"));
    }
    if m.uid() != owner && m.uid() != 0 {
        return Some(format!("{shown} belongs to uid {}, not to the project's owner (uid {owner})", m.uid()));
    }
    if m.mode() & 0o002 != 0 {
        return Some(format!("{shown} is writable by every user"));
    }
    if m.mode() & 0o020 != 0 && m.gid() != group {
        return Some(format!("{shown} is writable by group {}, not only by the project's owner", m.gid()));
    }
    None
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("meta").mode() & 0o7777
    }

    #[test]
    fn a_primary_group_other_users_share_is_never_opened_to() {
        let passwd = "root:x:0:0::/root:/bin/sh\nalice:x:1001:100::/home/alice:/bin/sh\n\
                      bob:x:1002:100::/home/bob:/bin/sh\ncarol:x:1003:1003::/home/carol:/bin/sh\n";
        let group = "root:x:0:\nusers:x:100:\ncarol:x:1003:\ndave:x:1004:dave,carol\nlab:x:1005:alice,erin\n";
        assert_eq!(sharers(100, 1001, "alice", passwd, group), vec!["bob".to_string()]);
        assert_eq!(sharers(1003, 1003, "carol", passwd, group), Vec::<String>::new(), "a group of one's own");
        assert_eq!(sharers(1005, 1001, "alice", passwd, group), vec!["erin".to_string()]);
        assert_eq!(
            sharers(0, 1001, "alice", passwd, group),
            Vec::<String>::new(),
            "root reads everything anyway"
        );
    }

    #[test]
    fn a_berth_folder_made_by_a_job_or_a_build_stays_out_of_git() {
        // `berth run` or `berth build` before any `up` made `.berth` without its `.gitignore`.
        let project = tempfile::tempdir().expect("tempdir");
        new_job_dir(project.path(), "train", Sharing::Owner).expect("job dir");
        assert_eq!(fs::read_to_string(project.path().join(".berth/.gitignore")).expect("gitignore"), "*\n");
        let other = tempfile::tempdir().expect("tempdir");
        state_dir(other.path(), Sharing::Group(0)).expect("state dir");
        assert_eq!(fs::read_to_string(other.path().join(".berth/.gitignore")).expect("gitignore"), "*\n");
    }

    #[test]
    fn a_new_job_folder_and_its_files_are_the_owners_alone() {
        let project = tempfile::tempdir().expect("tempdir");
        let dir = new_job_dir(project.path(), "train", Sharing::Owner).expect("job dir");
        assert_eq!(mode(&project.path().join(".berth")), 0o700);
        assert_eq!(mode(&project.path().join(".berth/jobs")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        for f in JOB_FILES {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        assert_eq!(untrusted(&dir), None);
        let again = new_job_dir(project.path(), "train", Sharing::Owner).expect_err("taken");
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn an_image_user_job_opens_to_the_owners_group_only() {
        let project = tempfile::tempdir().expect("tempdir");
        let gid = fs::metadata(project.path()).expect("meta").gid();
        let dir = new_job_dir(project.path(), "t", Sharing::Group(gid)).expect("job dir");
        assert_eq!(mode(&project.path().join(".berth")), 0o750);
        assert_eq!(mode(&dir), 0o2770);
        assert_eq!(mode(&dir.join("log")), 0o660);
        assert_eq!(untrusted(&dir), None, "the owner's own group may write");
    }

    #[test]
    fn an_old_world_readable_state_folder_is_tightened() {
        let project = tempfile::tempdir().expect("tempdir");
        let job = project.path().join(".berth/jobs/old");
        fs::create_dir_all(&job).expect("mkdir");
        fs::write(job.join("log"), "secret\n").expect("write");
        fs::write(project.path().join(".berth/build.log"), "log\n").expect("write");
        for (p, m) in [(".berth", 0o755), (".berth/jobs", 0o755), (".berth/jobs/old", 0o777)] {
            fs::set_permissions(project.path().join(p), fs::Permissions::from_mode(m)).expect("chmod");
        }
        assert!(untrusted(&job).is_some_and(|w| w.contains("writable by every user")));
        let me = fs::metadata(project.path()).expect("meta").uid();
        tighten(project.path(), Sharing::Owner, me);
        assert_eq!(mode(&project.path().join(".berth")), 0o700);
        assert_eq!(mode(&job), 0o700);
        assert_eq!(mode(&job.join("log")), 0o600);
        assert_eq!(mode(&project.path().join(".berth/build.log")), 0o600);
        assert_eq!(untrusted(&job), None);
    }

    #[test]
    fn a_planted_symlink_makes_the_job_untrusted() {
        let project = tempfile::tempdir().expect("tempdir");
        let dir = new_job_dir(project.path(), "j", Sharing::Owner).expect("job dir");
        fs::remove_file(dir.join("pid")).expect("rm");
        std::os::unix::fs::symlink("/proc/1/stat", dir.join("pid")).expect("symlink");
        assert!(untrusted(&dir).is_some_and(|w| w.contains("symlink")));
        let log = private_file(&dir.join("log"), Sharing::Owner).expect("a regular file opens");
        drop(log);
        assert!(private_file(&dir.join("pid"), Sharing::Owner).is_err(), "never through a symlink");
    }

    #[test]
    fn a_folder_a_killed_run_left_is_reclaimed_and_one_with_a_job_is_not() {
        let project = tempfile::tempdir().expect("tempdir");
        let dir = new_job_dir(project.path(), "t", Sharing::Owner).expect("job dir");
        assert!(reclaim_unstarted(&dir), "a folder with only the empty job files is reclaimed");
        assert!(!dir.exists());
        let dir = new_job_dir(project.path(), "t", Sharing::Owner).expect("name free again");
        fs::write(dir.join("log"), "epoch 1\n").expect("write");
        assert!(!reclaim_unstarted(&dir), "a log with content is the user's");
        fs::write(dir.join("log"), "").expect("write");
        fs::write(dir.join("meta.json"), "{}").expect("write");
        assert!(!reclaim_unstarted(&dir), "a recorded job is never reclaimed");
        assert!(dir.join("meta.json").exists());
    }
}
