//! Locating the project file: `berth.toml` in the starting folder or its nearest parent, the way
//! git finds `.git`.
//!
//! Invariants: the path returned is absolute and names a regular file (or a link to one); the
//! search never reads the file and never leaves the filesystem root.

use std::path::{Path, PathBuf};

use super::SpecError;

/// The project file's name.
pub const FILE_NAME: &str = "berth.toml";

/// The `berth.toml` in `start` or its nearest parent folder.
///
/// A relative `start` is taken against the current folder (lexically, so a project reached
/// through a symlinked folder keeps the path the user sees).
pub fn find(start: &Path) -> Result<PathBuf, SpecError> {
    let start = std::path::absolute(start)
        .map_err(|e| SpecError::whole_file(start, format!("cannot resolve `{}`: {e}", start.display())))?;
    if !start.is_dir() {
        let what = if start.exists() { "not a folder" } else { "no such folder" };
        return Err(SpecError::whole_file(&start, what)
            .with_hint("pass -C an existing project folder (the one holding berth.toml, or below it)"));
    }
    for dir in start.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(SpecError::whole_file(&start, format!("no `{FILE_NAME}` here or in any parent folder"))
        .with_hint("run `berth init` to write one, or pass -C DIR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_file_upwards() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let deep = root.join("a/b/c");
        std::fs::create_dir_all(&deep).expect("mkdir");
        std::fs::write(root.join(FILE_NAME), "").expect("write");
        assert_eq!(find(&deep).expect("found"), root.join(FILE_NAME));

        // A nearer file wins over the outer one.
        std::fs::write(root.join("a").join(FILE_NAME), "").expect("write");
        assert_eq!(find(&deep).expect("found"), root.join("a").join(FILE_NAME));
        assert_eq!(find(root).expect("found"), root.join(FILE_NAME));
    }

    #[test]
    fn a_missing_start_folder_is_named_as_missing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let gone = tmp.path().join("gone");
        let err = find(&gone).expect_err("a missing folder");
        assert!(err.to_string().contains("no such folder"), "{err}");
        std::fs::write(&gone, "").expect("write");
        let err = find(&gone).expect_err("a file");
        assert!(err.to_string().contains("not a folder"), "{err}");
    }

    #[test]
    fn a_folder_named_like_the_file_does_not_count() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("p");
        std::fs::create_dir_all(dir.join(FILE_NAME)).expect("mkdir");
        // Whatever lies above the temp folder, `p/berth.toml/` itself must be skipped.
        if let Ok(found) = find(&dir) {
            assert_ne!(found, dir.join(FILE_NAME));
        }
    }

    #[test]
    fn missing_file_says_how_to_get_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Only meaningful when nothing above the temp folder has a berth.toml.
        if let Err(err) = find(tmp.path()) {
            assert_eq!((err.line, err.column), (0, 0));
            assert!(err.message.contains("berth.toml"));
            assert_eq!(err.hint(), Some("run `berth init` to write one, or pass -C DIR"));
        }
    }
}
