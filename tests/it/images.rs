//! Images from the project file: content-addressed builds, the driver check, freeze, commit.

use std::time::Instant;

use crate::support::*;

fn python_project(env: &TestEnv, name: &str, image: &str) -> std::path::PathBuf {
    ensure_python_image();
    env.project(name, &format!("[image]\nbase = \"{PYTHON_IMAGE}\"\n{image}"))
}

#[test]
fn builds_are_content_addressed_and_reuse_the_apt_layer() {
    let env = TestEnv::new();
    // Packages the base already has, so the build needs no network.
    let dir = python_project(&env, "build", "apt = [\"python3\"]\nrequirements = \"requirements.txt\"\n");
    std::fs::write(dir.join("requirements.txt"), "pip\n").unwrap();
    std::fs::write(dir.join("train.py"), "print(1)\n").unwrap();
    let print = env.berth(&dir, &["build", "--print"]).ok();
    assert!(print.stdout.contains(&format!("\nFROM {PYTHON_IMAGE}\n")), "{}", print.stdout);
    let first: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["build", "--json"]).ok().stdout).unwrap();
    assert_eq!(first["built"], true);
    let tag = first["image"].as_str().unwrap().to_string();
    assert!(tag.starts_with("berth/build:"), "{tag}");

    // The best of three runs: the suite runs tests in parallel on two cores.
    let mut took = std::time::Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let again: serde_json::Value =
            serde_json::from_str(&env.berth(&dir, &["build", "--json"]).ok().stdout).unwrap();
        took = took.min(t.elapsed());
        assert_eq!((again["built"].as_bool(), again["image"].as_str()), (Some(false), Some(tag.as_str())));
    }
    assert!(took.as_millis() < 100, "a no-op build took {took:?}");

    std::fs::write(dir.join("train.py"), "print(2)\n").unwrap();
    let code: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["build", "--json"]).ok().stdout).unwrap();
    assert_eq!(code["built"], false, "editing code does not rebuild");

    std::fs::write(dir.join("requirements.txt"), "pip\nwheel\n").unwrap();
    let changed: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["build", "--json"]).ok().stdout).unwrap();
    assert_eq!(changed["built"], true);
    assert_ne!(changed["image"], first["image"]);
    let log = std::fs::read_to_string(dir.join(".berth/build.log")).unwrap();
    let apt_step = log.find("RUN if dpkg -s python3").expect("the apt step is in the log");
    assert!(
        log[apt_step..].lines().nth(1).unwrap_or("").contains("Using cache"),
        "the apt layer is reused:\n{log}"
    );
    // `up` runs the built image; the old one stays until `berth clean`.
    env.berth(&dir, &["up"]).ok();
    assert_eq!(env.inspect(&dir)["Config"]["Image"], changed["image"]);
    assert!(docker(&["image", "inspect", &tag]).status.success());
}

#[test]
fn your_own_dockerfile_builds_with_dockerignore_honoured() {
    let env = TestEnv::new();
    let dir = env.project("own", "[image]\ndockerfile = \"docker/Dockerfile\"\n");
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    std::fs::write(dir.join("docker/Dockerfile"), format!("FROM {IMAGE}\nCOPY . /ctx\n")).unwrap();
    std::fs::write(dir.join("docker/.dockerignore"), "*.bin\n").unwrap();
    std::fs::write(dir.join("docker/keep.txt"), "kept\n").unwrap();
    std::fs::write(dir.join("docker/weights.bin"), "heavy\n").unwrap();
    let built: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["build", "--json"]).ok().stdout).unwrap();
    assert_eq!(built["built"], true);
    let ls = env.berth(&dir, &["exec", "--", "ls", "/ctx"]).ok();
    assert!(ls.stdout.contains("keep.txt") && !ls.stdout.contains("weights.bin"), "{}", ls.stdout);
    std::fs::write(dir.join("docker/weights.bin"), "heavier\n").unwrap();
    let again: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["build", "--json"]).ok().stdout).unwrap();
    assert_eq!(again["built"], false, "an ignored file is not an input");
}

#[test]
fn an_old_nvidia_driver_is_refused_before_anything_is_created() {
    let mut env = TestEnv::new();
    let tag = format!("berth-test/cuda12-{}:1", std::process::id());
    let helper = docker_ok(&["create", IMAGE, "true"]);
    docker_ok(&["commit", "--change", "ENV CUDA_VERSION=12.4.1", &helper, &tag]);
    docker_ok(&["rm", &helper]);
    env.env.push((
        "BERTH_HOST_ROOT".into(),
        format!("{}/tests/hosts/nvidia-old-driver", env!("CARGO_MANIFEST_DIR")),
    ));
    let dir = env.project("olddriver", &format!("[image]\nbase = \"{tag}\"\n"));
    let r = env.berth(&dir, &["up", "--no-start"]);
    let _ = docker(&["rmi", "-f", &tag]);
    let r = r.code(1);
    assert!(r.stderr.contains("CUDA 12.4.1") && r.stderr.contains("525.60.13"), "{}", r.stderr);
    assert!(r.stderr.contains("470.256.02"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: upgrade the host's NVIDIA driver"), "{}", r.stderr);
    assert!(env.containers_of(&dir).is_empty(), "nothing was created");
}

/// Make a wheel by hand inside the environment (no network), in /workspace/wheels.
const MAKE_WHEEL: &str = r#"mkdir -p /workspace/wheels && cd /tmp && python3 - <<'EOF'
import zipfile, hashlib, base64
files = {"handmade/__init__.py": b"VALUE = 42\n",
         "handmade-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: handmade\nVersion: 1.0\n",
         "handmade-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
rec = []
with zipfile.ZipFile("/workspace/wheels/handmade-1.0-py3-none-any.whl", "w") as z:
    for n, b in files.items():
        z.writestr(n, b)
        d = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
        rec.append("%s,sha256=%s,%d" % (n, d, len(b)))
    rec.append("handmade-1.0.dist-info/RECORD,,")
    z.writestr("handmade-1.0.dist-info/RECORD", "\n".join(rec) + "\n")
EOF"#;

#[test]
fn freeze_shows_hand_installs_and_its_file_installs_back_the_same_set() {
    let env = TestEnv::new();
    let dir = python_project(&env, "freeze", "");
    env.berth(&dir, &["exec", "--", "sh", "-c", MAKE_WHEEL]).ok();
    env.berth(
        &dir,
        &[
            "exec",
            "--",
            "python3",
            "-m",
            "pip",
            "install",
            "-q",
            "/workspace/wheels/handmade-1.0-py3-none-any.whl",
        ],
    )
    .ok();
    let f = env.berth(&dir, &["freeze"]).ok();
    assert!(
        f.stdout.contains("added") && f.stdout.contains("handmade") && f.stdout.contains("1.0"),
        "{}",
        f.stdout
    );
    // Counting hand installs reads the whole writable layer: only `status --changes` does it.
    let status = env.berth(&dir, &["status"]).ok();
    assert!(!status.stdout.contains("by hand"), "{}", status.stdout);
    let quick: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["status", "--json"]).ok().stdout).unwrap();
    assert!(quick["python_packages_changed"].is_null(), "{quick}");
    let status = env.berth(&dir, &["status", "--changes"]).ok();
    assert!(
        status.stdout.contains("1 package(s) installed or removed by hand: `berth freeze`"),
        "{}",
        status.stdout
    );
    let full: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["status", "--changes", "--json"]).ok().stdout).unwrap();
    assert_eq!(full["python_packages_changed"], 1, "{full}");
    env.berth(&dir, &["freeze", "--write", "frozen.txt"]).ok();
    let frozen = std::fs::read_to_string(dir.join("frozen.txt")).unwrap();
    assert!(frozen.contains("handmade==1.0"), "{frozen}");

    // A fresh environment from the same image gets the same set from that file.
    let list = "python3 -m pip list --format=freeze --disable-pip-version-check";
    let before = env.berth(&dir, &["exec", "--", "sh", "-c", list]).ok().stdout;
    let other = python_project(&env, "freeze2", "");
    std::fs::create_dir_all(other.join("wheels")).unwrap();
    std::fs::copy(
        dir.join("wheels/handmade-1.0-py3-none-any.whl"),
        other.join("wheels/handmade-1.0-py3-none-any.whl"),
    )
    .unwrap();
    std::fs::copy(dir.join("frozen.txt"), other.join("frozen.txt")).unwrap();
    env.berth(
        &other,
        &[
            "exec",
            "--",
            "python3",
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            "/workspace/wheels",
            "-r",
            "/workspace/frozen.txt",
        ],
    )
    .ok();
    let after = env.berth(&other, &["exec", "--", "sh", "-c", list]).ok().stdout;
    assert_eq!(before, after);
}

#[test]
fn commit_keeps_hand_made_changes_through_down_and_up() {
    let env = TestEnv::new();
    let dir = env.project("commit", "");
    env.berth(&dir, &["exec", "--", "sh", "-c", "mkdir -p /opt && echo tuned > /opt/settings.conf"]).ok();
    let refused = env.berth(&dir, &["down"]).code(4);
    assert!(refused.stderr.contains("berth commit"), "{}", refused.stderr);
    let c = env.berth(&dir, &["commit"]).ok();
    assert!(c.stderr.contains("to make it permanent"), "{}", c.stderr);
    // The committed container itself is not drift.
    let up = env.berth(&dir, &["up"]).ok();
    assert!(up.stderr.contains("is running"), "{}", up.stderr);
    env.berth(&dir, &["down", "--force"]).ok();
    env.berth(&dir, &["up"]).ok();
    let r = env.berth(&dir, &["exec", "--", "cat", "/opt/settings.conf"]).ok();
    assert_eq!(r.stdout, "tuned\n");
    assert!(env.inspect(&dir)["Config"]["Image"].as_str().unwrap().starts_with("berth/commit:commit-"));
}

#[test]
fn down_after_commit_no_longer_refuses_for_what_the_commit_kept() {
    let env = TestEnv::new();
    let name = format!("aftercommit{}", std::process::id());
    let dir = env.project(&name, "");
    env.berth(&dir, &["exec", "--", "sh", "-c", "mkdir -p /opt && echo tuned > /opt/settings.conf"]).ok();
    env.berth(&dir, &["down"]).code(4);
    env.berth(&dir, &["commit"]).ok();
    // What changed since the commit is still guarded: an edit of a captured file, a new file.
    env.berth(&dir, &["exec", "--", "sh", "-c", "echo retuned > /opt/settings.conf; echo x > /opt/new.conf"])
        .ok();
    let refused = env.berth(&dir, &["down"]).code(4);
    assert!(refused.stderr.contains("2 changed files"), "{}", refused.stderr);
    env.berth(&dir, &["commit"]).ok();
    let down = env.berth(&dir, &["down"]).ok();
    assert!(down.stderr.contains("removed"), "{}", down.stderr);
    let images = docker_ok(&["images", "-q", &format!("berth/{name}")]);
    for id in images.lines() {
        let _ = docker(&["rmi", "-f", id]);
    }
}
