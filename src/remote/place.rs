//! Where a laptop project lives on a server: `<base>/<name>-<8 hex of the laptop path>`
//! ([`super::project_dir`]) the first time, then what the laptop's `.berth/remote-folders.json`
//! recorded. The record moves with the folder, so a project renamed or moved on the laptop keeps
//! its folder there — its environment, its jobs, its checkpoints — instead of starting a second
//! one. A copy of the folder (its original still there, still holding that record) gets a
//! folder of its own. A recorded folder is only taken when it has berth's own shape under the
//! server's base (a planted record cannot point the sync at the home folder).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::output::Printer;

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Record {
    /// By server address (`ssh://…`, as `remote ls` shows it).
    servers: BTreeMap<String, Placed>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Placed {
    /// The folder there, as [`super::project_dir`] named it.
    dir: String,
    /// The laptop folder it was last used from.
    laptop: PathBuf,
}

fn load(project: &Path) -> Record {
    std::fs::read(crate::state::remote_folders(project))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Whether `dir` is a folder berth would name under the same base as `fresh`: `PREFIX/NAME-XXXXXXXX`.
fn shaped_like(dir: &str, fresh: &str) -> bool {
    let (Some((prefix, leaf)), Some((fresh_prefix, _))) = (dir.rsplit_once('/'), fresh.rsplit_once('/'))
    else {
        return false;
    };
    prefix == fresh_prefix
        && !leaf.starts_with('.')
        && leaf.rsplit_once('-').is_some_and(|(name, hex)| {
            !name.is_empty() && hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// The folder on the server at `address` for the laptop project at `local`, whose fresh name
/// would be `fresh`; records it (only when that changes anything).
pub fn folder_there(address: &str, fresh: String, local: &Path, server: &str, out: &Printer) -> String {
    let mut record = load(local);
    let before = serde_json::to_vec(&record).unwrap_or_default();
    let dir = match record.servers.get(address) {
        Some(p) if p.laptop == local && shaped_like(&p.dir, &fresh) => p.dir.clone(),
        Some(p) if shaped_like(&p.dir, &fresh) => {
            // Recorded from another laptop folder: moved here, or copied from there.
            let original_holds_it = load(&p.laptop).servers.get(address).is_some_and(|o| o == p);
            if original_holds_it {
                fresh
            } else {
                out.status(format!(
                    "this project was at {} before: it keeps its folder on {server} ({})",
                    p.laptop.display(),
                    p.dir
                ));
                p.dir.clone()
            }
        }
        _ => fresh,
    };
    record.servers.insert(address.to_string(), Placed { dir: dir.clone(), laptop: local.to_path_buf() });
    if serde_json::to_vec(&record).unwrap_or_default() != before {
        // Best effort: without the record, a moved project gets a new folder there.
        let state = crate::state::dir(local);
        if crate::fsutil::create_state_dir(&state).is_ok() {
            crate::state::ignore_in_git(&state);
            if let Ok(bytes) = serde_json::to_vec_pretty(&record) {
                let _ = crate::fsutil::write_atomic(&crate::state::remote_folders(local), &bytes, 0o600);
            }
        }
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRV: &str = "ssh://me@gpu";

    fn place(local: &Path) -> String {
        let fresh = super::super::project_dir(None, "demo", local);
        folder_there(SRV, fresh, local, "gpu", &Printer::new(false, true))
    }

    #[test]
    fn a_moved_project_keeps_its_folder_and_a_copy_gets_its_own() {
        let root = tempfile::tempdir().expect("tempdir");
        let a = root.path().join("a");
        std::fs::create_dir(&a).expect("mkdir");
        let first = place(&a);
        assert_eq!(first, super::super::project_dir(None, "demo", &a));
        assert_eq!(place(&a), first, "the same folder again");

        // Moved: the record travels, the old path is gone.
        let b = root.path().join("b");
        std::fs::rename(&a, &b).expect("mv");
        assert_eq!(place(&b), first, "a renamed project keeps its folder there");
        assert_eq!(place(&b), first);

        // Copied (with its .berth): the original still holds the folder, the copy gets a new one.
        let c = root.path().join("c");
        let status = std::process::Command::new("cp").arg("-a").arg(&b).arg(&c).status().expect("cp");
        assert!(status.success());
        let copy = place(&c);
        assert_ne!(copy, first);
        assert_eq!(copy, super::super::project_dir(None, "demo", &c));
        assert_eq!(place(&b), first, "the original keeps its own");
    }

    #[test]
    fn a_planted_record_cannot_point_anywhere_else() {
        let root = tempfile::tempdir().expect("tempdir");
        let p = root.path().join("p");
        std::fs::create_dir_all(p.join(".berth")).expect("mkdir");
        for evil in [".", "", "berth/..", "/etc", "berth/.ssh-12345678", "other/demo-12345678", "berth/x"] {
            let record = format!(r#"{{"servers":{{"{SRV}":{{"dir":"{evil}","laptop":"/nowhere"}}}}}}"#);
            std::fs::write(crate::state::remote_folders(&p), record).expect("write");
            assert_eq!(place(&p), super::super::project_dir(None, "demo", &p), "{evil:?}");
        }
    }
}
