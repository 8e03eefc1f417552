//! Reading a pack back: recognise it, read its pinned `berth.toml`, and stream the image to the
//! engine as a plain `docker save` tar (berth decompresses itself: engines before 23 cannot
//! load zstd), hashing every member. The last bytes are held back until every member matched
//! the manifest and zstd's checksum held; otherwise the upload is aborted and the engine, which
//! unpacks a load completely before it registers anything, keeps nothing.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::bridge::ChannelWriter;
use super::manifest::{self, FORMAT, Hashing, IMAGE_PREFIX, MANIFEST_MEMBER, Manifest, Member, TOML_MEMBER};
use super::pack::{copy_entry, entry_path};

/// Bytes a load holds back until the archive is verified: more than the tar's end marker, and
/// not a multiple of 512, so what an aborted load received never ends on a tar block boundary.
pub const HOLD_BACK: usize = 64 * 1024 + 1;

/// Why a file is not a good pack.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("it is not a berth pack ({0})")]
    Foreign(String),
    #[error("it ends early: the file was cut short")]
    Truncated,
    #[error("it is damaged: {0}")]
    Corrupt(String),
    #[error("it was made in format {0}, which this berth does not read")]
    Newer(String),
    #[error("cannot read it: {0}")]
    Unreadable(io::Error),
    /// The engine side stopped taking bytes (its own error says why).
    #[error("the engine stopped reading: {0}")]
    Stopped(String),
}

/// The start of a pack: what `unpack` needs before it touches the engine.
#[derive(Debug, Clone)]
pub struct Peeked {
    pub pinned: String,
    pub name: String,
}

/// A pack whose every member matched its manifest.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub pinned: String,
}

/// A reader over the file that remembers whether it reached the end (a decoding error there
/// means the file was cut short).
#[derive(Debug)]
pub struct Source<R> {
    inner: R,
    pub bytes: u64,
    at_end: Arc<AtomicBool>,
}

impl<R: Read> Source<R> {
    pub fn new(inner: R) -> (Source<R>, Arc<AtomicBool>) {
        let at_end = Arc::new(AtomicBool::new(false));
        (Source { inner, bytes: 0, at_end: at_end.clone() }, at_end)
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.at_end.store(true, Ordering::SeqCst);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Check the first bytes of `path`: a zstd frame, or say what the file looks like instead.
pub fn check_magic(path: &Path) -> Result<(), Damage> {
    let mut head = [0u8; 512];
    let mut file = std::fs::File::open(path).map_err(Damage::Unreadable)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).map_err(Damage::Unreadable)? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(());
    }
    let what = if head.is_empty() {
        "the file is empty".to_string()
    } else if head.starts_with(&[0x1f, 0x8b]) {
        "it is gzip-compressed, like `docker save | gzip`: `docker load -i FILE` reads that".into()
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        "it is a plain tar, like `docker save` writes: `docker load -i FILE` reads that".into()
    } else {
        "it is not zstd-compressed; berth packs are .tar.zst files written by `berth pack`".into()
    };
    Err(Damage::Foreign(what))
}

/// Read the pinned `berth.toml` at the start of the pack at `path`.
pub fn peek(path: &Path) -> Result<Peeked, Damage> {
    check_magic(path)?;
    let file = std::fs::File::open(path).map_err(Damage::Unreadable)?;
    let (source, at_end) = Source::new(file);
    let decoder = zstd::Decoder::new(source).map_err(Damage::Unreadable)?;
    let mut archive = tar::Archive::new(decoder);
    let classify = |e: anyhow::Error| classify(e, &at_end);
    let mut entries = archive.entries().map_err(|e| classify(e.into()))?;
    let entry = match entries.next() {
        Some(e) => e.map_err(|e| classify(e.into()))?,
        None => return Err(Damage::Foreign("it holds no members".into())),
    };
    let (pinned, _) = read_small(entry, TOML_MEMBER, 1 << 20).map_err(classify)?;
    let name = name_of(&pinned)?;
    Ok(Peeked { pinned, name })
}

/// The environment's name in a pinned file: also a folder name, so nothing but safe characters.
fn name_of(pinned: &str) -> Result<String, Damage> {
    let table: toml::Table = toml::from_str(pinned)
        .map_err(|e| Damage::Corrupt(format!("its berth.toml does not parse: {}", e.message())))?;
    let name = table.get("name").and_then(|n| n.as_str()).unwrap_or_default();
    let safe = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !safe {
        return Err(Damage::Corrupt(format!(
            "its berth.toml names the environment {name:?}, not a folder name"
        )));
    }
    Ok(name.to_string())
}

/// Read a small member whole (hashed), refusing one of another name or one too large.
fn read_small<R: Read>(
    entry: tar::Entry<'_, R>,
    expect: &str,
    limit: u64,
) -> anyhow::Result<(String, Member)> {
    let path = entry_path(&entry)?;
    if path != expect {
        return Err(Damage::Foreign(format!("its first member is {path}, not {expect}")).into());
    }
    if entry.size() > limit {
        return Err(
            Damage::Corrupt(format!("{path} is {} bytes, far more than it can be", entry.size())).into()
        );
    }
    let mut reader = Hashing::new(entry);
    let mut text = String::new();
    reader.read_to_string(&mut text).map_err(|e| anyhow::Error::new(e).context(format!("reading {path}")))?;
    let size = reader.bytes;
    let member = Member { path, kind: "file".into(), size, sha256: reader.hex(), link: None };
    Ok((text, member))
}

/// Stream the pack read from `file` into `sink` as a `docker save` tar, verified; `sink` is
/// released (the engine gets the last bytes) only when everything matched.
pub fn stream<R: Read>(file: R, sink: ChannelWriter) -> Result<Verified, Damage> {
    let (source, at_end) = Source::new(file);
    let mut decoder =
        zstd::Decoder::with_buffer(BufReader::with_capacity(1 << 20, source)).map_err(Damage::Unreadable)?;
    let mut out = tar::Builder::new(BufWriter::with_capacity(1 << 20, sink));
    let result = copy_verified(&mut decoder, &mut out);
    let verified = result.map_err(|e| classify(e, &at_end))?;
    let sink = out
        .into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| Damage::Stopped(e.to_string()))?;
    sink.release().map_err(|e| Damage::Stopped(e.to_string()))?;
    Ok(verified)
}

fn copy_verified<R: Read, W: Write>(decoder: &mut R, out: &mut tar::Builder<W>) -> anyhow::Result<Verified> {
    let mut seen: Vec<Member> = Vec::new();
    let mut pinned = None;
    let mut manifest: Option<Manifest> = None;
    {
        let mut archive = tar::Archive::new(&mut *decoder);
        for entry in archive.entries()? {
            let entry = entry?;
            let path = entry_path(&entry)?;
            if manifest.is_some() {
                return Err(
                    Damage::Corrupt(format!("{path} follows the manifest, which must come last")).into()
                );
            }
            if pinned.is_none() {
                let (text, member) = read_small(entry, TOML_MEMBER, 1 << 20)?;
                pinned = Some(text);
                seen.push(member);
            } else if path == MANIFEST_MEMBER {
                let size = entry.size();
                let (text, _) = read_small(entry, MANIFEST_MEMBER, 256 << 20)?;
                let m: Manifest = serde_json::from_str(&text).map_err(|e| {
                    Damage::Corrupt(format!("its manifest ({size} bytes) does not parse: {e}"))
                })?;
                manifest = Some(m);
            } else if let Some(inner) = path.strip_prefix(IMAGE_PREFIX) {
                let inner = inner.to_string();
                let mut member = copy_entry(out, entry, &inner)?;
                member.path = path;
                seen.push(member);
            } else {
                return Err(Damage::Corrupt(format!("it holds {path}, which no pack holds")).into());
            }
        }
    }
    let Some(manifest) = manifest else {
        return Err(Damage::Corrupt("its manifest is missing".into()).into());
    };
    if manifest.format != FORMAT {
        return Err(Damage::Newer(format!("{} (berth {})", manifest.format, manifest.berth_version)).into());
    }
    if manifest.members.len() != seen.len() {
        return Err(Damage::Corrupt(format!(
            "it holds {} members, its manifest lists {}",
            seen.len(),
            manifest.members.len()
        ))
        .into());
    }
    if let Some(diff) = manifest.members.iter().zip(&seen).find_map(|(m, s)| manifest::difference(m, s)) {
        return Err(Damage::Corrupt(diff).into());
    }
    // What is left is the tar's zero padding; reading to the end makes zstd check its checksum.
    let mut rest = [0u8; 64 * 1024];
    loop {
        let n = decoder.read(&mut rest)?;
        if n == 0 {
            break;
        }
        if rest[..n].iter().any(|b| *b != 0) {
            return Err(Damage::Corrupt("data follows the end of the archive".into()).into());
        }
    }
    let pinned = pinned.unwrap_or_default();
    Ok(Verified { manifest, pinned })
}

/// Turn a failure while reading into what it means for the file.
fn classify(err: anyhow::Error, at_end: &AtomicBool) -> Damage {
    let err = match err.downcast::<Damage>() {
        Ok(d) => return d,
        Err(e) => e,
    };
    let text = format!("{err:#}");
    if at_end.load(Ordering::SeqCst) {
        let eofish = err
            .chain()
            .any(|c| c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::UnexpectedEof))
            || text.contains("incomplete frame")
            || text.contains("unexpected end")
            || text.contains("ended early");
        if eofish {
            return Damage::Truncated;
        }
    }
    let broken = err
        .chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .find(|e| e.kind() == io::ErrorKind::BrokenPipe);
    if let Some(broken) = broken {
        return Damage::Stopped(broken.to_string());
    }
    Damage::Corrupt(text)
}
