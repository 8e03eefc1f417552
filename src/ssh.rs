//! How berth runs the system `ssh`: for `DOCKER_HOST=ssh://…` and for `berth ship`.
//!
//! Always the system binary, so the user's keys, agent, `~/.ssh/config` and `ProxyJump` apply.
//! `BERTH_SSH` replaces the command line that starts it (like git's `GIT_SSH_COMMAND`), e.g.
//! `BERTH_SSH="ssh -F ./ssh_config"`; it is split like a shell would, never run through one.

use std::path::Path;

use crate::error::{Code, fail};

/// The environment variable that replaces `ssh` with a command line.
pub const ENV: &str = "BERTH_SSH";

/// The program and leading arguments that start ssh.
pub fn command() -> anyhow::Result<Vec<String>> {
    let Some(line) = std::env::var(ENV).ok().filter(|l| !l.trim().is_empty()) else {
        return Ok(vec!["ssh".into()]);
    };
    match shlex::split(&line) {
        Some(words) if !words.is_empty() => Ok(words),
        _ => Err(fail(
            Code::BadInput,
            format!("{ENV} is not a command line berth can split: {line}"),
            format!("set it like {ENV}=\"ssh -F /path/to/ssh_config\" (quotes balanced)"),
        )),
    }
}

/// Options that make every ssh started with them share one connection through a control
/// socket in `dir` (a private folder that only lives as long as berth needs it).
pub fn shared_connection(dir: &Path) -> Vec<String> {
    let mut opts = vec!["-o".into(), "ControlMaster=auto".into()];
    opts.extend(control_path(&dir.join("master")));
    opts.extend(["-o".into(), "ControlPersist=10".into()]);
    opts
}

/// The option that points ssh at a control socket (a master's, or where one will listen).
pub fn control_path(socket: &Path) -> Vec<String> {
    // `%` would be expanded by ssh (`%h`, `%C`): berth's paths are taken literally.
    vec!["-o".into(), format!("ControlPath={}", socket.display().to_string().replace('%', "%%"))]
}

/// Quoting for the remote side of ssh (it always runs a POSIX shell): berth's one shell quote.
pub use crate::plan::sh_quote;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_remote_shell() {
        assert_eq!(sh_quote("plain/path-1.2"), "plain/path-1.2");
        assert_eq!(sh_quote("two words"), "'two words'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
