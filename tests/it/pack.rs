//! pack / unpack on the real engine: the round trip a new user makes to an offline server, and
//! every way a pack can go wrong (interrupted, truncated, corrupted, foreign) leaving nothing.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fixtures::*;
use crate::support::*;

fn unpacked_toml(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("berth.toml")).expect("the pinned berth.toml")
}

fn decompressed(file: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::Decoder::new(std::fs::File::open(file).expect("pack"))
        .expect("zstd")
        .read_to_end(&mut out)
        .expect("read");
    out
}

#[test]
fn round_trip_pack_remove_unpack_up_keeps_the_image_id() {
    ensure_image();
    // Declared before the environment, so its container is gone before the image is removed.
    let image = TestImage::build("pack", IMAGE, 200_000);
    let mut env = TestEnv::new();
    let toml =
        format!("name = \"trip\"\n{}\n[env]\nHF_TOKEN = {{ from-host = true }}\n", project_toml(&image.tag));
    let dir = env.project("trip", &toml);
    env.env.push(("HF_TOKEN".into(), "hf_never_in_a_pack_0123".into()));

    let packed = env.berth(&dir, &["pack", "-o", "../trip.tar.zst", "--json"]).ok();
    let file = env.root.path().join("trip.tar.zst");
    let report: serde_json::Value = serde_json::from_str(&packed.stdout).expect("pack --json");
    assert_eq!(report["id"], image.id.as_str());
    assert_eq!(report["bytes"].as_u64(), Some(std::fs::metadata(&file).expect("the pack").len()));
    let inside = decompressed(&file);
    let needle = b"hf_never_in_a_pack_0123";
    assert!(!inside.windows(needle.len()).any(|w| w == needle), "a secret from [env] is in the pack");

    image.remove();
    let offline = env.root.path().join("offline");
    std::fs::create_dir_all(&offline).expect("mkdir");
    let unpacked = env.berth(&offline, &["unpack", "../trip.tar.zst"]).ok();
    assert!(unpacked.stderr.contains("every checksum verified"), "{}", unpacked.stderr);
    // The base (the test image) is here: its layer is verified but not loaded again.
    assert!(unpacked.stderr.contains("1 of its 2 layers are here already"), "{}", unpacked.stderr);
    assert!(unpacked.stderr.contains("next: berth -C trip up"), "{}", unpacked.stderr);
    assert_eq!(docker_ok(&["image", "inspect", "--format", "{{.Id}}", &image.tag]), image.id);
    let pinned = unpacked_toml(&offline.join("trip"));
    assert!(pinned.contains(&format!("base = \"{}\"", image.id)), "{pinned}");
    assert!(pinned.contains("HF_TOKEN = { from-host = true }"), "{pinned}");

    // Up on the other side needs no build and no network, and runs exactly that image.
    let there = offline.join("trip");
    env.berth(&there, &["up"]).ok();
    assert_eq!(env.inspect(&there)["Image"], image.id.as_str());
    let cat = env.berth(&there, &["exec", "--", "wc", "-c", "/payload"]).ok();
    assert!(cat.stdout.contains("200000"), "{}", cat.stdout);

    // A second unpack would overwrite that berth.toml: refused, unless --force.
    let again = env.berth(&offline, &["unpack", "../trip.tar.zst"]).code(4);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    env.berth(&offline, &["unpack", "../trip.tar.zst", "--force"]).ok();
}

#[test]
fn damaged_truncated_and_foreign_files_are_refused_and_the_engine_keeps_nothing() {
    let env = TestEnv::new();
    let image = TestImage::build("damage", IMAGE, 300_000);
    let dir = env.project("damage", &project_toml(&image.tag));
    env.berth(&dir, &["pack", "-o", "good.tar.zst"]).ok();
    let good = std::fs::read(dir.join("good.tar.zst")).expect("pack");
    image.remove();

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x01;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("flipped.tar.zst", flipped, "damaged"),
        ("cut.tar.zst", good[..good.len() * 3 / 5].to_vec(), "ends early"),
        ("short.tar.zst", good[..good.len() - 5].to_vec(), "ends early"),
        ("gz.tar.gz", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0], "not a berth pack"),
    ];
    for (name, bytes, says) in cases {
        std::fs::write(dir.join(name), bytes).expect("write");
        let target = env.root.path().join(format!("into-{name}"));
        let run = env.berth(&dir, &["-C", target.to_str().expect("utf-8"), "unpack", name]).code(2);
        assert!(run.stderr.contains(says), "{name}: {}", run.stderr);
        assert!(run.stderr.contains("the engine was not changed"), "{name}: {}", run.stderr);
        assert!(!docker(&["image", "inspect", &image.id]).status.success(), "{name}: the image was loaded");
        assert!(!docker(&["image", "inspect", &image.tag]).status.success(), "{name}: the tag was set");
        assert!(!target.join("berth.toml").exists(), "{name}: a berth.toml was written");
    }
    // A file pinned to an image this engine lacks says how to bring it here.
    let pinned = env.project("pinned", &project_toml(&image.id));
    let up = env.berth(&pinned, &["up"]).code(1);
    assert!(up.stderr.contains("berth unpack"), "{}", up.stderr);

    // The good one still loads after all that.
    env.berth(&dir, &["-C", env.root.path().join("ok").to_str().expect("utf-8"), "unpack", "good.tar.zst"])
        .ok();
    assert_eq!(docker_ok(&["image", "inspect", "--format", "{{.Id}}", &image.tag]), image.id);
}

#[test]
fn an_interrupted_pack_leaves_no_file_behind() {
    let env = TestEnv::new();
    // Large enough that the pack is still running when Ctrl-C arrives.
    let image = TestImage::build("sigint", IMAGE, 96 << 20);
    let dir = env.project("sigint", &project_toml(&image.tag));
    let mut child = env
        .command(&dir, &["pack", "-o", "out.tar.zst"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth pack");
    let partial = |dir: &Path| {
        std::fs::read_dir(dir)
            .expect("list")
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !partial(&dir) {
        assert!(Instant::now() < deadline, "the pack never started writing");
        assert!(child.try_wait().expect("wait").is_none(), "the pack ended before it could be interrupted");
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill =
        std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!dir.join("out.tar.zst").exists(), "a file is at the target path");
    assert!(!partial(&dir), "the partial file was left behind");
}

#[test]
fn unpack_never_moves_a_tag_that_names_another_image_without_force() {
    ensure_image();
    let image = TestImage::build("retag", IMAGE, 1000);
    let env = TestEnv::new();
    let dir = env.project("retag", &project_toml(&image.tag));
    env.berth(&dir, &["pack", "-o", "../retag.tar.zst"]).ok();
    // Someone else's image now holds that tag on this engine.
    let other = TestImage::build("retag-other", IMAGE, 2000);
    docker_ok(&["tag", &other.id, &image.tag]);
    let offline = env.root.path().join("offline");
    std::fs::create_dir_all(&offline).expect("mkdir");
    let r = env.berth(&offline, &["unpack", "../retag.tar.zst"]).code(4);
    assert!(r.stderr.contains("names another image"), "{}", r.stderr);
    assert_eq!(
        docker_ok(&["image", "inspect", "--format", "{{.Id}}", &image.tag]),
        other.id,
        "the tag did not move"
    );
    env.berth(&offline, &["unpack", "../retag.tar.zst", "--force"]).ok();
    assert_eq!(docker_ok(&["image", "inspect", "--format", "{{.Id}}", &image.tag]), image.id);
}

/// Seed 002: the code is copied into the image (`WORKDIR /app`, `COPY . .`), packed, unpacked into
/// an empty folder on the server and brought up. The unpacked folder holds only berth.toml: it
/// must not be mounted over /app, where the image carries the code.
#[test]
fn code_copied_into_the_image_runs_after_unpack_into_an_empty_folder() {
    ensure_python_image();
    let env = TestEnv::new();
    let name = unique("seed002");
    let dir = env.project(&name, "workdir = \"/app\"\n\n[image]\ndockerfile = \"Dockerfile\"\n");
    std::fs::write(dir.join("Dockerfile"), format!("FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY . .\n"))
        .expect("Dockerfile");
    std::fs::write(dir.join("train.py"), "print('training from the image: loss 0.25')\n").expect("train.py");

    // At home the folder holds the code: it is mounted (live edits), and nothing is hidden.
    let home_up = env.berth(&dir, &["up"]).ok();
    assert!(!home_up.stderr.contains("hides"), "{}", home_up.stderr);
    let mounts = env.inspect(&dir)["Mounts"].to_string();
    assert!(mounts.contains("\"Destination\":\"/app\""), "{mounts}");
    let packed = env.berth(&dir, &["pack", "-o", "../seed.tar.zst", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&packed.stdout).expect("pack --json");
    let image = report["id"].as_str().expect("image id").to_string();

    let server = env.root.path().join("server");
    std::fs::create_dir_all(&server).expect("mkdir");
    env.berth(&server, &["-C", "unpacked", "unpack", "../seed.tar.zst"]).ok();
    let there = server.join("unpacked");
    let up = env.berth(&there, &["up"]).ok();
    assert!(up.stderr.contains("holds none of them"), "{}", up.stderr);
    assert!(up.stderr.contains("mounts = [\".:/app\"]"), "{}", up.stderr);
    let run = env.berth(&there, &["exec", "--", "python3", "train.py"]).ok();
    assert!(run.stdout.contains("training from the image: loss 0.25"), "{}\n{}", run.stdout, run.stderr);
    // A second `up` finds the container as it was made: no drift, nothing recreated.
    let again = env.berth(&there, &["up", "--json"]).ok();
    assert!(again.stdout.contains("\"running\""), "{}\n{}", again.stdout, again.stderr);

    env.berth(&there, &["down", "--force"]).ok();
    env.berth(&dir, &["down", "--force"]).ok();
    let _ = docker(&["rmi", "-f", &image]);
}
