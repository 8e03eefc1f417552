//! `berth code`: VS Code attached to the running environment, with the work folder open.
//!
//! The environment is brought up first. VS Code's Dev Containers extension opens
//! `vscode-remote://attached-container+<hex of {"containerName": ...}><folder>`; when the
//! engine is on another machine the JSON also names that engine (`settings.host`, an
//! `ssh://` address), so VS Code on a laptop attaches through SSH to the server's container.
//! Where VS Code runs decides what berth does: here (a local engine, or `DOCKER_HOST=ssh://`)
//! it starts `code`; inside an SSH session on the server (or with `--ssh`, or `--print`) it
//! prints the command to run on the machine that has VS Code.

use super::ExitStatus;
use std::process::Command;

use serde::Serialize;

use super::{Context, Project};
use crate::engine::{self, Endpoint, Engine};
use crate::environment::{exec, python, up};
use crate::error::{Code, fail};
use crate::plan::sh_quote;

#[derive(Debug, Serialize)]
struct Attach {
    container: String,
    folder: String,
    uri: String,
    /// `code --folder-uri ...`, quoted for a POSIX shell.
    command: String,
    /// The engine VS Code must reach (absent: its local one).
    docker_host: Option<String>,
    /// Whether berth started VS Code itself.
    launched: bool,
}

pub async fn run(ctx: &Context, print: bool, ssh: Option<String>) -> anyhow::Result<ExitStatus> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let running = matches!(project.container(&engine).await?, Some(c) if engine::is_running(&c));
    if !running {
        up::apply(ctx, &project, &engine, up::UpOptions::default()).await?;
    }
    let folder = exec::workdir_for(&project.spec, &ctx.dir).unwrap_or_else(|| project.spec.workdir.clone());
    let in_ssh_session = std::env::var_os("SSH_CONNECTION").is_some();
    let docker_host = match (&ssh, &engine.endpoint) {
        (Some(dest), _) => Some(ssh_address(dest)),
        (None, Endpoint::Ssh { .. }) => Some(engine.endpoint.to_string()),
        // berth keeps TCP endpoints as http://; Docker clients (and VS Code) write tcp://.
        (None, Endpoint::Tcp(addr)) => Some(addr.replacen("http://", "tcp://", 1)),
        (None, Endpoint::Unix(_)) if in_ssh_session => session_address(),
        (None, Endpoint::Unix(_)) => None,
    };
    let uri = folder_uri(&project.container, docker_host.as_deref(), &folder);
    let command = format!("code --folder-uri {}", sh_quote(&uri));
    // VS Code runs here unless this is a shell on the server or the user asked for the text.
    let remote_user = ssh.is_some() || (in_ssh_session && matches!(engine.endpoint, Endpoint::Unix(_)));
    let launch = !print && !remote_user;
    if launch {
        configure_python(ctx, &project, &engine).await;
        let status = Command::new("code").arg("--folder-uri").arg(&uri).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                return Err(fail(
                    Code::Failure,
                    format!("`code` exited with {s}"),
                    format!("run it yourself: {command}"),
                ));
            }
            Err(e) => {
                return Err(fail(
                    Code::Failure,
                    format!("cannot start VS Code (`code`): {e}"),
                    format!(
                        "install VS Code with the Dev Containers extension and put `code` on PATH, or \
                         run: {command}"
                    ),
                ));
            }
        }
        ctx.out.status(format!("opened VS Code on {}:{folder}", project.container));
    } else if !ctx.out.json {
        if remote_user {
            ctx.out.status(
                "run this where VS Code is (it needs the Dev Containers extension and SSH access here):",
            );
        }
        ctx.out.data(format!("{command}\n"));
    }
    if ctx.out.json {
        ctx.out.json(&Attach {
            container: project.container.clone(),
            folder,
            uri,
            command,
            docker_host,
            launched: launch,
        })?;
    }
    Ok(ExitStatus::SUCCESS)
}

/// VS Code on this machine attaches with the container's own variables: berth writes the
/// Python environment's into Dev Containers' named configuration for this container (a file
/// berth did not write is left alone, and said so).
async fn configure_python(ctx: &Context, project: &Project, engine: &Engine) {
    let Ok(Some(c)) = project.container(engine).await else { return };
    let Some(resolved) = python::resolved(project, engine, &c, &ctx.out).await else { return };
    let Some(config) = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".config")))
    else {
        return;
    };
    let file = config
        .join("Code/User/globalStorage/ms-vscode-remote.remote-containers/nameConfigs")
        .join(format!("{}.json", project.container));
    if let Ok(text) = std::fs::read_to_string(&file)
        && !text.starts_with(crate::python::VSCODE_MARK)
    {
        ctx.out.warn(format!(
            "{} is not berth's: VS Code's terminals get the image's variables, not the Python environment's",
            file.display()
        ));
        return;
    }
    let written = file.parent().map(std::fs::create_dir_all).and_then(Result::ok).and_then(|()| {
        crate::fsutil::write_atomic(&file, crate::python::vscode_attached_config(&resolved).as_bytes(), 0o600)
            .ok()
    });
    if written.is_none() {
        ctx.out.warn(format!(
            "could not write {}: VS Code's terminals get the image's variables",
            file.display()
        ));
    }
}

/// `vscode-remote://attached-container+<hex JSON><folder>`.
pub fn folder_uri(container: &str, docker_host: Option<&str>, folder: &str) -> String {
    let mut spec = serde_json::json!({ "containerName": format!("/{container}") });
    if let Some(host) = docker_host {
        spec["settings"] = serde_json::json!({ "host": host });
    }
    let folder = if folder.starts_with('/') { folder.to_string() } else { format!("/{folder}") };
    format!("vscode-remote://attached-container+{}{folder}", hex::encode(spec.to_string()))
}

fn ssh_address(dest: &str) -> String {
    if dest.starts_with("ssh://") { dest.to_string() } else { format!("ssh://{dest}") }
}

/// This server as the SSH client sees it: `ssh://user@<server address>[:port]`, from
/// `SSH_CONNECTION` ("client-ip client-port server-ip server-port").
fn session_address() -> Option<String> {
    let conn = std::env::var("SSH_CONNECTION").ok()?;
    let parts: Vec<&str> = conn.split_whitespace().collect();
    let (ip, port) = (parts.get(2)?, parts.get(3)?);
    let user = crate::host::HostUser::current().name;
    let host = if ip.contains(':') { format!("[{ip}]") } else { (*ip).to_string() };
    Some(match *port {
        "22" => format!("ssh://{user}@{host}"),
        port => format!("ssh://{user}@{host}:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_carry_the_container_and_the_engine() {
        let uri = folder_uri("berth-a-x-1234", None, "/workspace");
        let hex_part =
            uri.trim_start_matches("vscode-remote://attached-container+").trim_end_matches("/workspace");
        let json = String::from_utf8(hex::decode(hex_part).expect("hex")).expect("utf8");
        assert_eq!(json, r#"{"containerName":"/berth-a-x-1234"}"#);
        let uri = folder_uri("c", Some("ssh://me@gpu"), "/w");
        let hex_part = uri.trim_start_matches("vscode-remote://attached-container+").trim_end_matches("/w");
        let json = String::from_utf8(hex::decode(hex_part).expect("hex")).expect("utf8");
        assert_eq!(json, r#"{"containerName":"/c","settings":{"host":"ssh://me@gpu"}}"#);
    }
}
