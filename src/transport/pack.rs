//! Writing a pack (format in [`super::manifest`]): a header, the pinned `berth.toml`, the image's
//! `docker save` stream re-emitted member by member under `image/` with each member hashed on
//! the way (a layer's hash is its diff id, taken from the image config), then the manifest, all through multi-threaded zstd with its frame checksum on.
//!
//! Runs on a blocking thread over synchronous readers and writers; the caller owns the file
//! (written under a temporary name and renamed only once this returned `Ok`).

use std::io::{self, Read, Write};

use anyhow::Context as _;

use super::layout::Layout;
use super::manifest::{
    self, FORMAT, HEADER_MEMBER, Hashing, Header, IMAGE_PREFIX, MANIFEST_MEMBER, Manifest, Member,
    PackedImage, TOML_MEMBER,
};

/// What a pack holds, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackStats {
    /// Bytes of the image's members (about the size of `docker save`).
    pub image_bytes: u64,
    pub members: usize,
}

/// Write a pack of the `docker save` tar read from `save` into `out`; returns `out` so the
/// caller can sync it before renaming.
pub fn write<R: Read, W: Write>(
    save: R,
    out: W,
    pinned_toml: &str,
    name: &str,
    image: PackedImage,
) -> anyhow::Result<(W, PackStats)> {
    let mut encoder = zstd::Encoder::new(out, super::ZSTD_LEVEL).context("starting zstd")?;
    encoder.multithread(super::zstd_threads()).context("starting zstd's worker threads")?;
    encoder.include_checksum(true).context("configuring zstd")?;
    // No buffer in between: zstd keeps its own, and every copy of the image costs on two cores.
    let mut tar = tar::Builder::new(encoder);
    let mut members = Vec::new();

    let header = Header {
        format: FORMAT.into(),
        berth_version: env!("CARGO_PKG_VERSION").into(),
        name: name.into(),
        image: image.clone(),
    };
    members.push(append_file(&mut tar, HEADER_MEMBER, &serde_json::to_vec_pretty(&header)?)?);
    members.push(append_file(&mut tar, TOML_MEMBER, pinned_toml.as_bytes())?);
    let mut image_bytes = 0;
    // A layer's sha256 is its diff id, which the image config (itself hashed: its name is the
    // image id) already lists: recognised layers are copied without hashing them a second time.
    // `unpack` hashes every layer as it streams and refuses one that is not its diff id.
    let mut layout = Layout::new(&image.layers);
    let mut archive = tar::Archive::new(save);
    for entry in archive.entries().context("reading the engine's image archive")? {
        let mut entry = entry.context("reading the engine's image archive")?;
        let inner = entry_path(&entry)?;
        let path = format!("{IMAGE_PREFIX}{inner}");
        let file = entry.header().entry_type().is_file();
        let member = match layout.layer_of(&inner) {
            Some(layer) if file => {
                let size = entry.size();
                let mut header = entry.header().clone();
                header.set_size(size);
                let mut counted = Counting { inner: &mut entry, bytes: 0 };
                tar.append_data(&mut header, &path, &mut counted)
                    .with_context(|| format!("writing {path}"))?;
                if counted.bytes != size {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof))
                        .context(format!("{path} ended early"));
                }
                let sha256 = image.layers[layer].trim_start_matches("sha256:").to_string();
                Member { path, kind: "file".into(), size, sha256, link: None }
            }
            // A legacy save's `<v1 id>/json` tells which layer its folder holds.
            _ if file && inner.ends_with("/json") && entry.size() <= LAYER_JSON_MAX => {
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut data).with_context(|| format!("reading {inner}"))?;
                layout.observe(&inner, &data);
                let size = data.len() as u64;
                copy_file(&mut tar, entry.header().clone(), &path, size, data.as_slice(), "file")?
            }
            _ => copy_entry(&mut tar, entry, &path)?,
        };
        image_bytes += member.size;
        members.push(member);
    }
    if !members.iter().any(|m| m.path.ends_with("manifest.json")) {
        anyhow::bail!("the engine's image archive holds no manifest.json (was the save cut short?)");
    }
    let count = members.len();
    let manifest = Manifest {
        format: FORMAT.into(),
        berth_version: env!("CARGO_PKG_VERSION").into(),
        name: name.into(),
        image,
        members,
    };
    let text = serde_json::to_vec_pretty(&manifest)?;
    append_file(&mut tar, MANIFEST_MEMBER, &text)?;

    let encoder = tar.into_inner().context("finishing the archive")?;
    let out = encoder.finish().context("finishing zstd")?;
    Ok((out, PackStats { image_bytes, members: count }))
}

/// Append a small file berth made itself (fixed mode and time: packs of one image and file
/// differ only by what the engine's save differs by).
fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> anyhow::Result<Member> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_size(data.len() as u64);
    let mut reader = Hashing::new(data);
    tar.append_data(&mut header, path, &mut reader).with_context(|| format!("writing {path}"))?;
    Ok(Member {
        path: path.into(),
        kind: "file".into(),
        size: data.len() as u64,
        sha256: reader.hex(),
        link: None,
    })
}

/// A legacy save's per-layer `json` is a few kilobytes; a larger one is copied as it is.
const LAYER_JSON_MAX: u64 = 1 << 20;

/// A reader that counts what passes through it.
struct Counting<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A member's path as text.
pub fn entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> anyhow::Result<String> {
    Ok(entry.path().context("a member with an unreadable name")?.to_string_lossy().into_owned())
}

/// Copy one member of another tar into `tar` as `path`, hashing its data on the way; returns
/// its record (named `path`).
pub fn copy_entry<R: Read, W: Write>(
    tar: &mut tar::Builder<W>,
    entry: tar::Entry<'_, R>,
    path: &str,
) -> anyhow::Result<Member> {
    let inner = entry_path(&entry)?;
    let path = path.to_string();
    let kind = manifest::kind_of(entry.header().entry_type()).ok_or_else(|| {
        anyhow::anyhow!("{inner}: a kind of member berth does not carry ({:?})", entry.header().entry_type())
    })?;
    let mut header = entry.header().clone();
    match kind {
        "symlink" | "link" => {
            let target = entry
                .link_name()
                .context("reading a link")?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            header.set_size(0);
            tar.append_link(&mut header, &path, &target).with_context(|| format!("writing {path}"))?;
            Ok(Member {
                path,
                kind: kind.into(),
                size: 0,
                sha256: manifest::empty_sha256(),
                link: Some(target),
            })
        }
        _ => {
            let size = entry.size();
            copy_file(tar, header, &path, size, entry, kind)
        }
    }
}

/// Write a file member `path` of `size` bytes read from `data` (hashed on the way), keeping the
/// rest of `header` (mode, owner, time); returns its record.
pub fn copy_file<R: Read, W: Write>(
    tar: &mut tar::Builder<W>,
    mut header: tar::Header,
    path: &str,
    size: u64,
    data: R,
    kind: &str,
) -> anyhow::Result<Member> {
    header.set_size(size);
    let mut reader = Hashing::new(data);
    tar.append_data(&mut header, path, &mut reader).with_context(|| format!("writing {path}"))?;
    if reader.bytes != size {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof)).context(format!("{path} ended early"));
    }
    Ok(Member { path: path.into(), kind: kind.into(), size, sha256: reader.hex(), link: None })
}
