//! `DOCKER_HOST=ssh://…`: a private local socket whose connections are piped through
//! `ssh HOST docker system dial-stdio`, the docker CLI's own mechanism.
//!
//! The system `ssh` is used (or `BERTH_SSH`, see [`crate::ssh`]) so the user's keys, agent,
//! `~/.ssh/config` and `ProxyJump` work. bollard opens one connection per request, so
//! connections share one ssh master (`ControlMaster`) living in the same private folder, which
//! vanishes when berth exits.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

/// A running proxy; dropping it removes the socket folder.
#[derive(Debug)]
pub struct SshProxy {
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn start(destination: &str, port: Option<u16>) -> anyhow::Result<SshProxy> {
    let dir = tempfile::Builder::new()
        .prefix("berth-ssh-")
        .tempdir()
        .context("creating a folder for the ssh proxy")?;
    // The socket reaches the remote engine with the user's ssh identity: nobody else on this
    // machine may connect to it (the folder is made before the socket exists).
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .context("making the ssh proxy folder private")?;
    let socket = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&socket).context("binding the ssh proxy socket")?;
    let mut args = crate::ssh::command()?;
    args.extend(["-T".into(), "-o".into(), "ConnectTimeout=30".into()]);
    args.extend(crate::ssh::shared_connection(dir.path()));
    if let Some(p) = port {
        args.extend(["-p".into(), p.to_string()]);
    }
    args.extend([
        "--".into(),
        destination.to_string(),
        "docker".into(),
        "system".into(),
        "dial-stdio".into(),
    ]);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let args = args.clone();
            tokio::spawn(async move {
                let _ = pipe(stream, &args).await;
            });
        }
    });
    Ok(SshProxy { socket, _dir: dir })
}

async fn pipe(stream: UnixStream, args: &[String]) -> std::io::Result<()> {
    let (program, args) = args.split_first().ok_or_else(|| std::io::Error::other("no ssh command"))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let (mut from_client, mut to_client) = stream.into_split();
    let mut to_ssh = child.stdin.take().ok_or_else(|| std::io::Error::other("no ssh stdin"))?;
    let mut from_ssh = child.stdout.take().ok_or_else(|| std::io::Error::other("no ssh stdout"))?;
    let up = async {
        let r = tokio::io::copy(&mut from_client, &mut to_ssh).await;
        drop(to_ssh);
        r
    };
    // Each side's end must reach the other: the engine closing a hijacked exec stream is how
    // the client learns the command ended.
    let down = async {
        let r = tokio::io::copy(&mut from_ssh, &mut to_client).await;
        let _ = to_client.shutdown().await;
        r
    };
    let _ = tokio::join!(up, down);
    let _ = child.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test(flavor = "current_thread")]
    async fn the_proxy_socket_is_private() {
        let proxy = super::start("nobody@nowhere", None).expect("proxy");
        let dir = proxy.socket.parent().expect("folder");
        let mode = std::fs::metadata(dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(proxy.socket.exists());
    }
}
