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

/// Hidden `.NAME.XXXXXX.partial` files in `dir`.
fn partial_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.ends_with(".partial"))
        .collect()
}

#[test]
fn packs_killed_mid_write_leave_no_partial_files_after_the_next_pack() {
    let env = TestEnv::new();
    // Large enough that each pack is still writing when it is killed.
    let image = TestImage::build("sigkill", IMAGE, 48 << 20);
    let dir = env.project("sigkill", &project_toml(&image.tag));
    for _ in 0..3 {
        let before = partial_files(&dir);
        let mut child = env
            .command(&dir, &["pack", "-o", "out.tar.zst"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("berth pack");
        let deadline = Instant::now() + Duration::from_secs(60);
        // This pack's own file, with data in it (not the one an earlier kill left).
        let writing = |dir: &Path| {
            partial_files(dir).iter().any(|n| {
                !before.contains(n) && std::fs::metadata(dir.join(n)).is_ok_and(|m| m.len() > 1 << 20)
            })
        };
        while !writing(&dir) {
            assert!(Instant::now() < deadline, "the pack never started writing");
            assert!(child.try_wait().expect("wait").is_none(), "the pack ended before it could be killed");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }
    // A SIGKILL lets nothing run: the last kill's partial file is there (each pack cleaned the
    // ones before it).
    assert!(!partial_files(&dir).is_empty(), "the killed pack left no partial file");
    assert!(!dir.join("out.tar.zst").exists(), "a killed pack named its file");

    env.berth(&dir, &["pack", "-o", "out.tar.zst"]).ok();
    assert_eq!(partial_files(&dir), Vec::<String>::new(), "stale partial files are left behind");
    assert!(dir.join("out.tar.zst").is_file());
}

#[test]
fn pack_then_build_keeps_the_image_tag_and_size() {
    ensure_image();
    let env = TestEnv::new();
    // The user's Dockerfile copies the whole project, the build context.
    let dir = env.project("bake", "[image]\ndockerfile = \"Dockerfile\"\n");
    std::fs::write(dir.join("Dockerfile"), format!("FROM {IMAGE}\nCOPY . /app\n")).expect("Dockerfile");
    std::fs::write(dir.join("train.py"), "print('train')\n").expect("train.py");
    let build = |env: &TestEnv| -> (String, bool) {
        let out: serde_json::Value =
            serde_json::from_str(&env.berth(&dir, &["build", "--json"]).ok().stdout).expect("build --json");
        (out["image"].as_str().expect("image").to_string(), out["built"] == true)
    };
    let size = |tag: &str| docker_ok(&["image", "inspect", "--format", "{{.Size}}", tag]);
    let (tag, built) = build(&env);
    assert!(built);
    let before = size(&tag);

    // By default the pack lands in berth's own folder, never in the build context.
    let packed = env.berth(&dir, &["pack", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&packed.stdout).expect("pack --json");
    let file = Path::new(report["file"].as_str().expect("file")).to_path_buf();
    assert!(file.starts_with(dir.join(".berth")), "{}", file.display());
    assert_eq!(build(&env), (tag.clone(), false), "the default pack changed the image");

    // A pack put into the context by hand, under any name, is left out all the same.
    env.berth(&dir, &["pack", "-o", "mine.tar.zst"]).ok();
    std::fs::copy(dir.join("mine.tar.zst"), dir.join("renamed.bin")).expect("copy");
    assert_eq!(build(&env), (tag.clone(), false), "a pack in the context changed the image");
    assert_eq!(size(&tag), before, "the image grew");
    let ls = env.berth(&dir, &["exec", "--", "ls", "-a", "/app"]).ok();
    assert!(ls.stdout.contains("train.py"), "{}", ls.stdout);
    assert!(!ls.stdout.contains("mine.tar.zst") && !ls.stdout.contains(".berth"), "{}", ls.stdout);
}

/// One member of a pack, as a test rewrites it.
struct Member {
    header: tar::Header,
    path: String,
    data: Vec<u8>,
}

/// The members of a pack, its manifest left out.
fn members_of(pack: &[u8]) -> Vec<Member> {
    let mut a = tar::Archive::new(zstd::Decoder::new(pack).expect("zstd"));
    let mut out = Vec::new();
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        if path == "berth-manifest.json" {
            continue;
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read");
        out.push(Member { header: e.header().clone(), path, data });
    }
    out
}

/// A pack of `members` with a manifest that matches them (re-hashed, as a forger would) and
/// repeats the header's fields.
fn repack(members: &[Member]) -> Vec<u8> {
    use sha2::Digest;
    let header: serde_json::Value = serde_json::from_slice(&members[0].data).expect("header");
    let mut manifest = header.clone();
    let list: Vec<serde_json::Value> = members
        .iter()
        .map(|m| {
            let kind = match m.header.entry_type() {
                tar::EntryType::Directory => "dir",
                tar::EntryType::Symlink => "symlink",
                _ => "file",
            };
            let link = m.header.link_name().expect("link").map(|l| l.to_string_lossy().into_owned());
            let mut v = serde_json::json!({
                "path": m.path, "kind": kind, "size": m.data.len(),
                "sha256": hex::encode(sha2::Sha256::digest(&m.data)),
            });
            if let Some(l) = link {
                v["link"] = l.into();
            }
            v
        })
        .collect();
    manifest["members"] = list.into();
    let mut b = tar::Builder::new(zstd::Encoder::new(Vec::new(), 3).expect("zstd"));
    for m in members {
        let mut h = m.header.clone();
        h.set_size(m.data.len() as u64);
        if h.entry_type() == tar::EntryType::Symlink {
            let target = h.link_name().expect("link").expect("target").into_owned();
            b.append_link(&mut h, &m.path, target).expect("link");
        } else {
            b.append_data(&mut h, &m.path, m.data.as_slice()).expect("member");
        }
    }
    let text = serde_json::to_vec(&manifest).expect("json");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(text.len() as u64);
    b.append_data(&mut h, "berth-manifest.json", text.as_slice()).expect("manifest");
    b.into_inner().expect("tar").finish().expect("zstd")
}

fn member<'a>(members: &'a mut [Member], path: &str) -> &'a mut Member {
    members.iter_mut().find(|m| m.path == path).unwrap_or_else(|| panic!("no member {path}"))
}

/// `docker images --no-trunc` lines for these tags.
fn images_for(tags: &[&str]) -> Vec<String> {
    let out = docker_ok(&["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| tags.iter().any(|t| l.starts_with(&format!("{t} "))))
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn hostile_packs_are_refused_and_the_engines_images_and_tags_stay_as_they_were() {
    let env = TestEnv::new();
    let image = TestImage::build("hostile", IMAGE, 300_000);
    let victim = TestImage::build("hostile-victim", IMAGE, 1000);
    let dir = env.project("hostile", &project_toml(&image.tag));
    env.berth(&dir, &["pack", "-o", "good.tar.zst"]).ok();
    let good = std::fs::read(dir.join("good.tar.zst")).expect("pack");
    image.remove();
    let good_members = members_of(&good);
    let manifest_json =
        good_members.iter().position(|m| m.path == "image/manifest.json").expect("manifest.json");
    let top_layer = good_members
        .iter()
        .filter(|m| m.path.ends_with("/layer.tar"))
        .max_by_key(|m| m.data.len())
        .map(|m| m.path.clone())
        .expect("a layer");

    type Edit = Box<dyn Fn(&mut Vec<Member>)>;
    let victim_tag = victim.tag.clone();
    let victim_id = victim.id.clone();
    let image_id = image.id.clone();
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "lying tags in manifest.json",
            Box::new(move |m| {
                let text = String::from_utf8(m[manifest_json].data.clone()).expect("utf-8");
                m[manifest_json].data =
                    text.replace("\"RepoTags\":[", &format!("\"RepoTags\":[\"{victim_tag}\",")).into_bytes();
            }),
            "manifest.json sets the tags",
        ),
        (
            "a header naming another image id",
            Box::new(move |m| {
                for path in ["berth-pack.json", "berth.toml"] {
                    let text = String::from_utf8(member(m, path).data.clone()).expect("utf-8");
                    member(m, path).data = text.replace(&image_id, &victim_id).into_bytes();
                }
            }),
            "does not hold what its header says",
        ),
        (
            "an extra member",
            Box::new(|m| {
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                m.insert(3, Member { header: h, path: "image/zeros.bin".into(), data: vec![0; 1 << 20] });
            }),
            "no part of a saved image",
        ),
        (
            "a swapped layer",
            Box::new(move |m| {
                let layer = member(m, &top_layer);
                let at = layer.data.len() - 2000;
                layer.data[at] ^= 0x20;
            }),
            "swapped",
        ),
        (
            "a berth.toml that is not TOML",
            Box::new(|m| member(m, "berth.toml").data = b"[image\nbase = \"x\"".to_vec()),
            "not a valid project file",
        ),
        (
            "a berth.toml whose base is not the packed image",
            Box::new(|m| {
                member(m, "berth.toml").data = format!("[image]\nbase = \"{IMAGE}\"\n").into_bytes()
            }),
            "does not run the packed image",
        ),
    ];
    let tags = [image.tag.as_str(), victim.tag.as_str()];
    for (what, edit, says) in cases {
        let mut members = members_of(&good);
        edit(&mut members);
        std::fs::write(dir.join("bad.tar.zst"), repack(&members)).expect("write");
        let before = images_for(&tags);
        let outside = listing(env.root.path());
        let target = env.root.path().join("into");
        let started = Instant::now();
        let run = env.berth(&dir, &["-C", target.to_str().expect("utf-8"), "unpack", "bad.tar.zst"]);
        assert!(run.code == 2 || run.code == 4, "{what}: exit {}: {}", run.code, run.stderr);
        assert!(run.stderr.contains(says), "{what}: {}", run.stderr);
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: took {:?}", started.elapsed());
        assert_eq!(images_for(&tags), before, "{what}: the engine's images or tags changed");
        assert!(!docker(&["image", "inspect", &image.id]).status.success(), "{what}: the image was loaded");
        assert_eq!(listing(env.root.path()), outside, "{what}: something was written");
        assert!(!target.exists(), "{what}: the target folder was made");
    }
    // --expect refuses any other image id.
    let wrong = env.berth(&dir, &["unpack", "good.tar.zst", "--expect", &victim.id]).code(2);
    assert!(wrong.stderr.contains("not"), "{}", wrong.stderr);
    assert!(!docker(&["image", "inspect", &image.id]).status.success());
    let into = env.root.path().join("ok");
    env.berth(&dir, &["-C", into.to_str().expect("utf-8"), "unpack", "good.tar.zst", "--expect", &image.id])
        .ok();
    assert_eq!(docker_ok(&["image", "inspect", "--format", "{{.Id}}", &image.tag]), image.id);
}

#[test]
fn a_pack_asking_for_the_host_root_and_sys_admin_gets_neither_until_the_user_consents() {
    let image = TestImage::build("wide", IMAGE, 1000);
    let env = TestEnv::new();
    let toml = format!(
        "name = \"wide\"\nmounts = [\".:/workspace\", \"/:/host:rw\"]\n{}\n[user]\nas = \"root\"\n\
         [env]\nSOME_TOKEN = {{ from-host = true }}\n[run]\ncap-add = [\"SYS_ADMIN\"]\nulimits = {{ nofile = 4096 }}\n",
        project_toml(&image.tag)
    );
    let dir = env.project("wide", &toml);
    env.berth(&dir, &["pack", "-o", "../wide.tar.zst"]).ok();
    let offline = env.root.path().join("offline");
    std::fs::create_dir_all(&offline).expect("mkdir");
    let unpacked = env.berth(&offline, &["unpack", "../wide.tar.zst", "--json"]).ok();
    assert!(unpacked.stderr.contains("held back"), "{}", unpacked.stderr);
    assert!(unpacked.stderr.contains("--allow-access"), "{}", unpacked.stderr);
    let report: serde_json::Value = serde_json::from_str(&unpacked.stdout).expect("json");
    let held: Vec<String> =
        report["held_back"].as_array().expect("held_back").iter().map(|w| w["setting"].to_string()).collect();
    for want in [
        "/:/host:rw",
        "SYS_ADMIN",
        "ulimits.nofile",
        "as = \\\"root\\\"",
        "SOME_TOKEN",
        "[cache] pip",
        "[cache] huggingface",
        "[ssh] agent",
    ] {
        assert!(held.iter().any(|h| h.contains(want)), "{want} not held back: {held:?}");
    }
    let there = offline.join("wide");
    let status: serde_json::Value =
        serde_json::from_str(&env.berth(&there, &["status", "--json"]).ok().stdout).expect("status");
    assert_eq!(status["access"], serde_json::json!([]), "a plain unpack applies nothing");

    env.berth(&there, &["up"]).ok();
    let c = env.inspect(&there);
    let caps = c["HostConfig"]["CapAdd"].to_string();
    assert!(!caps.contains("SYS_ADMIN"), "{caps}");
    let mounts = c["Mounts"].to_string();
    assert!(!mounts.contains("\"/host\""), "{mounts}");
    assert!(!mounts.contains("/berth/cache"), "host caches are off: {mounts}");
    env.berth(&there, &["down"]).ok();

    // Consent: the same pack, with --allow-access.
    env.berth(&offline, &["unpack", "../wide.tar.zst", "--allow-access", "--force"]).ok();
    let up = env.berth(&there, &["up"]).ok();
    assert!(up.stderr.contains("SYS_ADMIN") && up.stderr.contains("/:/host:rw"), "{}", up.stderr);
    let c = env.inspect(&there);
    assert!(c["HostConfig"]["CapAdd"].to_string().contains("SYS_ADMIN"), "{}", c["HostConfig"]);
    assert!(c["Mounts"].to_string().contains("\"/host\""), "{}", c["Mounts"]);
    let again = env.berth(&there, &["up"]).ok();
    assert!(!again.stderr.contains("SYS_ADMIN"), "announced twice: {}", again.stderr);
    let status = env.berth(&there, &["status"]).ok();
    assert!(status.stdout.contains("SYS_ADMIN") && status.stdout.contains("/:/host:rw"), "{}", status.stdout);
    env.berth(&there, &["down"]).ok();
}

#[test]
fn a_rewritten_berth_toml_asking_for_every_kind_of_access_is_unpacked_with_all_of_it_held_back() {
    let env = TestEnv::new();
    let image = TestImage::build("rewritten", IMAGE, 1000);
    let dir = env.project("rewritten", &project_toml(&image.tag));
    env.berth(&dir, &["pack", "-o", "good.tar.zst"]).ok();
    let mut members = members_of(&std::fs::read(dir.join("good.tar.zst")).expect("pack"));
    // What a forger writes, the pack's manifest re-hashed to match.
    let wide = format!(
        "name = \"rewritten\"\nmounts = [\"/:/host:rw\", \"/etc:/e\"]\nports = [\"0.0.0.0:8888:8888\"]\n\
         [image]\nbase = \"{}\"\n[user]\nas = \"root\"\n[env]\nAWS_SECRET_ACCESS_KEY = {{ from-host = true }}\n\
         [run]\nnetwork = \"host\"\nipc = \"host\"\ncap-add = [\"SYS_ADMIN\", \"NET_ADMIN\"]\n\
         devices = [\"/dev/fuse\"]\nulimits = {{ memlock = -1 }}\n",
        image.id
    );
    member(&mut members, "berth.toml").data = wide.into_bytes();
    std::fs::write(dir.join("wide.tar.zst"), repack(&members)).expect("write");
    let outside = listing(env.root.path());
    let target = env.root.path().join("into");
    let run =
        env.berth(&dir, &["-C", target.to_str().expect("utf-8"), "unpack", "wide.tar.zst", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let held: Vec<String> =
        report["held_back"].as_array().expect("held_back").iter().map(|w| w["setting"].to_string()).collect();
    for want in [
        "/:/host:rw",
        "/etc:/e",
        "0.0.0.0:8888",
        "as = \\\"root\\\"",
        "AWS_SECRET_ACCESS_KEY",
        "network",
        "ipc",
        "SYS_ADMIN",
        "/dev/fuse",
        "memlock",
        "[cache] pip",
        "[cache] huggingface",
        "[ssh] agent",
    ] {
        assert!(held.iter().any(|h| h.contains(want)), "{want} not held back: {held:?}");
    }
    let mut expected = outside.clone();
    expected.push("into".into());
    expected.sort();
    assert_eq!(listing(env.root.path()), expected, "written outside the target folder");
    assert_eq!(listing(&target), vec!["berth.toml".to_string()]);
    let status: serde_json::Value =
        serde_json::from_str(&env.berth(&target, &["status", "--json"]).ok().stdout).expect("status");
    assert_eq!(
        status["access"],
        serde_json::json!([]),
        "{}",
        std::fs::read_to_string(target.join("berth.toml")).unwrap_or_default()
    );
}

/// Seed 002's project: a Dockerfile that copies the code into the image (`WORKDIR /app`,
/// `COPY . .`), `train.py` printing `train`, and `extra` lines before `[image]`.
fn seed002_project(env: &TestEnv, stem: &str, extra: &str, train: &str) -> std::path::PathBuf {
    ensure_python_image();
    let dir = env.project(&unique(stem), &format!("{extra}\n[image]\ndockerfile = \"Dockerfile\"\n"));
    std::fs::write(dir.join("Dockerfile"), format!("FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY . .\n"))
        .expect("Dockerfile");
    std::fs::write(dir.join("train.py"), train).expect("train.py");
    dir
}

/// Pack `dir`'s image beside it and unpack it on the "server" (`<root>/server/unpacked`, holding
/// only the unpacked berth.toml); returns the image id.
fn pack_to_server(env: &TestEnv, dir: &std::path::Path) -> String {
    let packed = env.berth(dir, &["pack", "-o", "../seed.tar.zst", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&packed.stdout).expect("pack --json");
    let server = env.root.path().join("server");
    std::fs::create_dir_all(&server).expect("mkdir");
    env.berth(&server, &["-C", "unpacked", "unpack", "../seed.tar.zst"]).ok();
    report["id"].as_str().expect("image id").to_string()
}

/// Seed 002: the code is copied into the image (`WORKDIR /app`, `COPY . .`), packed, unpacked into
/// an empty folder on the server and brought up. The unpacked folder holds only berth.toml: it
/// must not be mounted over /app, where the image carries the code.
#[test]
fn code_copied_into_the_image_runs_after_unpack_into_an_empty_folder() {
    let env = TestEnv::new();
    let dir = seed002_project(
        &env,
        "seed002",
        "workdir = \"/app\"\n",
        "print('training from the image: loss 0.25')\n",
    );

    // At home the folder holds the code: it is mounted (live edits), and nothing is hidden.
    let home_up = env.berth(&dir, &["up"]).ok();
    assert!(!home_up.stderr.contains("hides"), "{}", home_up.stderr);
    let mounts = env.inspect(&dir)["Mounts"].to_string();
    assert!(mounts.contains("\"Destination\":\"/app\""), "{mounts}");
    let image = pack_to_server(&env, &dir);

    let there = env.root.path().join("server/unpacked");
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

/// With `.berth` replaced by a file, every command said "a file is in the way" with the fix, but
/// `pack` said "creating …/.berth/packs: Not a directory (os error 20)".
#[test]
fn pack_with_a_file_in_place_of_berth_folder_says_a_file_is_in_the_way() {
    let env = TestEnv::new();
    let dir = env.project(&unique("packfile"), "");
    std::fs::write(dir.join(".berth"), "not a folder").unwrap();
    let r = env.berth(&dir, &["pack"]).code(1);
    assert!(r.stderr.contains("a file is in the way"), "{}", r.stderr);
    assert!(!r.stderr.contains("os error"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(dir.join(".berth")).unwrap(), "not a folder");
}

/// Seed 002 with its Dockerfile as written (`WORKDIR /app`, `COPY . .`) and berth's default work
/// folder: at home the code is mounted at /workspace; on the server the unpacked folder holds
/// only berth.toml, and `exec -- python3 train.py` failed in an empty /workspace without a word.
#[test]
fn an_unpacked_image_whose_workdir_holds_the_code_says_where_to_work() {
    let env = TestEnv::new();
    let dir = seed002_project(&env, "seed002wd", "", "print('loss 0.5')\n");
    let home_up = env.berth(&dir, &["up"]).ok();
    assert!(!home_up.stderr.contains("WORKDIR"), "{}", home_up.stderr);
    let image = pack_to_server(&env, &dir);
    let there = env.root.path().join("server/unpacked");
    let up = env.berth(&there, &["up"]).ok();
    assert!(up.stderr.contains("the image works in /app (its WORKDIR), which holds"), "{}", up.stderr);
    assert!(up.stderr.contains("train.py"), "{}", up.stderr);
    assert!(up.stderr.contains("workdir = \"/app\""), "{}", up.stderr);
    // Following it runs the image's code.
    let toml = std::fs::read_to_string(there.join("berth.toml")).unwrap();
    std::fs::write(there.join("berth.toml"), format!("workdir = \"/app\"\n{toml}")).unwrap();
    env.berth(&there, &["up", "--recreate"]).ok();
    let run = env.berth(&there, &["exec", "--", "python3", "train.py"]).ok();
    assert_eq!(run.stdout, "loss 0.5\n", "{}", run.stderr);
    env.berth(&there, &["down", "--force"]).ok();
    env.berth(&dir, &["down", "--force"]).ok();
    let _ = docker(&["rmi", "-f", &image]);
}

#[test]
fn pack_says_what_work_in_the_container_it_leaves_out_until_commit() {
    ensure_image();
    let env = TestEnv::new();
    let dir = env.project("handwork", &format!("[image]\nbase = \"{IMAGE}\"\n"));
    env.berth(&dir, &["up"]).ok();
    let clean = env.berth(&dir, &["pack", "-o", "../clean.tar.zst"]).ok();
    assert!(!clean.stderr.contains("leaves out"), "{}", clean.stderr);
    env.berth(&dir, &["exec", "--", "sh", "-c", "mkdir -p /opt/hand && echo x > /opt/hand/marker"]).ok();
    let packed = env.berth(&dir, &["pack", "-o", "../hand.tar.zst"]).ok();
    assert!(packed.stderr.contains("changed file"), "{}", packed.stderr);
    assert!(packed.stderr.contains("the pack leaves out"), "{}", packed.stderr);
    assert!(packed.stderr.contains("berth commit"), "{}", packed.stderr);
    env.berth(&dir, &["down", "--force"]).ok();
}
