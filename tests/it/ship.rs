//! ship for real: a second Docker engine behind an SSH server on loopback plays the remote
//! server (it already has the test image, the "CUDA base" of these tests).

use crate::fixtures::*;
use crate::support::*;

fn ship_json(env: &TestEnv, dir: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let remote = RemoteEngine::get();
    let url = remote.url();
    let mut args = vec!["ship", url.as_str(), "--json"];
    args.extend_from_slice(extra);
    let run = env.berth(dir, &args).ok();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("ship --json: {e}\n{}\n{}", run.stdout, run.stderr))
}

#[test]
fn ship_sends_only_missing_layers_then_nothing_then_only_the_new_layer() {
    let remote = RemoteEngine::get();
    let mut env = TestEnv::new();
    env.env.push(remote.ssh_env());
    let payload = 400_000;
    let first = TestImage::build("ship", IMAGE, payload);
    let dir = env.project("ship", &project_toml(&first.tag));

    let sent = ship_json(&env, &dir, &[]);
    assert_eq!(sent["transfer"], "partial", "{sent}");
    assert_eq!((sent["layers"].as_u64(), sent["layers_sent"].as_u64()), (Some(2), Some(1)), "{sent}");
    let layer = sent["layer_bytes_sent"].as_u64().expect("layer bytes");
    let wire = sent["bytes_sent"].as_u64().expect("bytes sent");
    assert!((payload as u64..payload as u64 + 16_384).contains(&layer), "{sent}");
    assert!((wire as f64) <= layer as f64 * 1.05, "sent {wire} bytes for a {layer}-byte layer");
    assert_eq!(sent["verified"], true);
    assert_eq!(remote.image_id(&first.tag).as_deref(), Some(first.id.as_str()), "same image id there");

    let again = ship_json(&env, &dir, &[]);
    assert_eq!(again["transfer"], "nothing", "{again}");
    assert!(again["bytes_sent"].as_u64().expect("bytes") < 4096, "{again}");

    // A derived image: only its own layer travels.
    let second = TestImage::build("ship2", &first.tag, 250_000);
    let dir2 = env.project("ship2", &project_toml(&second.tag));
    let there = env.root.path().join("server/ship2");
    let there_arg = there.to_str().expect("utf-8");
    let derived = ship_json(&env, &dir2, &["--project", there_arg]);
    assert_eq!(
        (derived["layers"].as_u64(), derived["layers_sent"].as_u64()),
        (Some(3), Some(1)),
        "{derived}"
    );
    let layer2 = derived["layer_bytes_sent"].as_u64().expect("layer bytes");
    assert!((250_000..250_000 + 16_384).contains(&layer2), "{derived}");
    assert_eq!(remote.image_id(&second.tag).as_deref(), Some(second.id.as_str()));

    // --project placed the pinned berth.toml there (the "server" shares this file system).
    let text = std::fs::read_to_string(there.join("berth.toml")).expect("berth.toml on the remote");
    assert!(text.contains(&format!("base = \"{}\"", second.id)), "{text}");
    let refused = env.berth(&dir2, &["ship", &remote.url(), "--project", there_arg]).code(4);
    assert!(refused.stderr.contains("already exists"), "{}", refused.stderr);
}

#[test]
fn ship_explains_bad_addresses_and_unreachable_servers() {
    let remote = RemoteEngine::get();
    let mut env = TestEnv::new();
    env.env.push(remote.ssh_env());
    let dir = env.project("shipbad", "");
    let bad = env.berth(&dir, &["ship", "gpu-server"]).code(2);
    assert!(bad.stderr.contains("ssh://[user@]host[:port]"), "{}", bad.stderr);
    // A port nothing listens on (the remote's port + 1 is almost surely free; any failure is fine).
    let url = format!("ssh://root@127.0.0.1:{}", remote.port.wrapping_add(1));
    let down = env.berth(&dir, &["ship", &url]).code(1);
    assert!(down.stderr.contains("cannot reach root@127.0.0.1"), "{}", down.stderr);
    assert!(down.stderr.contains("hint:"), "{}", down.stderr);
}
