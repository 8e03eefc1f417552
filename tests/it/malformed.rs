//! Malformed project files: a clear error with file:line:column, exit 2, nothing created.

use crate::support::*;

#[test]
fn every_malformed_file_is_refused_with_its_position_and_creates_nothing() {
    let env = TestEnv::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/bad");
    let mut entries: Vec<_> =
        std::fs::read_dir(&fixtures).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    let mut checked = 0;
    for toml in entries.iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let expect = std::fs::read_to_string(toml.with_extension("expect")).unwrap();
        let position = expect.lines().next().unwrap().trim();
        let stem = toml.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = env.root.path().join(&stem);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(toml, dir.join("berth.toml")).unwrap();
        let r = env.berth(&dir, &["up"]);
        assert_eq!(r.code, 2, "{stem}: expected exit 2, got {}: {}", r.code, r.stderr);
        let want = format!("berth.toml:{position}:");
        assert!(r.stderr.contains(&want), "{stem}: stderr lacks {want}: {}", r.stderr);
        assert!(r.stderr.starts_with("error: "), "{stem}: {}", r.stderr);
        assert!(env.containers_of(&dir).is_empty(), "{stem}: a container was created");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} malformed fixtures");
}

#[test]
fn no_project_file_says_how_to_make_one() {
    let env = TestEnv::new();
    let dir = env.root.path().join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    let r = env.berth(&dir, &["up"]).code(2);
    assert!(r.stderr.contains("berth init"), "{}", r.stderr);
}

#[test]
fn init_writes_a_file_that_up_accepts_and_never_overwrites_it() {
    let env = TestEnv::new();
    let dir = env.root.path().join("fresh");
    std::fs::create_dir_all(&dir).unwrap();
    env.berth(&dir, &["init", "--base", IMAGE]).ok();
    let refused = env.berth(&dir, &["init"]).code(4);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    env.berth(&dir, &["up"]).ok();
    assert_eq!(env.containers_of(&dir).len(), 1);
}
