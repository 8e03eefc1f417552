//! The layout of berth's own folder in a project, `<project>/.berth`: every path in it is named
//! here, and whichever command makes the folder first also writes its `.gitignore` (`*`), so
//! job logs, packs and records never reach the user's repository.
//!
//! Who may enter it is `jobs::private`'s business ([`crate::jobs::private::state_dir`]).

use std::path::{Path, PathBuf};

/// The folder's name in the project (it appears inside as `plan::STATE_DIR`).
pub const DIR: &str = ".berth";

/// `<project>/.berth`.
pub fn dir(project_dir: &Path) -> PathBuf {
    project_dir.join(DIR)
}

/// The project's lock: `up`, `stop`, `down` and the start of a job hold it.
pub fn lock(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("lock")
}

/// One folder per job.
pub fn jobs(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("jobs")
}

/// The log of the last image build.
pub fn build_log(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("build.log")
}

/// Where `berth pack` writes without `-o`.
pub fn packs(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("packs")
}

/// The id of the container `up` made for the project (found again after the folder moves).
pub fn container_record(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("container")
}

/// What `berth commit` recorded.
pub fn commit_record(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("commit.json")
}

/// The host ports berth chose for `ports` entries without one (`ports::read_record`).
pub fn ports_record(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("ports.json")
}

/// The Python environment's variables, found once per container start (`crate::python`).
pub fn python_record(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("python.json")
}

/// The access-widening settings already announced.
pub fn access_announced(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("access-announced.json")
}

/// The folder of the ssh-agent relay's socket (`crate::ssh_agent`), inside `.berth` so the
/// environment's existing mount carries it: no container needs re-creating for it.
pub const SSH_AGENT: &str = "ssh-agent";

/// The relay's socket in [`ssh_agent`].
pub const SSH_AGENT_SOCKET: &str = "agent.sock";

/// `<project>/.berth/ssh-agent`.
pub fn ssh_agent(project_dir: &Path) -> PathBuf {
    dir(project_dir).join(SSH_AGENT)
}

/// Writes `.berth/.gitignore` when it is missing (the folder must exist). Best effort: a
/// folder berth cannot write in fails at the next step with a clearer message.
pub fn ignore_in_git(state_dir: &Path) {
    let ignore = state_dir.join(".gitignore");
    if !ignore.exists() {
        let _ = crate::fsutil::write_atomic(&ignore, b"*\n", 0o644);
    }
}

/// The laptop's cache of file hashes for `berth --on` syncs, by (size, mtime).
pub fn sync_hashes(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("sync-hashes.json")
}

/// On the laptop: the folder each server holds this project in (`berth --on`), recorded so
/// that it moves with the project (`remote::place`).
pub fn remote_folders(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("remote-folders.json")
}

/// On the server: what each path was when a sync last wrote it (what berth may overwrite).
pub fn sync_record(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("sync-record.json")
}

/// On the server: held by the one sync that writes into the project at a time.
pub fn sync_lock(project_dir: &Path) -> PathBuf {
    dir(project_dir).join("sync.lock")
}
