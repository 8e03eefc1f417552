//! The relay itself (`berth ssh-agent-relay --upstream SOCK... [--group GID] DIR`, hidden):
//! listens on `DIR/agent.sock` and forwards every connection to the first of the agents at
//! `SOCK...` that answers (the latest session's, then earlier sessions' still alive).
//!
//! It binds a new socket under a temporary name and renames it over `agent.sock` (so a session
//! never meets a missing socket while an older relay is replaced), says [`READY`] on stdout, then
//! checks every two seconds: when `agent.sock` is no longer its own (a newer relay took it, or it
//! was removed), it stops accepting and exits once its open connections end; when none of its
//! agents answers any more, it exits at once and removes its socket. `DIR` is opened without following links
//! and must be the caller's own folder, closed to other users.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustix::fs::{AtFlags, Mode, OFlags};

/// The line the relay prints once it listens.
pub const READY: &str = "ready";

/// How often the relay checks its socket and its agent.
const CHECK: Duration = Duration::from_secs(2);

/// `dir`, opened without following a link, when it is a folder of the caller's that no other
/// user may write.
pub fn open_dir(dir: &Path) -> anyhow::Result<OwnedFd> {
    let fd = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY,
        Mode::empty(),
    )
    .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", dir.display()))?;
    let st = rustix::fs::fstat(&fd)?;
    if st.st_uid != crate::host::HostUser::current().uid || st.st_mode & 0o022 != 0 {
        anyhow::bail!("{} is not a private folder of yours", dir.display());
    }
    Ok(fd)
}

/// Serve until the agent goes away or another relay takes the socket.
pub async fn serve(dir: &Path, upstreams: &[PathBuf], group: Option<u32>) -> anyhow::Result<()> {
    let fd = open_dir(dir)?;
    let via = |name: &str| PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd()));
    let socket = crate::state::SSH_AGENT_SOCKET;
    let temp = format!("{socket}.{}", std::process::id());
    let _ = rustix::fs::unlinkat(&fd, temp.as_str(), AtFlags::empty());
    let listener = std::os::unix::net::UnixListener::bind(via(&temp))?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    if let Some(gid) = group {
        std::os::unix::fs::lchown(via(&temp), None, Some(gid))?;
    }
    rustix::fs::chmodat(&fd, temp.as_str(), Mode::from_raw_mode(mode), AtFlags::empty())?;
    rustix::fs::renameat(&fd, temp.as_str(), &fd, socket)?;
    let st = rustix::fs::statat(&fd, socket, AtFlags::SYMLINK_NOFOLLOW)?;
    let own = (st.st_dev, st.st_ino);
    let is_own = || {
        rustix::fs::statat(&fd, socket, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|s| (s.st_dev, s.st_ino) == own)
    };
    {
        use std::io::Write;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{READY}")?;
        stdout.flush()?;
    }
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    // A terminal's hang-up does not end it; only its agent or its socket does.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let open = Arc::new(AtomicUsize::new(0));
    let mut check = tokio::time::interval(CHECK);
    let mut accepting = true;
    loop {
        tokio::select! {
            conn = listener.accept(), if accepting => {
                if let Ok((client, _)) = conn {
                    let open = open.clone();
                    let upstreams = upstreams.to_vec();
                    open.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        forward(client, &upstreams).await;
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
            _ = hangup.recv() => {}
            _ = check.tick() => {
                if !upstreams.iter().any(|u| answers(u)) {
                    break;
                }
                accepting = accepting && is_own();
                if !accepting && open.load(Ordering::SeqCst) == 0 {
                    return Ok(());
                }
            }
        }
    }
    if is_own() {
        let _ = rustix::fs::unlinkat(&fd, socket, AtFlags::empty());
    }
    Ok(())
}

/// Whether the agent at `upstream` accepts a connection.
fn answers(upstream: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(upstream).is_ok()
}

/// One client's connection, to the first agent that answers and back.
async fn forward(mut client: tokio::net::UnixStream, upstreams: &[PathBuf]) {
    for upstream in upstreams {
        if let Ok(mut agent) = tokio::net::UnixStream::connect(upstream).await {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
            return;
        }
    }
}
