//! Build contexts as tar archives: the generated one (Dockerfile plus the files it copies), or
//! the user's Dockerfile folder with `.dockerignore` honoured. The content hash of a context is
//! what makes image tags content-addressed.
//!
//! `.dockerignore` follows Docker's rules: patterns relative to the context root, `*` and `?`
//! within one path segment, `**` across segments, a pattern matching a folder excludes what is
//! inside it, `!` re-includes, and the last matching line wins.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

/// One file of a context: its name inside the archive and where it is read from.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub source: Option<PathBuf>,
    pub bytes: Option<Vec<u8>>,
    pub mode: u32,
}

/// Files of a user's context folder that `.dockerignore` keeps, sorted by name.
pub fn folder_entries(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let patterns =
        std::fs::read_to_string(dir.join(".dockerignore")).map(|t| parse_ignore(&t)).unwrap_or_default();
    let mut out = Vec::new();
    walk(dir, dir, &patterns, &mut out)?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, patterns: &[(bool, String)], out: &mut Vec<Entry>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let path = e.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
        let md = std::fs::symlink_metadata(&path)?;
        let always = rel == "Dockerfile" || rel == ".dockerignore";
        // berth's own folder (logs, job output, build logs) changes all the time and is never
        // an input: including it would change the tag after every build and job.
        if rel == ".berth" {
            continue;
        }
        // Nor are packs (`berth pack -o` may put one anywhere, under any name): baked into the
        // image they would grow it by their own size and change its tag at every pack.
        if md.is_file() && crate::transport::manifest::is_pack_file(&path) {
            continue;
        }
        if md.is_dir() {
            // A folder may be excluded while an exception re-includes something inside it.
            let has_exception = patterns.iter().any(|(neg, _)| *neg);
            if !ignored(&rel, patterns) || has_exception {
                walk(root, &path, patterns, out)?;
            }
        } else if md.is_file() && (always || !ignored(&rel, patterns)) {
            out.push(Entry {
                name: rel,
                source: Some(path),
                bytes: None,
                mode: md.permissions().mode() & 0o777,
            });
        }
    }
    Ok(())
}

/// `(negated, pattern)` lines of a `.dockerignore`.
pub fn parse_ignore(text: &str) -> Vec<(bool, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (neg, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            (neg, p.trim_start_matches('/').trim_start_matches("./").trim_end_matches('/').to_string())
        })
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

/// Whether `rel` (a path inside the context) is excluded.
pub fn ignored(rel: &str, patterns: &[(bool, String)]) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut excluded = false;
    for (neg, pat) in patterns {
        let pat: Vec<&str> = pat.split('/').collect();
        // The path itself, or any folder above it, matching the pattern.
        let hit = (1..=parts.len()).any(|n| match_segments(&pat, &parts[..n]));
        if hit {
            excluded = !neg;
        }
    }
    excluded
}

/// Whether `path`'s segments match `pat`'s (`**` spans segments); the sync's gitignore rules use it too.
pub(crate) fn match_segments(pat: &[&str], path: &[&str]) -> bool {
    match (pat.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            match_segments(&pat[1..], path) || (!path.is_empty() && match_segments(pat, &path[1..]))
        }
        (Some(p), Some(s)) => glob(p.as_bytes(), s.as_bytes()) && match_segments(&pat[1..], &path[1..]),
        _ => false,
    }
}

/// `*`, `?` and `[...]` within one segment.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(b'['), Some(c)) => match p.iter().position(|b| *b == b']') {
            Some(end) => {
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some(b'^') | Some(b'!') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == b'-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && glob(&p[end + 1..], &s[1..])
            }
            None => false,
        },
        (Some(a), Some(b)) => a == b && glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// sha256 over names, modes and contents, in order.
pub fn hash(entries: &[Entry]) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    for e in entries {
        h.update(e.name.as_bytes());
        h.update([0]);
        h.update(e.mode.to_le_bytes());
        match (&e.bytes, &e.source) {
            (Some(b), _) => {
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            (None, Some(p)) => {
                // Streamed: a context may hold large files that must not sit in memory.
                let mut f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                h.update(len.to_le_bytes());
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = std::io::Read::read(&mut f, &mut buf)
                        .with_context(|| format!("reading {}", p.display()))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            (None, None) => h.update(0u64.to_le_bytes()),
        }
    }
    Ok(hex::encode(h.finalize()))
}

fn contents(e: &Entry) -> anyhow::Result<Vec<u8>> {
    match (&e.bytes, &e.source) {
        (Some(b), _) => Ok(b.clone()),
        (None, Some(p)) => std::fs::read(p).with_context(|| format!("reading {}", p.display())),
        (None, None) => Ok(Vec::new()),
    }
}

/// The context as an uncompressed tar (fixed owners and times, so it is reproducible).
pub fn tar(entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let bytes = contents(e)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(e.mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        builder.append_data(&mut header, &e.name, bytes.as_slice())?;
    }
    let mut out = builder.into_inner()?;
    out.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_follows_dockers_rules() {
        let p = parse_ignore(
            "# comment\n*.ckpt\ndata/\n**/__pycache__\n!data/keep.txt\n/build\ntmp?\n[ab].log\n",
        );
        assert!(ignored("model.ckpt", &p));
        assert!(!ignored("sub/model.ckpt", &p), "`*.ckpt` is anchored at the root");
        assert!(ignored("data/set/x.png", &p));
        assert!(!ignored("data/keep.txt", &p));
        assert!(ignored("src/pkg/__pycache__/m.pyc", &p));
        assert!(ignored("build/out.o", &p));
        assert!(ignored("tmp1", &p) && !ignored("tmp12", &p));
        assert!(ignored("a.log", &p) && !ignored("c.log", &p));
        assert!(!ignored("train.py", &p));
    }

    #[test]
    fn packs_and_their_partial_files_never_enter_a_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\nCOPY . /app\n").expect("write");
        let before = hash(&folder_entries(dir.path()).expect("entries")).expect("hash");
        let mut tar = tar::Builder::new(zstd::Encoder::new(Vec::new(), 1).expect("zstd"));
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        tar.append_data(&mut h, crate::transport::manifest::HEADER_MEMBER, &b"{}"[..]).expect("member");
        let pack = tar.into_inner().expect("tar").finish().expect("zstd");
        std::fs::write(dir.path().join("renamed.bin"), &pack).expect("write");
        std::fs::write(dir.path().join(".x.tar.zst.AbC123.partial"), &pack[..8]).expect("write");
        std::fs::write(dir.path().join(".y.tar.zst.AbC123.partial"), b"").expect("write");
        assert_eq!(hash(&folder_entries(dir.path()).expect("entries")).expect("hash"), before);
        // Other zstd files are the user's inputs.
        std::fs::write(dir.path().join("data.zst"), zstd::encode_all(&b"data"[..], 1).expect("zstd"))
            .expect("write");
        assert_ne!(hash(&folder_entries(dir.path()).expect("entries")).expect("hash"), before);
    }

    #[test]
    fn folders_hash_what_dockerignore_keeps() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\n").expect("write");
        std::fs::write(dir.path().join(".dockerignore"), "*.bin\n").expect("write");
        std::fs::write(dir.path().join("app.py"), "print(1)\n").expect("write");
        std::fs::write(dir.path().join("weights.bin"), "big").expect("write");
        let entries = folder_entries(dir.path()).expect("entries");
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec![".dockerignore", "Dockerfile", "app.py"]);
        let before = hash(&entries).expect("hash");
        std::fs::write(dir.path().join("weights.bin"), "bigger").expect("write");
        assert_eq!(hash(&folder_entries(dir.path()).expect("entries")).expect("hash"), before);
        std::fs::write(dir.path().join("app.py"), "print(2)\n").expect("write");
        assert_ne!(hash(&folder_entries(dir.path()).expect("entries")).expect("hash"), before);
        let t = tar(&entries).expect("tar");
        assert!(t.len() >= 512 * 4);
    }
}
