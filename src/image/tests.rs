//! Golden Dockerfiles for every preset and for apt / pip / requirements combinations, and the
//! content-addressed tag's behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::host::HostRoot;
use crate::spec::parse_str;

fn host(name: &str) -> HostFacts {
    HostFacts::probe(&HostRoot::at(format!("{}/tests/hosts/{name}", env!("CARGO_MANIFEST_DIR"))))
}

fn resolved_in(dir: &Path, toml: &str, host_name: &str) -> Resolved {
    let spec = parse_str(toml, &dir.join("berth.toml")).expect("spec");
    resolve(&spec, &host(host_name)).expect("resolves")
}

#[test]
fn golden_dockerfiles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "numpy==1.26.4\n").unwrap();
    std::fs::write(dir.path().join("environment.yml"), "name: base\ndependencies: [pip]\n").unwrap();
    let cases = [
        (
            "preset-pytorch",
            "[image]\npreset = 'pytorch'\ntorch = '2.5.1'\npip = ['torchvision', 'torchaudio', 'transformers']\n",
            "nvidia-2",
        ),
        ("preset-ngc", "[image]\npreset = 'ngc'\ncuda = '12.8'\napt = ['ffmpeg']\n", "nvidia-8"),
        ("preset-rocm", "[image]\npreset = 'rocm'\nrocm = '7.0'\npip = ['torchvision']\n", "amd-igpu-2"),
        ("preset-cuda", "[image]\npreset = 'cuda'\ncuda = '12.4'\napt = ['python3-pip']\n", "nvidia-2"),
        ("preset-python", "[image]\npreset = 'python'\npython = '3.11'\npip = ['numpy']\n", "none"),
        (
            "apt-only",
            "[image]\nbase = 'debian:12'\napt = ['git', 'ffmpeg', 'libgl1=1.6.0-1']\napt-mirror = 'http://mirrors.example.org'\n",
            "none",
        ),
        (
            "pip-and-requirements",
            "[image]\nbase = 'python:3.12-slim'\npip = ['transformers', 'numpy>=1.26']\nrequirements = 'requirements.txt'\npip-index-url = 'https://pypi.example/simple'\npip-extra-index-urls = ['https://download.pytorch.org/whl/cu124', 'https://x.example/simple']\n",
            "none",
        ),
        (
            "apt-pip-requirements-conda",
            "[image]\nbase = 'continuumio/miniconda3:24.7.1-0'\napt = ['git']\npip = ['rich']\nrequirements = 'requirements.txt'\nconda-environment = 'environment.yml'\n",
            "none",
        ),
    ];
    for (name, toml, h) in cases {
        let r = resolved_in(dir.path(), toml, h);
        let b = r.build.expect("a build");
        insta::assert_snapshot!(format!("dockerfile-{name}"), b.dockerfile);
    }
}

#[test]
fn from_names_the_base_as_written_and_a_plain_base_needs_no_build() {
    let dir = tempfile::tempdir().unwrap();
    let r = resolved_in(
        dir.path(),
        "[image]\nbase = 'nvcr.io/nvidia/pytorch:24.08-py3'\napt = ['git']\n",
        "none",
    );
    assert!(r.build.unwrap().dockerfile.contains("\nFROM nvcr.io/nvidia/pytorch:24.08-py3\n"));
    let plain = resolved_in(dir.path(), "[image]\nbase = 'python:3.12-slim'\n", "none");
    assert!(plain.build.is_none());
    assert_eq!(plain.image, "python:3.12-slim");
}

#[test]
fn the_tag_follows_inputs_not_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "numpy\n").unwrap();
    std::fs::write(dir.path().join("train.py"), "print(1)\n").unwrap();
    let toml = "name = 'My_Env'\n[image]\nbase = 'python:3.12-slim'\napt = ['git']\nrequirements = 'requirements.txt'\n";
    let a = resolved_in(dir.path(), toml, "none");
    assert!(a.image.starts_with("berth/my_env:"), "{}", a.image);
    std::fs::write(dir.path().join("train.py"), "print(2)\n").unwrap();
    assert_eq!(resolved_in(dir.path(), toml, "none").image, a.image, "code is mounted, not copied");
    std::fs::write(dir.path().join("requirements.txt"), "numpy\nscipy\n").unwrap();
    assert_ne!(resolved_in(dir.path(), toml, "none").image, a.image, "requirements are an input");
    let other = toml.replace("['git']", "['git', 'curl']");
    assert_ne!(resolved_in(dir.path(), &other, "none").inputs, a.inputs);
}

#[test]
fn a_committed_image_replaces_the_tag_while_inputs_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[image]\nbase = 'python:3.12-slim'\n";
    let r = resolved_in(dir.path(), toml, "none");
    std::fs::create_dir_all(dir.path().join(".berth")).unwrap();
    let rec = CommitRecord {
        captured: Vec::new(),
        image: "berth/x:commit-1".into(),
        inputs: r.inputs.clone(),
        created: "now".into(),
        container: None,
    };
    std::fs::write(commit_record_path(dir.path()), serde_json::to_string(&rec).unwrap()).unwrap();
    let c = resolved_in(dir.path(), toml, "none");
    assert_eq!((c.image.as_str(), c.committed), ("berth/x:commit-1", true));
    let changed = resolved_in(dir.path(), "[image]\nbase = 'python:3.11-slim'\n", "none");
    assert!(!changed.committed);
}
