//! The pack format: a zstd-compressed tar whose members are, in this order, a header (format,
//! berth version, name, image id, tags and layers: what `unpack` needs before the image streams
//! by), the pinned `berth.toml`, every member of the image's `docker save` tar under `image/`,
//! and last the manifest (the header's fields plus path, kind, size and sha256 of every member
//! before it). The manifest comes last because the image streams through once, hashed on the
//! way; `unpack` checks each member against it before it lets the engine keep anything.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format this berth writes and reads.
pub const FORMAT: &str = "berth-pack/1";
/// The first member: the [`Header`].
pub const HEADER_MEMBER: &str = "berth-pack.json";
/// The second member: the project file pinned to the packed image.
pub const TOML_MEMBER: &str = "berth.toml";
/// Members of the image's `docker save` tar live under this folder.
pub const IMAGE_PREFIX: &str = "image/";
/// The last member.
pub const MANIFEST_MEMBER: &str = "berth-manifest.json";

/// What a pack says about itself up front (repeated, and so verified, by the manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub berth_version: String,
    pub name: String,
    pub image: PackedImage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub berth_version: String,
    /// The environment's name (the default folder `unpack` writes into).
    pub name: String,
    pub image: PackedImage,
    /// Every member before the manifest, in archive order.
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedImage {
    /// `sha256:…`, the engine's image id; the pinned `berth.toml` names it.
    pub id: String,
    /// Names the image carries, restored by the load.
    pub tags: Vec<String>,
    /// The reference the project named when it was packed.
    pub source: String,
    /// The image's layers (diff ids, base first): `unpack` leaves out those the engine has.
    pub layers: Vec<String>,
}

impl Manifest {
    /// The header this manifest vouches for.
    pub fn header(&self) -> Header {
        Header {
            format: self.format.clone(),
            berth_version: self.berth_version.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub path: String,
    /// `file`, `dir`, `symlink` or `link`.
    pub kind: String,
    pub size: u64,
    /// sha256 of the member's data (of nothing, for folders and links).
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The kind name of a tar entry, or `None` for kinds a pack never holds.
pub fn kind_of(t: tar::EntryType) -> Option<&'static str> {
    match t {
        tar::EntryType::Regular | tar::EntryType::Continuous => Some("file"),
        tar::EntryType::Directory => Some("dir"),
        tar::EntryType::Symlink => Some("symlink"),
        tar::EntryType::Link => Some("link"),
        _ => None,
    }
}

/// Why a member differs from its manifest entry (`None`: it matches).
pub fn difference(expected: &Member, seen: &Member) -> Option<String> {
    if expected.path != seen.path {
        return Some(format!("expected member {} but found {}", expected.path, seen.path));
    }
    if expected.kind != seen.kind || expected.link != seen.link {
        return Some(format!("{} is not the kind of member the manifest lists", seen.path));
    }
    if expected.size != seen.size {
        return Some(format!("{} holds {} bytes, the manifest says {}", seen.path, seen.size, expected.size));
    }
    if expected.sha256 != seen.sha256 {
        return Some(format!("{}: its sha256 does not match the manifest", seen.path));
    }
    None
}

/// A reader that hashes and counts what passes through it.
#[derive(Debug)]
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    pub bytes: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Hashing<R> {
        Hashing { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// The hex sha256 of everything read so far.
    pub fn hex(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Whether the file at `path` is a pack berth wrote, or the hidden `.partial` file of one it was
/// writing: recognised by its content (a zstd frame whose first member is the header), so a pack
/// renamed by the user is still one. Build contexts leave these out (`image::context`).
pub fn is_pack_file(path: &std::path::Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else { return false };
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).unwrap_or(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial_name = name.starts_with('.') && name.ends_with(".partial");
    if n == 0 {
        return partial_name;
    }
    if n < 4 || magic != ZSTD_MAGIC {
        return false;
    }
    if partial_name {
        return true;
    }
    let Ok(file) = std::fs::File::open(path) else { return false };
    let Ok(decoder) = zstd::Decoder::new(file) else { return false };
    let mut first = [0u8; 512];
    if decoder.take(512).read_exact(&mut first).is_err() {
        return false;
    }
    first.starts_with(HEADER_MEMBER.as_bytes()) && first[HEADER_MEMBER.len()] == 0
}

/// The first bytes of a zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The sha256 of no data, recorded for folders and links.
pub fn empty_sha256() -> String {
    hex::encode(Sha256::digest(b""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(path: &str, size: u64, sha: &str) -> Member {
        Member { path: path.into(), kind: "file".into(), size, sha256: sha.into(), link: None }
    }

    #[test]
    fn differences_name_the_member_and_what_differs() {
        let a = member("image/x/layer.tar", 10, "aa");
        assert_eq!(difference(&a, &a), None);
        let b = member("image/x/layer.tar", 11, "aa");
        assert!(difference(&a, &b).is_some_and(|d| d.contains("11 bytes")));
        let c = member("image/x/layer.tar", 10, "bb");
        assert!(difference(&a, &c).is_some_and(|d| d.contains("sha256")));
        let d = member("image/y", 10, "aa");
        assert!(difference(&a, &d).is_some_and(|d| d.contains("expected member image/x/layer.tar")));
    }

    #[test]
    fn hashing_reader_hashes_what_it_reads() {
        let mut r = Hashing::new(&b"abc"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        assert_eq!(r.bytes, 3);
        assert_eq!(r.hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn manifest_round_trips_through_json() {
        let m = Manifest {
            format: FORMAT.into(),
            berth_version: "0.1.0".into(),
            name: "demo".into(),
            image: PackedImage {
                id: "sha256:ab".into(),
                tags: vec!["x:1".into()],
                source: "x:1".into(),
                layers: vec!["sha256:cd".into()],
            },
            members: vec![member(TOML_MEMBER, 3, "aa")],
        };
        let text = serde_json::to_string(&m).expect("json");
        assert_eq!(serde_json::from_str::<Manifest>(&text).expect("parse"), m);
    }
}
