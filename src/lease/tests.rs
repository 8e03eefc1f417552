//! Durations, GPU lists and the lease folder's rules (holder from the file owner, expiry).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn record(gpus: &[u32], expires: u64) -> Record {
    Record {
        gpus: gpus.to_vec(),
        uuids: Vec::new(),
        created: 1_000,
        expires,
        note: None,
        environment: None,
        over: Vec::new(),
    }
}

#[test]
fn durations_take_units_and_refuse_nonsense() {
    assert_eq!(parse_duration("8h"), Ok(8 * 3600));
    assert_eq!(parse_duration("1h30m"), Ok(5400));
    assert_eq!(parse_duration("2d"), Ok(2 * 86_400));
    assert!(parse_duration("8").unwrap_err().contains("has no unit"));
    assert!(parse_duration("8x").unwrap_err().contains("not a duration"));
    assert!(parse_duration("h").is_err());
    assert!(parse_duration("0h").unwrap_err().contains("no time"));
    assert!(parse_duration("90d").unwrap_err().contains("longest lease"));
    assert!(parse_duration("99999999999999999999h").is_err());
}

#[test]
fn gpu_lists_name_gpus_this_host_has() {
    assert_eq!(parse_gpus("2, 0,2", &[0, 1, 2, 3]), Ok(vec![0, 2]));
    assert!(parse_gpus("5", &[0, 1]).unwrap_err().contains("has GPUs 0, 1"));
    assert!(parse_gpus("a", &[0]).unwrap_err().contains("not a GPU number"));
}

#[test]
fn the_holder_is_the_files_owner_and_expired_leases_are_gone() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("leases");
    let me = std::fs::metadata(tmp.path()).unwrap().uid();
    let store = Store::at(&dir, me).unwrap();
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o1777);
    let kept = store.create(record(&[1], 5_000)).unwrap();
    store.create(record(&[0], 2_000)).unwrap();
    // A file whose content claims another holder still counts as its owner's.
    std::fs::write(
        dir.join("berth-lease-forged.json"),
        r#"{"gpus":[3],"created":1,"expires":9000,"holder":"root"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("berth-lease-junk.json"), "nonsense").unwrap();
    std::fs::write(dir.join("not-a-lease.json"), "ignored: not berth's name").unwrap();
    let listing = store.list(3_000).unwrap();
    let held: Vec<(Vec<u32>, u32)> =
        listing.leases.iter().map(|l| (l.record.gpus.clone(), l.holder_uid)).collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|(_, uid)| *uid == me));
    assert!(listing.skipped.iter().any(|s| s.contains("junk.json")));
    assert_eq!(listing.skipped.len(), 1, "{:?}", listing.skipped);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4, "the caller's expired lease was removed");
    assert_eq!(foreign_on(&listing.leases, &[1], me, 3_000).len(), 0, "one's own lease is no conflict");
    assert_eq!(foreign_on(&listing.leases, &[1], me + 1, 3_000), vec![&kept]);
    assert!(foreign_on(&listing.leases, &[1], me + 1, 6_000).is_empty(), "expired");
    // Someone else cannot change it through berth.
    let other = Store::at(&dir, me + 1).unwrap();
    assert!(other.remove(&kept).is_err());
    store.remove(&kept).unwrap();
}

/// Regression: a lease file swapped for a FIFO or a link to /dev/zero between a reader's check
/// and its read made every reader (`up`, `top`, `lease`) hang or read without end (now one
/// descriptor is checked and read); a hand-written lease could last for centuries and carry a
/// note of many lines.
#[test]
fn hostile_lease_files_are_skipped_or_bounded_and_never_hang_a_reader() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("leases");
    let me = std::fs::metadata(tmp.path()).unwrap().uid();
    let store = Store::at(&dir, me).unwrap();
    let fifo = std::process::Command::new("mkfifo").arg(dir.join("berth-lease-fifo.json")).status();
    assert!(fifo.unwrap().success());
    std::os::unix::fs::symlink("/dev/zero", dir.join("berth-lease-zero.json")).unwrap();
    std::fs::write(dir.join("berth-lease-huge.json"), vec![b' '; 100_000]).unwrap();
    let forever = serde_json::json!({
        "gpus": [2], "created": 1, "expires": 99_999_999_999u64,
        "note": format!("line one\nerror: a forged line{}", "x".repeat(500)),
        "over": [{"holder_uid": me, "holder": "somebody else\u{1b}[31m", "id": "x", "expires": 5}],
    });
    std::fs::write(dir.join("berth-lease-forever.json"), forever.to_string()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = store.clone();
    std::thread::spawn(move || tx.send(reader.list(1_000).map(|l| (l.leases, l.skipped))).unwrap());
    let (leases, skipped) =
        rx.recv_timeout(std::time::Duration::from_secs(20)).expect("listing the leases hung").unwrap();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for (name, why) in [("fifo", "not a plain file"), ("zero", "a link"), ("huge", "too big")] {
        assert!(skipped.iter().any(|s| s.contains(name) && s.contains(why)), "{name}: {skipped:?}");
    }
    assert_eq!(leases.len(), 1);
    let changed = std::fs::metadata(dir.join("berth-lease-forever.json")).unwrap().ctime() as u64;
    assert_eq!(leases[0].record.expires, changed + MAX_SECS, "at most 30 days from when it was written");
    assert_eq!(leases[0].record.note.as_deref(), Some("line one"));
    assert_eq!(leases[0].record.over[0].holder, store::holder_name(me), "names come from the uid");

    // A berth killed mid-write leaves a hidden temporary file: never a lease, and removed by
    // its owner's next listing once no write can still be under way.
    let old = dir.join(".berth-lease-1-2-3.json.AbCdEf.tmp");
    let fresh = dir.join(".berth-lease-1-2-4.json.GhIjKl.tmp");
    for f in [&old, &fresh] {
        std::fs::write(f, "{\"gpus\":[3],\"created\":1,\"expires\":9000}").unwrap();
    }
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(hour_ago).unwrap();
    assert_eq!(store.list(1_000).unwrap().leases.len(), 1);
    assert!(!old.exists() && fresh.exists());
}

/// Regression: a `BERTH_LEASE_DIR` naming an existing folder of one's own (one's home, by
/// mistake) was made world-writable.
#[test]
fn an_existing_folder_is_never_widened_into_a_lease_folder() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let me = std::fs::metadata(&home).unwrap().uid();
    let err = format!("{:#}", Store::at(&home, me).unwrap_err());
    assert!(err.contains("has mode 700"), "{err}");
    assert_eq!(std::fs::metadata(&home).unwrap().mode() & 0o7777, 0o700, "unchanged");
    std::os::unix::fs::symlink(tmp.path(), tmp.path().join("link")).unwrap();
    let err = format!("{:#}", Store::at(&tmp.path().join("link"), me).unwrap_err());
    assert!(err.contains("not a folder"), "{err}");
}

/// Regression: two users leasing one GPU at the same moment both got it (17 times in 20 on a
/// two-core machine). A lease that appears between one's look and one's write wins; one's own
/// is taken back.
#[test]
#[cfg_attr(not(berth_root_tests), ignore = "a lease of another user needs root to give a file away")]
fn a_lease_another_user_wrote_meanwhile_takes_the_new_one_back() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("leases");
    let me = std::fs::metadata(tmp.path()).unwrap().uid();
    let store = Store::at(&dir, me).unwrap();
    let theirs = dir.join("berth-lease-theirs.json");
    std::fs::write(&theirs, serde_json::to_vec(&record(&[1, 2], 9_000)).unwrap()).unwrap();
    std::os::unix::fs::chown(&theirs, Some(4299), Some(4299)).unwrap();
    let raced = store.create_alone(record(&[0, 1], 8_000), &[], 3_000).unwrap().unwrap_err();
    assert_eq!((raced.len(), raced[0].holder_uid), (1, 4299));
    let left: Vec<Lease> = store.list(3_000).unwrap().leases;
    assert_eq!(left.len(), 1, "only theirs is left: {left:?}");
    // Knowingly taken over (`--force`), it stands; a GPU nobody else leased is no race at all.
    let forced = store.create_alone(record(&[1], 8_000), &["theirs".into()], 3_000).unwrap();
    assert!(forced.is_ok());
    assert!(store.create_alone(record(&[3], 8_000), &[], 3_000).unwrap().is_ok());
}

/// A lease taken over with `--force` no longer holds against the one who took it (their job on
/// it is not refused), and still holds against everyone else.
#[test]
fn a_lease_one_took_over_no_longer_holds_against_one() {
    let theirs = Lease {
        id: "a".into(),
        holder_uid: 7,
        holder: "alice".into(),
        record: record(&[1], 9_000),
        expires_at: String::new(),
    };
    let mut over = record(&[1], 9_000);
    over.over = vec![Over { holder_uid: 7, holder: "alice".into(), id: "a".into(), expires: 9_000 }];
    let mine = Lease {
        id: "b".into(),
        holder_uid: 8,
        holder: "bob".into(),
        record: over,
        expires_at: String::new(),
    };
    let all = [theirs.clone(), mine];
    assert!(foreign_on(&all, &[1], 8, 3_000).is_empty());
    assert_eq!(foreign_on(&all, &[1], 9, 3_000).len(), 2, "carol still sees both");
    assert_eq!(foreign_on(&all[..1], &[1], 8, 3_000), vec![&theirs], "without the takeover it holds");
    assert_eq!(foreign_on(&all, &[1], 8, 9_500).len(), 0);
}
