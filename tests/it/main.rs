//! Integration tests: the real `berth` binary against the real container engine.
//! One test binary (faster to link); each module is a command or a promise from PRODUCT.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod fixtures;
mod snapshot;
mod support;

mod clean;
mod cli_snapshots;
mod code;
mod completions;
mod doctor;
mod engine_accepts_plan;
mod engine_errors;
mod exec;
mod export;
mod host_configure;
mod idle;
mod images;
mod jobs;
mod lease;
mod lifecycle;
mod malformed;
mod ownership;
mod pack;
mod podman;
mod ports;
mod push;
mod python_env;
mod remote;
mod seeds_gpu;
mod ship;
mod slurm;
mod ssh_agent;
mod sync;
mod terminal;
mod top;
mod trust_files;

/// jj's guard: a file under tests/it/ that no `mod` line names would never compile or run.
#[test]
fn every_test_file_is_compiled() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    let declared: Vec<&str> = main
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ").and_then(|m| m.strip_suffix(';')))
        .collect();
    let mut forgotten: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|stem| stem != "main" && !declared.contains(&stem.as_str()))
        .collect();
    forgotten.sort();
    assert!(forgotten.is_empty(), "tests/it files no `mod` line names in main.rs: {forgotten:?}");
}
