//! Pack and unpack against each other, in memory: what comes out is what went in, and a damaged
//! pack never lets its last bytes through (so the engine, on the other end, keeps nothing).

use std::collections::BTreeSet;
use std::io::Cursor;

use futures_util::StreamExt;

use super::bridge;
use super::manifest::PackedImage;
use super::pack;
use super::unpack::{self, Damage, HOLD_BACK};

/// A stand-in for a `docker save` tar in Docker 25's layout: folders, a layer and the config
/// as blobs named by their digests, and the `manifest.json` that ties them to a tag.
fn save_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for folder in ["blobs/", "blobs/sha256/"] {
        let mut dir = tar::Header::new_ustar();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        b.append_data(&mut dir, folder, std::io::empty()).expect("dir");
    }
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).expect("member");
    };
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    file(&mut b, &format!("blobs/sha256/{}", hex(&layer_digest())), &layer_data());
    file(&mut b, &format!("blobs/sha256/{}", hex(&config_id())), config().as_bytes());
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{}","RepoTags":["t:1"],"Layers":["blobs/sha256/{}"]}}]"#,
        hex(&config_id()),
        hex(&layer_digest())
    );
    file(&mut b, "manifest.json", manifest.as_bytes());
    b.into_inner().expect("tar")
}

fn config() -> String {
    format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#, layer_digest())
}

fn config_id() -> String {
    format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(config().as_bytes())))
}

fn layer_data() -> Vec<u8> {
    (0..1_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

fn layer_digest() -> String {
    format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(layer_data())))
}

fn make_pack() -> Vec<u8> {
    let (out, stats) = pack_of(save_tar(), image());
    assert_eq!(stats.members, 7);
    out
}

fn image() -> PackedImage {
    PackedImage {
        id: config_id(),
        tags: vec!["t:1".into()],
        source: "t:1".into(),
        layers: vec![layer_digest()],
    }
}

/// A pack of `save` with `image` as its header, its manifest consistent (re-hashed): what an
/// attacker who rewrote a pack would make.
fn pack_of(save: Vec<u8>, image: PackedImage) -> (Vec<u8>, pack::PackStats) {
    pack::write(Cursor::new(save), Vec::new(), "name = \"demo\"\n", "demo", image).expect("pack")
}

/// `save_tar()` with the member `path` replaced by `data` (or added, when it is not there).
fn save_with(path: &str, data: &[u8]) -> Vec<u8> {
    save_with_in(save_tar(), path, data)
}

/// `save` with the member `path` replaced by `data` (or added, when it is not there).
fn save_with_in(save: Vec<u8>, path: &str, data: &[u8]) -> Vec<u8> {
    let mut a = tar::Archive::new(Cursor::new(save));
    let mut b = tar::Builder::new(Vec::new());
    let mut replaced = false;
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").to_string_lossy().into_owned();
        let mut h = e.header().clone();
        if name.trim_end_matches('/') == path {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, &name, data).expect("member");
            replaced = true;
        } else {
            let mut d = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut d).expect("read");
            b.append_data(&mut h, &name, d.as_slice()).expect("member");
        }
    }
    if !replaced {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).expect("member");
    }
    b.into_inner().expect("tar")
}

/// Run `stream` over `pack` and collect what the engine would have received, and whether the
/// upload ended in an abort.
fn unpack_bytes(pack: Vec<u8>) -> (Result<unpack::Verified, Damage>, Vec<u8>, bool) {
    unpack_skipping(pack, BTreeSet::new())
}

fn unpack_skipping(
    pack: Vec<u8>,
    skip: BTreeSet<usize>,
) -> (Result<unpack::Verified, Damage>, Vec<u8>, bool) {
    // What `unpack` checked before streaming: the start of this very file, or (a file too
    // damaged to peek) that of the good pack.
    let expect = peek_bytes(&pack).or_else(|_| peek_bytes(&make_pack())).expect("peek");
    unpack_expecting(pack, skip, expect)
}

fn peek_bytes(pack: &[u8]) -> Result<unpack::Peeked, Damage> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("p.tar.zst");
    std::fs::write(&file, pack).expect("write");
    unpack::peek(&file)
}

fn unpack_expecting(
    pack: Vec<u8>,
    skip: BTreeSet<usize>,
    expect: unpack::Peeked,
) -> (Result<unpack::Verified, Damage>, Vec<u8>, bool) {
    let (sink, body) = bridge::writer(HOLD_BACK);
    let worker = std::thread::spawn(move || unpack::stream(Cursor::new(pack), sink, &skip, &expect));
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let (received, aborted) = rt.block_on(async {
        let mut body = std::pin::pin!(body);
        let mut got = Vec::new();
        while let Some(item) = body.next().await {
            match item {
                Ok(b) => got.extend_from_slice(&b),
                Err(_) => return (got, true),
            }
        }
        (got, false)
    });
    (worker.join().expect("thread"), received, aborted)
}

fn names(tar_bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .expect("entries")
        .map(|e| e.expect("entry").path().expect("path").to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_pack_unpacks_to_the_same_docker_save_tar() {
    let pack = make_pack();
    let peeked_dir = tempfile::tempdir().expect("tempdir");
    let file = peeked_dir.path().join("p.tar.zst");
    std::fs::write(&file, &pack).expect("write");
    let peeked = unpack::peek(&file).expect("peek");
    assert_eq!((peeked.header.name.as_str(), peeked.pinned.as_str()), ("demo", "name = \"demo\"\n"));

    let (verified, received, aborted) = unpack_bytes(pack);
    let verified = verified.expect("verified");
    assert!(!aborted);
    assert_eq!(verified.manifest.image.id, config_id());
    assert_eq!(names(&received), names(&save_tar()));
    let layer = layer_data();
    assert!(received.windows(layer.len()).any(|w| w == layer.as_slice()), "the layer arrives intact");
}

#[test]
fn every_damaged_pack_is_refused_and_its_tail_never_sent() {
    let good = make_pack();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("cut in half".into(), good[..good.len() / 2].to_vec()),
        ("cut by one byte".into(), good[..good.len() - 1].to_vec()),
        ("with garbage after it".into(), [good.clone(), vec![1, 2, 3, 4]].concat()),
    ];
    for at in [20, good.len() / 3, good.len() / 2, good.len() - 8] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        cases.push((format!("a bit flipped at {at}"), bad));
    }
    let (_, complete, _) = unpack_bytes(good.clone());
    for (what, bytes) in cases {
        let (verified, received, aborted) = unpack_bytes(bytes);
        assert!(verified.is_err(), "{what}: accepted");
        assert!(aborted, "{what}: the upload ended normally");
        assert!(received.len() + HOLD_BACK <= complete.len() + 1, "{what}: the tail was sent");
        assert!(received.len() % 512 != 0 || received.is_empty(), "{what}: ended on a tar block boundary");
    }
}

#[test]
fn truncation_is_told_apart_from_corruption() {
    let good = make_pack();
    let (verified, _, _) = unpack_bytes(good[..good.len() - 3].to_vec());
    assert!(matches!(verified, Err(Damage::Truncated)), "{verified:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain.tar");
    std::fs::write(&plain, save_tar()).expect("write");
    assert!(matches!(unpack::peek(&plain), Err(Damage::Foreign(w)) if w.contains("plain tar")));
}

#[test]
fn layers_the_engine_has_are_verified_but_not_sent() {
    let (verified, received, _) = unpack_skipping(make_pack(), BTreeSet::from([0]));
    let verified = verified.expect("verified");
    assert_eq!(verified.layers_skipped, 1, "the blob named by its digest is recognised");
    let names = names(&received);
    let layer = format!("blobs/sha256/{}", layer_digest().trim_start_matches("sha256:"));
    assert!(!names.contains(&layer), "{names:?}");
    assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
    // A damaged skipped layer is still caught: skipping never skips the check.
    let mut bad = make_pack();
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    let (verified, _, aborted) = unpack_skipping(bad, BTreeSet::from([0]));
    assert!(verified.is_err() && aborted);
}

#[test]
fn hostile_packs_with_consistent_checksums_are_refused_before_the_engine_keeps_anything() {
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let layer_path = format!("blobs/sha256/{}", hex(&layer_digest()));
    let manifest = |config: &str, tags: &str| {
        format!(r#"[{{"Config":"blobs/sha256/{config}","RepoTags":{tags},"Layers":["{layer_path}"]}}]"#)
    };
    let mut swapped = layer_data();
    swapped[10] ^= 1;
    let mut other_id = image();
    other_id.id = format!("sha256:{}", "ab".repeat(32));
    let cases: Vec<(&str, Vec<u8>, PackedImage, &str)> = vec![
        (
            "lying tags in manifest.json",
            save_with("manifest.json", manifest(&hex(&config_id()), r#"["t:1","victim:latest"]"#).as_bytes()),
            image(),
            "victim:latest",
        ),
        ("a header naming another image id", save_tar(), other_id, "not sha256:abababab"),
        ("an extra member", save_with("zeros.bin", &[0u8; 4096]), image(), "no part of a saved image"),
        ("a swapped layer", save_with(&layer_path, &swapped), image(), "swapped"),
        (
            "manifest.json loading another config",
            save_with("manifest.json", manifest(&"cd".repeat(32), r#"["t:1"]"#).as_bytes()),
            image(),
            "loads the image",
        ),
    ];
    for (what, save, header, says) in cases {
        let (pack, _) = pack_of(save, header);
        let (verified, received, aborted) = unpack_bytes(pack.clone());
        let err = verified.expect_err(what);
        assert!(matches!(err, Damage::Mismatch(_)), "{what}: {err}");
        assert!(err.to_string().contains(says), "{what}: {err}");
        assert!(aborted, "{what}: the upload ended normally");
        let (_, complete, _) = unpack_bytes(make_pack());
        assert!(received.len() + HOLD_BACK <= complete.len() + 4096 + 1, "{what}: the tail was sent");
    }
}

/// The pack is checked (its tags against the engine, `--expect`, its berth.toml) from its start,
/// then read again to stream it: a file rewritten in between (one in a folder another user can
/// write) must not load what was never checked.
#[test]
fn a_pack_rewritten_between_the_check_and_the_load_is_refused_before_its_tail_is_sent() {
    let checked = peek_bytes(&make_pack()).expect("peek");
    let mut other = image();
    other.tags = vec!["victim:1".into()];
    let (retagged, _) = pack_of(save_tar(), other);
    let (verified, _, aborted) = unpack_expecting(retagged, BTreeSet::new(), checked.clone());
    assert!(matches!(verified, Err(Damage::Mismatch(ref m)) if m.contains("header")), "{verified:?}");
    assert!(aborted, "the engine got the whole tar");

    let (rewritten, _) =
        pack::write(Cursor::new(save_tar()), Vec::new(), "name = \"demo\"\n[run]\n", "demo", image())
            .expect("pack");
    let (verified, _, aborted) = unpack_expecting(rewritten, BTreeSet::new(), checked);
    assert!(matches!(verified, Err(Damage::Mismatch(ref m)) if m.contains("berth.toml")), "{verified:?}");
    assert!(aborted, "the engine got the whole tar");
}

#[test]
fn a_swapped_layer_stops_the_stream_at_its_end() {
    let mut swapped = layer_data();
    swapped[10] ^= 1;
    let path = format!("blobs/sha256/{}", layer_digest().trim_start_matches("sha256:"));
    let (pack, _) = pack_of(save_with(&path, &swapped), image());
    let (_, received, aborted) = unpack_bytes(pack);
    assert!(aborted);
    // The config and manifest.json come after the layer: none of them reached the engine.
    let config = config();
    assert!(!received.windows(config.len()).any(|w| w == config.as_bytes()), "the stream went on");
}

/// A save tar of these blobs (named by their sha256), the config and a `manifest.json` listing
/// `layers` (blob hexes): the containerd image store's layout, where layers are stored
/// compressed and so are named by a digest that is not their diff id.
fn store_save(blobs: &[Vec<u8>], layers: &[String]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut file = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).expect("member");
    };
    let sha = |d: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(d));
    for blob in blobs {
        file(&format!("blobs/sha256/{}", sha(blob)), blob);
    }
    file(&format!("blobs/sha256/{}", config_id().trim_start_matches("sha256:")), config().as_bytes());
    let listed: Vec<String> = layers.iter().map(|l| format!("\"blobs/sha256/{l}\"")).collect();
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{}","RepoTags":["t:1"],"Layers":[{}]}}]"#,
        config_id().trim_start_matches("sha256:"),
        listed.join(",")
    );
    file("manifest.json", manifest.as_bytes());
    b.into_inner().expect("tar")
}

#[test]
fn a_pack_from_the_containerd_store_loads_and_an_unlisted_large_blob_is_refused() {
    let sha = |d: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(d));
    let compressed = zstd::encode_all(layer_data().as_slice(), 1).expect("zstd");
    let (pack, _) = pack_of(store_save(std::slice::from_ref(&compressed), &[sha(&compressed)]), image());
    let (verified, _, aborted) = unpack_bytes(pack);
    assert!(verified.is_ok() && !aborted, "{:?}", verified.err());

    let zeros = vec![0u8; 2 << 20];
    let (pack, _) = pack_of(store_save(&[compressed.clone(), zeros], &[sha(&compressed)]), image());
    let (verified, _, aborted) = unpack_bytes(pack);
    let err = verified.expect_err("an extra blob");
    assert!(err.to_string().contains("no layer of the image") && aborted, "{err}");
}

#[test]
fn a_blob_that_does_not_hash_to_its_name_is_refused() {
    let compressed = zstd::encode_all(layer_data().as_slice(), 1).expect("zstd");
    let name = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&compressed));
    let save = store_save(&[compressed], std::slice::from_ref(&name));
    // Same name, other bytes: the manifest of the pack re-hashed, the blob's name not.
    let mut other = zstd::encode_all(layer_data().as_slice(), 1).expect("zstd");
    let at = other.len() / 2;
    other[at] ^= 1;
    let (pack, _) = pack_of(save_with_in(save, &format!("blobs/sha256/{name}"), &other), image());
    let (verified, _, aborted) = unpack_bytes(pack);
    let err = verified.expect_err("a blob under another name");
    assert!(err.to_string().contains("does not hash to its name") && aborted, "{err}");
}

/// Podman's `save` (docker-archive): the config as `<id>.json` and each layer as `<diff id>.tar`
/// at the top of the tar.
fn podman_save(layer: &[u8], layer_name: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut file = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).expect("member");
    };
    let config_hex = config_id().trim_start_matches("sha256:").to_string();
    file(&format!("{layer_name}.tar"), layer);
    file(&format!("{config_hex}.json"), config().as_bytes());
    let manifest =
        format!(r#"[{{"Config":"{config_hex}.json","RepoTags":["t:1"],"Layers":["{layer_name}.tar"]}}]"#);
    file("manifest.json", manifest.as_bytes());
    b.into_inner().expect("tar")
}

#[test]
fn a_pack_of_a_podman_image_loads_and_its_layers_are_checked() {
    let diff_id = layer_digest().trim_start_matches("sha256:").to_string();
    let (pack, _) = pack_of(podman_save(&layer_data(), &diff_id), image());
    let (verified, _, aborted) = unpack_bytes(pack);
    assert!(verified.is_ok() && !aborted, "{:?}", verified.err());

    let mut swapped = layer_data();
    swapped[10] ^= 1;
    let (pack, _) = pack_of(podman_save(&swapped, &diff_id), image());
    let (verified, _, aborted) = unpack_bytes(pack);
    let err = verified.expect_err("a swapped layer");
    assert!(err.to_string().contains("damaged, or swapped") && aborted, "{err}");

    let (pack, _) = pack_of(podman_save(&layer_data(), &"ab".repeat(32)), image());
    let (verified, _, _) = unpack_bytes(pack);
    assert!(verified.expect_err("a layer not in the header").to_string().contains("not one of the header's"));
}
