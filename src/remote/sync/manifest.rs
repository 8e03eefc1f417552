//! What the laptop offers: every file of the project that the ignore rules keep, with its size,
//! mode, mtime and sha256. Hashes are cached by (size, mtime) in `.berth/sync-hashes.json`, so
//! an unchanged large file is not read again.
//!
//! The rules, one place: never `.berth/` or `.git/`, nor berth's packs; `.gitignore` files (in
//! every folder, git's rules) and `.berthignore` (the project's root, git's rules; its `!` lines
//! can bring back what `.gitignore` left out), then `.dockerignore` (Docker's rules, the same
//! matcher the build context uses). Symlinks travel as symlinks when they stay inside the
//! project; others are skipped with a reason.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tree::{RelPath, link_stays_inside};
use super::{Skipped, SyncError};
use crate::image::context::{ignored as docker_ignored, match_segments, parse_ignore};

/// One file or symlink the laptop offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub mode: u32,
    pub mtime: (i64, u32),
    /// sha256 of the content (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Entry {
    /// What berth records as the content of what it wrote: a file's sha256, or `link:TARGET`.
    pub fn content_id(&self) -> String {
        match &self.link {
            Some(target) => format!("link:{target}"),
            None => self.sha256.clone().unwrap_or_default(),
        }
    }
}

/// git's ignore rules from one file, relative to the folder that holds it.
#[derive(Debug, Clone)]
struct GitRules {
    base: Vec<String>,
    rules: Vec<GitRule>,
}

#[derive(Debug, Clone)]
struct GitRule {
    negated: bool,
    dir_only: bool,
    segments: Vec<String>,
}

fn parse_git_rules(base: &[String], text: &str) -> GitRules {
    let mut rules = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        // Trailing spaces are ignored unless escaped.
        let line = if line.ends_with("\\ ") { line } else { line.trim_end() };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, pat) = match line.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, line.strip_prefix('\\').unwrap_or(line)),
        };
        let dir_only = pat.ends_with('/');
        let pat = pat.trim_end_matches('/');
        if pat.is_empty() {
            continue;
        }
        // A slash at the start or in the middle anchors the pattern to its folder; otherwise it
        // matches a name at any depth.
        let anchored = pat.contains('/');
        let pat = pat.trim_start_matches('/');
        let mut segments: Vec<String> = Vec::new();
        if !anchored {
            segments.push("**".into());
        }
        segments.extend(pat.split('/').map(str::to_string));
        rules.push(GitRule { negated, dir_only, segments });
    }
    GitRules { base: base.to_vec(), rules }
}

/// The rules in force in one folder of the walk.
#[derive(Debug, Clone, Default)]
struct Rules {
    git: Vec<GitRules>,
    berth: Option<GitRules>,
    docker: Vec<(bool, String)>,
}

impl Rules {
    fn excludes(&self, rel: &str, is_dir: bool) -> bool {
        let parts: Vec<&str> = rel.split('/').collect();
        let mut excluded = false;
        for file in self.git.iter().chain(self.berth.iter()) {
            let Some(inside) =
                parts.strip_prefix(file.base.iter().map(String::as_str).collect::<Vec<_>>().as_slice())
            else {
                continue;
            };
            for rule in &file.rules {
                if rule.dir_only && !is_dir {
                    continue;
                }
                let pat: Vec<&str> = rule.segments.iter().map(String::as_str).collect();
                if match_segments(&pat, inside) {
                    excluded = !rule.negated;
                }
            }
        }
        excluded || docker_ignored(rel, &self.docker)
    }
}

/// Cached hashes: path → (size, mtime, sha256, is a pack).
#[derive(Debug, Default, Serialize, Deserialize)]
struct HashCache {
    files: BTreeMap<String, Cached>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    size: u64,
    mtime: (i64, u32),
    sha256: String,
    #[serde(default)]
    pack: bool,
}

/// The walk's result: what to offer, and what was left out with a reason the user should see.
#[derive(Debug, Default)]
pub struct Offer {
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
}

/// Walks `project` and returns what the sync offers, updating the hash cache.
pub fn offer(project: &Path) -> Result<Offer, SyncError> {
    let cache_path = crate::state::sync_hashes(project);
    let old_bytes = std::fs::read(&cache_path).unwrap_or_default();
    let old: HashCache = serde_json::from_slice(&old_bytes).unwrap_or_default();
    let mut fresh = HashCache::default();
    let mut rules = Rules::default();
    if let Ok(text) = std::fs::read_to_string(project.join(".berthignore")) {
        rules.berth = Some(parse_git_rules(&[], &text));
    }
    if let Ok(text) = std::fs::read_to_string(project.join(".dockerignore")) {
        rules.docker = parse_ignore(&text);
    }
    let mut out = Offer::default();
    walk(project, &[], &rules, &old, &mut fresh, &mut out)?;
    out.entries.sort_by(|a, b| a.path.cmp(&b.path));
    // Best effort: a cache that cannot be written costs only time next run. An unchanged one is
    // not written again (two disk syncs saved on every sync with nothing new).
    if let Ok(bytes) = serde_json::to_vec(&fresh)
        && bytes != old_bytes
        && crate::fsutil::create_state_dir(&crate::state::dir(project)).is_ok()
    {
        crate::state::ignore_in_git(&crate::state::dir(project));
        let _ = crate::fsutil::write_atomic(&cache_path, &bytes, 0o600);
    }
    Ok(out)
}

fn walk(
    root: &Path,
    at: &[String],
    inherited: &Rules,
    old: &HashCache,
    fresh: &mut HashCache,
    out: &mut Offer,
) -> Result<(), SyncError> {
    let dir = at.iter().fold(root.to_path_buf(), |p, s| p.join(s));
    let mut rules = inherited.clone();
    if let Ok(text) = std::fs::read_to_string(dir.join(".gitignore")) {
        rules.git.push(parse_git_rules(at, &text));
    }
    let io = |doing: String| move |e: std::io::Error| SyncError::Io { doing, source: e };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io(format!("reading {}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let Some(name) = name.to_str().map(str::to_string) else {
            out.skipped.push(Skipped {
                path: format!("{}/{}", at.join("/"), name.to_string_lossy()),
                reason: "its name is not UTF-8".into(),
            });
            continue;
        };
        if at.is_empty() && (name == crate::state::DIR || name == ".git") {
            continue;
        }
        let rel_text = if at.is_empty() { name.clone() } else { format!("{}/{name}", at.join("/")) };
        let Ok(rel) = RelPath::parse(&rel_text) else {
            // A nested `.berth` (another project's state) is never sent either.
            continue;
        };
        let path = dir.join(&name);
        let md = std::fs::symlink_metadata(&path).map_err(io(format!("reading {}", path.display())))?;
        let ft = md.file_type();
        if rules.excludes(&rel_text, ft.is_dir()) {
            continue;
        }
        let mtime = (md.mtime(), md.mtime_nsec() as u32);
        if ft.is_dir() {
            if name == ".git" {
                continue;
            }
            let mut below = at.to_vec();
            below.push(name);
            walk(root, &below, &rules, old, fresh, out)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(format!("reading {}", path.display())))?;
            let target = target.to_string_lossy().into_owned();
            if link_stays_inside(&rel, &target) {
                out.entries.push(Entry {
                    path: rel_text,
                    size: 0,
                    mode: 0o777,
                    mtime,
                    sha256: None,
                    link: Some(target),
                });
            } else {
                out.skipped.push(Skipped {
                    path: rel_text,
                    reason: format!("a symlink to {target}, outside the project (not sent)"),
                });
            }
        } else if ft.is_file() {
            let size = md.len();
            let cached = old.files.get(&rel_text).filter(|c| c.size == size && c.mtime == mtime).cloned();
            let cached = match cached {
                Some(c) => c,
                None => {
                    let sha256 = hash_file(&path).map_err(io(format!("reading {}", path.display())))?;
                    let pack = crate::transport::manifest::is_pack_file(&path);
                    Cached { size, mtime, sha256, pack }
                }
            };
            if !cached.pack {
                out.entries.push(Entry {
                    path: rel_text.clone(),
                    size,
                    mode: md.permissions().mode() & 0o777,
                    mtime,
                    sha256: Some(cached.sha256.clone()),
                    link: None,
                });
            }
            // A file written within the last seconds may change again within the same mtime
            // tick: its hash is not trusted next time (git's "racy clean" rule).
            if !recently(mtime) {
                fresh.files.insert(rel_text, cached);
            }
        } else {
            out.skipped.push(Skipped {
                path: rel_text,
                reason: "not a regular file, folder or symlink (not sent)".into(),
            });
        }
    }
    Ok(())
}

fn recently(mtime: (i64, u32)) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    mtime.0 >= now - 2
}

/// sha256 of a file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    hash_reader(std::fs::File::open(path)?)
}

pub fn hash_reader(mut r: impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(project: &Path) -> Vec<String> {
        offer(project).expect("offer").entries.into_iter().map(|e| e.path).collect()
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    #[test]
    fn gitignore_rules_hold_at_every_depth() {
        let rules = Rules {
            git: vec![parse_git_rules(&[], "*.pyc\n/build\nlogs/\n!keep.pyc\ndata/**/*.npy\n")],
            ..Rules::default()
        };
        assert!(rules.excludes("a.pyc", false));
        assert!(rules.excludes("pkg/sub/a.pyc", false), "a name without a slash matches at any depth");
        assert!(!rules.excludes("pkg/keep.pyc", false), "`!` brings it back");
        assert!(rules.excludes("build", true));
        assert!(!rules.excludes("src/build", true), "a leading slash anchors");
        assert!(rules.excludes("src/logs", true));
        assert!(!rules.excludes("src/logs", false), "a trailing slash matches folders only");
        assert!(rules.excludes("data/x/y/z.npy", false));
        assert!(!rules.excludes("train.py", false));
        // A nested .gitignore speaks for its own folder only.
        let nested = Rules { git: vec![parse_git_rules(&["sub".into()], "/out\n")], ..Rules::default() };
        assert!(nested.excludes("sub/out", true));
        assert!(!nested.excludes("out", true));
    }

    #[test]
    fn the_walk_leaves_out_berths_folder_git_and_every_ignored_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        write(p, "train.py", "print(1)\n");
        write(p, ".gitignore", "*.log\n__pycache__/\n");
        write(p, ".dockerignore", "datasets\n");
        write(p, ".berthignore", "work_dirs/\n!keep.log\n");
        write(p, "run.log", "x");
        write(p, "keep.log", "x");
        write(p, "pkg/__pycache__/m.pyc", "x");
        write(p, "pkg/m.py", "x");
        write(p, "pkg/.gitignore", "local.txt\n");
        write(p, "pkg/local.txt", "x");
        write(p, "local.txt", "kept: the rule is pkg's");
        write(p, "datasets/big.bin", "x");
        write(p, "work_dirs/epoch_1.pth", "x");
        write(p, ".berth/jobs/1/log", "x");
        write(p, ".git/HEAD", "x");
        write(p, "nested/.berth/lock", "x");
        std::os::unix::fs::symlink("train.py", p.join("link.py")).expect("link");
        std::os::unix::fs::symlink("/etc/passwd", p.join("out")).expect("link");
        std::os::unix::fs::symlink("../../etc", p.join("pkg/up")).expect("link");
        let o = offer(p).expect("offer");
        let got: Vec<&str> = o.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            got,
            [
                ".berthignore",
                ".dockerignore",
                ".gitignore",
                "keep.log",
                "link.py",
                "local.txt",
                "pkg/.gitignore",
                "pkg/m.py",
                "train.py"
            ]
        );
        let link = o.entries.iter().find(|e| e.path == "link.py").expect("link");
        assert_eq!(link.link.as_deref(), Some("train.py"));
        let skipped: Vec<&str> = o.skipped.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(skipped, ["out", "pkg/up"]);
        assert!(o.skipped[0].reason.contains("outside the project"));
    }

    #[test]
    fn hashes_are_cached_by_size_and_mtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        write(p, "a.bin", "one");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(p.join("a.bin"))
            .expect("open")
            .set_modified(old)
            .expect("mtime");
        let first = offer(p).expect("offer").entries[0].sha256.clone();
        assert_eq!(first.as_deref(), Some(hash_file(&p.join("a.bin")).expect("hash").as_str()));
        let cache = std::fs::read_to_string(crate::state::sync_hashes(p)).expect("cache");
        assert!(cache.contains("a.bin"));
        assert_eq!(
            std::fs::metadata(crate::state::dir(p)).expect("meta").permissions().mode() & 0o777,
            0o700
        );
        // Same size and mtime: the cached hash is used (the file is not read again).
        std::fs::write(p.join("a.bin"), "two").expect("write");
        std::fs::File::options()
            .write(true)
            .open(p.join("a.bin"))
            .expect("open")
            .set_modified(old)
            .expect("mtime");
        assert_eq!(offer(p).expect("offer").entries[0].sha256, first);
        // A new mtime: hashed again.
        std::fs::File::options()
            .write(true)
            .open(p.join("a.bin"))
            .expect("open")
            .set_modified(old + std::time::Duration::from_secs(1))
            .expect("mtime");
        assert_ne!(offer(p).expect("offer").entries[0].sha256, first);
        assert_eq!(names(p), ["a.bin"]);
    }
}
