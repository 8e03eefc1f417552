//! `mounts = ["SRC:DST[:ro|:rw]", ...]` into [`MountSpec`]s.
//!
//! Invariants: sources are absolute and lexically normalised (no `.` or `..`), so "inside the
//! project folder" is a plain prefix test on what the user wrote, symlinks included; targets
//! are absolute, normalised, not `/`, and unique. Validation only looks at the disk (does the
//! source exist?); it never creates anything.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::Ctx;
use crate::spec::{MountSpec, SpecError};

const FORM: &str = "write a mount as \"SOURCE:TARGET\", \"SOURCE:TARGET:ro\" or \"SOURCE:TARGET:rw\"";

pub(super) fn mounts(raw: &[Spanned<String>], cx: &Ctx) -> Result<Vec<MountSpec>, SpecError> {
    let mut out: Vec<MountSpec> = Vec::with_capacity(raw.len());
    // Normalised target -> index of the entry that took it.
    let mut targets: HashMap<String, usize> = HashMap::new();
    for (i, entry) in raw.iter().enumerate() {
        let key = format!("mounts[{i}]");
        let err = |message: String| cx.err(entry.span(), key.clone(), message);
        let text = entry.get_ref();
        let parts: Vec<&str> = text.split(':').collect();
        let (src, dst, mode) = match parts[..] {
            [_] => return Err(err(format!("`{text}` has no target")).with_hint(FORM)),
            [src, dst] => (src, dst, None),
            [src, dst, mode] => (src, dst, Some(mode)),
            _ => return Err(err(format!("`{text}` has too many `:`")).with_hint(FORM)),
        };
        let read_only = match mode {
            None => None,
            Some("ro") => Some(true),
            Some("rw") => Some(false),
            Some(other) => {
                let msg = format!("`{other}` is not a mount mode; use `ro` or `rw`");
                return Err(err(msg).with_hint(FORM));
            }
        };
        if src.is_empty() {
            return Err(err("the source is empty".into()).with_hint(FORM));
        }
        let source = resolve_source(src, cx).map_err(|(m, h)| err(m).with_hint(h))?;
        let target = target(dst).map_err(|m| err(m).with_hint(FORM))?;
        if let Some(first) = targets.get(&target) {
            let msg = format!("target `{target}` is already used by `mounts[{first}]`");
            return Err(err(msg).with_hint("each path inside the container takes one mount"));
        }
        targets.insert(target.clone(), i);

        let inside = inside_project(&source, cx);
        // Without file checks (commands that only act on an existing container) an unreadable
        // source counts as missing: it is neither created nor refused.
        let exists = match cx.check_files {
            true => source
                .try_exists()
                .map_err(|e| err(format!("cannot check source `{}`: {e}", source.display())))?,
            false => source.try_exists().unwrap_or(false),
        };
        if !exists && !inside && cx.check_files {
            let msg = format!("source `{}` does not exist", source.display());
            return Err(err(msg).with_hint(
                "create it or fix the path; berth creates missing sources only inside the \
                 project folder",
            ));
        }
        out.push(MountSpec {
            source,
            target,
            // Outside the project is usually a shared dataset: protect it unless told.
            read_only: read_only.unwrap_or(!inside),
            create: !exists && inside,
            raw: text.clone(),
        });
    }
    Ok(out)
}

/// The absolute host path for `src`: `~` and `~/x` from `$HOME`, relative from the project.
pub(super) fn resolve_source(src: &str, cx: &Ctx) -> Result<PathBuf, (String, String)> {
    let joined = if src == "~" || src.starts_with("~/") {
        let Some(home) = &cx.home else {
            return Err((
                format!("cannot expand `~` in `{src}`: HOME is not set"),
                "write the source as an absolute path".into(),
            ));
        };
        home.join(src.trim_start_matches('~').trim_start_matches('/'))
    } else if src.starts_with('~') {
        return Err((
            format!("`{src}`: only `~/` (your own home) is expanded"),
            "write the source as an absolute path".into(),
        ));
    } else {
        // `join` keeps an absolute `src` as it is.
        cx.project_dir.join(src)
    };
    Ok(normalise(&joined))
}

/// The normalised container path for `dst`, or why it cannot be one.
fn target(dst: &str) -> Result<String, String> {
    if dst.is_empty() {
        return Err("the target is empty".into());
    }
    if !dst.starts_with('/') {
        return Err(format!("target `{dst}` must be an absolute path inside the container"));
    }
    let clean = normalise(Path::new(dst));
    let clean = clean.to_string_lossy().into_owned();
    if clean == "/" {
        return Err("cannot mount over the container's `/`".into());
    }
    if let Some(why) = reserved(Path::new(&clean)) {
        return Err(format!("cannot mount onto `{clean}`: {why}"));
    }
    Ok(clean)
}

/// Why a normalised container path cannot take the user's files (a mount or the work folder),
/// if it cannot: the root, berth's own `/berth` (state and caches), and the kernel's and the
/// runtime's `/proc`, `/sys` and `/dev`. The engine would refuse these, or worse accept them,
/// only when the container is created; the file says so at its line.
pub(super) fn reserved(path: &Path) -> Option<&'static str> {
    if path == Path::new("/") {
        return Some("it is the container's root");
    }
    if path.starts_with("/berth") {
        return Some("berth keeps its state and caches under `/berth`");
    }
    ["/proc", "/sys", "/dev"]
        .iter()
        .any(|p| path.starts_with(p))
        .then_some("`/proc`, `/sys` and `/dev` belong to the container runtime")
}

/// Whether `path` (absolute, normalised) lies inside the project folder once symlinks are
/// followed: `./data -> /datasets/x` is outside, like `/datasets/x` written directly. The
/// decision is taken on what the engine would actually mount or read, never on the spelling.
pub(super) fn inside_project(path: &Path, cx: &Ctx) -> bool {
    inside(path, &cx.project_dir)
}

/// Whether `path` lies inside `project_dir` once symlinks on both are followed (the one rule
/// for mounts, build inputs and the access list).
pub fn inside(path: &Path, project_dir: &Path) -> bool {
    real_path(path).starts_with(real_path(project_dir))
}

/// `path` with every symlink resolved: the longest part that exists is canonicalised and the
/// missing rest appended (a source berth will create, a file not there yet).
pub fn real_path(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Removes `.` and resolves `..` without touching the disk (never above the root).
pub(super) fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                // `pop` on `/` keeps `/`; on a relative path with nothing left, keep the `..`.
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{err, parse_in};

    #[test]
    fn relative_sources_resolve_against_the_project() {
        let (dir, spec) = parse_in(r#"mounts = [".:/workspace", "./out:/w/out", "data:/data:ro"]"#);
        let [code, out, data] = &spec.mounts[..] else { panic!("three mounts: {:?}", spec.mounts) };
        assert_eq!(code.source, dir);
        assert_eq!(code.target, "/workspace");
        assert!(!code.read_only && !code.create);
        assert_eq!(out.source, dir.join("out"));
        assert!(!out.read_only && out.create, "missing but inside: created later, rw");
        assert_eq!(data.source, dir.join("data"));
        assert!(data.read_only && data.create);
        assert_eq!(data.raw, "data:/data:ro");
        assert!(!dir.join("out").exists(), "validation never creates");
    }

    #[test]
    fn outside_sources_are_read_only_unless_said_otherwise() {
        let (_dir, spec) = parse_in(r#"mounts = ["/tmp:/scratch", "/tmp/.:/rw/:rw", "..:/up"]"#);
        assert!(spec.mounts[0].read_only);
        assert!(!spec.mounts[1].read_only);
        assert_eq!(spec.mounts[1].target, "/rw");
        assert_eq!(spec.mounts[1].source, std::path::Path::new("/tmp"));
        assert!(spec.mounts[2].read_only, "the parent of the project is outside it");
    }

    #[test]
    fn a_symlink_to_a_folder_outside_the_project_is_outside() {
        let outside = tempfile::tempdir().expect("tempdir");
        let project = tempfile::tempdir().expect("tempdir");
        let dir = project.path().to_path_buf();
        std::os::unix::fs::symlink(outside.path(), dir.join("data")).expect("symlink");
        std::os::unix::fs::symlink(".", dir.join("here")).expect("symlink");
        let text = r#"mounts = ["./data:/data", "./here/out:/out", "./data/new:/new:rw"]"#;
        let err = super::super::parse_with_home(text, &dir.join("berth.toml"), Some(dir.clone()))
            .expect_err("a missing source behind the link is outside, so it must exist");
        assert!(err.message.contains("mounts[2]") && err.message.contains("does not exist"), "{err}");
        let text = r#"mounts = ["./data:/data", "./here/out:/out"]"#;
        let spec =
            super::super::parse_with_home(text, &dir.join("berth.toml"), Some(dir.clone())).expect("valid");
        assert!(spec.mounts[0].read_only, "the link leads outside: read-only like its target");
        assert!(!spec.mounts[1].read_only && spec.mounts[1].create, "a link back inside stays inside");
    }

    #[test]
    fn home_is_expanded() {
        // The test HOME is the project folder itself.
        let (dir, spec) = parse_in(r#"mounts = ["~/.cache/x:/c", "~:/h"]"#);
        assert_eq!(spec.mounts[0].source, dir.join(".cache/x"));
        assert_eq!(spec.mounts[1].source, dir);
        let e = err(r#"mounts = ["~bob/x:/c"]"#);
        assert!(e.message.contains("only `~/`"), "{e}");
    }

    #[test]
    fn malformed_entries_are_refused_at_their_position() {
        let cases = [
            (r#"mounts = ["./x"]"#, "has no target"),
            (r#"mounts = ["./x:/a:/b:ro"]"#, "too many"),
            (r#"mounts = ["./x:/a:rx"]"#, "`rx` is not a mount mode"),
            (r#"mounts = [":/a"]"#, "source is empty"),
            (r#"mounts = ["./x:"]"#, "target is empty"),
            (r#"mounts = ["./x:a"]"#, "must be an absolute path"),
            (r#"mounts = ["./x:/"]"#, "cannot mount over"),
            (r#"mounts = ["./x:/berth/state"]"#, "cannot mount onto `/berth/state`"),
            (r#"mounts = ["./x:/berth"]"#, "cannot mount onto `/berth`"),
            (r#"mounts = ["./x:/w/../sys/fs"]"#, "cannot mount onto `/sys/fs`"),
            (r#"mounts = ["./x:/dev"]"#, "cannot mount onto `/dev`"),
            (r#"mounts = ["./x:/proc"]"#, "cannot mount onto `/proc`"),
            (r#"mounts = ["./x:/a", "./y:/a/"]"#, "already used by `mounts[0]`"),
            (r#"mounts = ["/no/such/berth/src:/a"]"#, "does not exist"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.line, 1, "{text}");
            assert!(e.key.as_deref().is_some_and(|k| k.starts_with("mounts[")), "{e:?}");
        }
        assert_eq!(err(r#"mounts = ["./x:/a", "./y:/a"]"#).column, 21);
    }

    #[test]
    fn normalising_is_lexical() {
        use super::normalise;
        use std::path::Path;
        assert_eq!(normalise(Path::new("/a/./b/../c/")), Path::new("/a/c"));
        assert_eq!(normalise(Path::new("/../..")), Path::new("/"));
    }
}
