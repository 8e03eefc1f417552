//! `.devcontainer/devcontainer.json`: the environment for those who want VS Code's Dev
//! Containers to own the container.
//!
//! JSONC: the header is `//` lines, the rest plain JSON (keys in a fixed order). The project is
//! the workspace (`${localWorkspaceFolder}`), other sources are `${localEnv:HOME}`-relative or
//! absolute. GPUs: NVIDIA `"all"` through `hostRequirements.gpu` (the Dev Containers CLI then
//! adds `--gpus all` itself, so `runArgs` must not repeat it), a count or list through
//! `--gpus`; AMD through `--device` and `--group-add`. `as = "host"` cannot name the host's uid
//! in a file that must not depend on the machine, so the image gets a `berth` user (the
//! common-utils feature) whose uid VS Code sets to the local user's (`updateRemoteUserUID`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ExportPlan, LocalGpus, Rendered, cpus_text, docker_size};
use crate::host::Vendor;
use crate::plan::portable::{MountKind, MountRoot, PortableMount};
use crate::spec::UserMode;

/// The user `as = "host"` runs as inside (its uid follows the local user's).
const USER: &str = "berth";
const COMMON_UTILS: &str = "ghcr.io/devcontainers/features/common-utils:2";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DevContainer {
    name: String,
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace_mount: Option<String>,
    workspace_folder: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mounts: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    container_env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    remote_env: BTreeMap<String, String>,
    run_args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_requirements: Option<HostRequirements>,
    init: bool,
    override_command: bool,
    shutdown_action: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    features: BTreeMap<&'static str, serde_json::Value>,
    container_user: String,
    remote_user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "updateRemoteUserUID")]
    update_remote_user_uid: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    forward_ports: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_start_command: Option<Vec<String>>,
    /// Says which Python the environment gets (the activation snippet, then `command -v`).
    post_attach_command: Vec<String>,
    customizations: Customizations,
}

#[derive(Serialize)]
struct Customizations {
    vscode: VsCode,
}

#[derive(Serialize)]
struct VsCode {
    settings: BTreeMap<&'static str, serde_json::Value>,
}

#[derive(Serialize)]
struct HostRequirements {
    #[serde(skip_serializing_if = "Option::is_none")]
    cpus: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu: Option<bool>,
}

pub fn render(p: &ExportPlan) -> Rendered {
    let workspace = p.mounts.iter().find(|m| is_workspace(&m.mount)).map(|m| &m.mount);
    let mounts = p
        .mounts
        .iter()
        .filter(|m| !is_workspace(&m.mount))
        .map(|m| {
            let ro = if m.mount.read_only { ",readonly" } else { "" };
            format!("source={},target={},type=bind{ro}", source(&m.mount), m.mount.target)
        })
        .collect();
    let mut container_env: BTreeMap<String, String> = p.env.iter().cloned().collect();
    let mut run_args = vec![format!("--hostname={}", p.dns_name)];
    match p.shm {
        Some(bytes) => run_args.push(format!("--shm-size={}", docker_size(bytes))),
        None => run_args.push("--ipc=host".into()),
    }
    if let (Some(ipc), Some(_)) = (&p.ipc, p.shm) {
        run_args.push(format!("--ipc={ipc}"));
    }
    let mut gpu_requirement = None;
    match (p.vendor, &p.local_gpus) {
        (None, _) => {}
        (Some(Vendor::Nvidia), LocalGpus::All) => gpu_requirement = Some(true),
        (Some(Vendor::Nvidia), LocalGpus::Count(n)) => run_args.push(format!("--gpus={n}")),
        (Some(Vendor::Nvidia), LocalGpus::Ids(ids)) => {
            run_args.push(format!("--gpus=\"device={}\"", ids.join(",")))
        }
        (Some(Vendor::Amd), gpus) => {
            run_args.push("--device=/dev/kfd".into());
            run_args.push("--device=/dev/dri".into());
            run_args.push("--group-add=${localEnv:BERTH_VIDEO_GID:video}".into());
            run_args.push("--group-add=${localEnv:BERTH_RENDER_GID:render}".into());
            let visible = match gpus {
                LocalGpus::All => None,
                LocalGpus::Count(n) => Some((0..*n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")),
                LocalGpus::Ids(ids) => Some(ids.join(",")),
            };
            if let Some(v) = visible {
                container_env.insert("ROCR_VISIBLE_DEVICES".into(), v);
            }
        }
    }
    if let Some(m) = p.memory {
        run_args.push(format!("--memory={}", docker_size(m)));
    }
    if let Some(c) = p.cpus {
        run_args.push(format!("--cpus={}", cpus_text(c)));
    }
    run_args.extend(p.ulimits.iter().map(|(k, v)| format!("--ulimit={k}={v}")));
    run_args.extend(p.network.iter().map(|n| format!("--network={n}")));
    run_args.extend(p.cap_add.iter().map(|c| format!("--cap-add={c}")));
    run_args.extend(p.devices.iter().map(|d| format!("--device={d}")));

    let host_requirements =
        (gpu_requirement.is_some() || p.memory.is_some() || p.cpus.is_some()).then(|| {
            HostRequirements {
                // The host must have at least what the container may use.
                cpus: p.cpus.map(|c| c.ceil() as u64),
                memory: p.memory.map(|m| format!("{}gb", m.div_ceil(1 << 30))),
                gpu: gpu_requirement,
            }
        });
    let mut features = BTreeMap::new();
    let (container_user, remote_user, update_uid) = match &p.user {
        UserMode::Host => {
            features.insert(
                COMMON_UTILS,
                serde_json::json!({
                    "username": USER,
                    "userUid": "1000",
                    "userGid": "1000",
                    "installZsh": false,
                    "installOhMyZsh": false,
                    "installOhMyZshConfig": false,
                    "upgradePackages": false
                }),
            );
            (USER.to_string(), USER.to_string(), Some(true))
        }
        UserMode::Root => ("root".to_string(), "root".to_string(), None),
        UserMode::Named(n) => (n.clone(), n.clone(), None),
    };
    let mut remote_env: BTreeMap<String, String> =
        p.host_env.iter().map(|k| (k.clone(), format!("${{localEnv:{k}}}"))).collect();
    if let Some(env) = &p.python_env {
        remote_env.insert(crate::python::ENV_VAR.into(), env.clone());
    }
    let doc = DevContainer {
        name: p.name.clone(),
        image: p.image.clone(),
        workspace_mount: workspace.map(|m| {
            let ro = if m.read_only { ",readonly" } else { "" };
            format!("source=${{localWorkspaceFolder}},target={},type=bind{ro}", m.target)
        }),
        workspace_folder: p.workdir.clone(),
        mounts,
        container_env,
        remote_env,
        run_args,
        host_requirements,
        init: true,
        // VS Code keeps the container alive itself; the command, if any, runs at each start.
        override_command: true,
        // Persistent, like `berth up`: closing VS Code leaves the environment running.
        shutdown_action: "none",
        features,
        container_user,
        remote_user,
        update_remote_user_uid: update_uid,
        forward_ports: p.ports.iter().map(|port| port.container_port).collect(),
        post_start_command: (!p.keep_alive).then(|| p.command.clone()),
        post_attach_command: crate::python::report_argv(p.python_env.as_deref()),
        customizations: Customizations { vscode: VsCode { settings: python_settings(p) } },
    };
    let mut extra = vec![
        "Open the project folder in VS Code and run \"Dev Containers: Reopen in Container\".".to_string(),
    ];
    if matches!(p.user, UserMode::Host) {
        extra.push(format!(
            "user: \"{USER}\", made by the common-utils feature, with your uid (updateRemoteUserUID)."
        ));
    }
    if p.vendor == Some(Vendor::Amd) {
        extra.push(
            "AMD: set BERTH_VIDEO_GID / BERTH_RENDER_GID to the host's group ids if the image's differ."
                .into(),
        );
    }
    if !p.keep_alive {
        extra.push("The command runs at every start (postStartCommand).".into());
    }
    extra.push(
        "Python: terminals and commands activate the image's venv or conda environment (berth.toml [python] env \
         chooses); postAttachCommand says which."
            .into(),
    );
    let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    Rendered { text: format!("{}{json}\n", p.header("//", &extra)), warnings: Vec::new() }
}

/// VS Code's terminals start through the activation (a terminal profile running
/// `python::shell_argv`), and the Python extension uses berth.toml's environment when it names
/// one.
fn python_settings(p: &ExportPlan) -> BTreeMap<&'static str, serde_json::Value> {
    let argv = crate::python::shell_argv();
    let mut settings = BTreeMap::new();
    settings.insert(
        "terminal.integrated.profiles.linux",
        serde_json::json!({ "berth": { "path": argv[0], "args": argv[1..] } }),
    );
    settings.insert("terminal.integrated.defaultProfile.linux", serde_json::json!("berth"));
    if let Some(env) = p.python_env.as_deref().filter(|e| *e != "none") {
        settings.insert("python.defaultInterpreterPath", serde_json::json!(format!("{env}/bin/python")));
    }
    settings
}

fn is_workspace(m: &PortableMount) -> bool {
    m.kind == MountKind::User && m.root == MountRoot::Project && m.path.is_empty()
}

fn source(m: &PortableMount) -> String {
    let join = |base: &str| if m.path.is_empty() { base.to_string() } else { format!("{base}/{}", m.path) };
    match m.root {
        MountRoot::Project => join("${localWorkspaceFolder}"),
        MountRoot::Home => join("${localEnv:HOME}"),
        MountRoot::Absolute => m.path.clone(),
    }
}
