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
    assert!(parse_duration("8").unwrap_err().contains("not a duration"));
    assert!(parse_duration("h").is_err());
    assert!(parse_duration("0h").unwrap_err().contains("no time"));
    assert!(parse_duration("90d").unwrap_err().contains("longest lease"));
    assert!(parse_duration("99999999999999999999h").is_err());
    assert_eq!(format_secs(3 * 86_400 + 4 * 3600 + 5), "3d4h");
    assert_eq!(format_secs(52 * 60 + 3), "52m");
    assert_eq!(format_secs(3600 + 120), "1h2m");
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
    std::fs::write(dir.join("forged.json"), r#"{"gpus":[3],"created":1,"expires":9000,"holder":"root"}"#)
        .unwrap();
    std::fs::write(dir.join("junk.json"), "nonsense").unwrap();
    let listing = store.list(3_000).unwrap();
    let held: Vec<(Vec<u32>, u32)> =
        listing.leases.iter().map(|l| (l.record.gpus.clone(), l.holder_uid)).collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|(_, uid)| *uid == me));
    assert!(listing.skipped.iter().any(|s| s.contains("junk.json")));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3, "the caller's expired lease was removed");
    assert_eq!(foreign_on(&listing.leases, &[1], me, 3_000).len(), 0, "one's own lease is no conflict");
    assert_eq!(foreign_on(&listing.leases, &[1], me + 1, 3_000), vec![&kept]);
    assert!(foreign_on(&listing.leases, &[1], me + 1, 6_000).is_empty(), "expired");
    // Someone else cannot change it through berth.
    let other = Store::at(&dir, me + 1).unwrap();
    assert!(other.remove(&kept).is_err());
    store.remove(&kept).unwrap();
}
