//! Build script: only tells the integration tests whether they may do what needs root (switch to
//! other uids, mount a tmpfs, run slurmd). Tests that need it carry
//! `#[cfg_attr(not(berth_root_tests), ignore = "why")]`, so a run without root reports them as
//! ignored instead of passing them silently.

#![allow(clippy::print_stdout)]

fn main() {
    println!("cargo::rustc-check-cfg=cfg(berth_root_tests)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=USER");
    let root = std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")));
    if root {
        println!("cargo::rustc-cfg=berth_root_tests");
    }
}
