//! The right Python everywhere: an image with a venv, and a stand-in laid out like a conda
//! install (conda is in neither Debian nor PyPI: `/opt/conda/conda-meta/`, `bin/python`, an
//! environment under `envs/` with an `activate.d` hook), whose python differs from the system's
//! (the system has only `python3`). `which python` is the environment's in `shell` (a real pty),
//! `exec`, a `run` job, the exported devcontainer's postAttachCommand and its terminal profile.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Once;

use crate::support::*;

const VENV_IMAGE: &str = "berth-test/python-venv:1";
const CONDA_IMAGE: &str = "berth-test/python-conda:1";

static IMAGES: Once = Once::new();

/// Both images, built offline from the Python test image (cached by tag).
fn ensure_images() {
    ensure_python_image();
    IMAGES.call_once(|| {
        let venv = format!("FROM {PYTHON_IMAGE}\nRUN python3 -m venv --without-pip /opt/venv\n");
        let conda = format!(
            "FROM {PYTHON_IMAGE}\n\
             RUN mkdir -p /opt/conda/conda-meta /opt/conda/bin /opt/conda/envs/train/conda-meta \\\n\
             \x20     /opt/conda/envs/train/bin /opt/conda/envs/train/etc/conda/activate.d \\\n\
             \x20&& ln -s /usr/bin/python3 /opt/conda/bin/python && ln -s /usr/bin/python3 /opt/conda/envs/train/bin/python \\\n\
             \x20&& echo 'export TRAIN_HOOK=ran' > /opt/conda/envs/train/etc/conda/activate.d/hook.sh\n"
        );
        for (tag, dockerfile) in [(VENV_IMAGE, venv), (CONDA_IMAGE, conda)] {
            if docker(&["image", "inspect", tag]).status.success() {
                continue;
            }
            let mut child = Command::new("docker")
                .args(["build", "-q", "-t", tag, "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("docker build");
            child.stdin.take().unwrap().write_all(dockerfile.as_bytes()).unwrap();
            assert!(child.wait().unwrap().success(), "could not build {tag}");
        }
    });
}

fn project(env: &TestEnv, name: &str, image: &str, extra: &str) -> std::path::PathBuf {
    env.project(name, &format!("[image]\nbase = \"{image}\"\n[gpu]\nvendor = \"none\"\n{extra}"))
}

/// `berth shell` in a real pseudo-terminal (util-linux `script`), fed `input`.
fn shell(env: &TestEnv, dir: &Path, input: &str) -> String {
    let (child, mut stdin) = pty_shell(env, dir);
    stdin.write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

fn job_output(env: &TestEnv, dir: &Path, name: &str, cmd: &str) -> String {
    env.berth(dir, &["run", "--name", name, "--", "sh", "-c", cmd]).ok();
    env.berth(dir, &["logs", name, "-f"]).ok().stdout
}

fn devcontainer(env: &TestEnv, dir: &Path) -> serde_json::Value {
    let text = env.berth(dir, &["export", "devcontainer", "-o", "-"]).ok().stdout;
    let json: String = text.lines().filter(|l| !l.starts_with("//")).collect::<Vec<_>>().join("\n");
    serde_json::from_str(&json).expect("devcontainer.json")
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|s| s.as_str().expect("string").to_string()).collect()
}

/// The devcontainer's postAttachCommand and its terminal profile, run in the container as VS
/// Code would (the profile's shell reads `which python` from stdin), with `extra` variables.
fn devcontainer_pythons(container: &str, dc: &serde_json::Value, extra: &[String]) -> (String, String) {
    let mut env_args = Vec::new();
    for kv in extra {
        env_args.push("-e".to_string());
        env_args.push(kv.clone());
    }
    let attach = strings(&dc["postAttachCommand"]);
    let mut args: Vec<String> = vec!["exec".into()];
    args.extend(env_args.iter().cloned());
    args.push(container.into());
    args.extend(attach);
    let attached = docker_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let profile = &dc["customizations"]["vscode"]["settings"]["terminal.integrated.profiles.linux"]["berth"];
    assert_eq!(
        dc["customizations"]["vscode"]["settings"]["terminal.integrated.defaultProfile.linux"],
        "berth"
    );
    let mut args: Vec<String> = vec!["exec".into(), "-i".into()];
    args.extend(env_args);
    args.push(container.into());
    args.push(profile["path"].as_str().unwrap().into());
    args.extend(strings(&profile["args"]));
    let mut child = Command::new("docker")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"echo terminal-python=$(which python)\nexit\n").unwrap();
    let out = child.wait_with_output().unwrap();
    (attached, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_venv_is_active_in_shell_exec_run_and_the_devcontainer() {
    ensure_images();
    let env = TestEnv::new();
    let dir = project(&env, "pyvenv", VENV_IMAGE, "");
    let r = env.berth(&dir, &["exec", "--", "sh", "-c", "which python; echo $VIRTUAL_ENV"]).ok();
    assert_eq!(r.stdout, "/opt/venv/bin/python\n/opt/venv\n");
    let container = env.containers_of(&dir).pop().expect("container");
    // The system's python is not the environment's: plain `docker exec` finds none.
    let plain = docker(&["exec", &container, "sh", "-c", "which python || echo none"]);
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "none\n");

    let shell = shell(&env, &dir, "echo shell-python=$(which python) env=$VIRTUAL_ENV; exit\n");
    assert!(shell.contains("shell-python=/opt/venv/bin/python env=/opt/venv"), "{shell}");

    let log = job_output(&env, &dir, "which", "echo job-python=$(which python)");
    assert_eq!(log, "job-python=/opt/venv/bin/python\n");

    let dc = devcontainer(&env, &dir);
    // Nothing machine-specific: berth.toml names no environment, so none is written down.
    assert!(dc["remoteEnv"].get("BERTH_PYTHON_ENV").is_none(), "{dc}");
    let (attached, terminal) = devcontainer_pythons(&container, &dc, &[]);
    assert!(attached.contains("berth: python is /opt/venv/bin/python"), "{attached}");
    assert!(terminal.contains("terminal-python=/opt/venv/bin/python"), "{terminal}");
}

#[test]
fn a_conda_stand_in_activates_base_then_the_environment_berth_toml_names() {
    ensure_images();
    let env = TestEnv::new();
    let dir = project(&env, "pyconda", CONDA_IMAGE, "");
    let r = env
        .berth(&dir, &["exec", "--", "sh", "-c", "which python; echo $CONDA_PREFIX $CONDA_DEFAULT_ENV"])
        .ok();
    assert_eq!(r.stdout, "/opt/conda/bin/python\n/opt/conda base\n");
    let container = env.containers_of(&dir).pop().expect("container");

    // Naming the environment needs no new container: the next session activates it, its
    // activate.d hook included.
    std::fs::write(
        dir.join("berth.toml"),
        format!(
            "[image]\nbase = \"{CONDA_IMAGE}\"\n[gpu]\nvendor = \"none\"\n[python]\nenv = \"/opt/conda/envs/train\"\n"
        ),
    )
    .unwrap();
    let r = env
        .berth(&dir, &["exec", "--", "sh", "-c", "which python; echo $CONDA_DEFAULT_ENV $TRAIN_HOOK"])
        .ok();
    assert_eq!(r.stdout, "/opt/conda/envs/train/bin/python\ntrain ran\n");
    assert_eq!(env.containers_of(&dir), std::slice::from_ref(&container));

    let shell = shell(&env, &dir, "echo shell-python=$(which python) $CONDA_DEFAULT_ENV; exit\n");
    assert!(shell.contains("shell-python=/opt/conda/envs/train/bin/python train"), "{shell}");

    let log = job_output(&env, &dir, "which", "echo job-python=$(which python) $TRAIN_HOOK");
    assert_eq!(log, "job-python=/opt/conda/envs/train/bin/python ran\n");

    let check = env.berth(&dir, &["gpu-check", "--json"]).code(1);
    let report: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    let python = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "python").cloned();
    assert_eq!(
        python.map(|c| c["detail"].clone()),
        Some(serde_json::json!("exec, jobs and shell: /opt/conda/envs/train/bin/python"))
    );

    let dc = devcontainer(&env, &dir);
    assert_eq!(dc["remoteEnv"]["BERTH_PYTHON_ENV"], "/opt/conda/envs/train");
    assert_eq!(
        dc["customizations"]["vscode"]["settings"]["python.defaultInterpreterPath"],
        "/opt/conda/envs/train/bin/python"
    );
    // VS Code gives its commands and terminals the file's remoteEnv.
    let (attached, terminal) =
        devcontainer_pythons(&container, &dc, &["BERTH_PYTHON_ENV=/opt/conda/envs/train".into()]);
    assert!(attached.contains("berth: python is /opt/conda/envs/train/bin/python"), "{attached}");
    assert!(terminal.contains("terminal-python=/opt/conda/envs/train/bin/python"), "{terminal}");
}

#[test]
fn a_named_environment_that_is_not_one_is_said_and_nothing_is_activated() {
    ensure_images();
    let env = TestEnv::new();
    let dir = project(&env, "pynone", VENV_IMAGE, "[python]\nenv = \"/opt/nothing\"\n");
    let r = env.berth(&dir, &["exec", "--", "sh", "-c", "which python || echo none"]).ok();
    assert_eq!(r.stdout, "none\n");
    assert!(r.stderr.contains("[python] env = \"/opt/nothing\" is neither a venv"), "{}", r.stderr);
}

#[test]
fn berth_code_gives_vs_code_the_environment_of_the_container_it_attaches_to() {
    ensure_images();
    let mut env = TestEnv::new();
    let bin = env.root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("code"), "#!/bin/sh\nexit 0\n").unwrap();
    assert!(Command::new("chmod").arg("755").arg(bin.join("code")).status().unwrap().success());
    env.env.push(("PATH".into(), format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())));
    env.env.push(("XDG_CONFIG_HOME".into(), env.home.join("config").display().to_string()));
    let dir = project(&env, "pycode", VENV_IMAGE, "");
    let out =
        env.command(&dir, &["code"]).env_remove("SSH_CONNECTION").stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let container = env.inspect(&dir)["Name"].as_str().unwrap().trim_start_matches('/').to_string();
    let file = env
        .home
        .join("config/Code/User/globalStorage/ms-vscode-remote.remote-containers/nameConfigs")
        .join(format!("{container}.json"));
    let text = std::fs::read_to_string(&file).expect("the named container configuration");
    let json: serde_json::Value =
        serde_json::from_str(&text.lines().skip(1).collect::<Vec<_>>().join("\n")).unwrap();
    assert_eq!(json["remoteEnv"]["VIRTUAL_ENV"], "/opt/venv", "{text}");
    assert!(json["remoteEnv"]["PATH"].as_str().unwrap().starts_with("/opt/venv/bin:"), "{text}");
    assert_eq!(json["settings"]["python.defaultInterpreterPath"], "/opt/venv/bin/python");
    // The same postAttachCommand as the export, run as VS Code would with that remoteEnv.
    let mut args = vec!["exec".to_string()];
    for (k, v) in json["remoteEnv"].as_object().unwrap() {
        args.push("-e".into());
        args.push(format!("{k}={}", v.as_str().unwrap()));
    }
    args.push(container.clone());
    args.extend(strings(&json["postAttachCommand"]));
    let said = docker_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(said.contains("berth: python is /opt/venv/bin/python"), "{said}");

    // A configuration the user wrote is theirs: left as it is, and said so.
    std::fs::write(&file, "{\"remoteUser\": \"me\"}\n").unwrap();
    let out =
        env.command(&dir, &["code"]).env_remove("SSH_CONNECTION").stdin(Stdio::null()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not berth's"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\"remoteUser\": \"me\"}\n");
}
