//! Golden files: every export for NVIDIA, AMD and no GPU, at 1 and 4 nodes, from one project
//! file at a fixed (fake) path, compared byte for byte with `tests/golden/`.
//!
//! `BERTH_UPDATE_GOLDEN=1 cargo test --lib render` rewrites them; review the diff. The same
//! files are what the integration tests feed to docker-compose, bash -n, kubernetes-validate
//! and the CRD / devcontainer schemas.

use std::path::{Path, PathBuf};

use super::slurm::Runtime;
use super::{ExportOptions, ExportPlan, compose, devcontainer, k8s, slurm};
use crate::spec::{self, MountSpec, Spec};

const PROJECT: &str = "/home/alice/sdcnet";

fn spec(vendor: &str) -> Spec {
    let text = format!(
        r#"name = "sdcnet"
mounts = [".:/workspace", "./work_dirs:/workspace/work_dirs"]
ports = ["8888", "127.0.0.1:6006:6006"]

[image]
base = "nvcr.io/nvidia/pytorch:24.01-py3"

[gpu]
vendor = "{vendor}"
devices = {devices}

[resources]
memory = "64g"
cpus = 8

[env]
PYTHONUNBUFFERED = "1"
NCCL_DEBUG = "INFO"
HF_TOKEN = {{ from-host = true }}

[cluster]
"./work_dirs" = {{ pvc = "sdcnet-work" }}
"/data/IDRID" = {{ host-path = "/mnt/datasets/IDRID" }}
"#,
        devices = if vendor == "auto" { "\"all\"" } else { "2" },
    );
    let mut spec = spec::parse_str(&text, &Path::new(PROJECT).join("berth.toml")).expect("golden spec");
    // The fake project folder does not exist here; on a real machine the code folder would.
    spec.mounts[0].create = false;
    // Datasets outside the project (added here because parsing checks that they exist).
    spec.mounts.push(MountSpec {
        source: "/home/alice/datasets/coco".into(),
        target: "/data/coco".into(),
        read_only: true,
        create: false,
        raw: "~/datasets/coco:/data/coco:ro".into(),
    });
    spec.mounts.push(MountSpec {
        source: "/data/IDRID".into(),
        target: "/data/IDRID".into(),
        read_only: true,
        create: false,
        raw: "/data/IDRID:/data/IDRID".into(),
    });
    spec
}

fn options(format: &str, nodes: u32) -> ExportOptions {
    let command: Vec<String> = if nodes > 1 {
        ["torchrun", "train.py", "--epochs", "3"].map(String::from).to_vec()
    } else {
        Vec::new()
    };
    let tail = if command.is_empty() { String::new() } else { format!(" -- {}", command.join(" ")) };
    let nodes_flag = if nodes > 1 { format!(" --nodes {nodes}") } else { String::new() };
    ExportOptions {
        nodes,
        command,
        regenerate: format!("berth export {format}{nodes_flag}{tail}"),
        source_ref: if format == "compose" { "berth.toml".into() } else { "../berth.toml".into() },
        ..ExportOptions::default()
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares (or with BERTH_UPDATE_GOLDEN=1 writes) one golden file; returns a failure line.
fn check(rel: &str, text: &str) -> Option<String> {
    let path = golden_dir().join(rel);
    if std::env::var_os("BERTH_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("golden dir");
        std::fs::write(&path, text).expect("write golden");
        return None;
    }
    match std::fs::read_to_string(&path) {
        Ok(want) if want == text => None,
        Ok(_) => Some(format!("{rel} differs (BERTH_UPDATE_GOLDEN=1 to rewrite, then review the diff)")),
        Err(e) => Some(format!("{rel}: {e}")),
    }
}

/// Every export of every case, as (golden path, text, warnings).
fn all_exports() -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for vendor in ["nvidia", "amd", "none", "auto"] {
        let spec = spec(vendor);
        let node_counts: &[u32] = if vendor == "auto" { &[1] } else { &[1, 4] };
        for &nodes in node_counts {
            let case = format!("{vendor}-{nodes}");
            let plan = |format: &str| ExportPlan::new(&spec, &options(format, nodes)).expect("export plan");
            let r = compose::render(&plan("compose"), ".");
            match r {
                Ok(r) => out.push((format!("compose/{case}.yaml"), r.text, r.warnings)),
                Err(e) => {
                    out.push((format!("compose/{case}.error"), format!("{e}\nhint: {}\n", e.hint), vec![]))
                }
            }
            if nodes == 1 {
                let r = devcontainer::render(&plan("devcontainer"));
                out.push((format!("devcontainer/{vendor}.json"), r.text, r.warnings));
            }
            for runtime in [Runtime::Pyxis, Runtime::Apptainer, Runtime::Docker] {
                let r = slurm::render(&plan("slurm"), runtime);
                out.push((format!("slurm/{case}-{}.sbatch", runtime.name()), r.text, r.warnings));
            }
            for (flavor, name) in [
                (k8s::Flavor::Job, "job"),
                (k8s::Flavor::JobSet, "jobset"),
                (k8s::Flavor::TrainJob, "trainjob"),
            ] {
                let r = k8s::render(&plan("k8s"), flavor);
                out.push((format!("k8s/{case}-{name}.yaml"), r.text, r.warnings));
            }
        }
    }
    out
}

#[test]
fn exports_match_their_golden_files() {
    let failures: Vec<String> = all_exports().iter().filter_map(|(rel, text, _)| check(rel, text)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn exports_are_byte_identical_when_rendered_again() {
    assert_eq!(all_exports(), all_exports());
}

#[test]
fn unmapped_host_mounts_become_host_paths_with_a_warning() {
    let spec = spec("nvidia");
    let r = k8s::render(&ExportPlan::new(&spec, &options("k8s", 1)).expect("plan"), k8s::Flavor::Job);
    // `.` and `~/datasets/coco` have no [cluster] entry; `./work_dirs` and /data/IDRID do.
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(r.warnings[0].starts_with("/workspace has no [cluster] entry"), "{:?}", r.warnings);
    assert!(r.text.contains("path: /home/alice/sdcnet\n"), "{}", r.text);
    assert!(r.text.contains("claimName: sdcnet-work"));
    assert!(r.text.contains("path: /mnt/datasets/IDRID\n"));
}

#[test]
fn several_nodes_need_a_command() {
    let spec = spec("none");
    let opts = ExportOptions { nodes: 2, ..ExportOptions::default() };
    let e = ExportPlan::new(&spec, &opts).expect_err("no command");
    assert!(e.message.contains("2-node export needs the command"), "{e}");
}

#[test]
fn a_compose_rehearsal_gives_each_node_its_own_gpus() {
    let all = spec("auto");
    let e =
        compose::render(&ExportPlan::new(&all, &options("compose", 2)).expect("plan"), ".").expect_err("all");
    assert!(e.hint.contains("--gpus-per-node N"), "{e:?}");
    let opts = ExportOptions { gpus_per_node: Some(1), ..options("compose", 2) };
    let text = compose::render(&ExportPlan::new(&all, &opts).expect("plan"), ".").expect("compose").text;
    let ids: Vec<&str> = text.lines().map(str::trim).filter(|l| *l == "- \"0\"" || *l == "- \"1\"").collect();
    assert_eq!(ids, ["- \"0\"", "- \"1\""], "node0 gets GPU 0, node1 GPU 1:\n{text}");
    assert!(text.contains("PET_NPROC_PER_NODE=1"), "{text}");
}
