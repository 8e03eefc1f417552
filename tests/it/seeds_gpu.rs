//! What the seeds' users saw about GPUs, sizes and failures (issue 12), each checked through the
//! binary on recorded hosts and by what the engine accepted.

use std::path::Path;

use crate::support::*;

fn recorded(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts").join(name).display().to_string()
}

/// The `HSA_OVERRIDE_GFX_VERSION...` assignments in a text.
fn overrides(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == ':' || c == '(' || c == '\n')
        .map(str::trim)
        .filter(|s| s.starts_with("HSA_OVERRIDE_GFX_VERSION"))
        .map(str::to_string)
        .collect()
}

#[test]
fn up_and_doctor_give_the_same_per_device_gfx_advice_on_mixed_amd_gpus() {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_HOST_ROOT".into(), recorded("amd-igpu-2")));
    let dir = env.project("mixed-amd", "");
    let up = env.berth(&dir, &["up", "--no-start"]).ok();
    let doctor = env.berth(&dir, &["doctor"]);
    let advice = overrides(&up.stderr);
    assert_eq!(advice, vec!["HSA_OVERRIDE_GFX_VERSION_2 = \"10.3.0\"".to_string()], "{}", up.stderr);
    assert_eq!(overrides(&doctor.stdout), advice, "doctor:\n{}\nup:\n{}", doctor.stdout, up.stderr);
    let detail = "GPU 2 (gfx1031) is not among the targets ROCm's PyTorch wheels (any release) are built for";
    assert!(up.stderr.contains(detail) && doctor.stdout.contains(detail), "{}\n{}", up.stderr, doctor.stdout);
    assert!(!up.stderr.contains("ROCm 7"), "a busybox base carries no ROCm: {}", up.stderr);

    // After applying the advice, `up --recreate` says nothing about it.
    let toml = std::fs::read_to_string(dir.join("berth.toml")).unwrap();
    std::fs::write(dir.join("berth.toml"), format!("[env]\nHSA_OVERRIDE_GFX_VERSION_2 = \"10.3.0\"\n{toml}"))
        .unwrap();
    let again = env.berth(&dir, &["up", "--no-start", "--recreate"]).ok();
    assert!(!again.stderr.contains("HSA_OVERRIDE"), "{}", again.stderr);
    assert!(!again.stderr.contains("gfx1031"), "{}", again.stderr);
    let c = env.inspect(&dir);
    let envs = c["Config"]["Env"].as_array().unwrap();
    assert!(envs.iter().any(|e| e == "HSA_OVERRIDE_GFX_VERSION_2=10.3.0"), "{envs:?}");
}
