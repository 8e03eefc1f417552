//! `berth ssh-agent-relay` (hidden): the relay `shell`, `exec` and `run` start to forward the
//! environment's ssh-agent socket to the caller's agent (see `crate::ssh_agent`).

use super::ExitStatus;
use std::path::{Path, PathBuf};

/// Runs until the agent goes away or a newer relay takes the socket. A failure before it
/// listens is the one line its starter reads.
pub async fn run(dir: &Path, upstreams: &[PathBuf], group: Option<u32>) -> anyhow::Result<ExitStatus> {
    if let Err(e) = crate::ssh_agent::relay::serve(dir, upstreams, group).await {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{}", format!("{e:#}").replace('\n', " "));
        return Err(e);
    }
    Ok(ExitStatus::SUCCESS)
}
