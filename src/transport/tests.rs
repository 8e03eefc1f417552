//! Pack and unpack against each other, in memory: what comes out is what went in, and a damaged
//! pack never lets its last bytes through (so the engine, on the other end, keeps nothing).

use std::collections::BTreeSet;
use std::io::{Cursor, Read};

use futures_util::StreamExt;

use super::bridge;
use super::manifest::PackedImage;
use super::pack;
use super::unpack::{self, Damage, HOLD_BACK};

/// A stand-in for a `docker save` tar: a folder, a layer (legacy name), the same layer as a
/// blob named by its digest (Docker 25's layout), a link and a manifest.
fn save_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir, "abc/", std::io::empty()).expect("dir");
    let layer = layer_data();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(layer.len() as u64);
    b.append_data(&mut h, "abc/layer.tar", layer.as_slice()).expect("layer");
    let blob = format!("blobs/sha256/{}", layer_digest().trim_start_matches("sha256:"));
    b.append_data(&mut h.clone(), blob, layer.as_slice()).expect("blob");
    let mut l = tar::Header::new_ustar();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    b.append_link(&mut l, "def/layer.tar", "../abc/layer.tar").expect("link");
    let manifest = br#"[{"Config":"x.json","RepoTags":["t:1"],"Layers":["abc/layer.tar"]}]"#;
    let mut m = tar::Header::new_ustar();
    m.set_mode(0o644);
    m.set_size(manifest.len() as u64);
    b.append_data(&mut m, "manifest.json", &manifest[..]).expect("manifest");
    b.into_inner().expect("tar")
}

fn layer_data() -> Vec<u8> {
    (0..1_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

fn layer_digest() -> String {
    format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(layer_data())))
}

fn make_pack() -> Vec<u8> {
    let image = PackedImage {
        id: "sha256:00".into(),
        tags: vec!["t:1".into()],
        source: "t:1".into(),
        layers: vec![layer_digest()],
    };
    let (out, stats) =
        pack::write(Cursor::new(save_tar()), Vec::new(), "name = \"demo\"\n", "demo", image).expect("pack");
    assert_eq!(stats.members, 7);
    out
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
    let (sink, body) = bridge::writer(HOLD_BACK);
    let worker = std::thread::spawn(move || unpack::stream(Cursor::new(pack), sink, &skip));
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
    assert_eq!(verified.manifest.image.id, "sha256:00");
    assert_eq!(names(&received), names(&save_tar()));
    let mut original = tar::Archive::new(Cursor::new(save_tar()));
    let mut layer = Vec::new();
    for e in original.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path().expect("path").ends_with("layer.tar") && e.size() > 0 {
            e.read_to_end(&mut layer).expect("read");
        }
    }
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
    assert!(!names.iter().any(|n| n.starts_with("blobs/")), "{names:?}");
    assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
    // A damaged skipped layer is still caught: skipping never skips the check.
    let mut bad = make_pack();
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    let (verified, _, aborted) = unpack_skipping(bad, BTreeSet::from([0]));
    assert!(verified.is_err() && aborted);
}
