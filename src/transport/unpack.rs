//! Reading a pack back: recognise it, read its header and pinned `berth.toml`, and stream the
//! image to the engine as a plain `docker save` tar (berth decompresses itself: engines before
//! 23 cannot load zstd), hashing every member, leaving out the data of layers the engine already
//! has (like `ship`). The last bytes are held back until every member matched the manifest and
//! zstd's checksum held; otherwise the upload is aborted and the engine, which unpacks a load
//! completely before it registers anything, keeps nothing.

use std::collections::BTreeSet;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::bridge::ChannelWriter;
use super::digest::{HashThread, Tee};
use super::image_check::{ImageCheck, Role};
use super::manifest::{
    self, FORMAT, HEADER_MEMBER, Hashing, Header, IMAGE_PREFIX, MANIFEST_MEMBER, Manifest, Member,
    TOML_MEMBER,
};
use super::pack::{copy_entry, copy_file, entry_path};

/// Bytes a load holds back until the archive is verified: far more than the tar's end marker
/// and the `manifest.json` before it, without which no engine loads anything.
pub const HOLD_BACK: usize = 64 * 1024;

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
    /// The image inside is not the one the header names, or holds what no saved image holds:
    /// damaged, or changed on purpose (the checksums beside it only catch accidents).
    #[error("it does not hold what its header says: {0}")]
    Mismatch(String),
    /// The engine side stopped taking bytes (its own error says why).
    #[error("the engine stopped reading: {0}")]
    Stopped(String),
}

/// The start of a pack: what `unpack` needs before it touches the engine (unverified yet).
#[derive(Debug, Clone)]
pub struct Peeked {
    pub header: Header,
    pub pinned: String,
}

/// A pack whose every member matched its manifest.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub pinned: String,
    /// Layers whose data the engine did not need (it had them).
    pub layers_skipped: usize,
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
    if head.starts_with(&manifest::ZSTD_MAGIC) {
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

/// Read the header and pinned `berth.toml` at the start of the pack at `path`.
pub fn peek(path: &Path) -> Result<Peeked, Damage> {
    check_magic(path)?;
    let file = std::fs::File::open(path).map_err(Damage::Unreadable)?;
    let (source, at_end) = Source::new(file);
    let decoder = zstd::Decoder::new(source).map_err(Damage::Unreadable)?;
    let mut archive = tar::Archive::new(decoder);
    let classify = |e: anyhow::Error| classify(e, &at_end);
    let mut entries = archive.entries().map_err(|e| classify(e.into()))?;
    let mut next = |expect: &str, limit: u64| match entries.next() {
        Some(e) => read_small(e.map_err(|e| classify(e.into()))?, expect, limit).map_err(classify),
        None => Err(Damage::Foreign(format!("it holds no {expect}"))),
    };
    let (text, _) = next(HEADER_MEMBER, 16 << 20)?;
    let header = parse_header(&text)?;
    let (pinned, _) = next(TOML_MEMBER, 1 << 20)?;
    Ok(Peeked { header, pinned })
}

/// The header, if this berth reads its format; its name is also a folder name, so nothing but
/// safe characters.
fn parse_header(text: &str) -> Result<Header, Damage> {
    let format = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(str::to_string));
    match format.as_deref() {
        Some(FORMAT) => {}
        Some(other) if other.starts_with("berth-pack/") => return Err(Damage::Newer(other.to_string())),
        _ => return Err(Damage::Foreign("its first member is not a berth pack header".into())),
    }
    let header: Header =
        serde_json::from_str(text).map_err(|e| Damage::Corrupt(format!("its header does not parse: {e}")))?;
    let name = &header.name;
    let safe = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !safe {
        return Err(Damage::Corrupt(format!(
            "it names the environment {name:?}, which is not a folder name"
        )));
    }
    Ok(header)
}

/// Read a small member whole (hashed), refusing one of another name or one too large.
fn read_small<R: Read>(
    entry: tar::Entry<'_, R>,
    expect: &str,
    limit: u64,
) -> anyhow::Result<(String, Member)> {
    let path = entry_path(&entry)?;
    if path != expect {
        return Err(Damage::Foreign(format!("it holds {path} where a pack holds {expect}")).into());
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

/// Stream the pack read from `file` into `sink` as a `docker save` tar, verified, without the
/// data of the layers in `skip` (indices into the header's layers); `sink` is released (the
/// engine gets the last bytes) only when everything matched.
/// `expect` is what [`peek`] read: the checks made on it (tags, `--expect`, the pinned
/// `berth.toml`) hold only if the file still says the same when it streams, so a file rewritten
/// in between is refused before the engine gets its last bytes.
pub fn stream<R: Read>(
    file: R,
    sink: ChannelWriter,
    skip: &BTreeSet<usize>,
    expect: &Peeked,
) -> Result<Verified, Damage> {
    let (source, at_end) = Source::new(file);
    let mut decoder =
        zstd::Decoder::with_buffer(BufReader::with_capacity(1 << 20, source)).map_err(Damage::Unreadable)?;
    let mut out = tar::Builder::new(BufWriter::with_capacity(1 << 20, sink));
    let result = copy_verified(&mut decoder, &mut out, skip, expect);
    let verified = result.map_err(|e| classify(e, &at_end))?;
    let sink = out
        .into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| Damage::Stopped(e.to_string()))?;
    sink.release().map_err(|e| Damage::Stopped(e.to_string()))?;
    Ok(verified)
}

fn copy_verified<R: Read, W: Write>(
    decoder: &mut R,
    out: &mut tar::Builder<W>,
    skip: &BTreeSet<usize>,
    expect: &Peeked,
) -> anyhow::Result<Verified> {
    let changed = |what: &str| {
        Damage::Mismatch(format!(
            "its {what} changed after it was checked (the file was rewritten while it was read)"
        ))
    };
    let mut seen: Vec<Member> = Vec::new();
    let mut header: Option<Header> = None;
    let mut pinned = None;
    let mut manifest: Option<Manifest> = None;
    let mut check: Option<ImageCheck> = None;
    let mut layers_skipped = 0;
    let mut hasher = HashThread::start()?;
    {
        let mut archive = tar::Archive::new(&mut *decoder);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry_path(&entry)?;
            if manifest.is_some() {
                return Err(
                    Damage::Corrupt(format!("{path} follows the manifest, which must come last")).into()
                );
            }
            if header.is_none() {
                let (text, member) = read_small(entry, HEADER_MEMBER, 16 << 20)?;
                let h = parse_header(&text)?;
                if h != expect.header {
                    return Err(changed("header").into());
                }
                check = Some(ImageCheck::new(&h));
                header = Some(h);
                seen.push(member);
            } else if pinned.is_none() {
                let (text, member) = read_small(entry, TOML_MEMBER, 1 << 20)?;
                if text != expect.pinned {
                    return Err(changed("berth.toml").into());
                }
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
                let Some(check) = check.as_mut() else {
                    return Err(Damage::Corrupt("its image comes before its header".into()).into());
                };
                let kind = manifest::kind_of(entry.header().entry_type())
                    .ok_or_else(|| Damage::Mismatch(format!("{path} is a kind of member no pack holds")))?;
                let link = entry.link_name()?.map(|t| t.to_string_lossy().into_owned());
                let role = check.role(&inner, kind, link.as_deref()).map_err(Damage::Mismatch)?;
                let mut member = match role {
                    Role::Small(limit) => {
                        if entry.size() > limit {
                            return Err(Damage::Mismatch(format!(
                                "{path} is {} bytes, far more than it can be",
                                entry.size()
                            ))
                            .into());
                        }
                        let mut data = Vec::new();
                        entry.read_to_end(&mut data)?;
                        check.small(&inner, &data).map_err(Damage::Mismatch)?;
                        let size = data.len() as u64;
                        copy_file(out, entry.header().clone(), &inner, size, data.as_slice(), "file")?
                    }
                    Role::Layer(layer) => {
                        let size = entry.size();
                        let mut header = entry.header().clone();
                        let mut tee = Tee { inner: &mut entry, hasher: &mut hasher, bytes: 0 };
                        if skip.contains(&layer) {
                            // The engine has this layer: verify it, but do not send it.
                            layers_skipped += 1;
                            io::copy(&mut tee, &mut io::sink())?;
                        } else {
                            header.set_size(size);
                            out.append_data(&mut header, &inner, &mut tee)?;
                        }
                        if tee.bytes != size {
                            return Err(anyhow::Error::new(io::Error::from(io::ErrorKind::UnexpectedEof))
                                .context(format!("{path} ended early")));
                        }
                        let digest = hasher.end();
                        // Before anything after it reaches the engine: a swapped layer stops here.
                        check.layer(&inner, layer, &digest).map_err(Damage::Mismatch)?;
                        Member { path: String::new(), kind: "file".into(), size, sha256: digest, link: None }
                    }
                    Role::Blob => {
                        let size = entry.size();
                        let mut header = entry.header().clone();
                        header.set_size(size);
                        let mut tee = Tee { inner: &mut entry, hasher: &mut hasher, bytes: 0 };
                        out.append_data(&mut header, &inner, &mut tee)?;
                        if tee.bytes != size {
                            return Err(anyhow::Error::new(io::Error::from(io::ErrorKind::UnexpectedEof))
                                .context(format!("{path} ended early")));
                        }
                        let digest = hasher.end();
                        check.blob(&inner, size, &digest).map_err(Damage::Mismatch)?;
                        Member { path: String::new(), kind: "file".into(), size, sha256: digest, link: None }
                    }
                    Role::Folder | Role::Link => copy_entry(out, entry, &inner)?,
                };
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
    if header.as_ref() != Some(&manifest.header()) {
        return Err(Damage::Corrupt("its header and its manifest disagree".into()).into());
    }
    if let Some(check) = &check {
        check.finish().map_err(Damage::Mismatch)?;
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
    Ok(Verified { manifest, pinned, layers_skipped })
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
