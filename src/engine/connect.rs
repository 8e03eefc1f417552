//! Which engine berth talks to, resolved the way the docker CLI does it.
//!
//! Order: `DOCKER_HOST`; `DOCKER_CONTEXT` or the config's `currentContext` (the context's
//! endpoint from `~/.docker/contexts/meta/<sha256(name)>/meta.json`); then the local socket,
//! rootless Docker's and Podman's. bollard reads none of the contexts itself.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Code, fail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
    /// `ssh://[user@]host[:port]`, reached through `ssh HOST docker system dial-stdio`.
    Ssh {
        destination: String,
        port: Option<u16>,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "{a}"),
            Endpoint::Ssh { destination, port: Some(p) } => write!(f, "ssh://{destination}:{p}"),
            Endpoint::Ssh { destination, port: None } => write!(f, "ssh://{destination}"),
        }
    }
}

impl Endpoint {
    /// Whether the engine runs on this machine, so the paths, GPUs and `.berth` folder berth
    /// sees here are the ones its containers get.
    pub fn is_local(&self) -> bool {
        match self {
            Endpoint::Unix(_) => true,
            Endpoint::Tcp(addr) => ["://127.", "://localhost", "://[::1]"].iter().any(|l| addr.contains(l)),
            Endpoint::Ssh { .. } => false,
        }
    }

    /// Refuse work that reads this machine's folders or GPUs on behalf of a remote engine.
    pub fn require_local(&self, what: &str) -> anyhow::Result<()> {
        if self.is_local() {
            return Ok(());
        }
        Err(fail(
            Code::BadInput,
            format!(
                "{what} needs the engine on this machine, but it is at {self}: mounts, GPUs and the \
                 project's .berth folder are read here, and the server would not see them"
            ),
            "run berth on the server itself (`ssh` there, then `berth up` in the project's folder); \
             exec, shell, status, stop, down and ls work through a remote engine",
        ))
    }
}

/// The endpoint and where it came from (`DOCKER_HOST`, `context "x"`, `default`).
pub fn resolve() -> anyhow::Result<(Endpoint, String)> {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return Ok((parse_host(&host)?, "DOCKER_HOST".into()));
    }
    let config_dir = docker_config_dir();
    let context = std::env::var("DOCKER_CONTEXT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| current_context(&config_dir));
    if let Some(name) = context.filter(|c| c != "default") {
        let host = context_host(&config_dir, &name)?;
        return Ok((parse_host(&host)?, format!("context \"{name}\"")));
    }
    Ok((Endpoint::Unix(default_socket()), "default".into()))
}

/// Parse a `DOCKER_HOST`-style address.
pub fn parse_host(host: &str) -> anyhow::Result<Endpoint> {
    if let Some(path) = host.strip_prefix("unix://") {
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if host.starts_with("tcp://") || host.starts_with("http://") {
        return Ok(Endpoint::Tcp(host.replacen("tcp://", "http://", 1)));
    }
    if let Some(rest) = host.strip_prefix("ssh://") {
        let rest = rest.trim_end_matches('/');
        let (destination, port) = match rest.rsplit_once(':') {
            Some((d, p)) if !d.ends_with(']') || p.parse::<u16>().is_ok() => match p.parse::<u16>() {
                Ok(p) => (d.to_string(), Some(p)),
                Err(_) => return Err(bad_host(host, "the port after `:` is not a number")),
            },
            _ => (rest.to_string(), None),
        };
        if destination.is_empty() || destination.contains('/') {
            return Err(bad_host(host, "expected ssh://[user@]host[:port]"));
        }
        return Ok(Endpoint::Ssh { destination, port });
    }
    Err(bad_host(host, "berth understands unix://, tcp:// and ssh:// addresses"))
}

fn bad_host(host: &str, why: &str) -> anyhow::Error {
    fail(
        Code::BadInput,
        format!("cannot use the engine address `{host}`: {why}"),
        "fix DOCKER_HOST (or the Docker context's endpoint), e.g. unix:///var/run/docker.sock",
    )
}

fn docker_config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".docker")
}

fn current_context(config_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config_dir.join("config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("currentContext")?.as_str().map(str::to_string).filter(|c| !c.is_empty())
}

fn context_host(config_dir: &Path, name: &str) -> anyhow::Result<String> {
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = config_dir.join("contexts/meta").join(digest).join("meta.json");
    let missing = || {
        fail(
            Code::BadInput,
            format!("the Docker context \"{name}\" does not exist (no {})", meta.display()),
            "list contexts with `docker context ls` and pick one with `docker context use NAME`",
        )
    };
    let text = std::fs::read_to_string(&meta).map_err(|_| missing())?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| missing())?;
    value.pointer("/Endpoints/docker/Host").and_then(|h| h.as_str()).map(str::to_string).ok_or_else(missing)
}

/// The local socket: Docker's, then rootless Docker's, then Podman's.
fn default_socket() -> PathBuf {
    let system = PathBuf::from("/var/run/docker.sock");
    if system.exists() {
        return system;
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let candidates = [
        runtime.as_ref().map(|r| r.join("docker.sock")),
        runtime.as_ref().map(|r| r.join("podman/podman.sock")),
        Some(PathBuf::from("/run/podman/podman.sock")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists()).unwrap_or(system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_forms() {
        assert_eq!(parse_host("unix:///x/d.sock").ok(), Some(Endpoint::Unix("/x/d.sock".into())));
        assert_eq!(parse_host("tcp://1.2.3.4:2375").ok(), Some(Endpoint::Tcp("http://1.2.3.4:2375".into())));
        assert_eq!(
            parse_host("ssh://me@gpu-box:2222").ok(),
            Some(Endpoint::Ssh { destination: "me@gpu-box".into(), port: Some(2222) })
        );
        assert_eq!(
            parse_host("ssh://gpu-box").ok(),
            Some(Endpoint::Ssh { destination: "gpu-box".into(), port: None })
        );
        assert!(parse_host("ssh://box:notaport").is_err());
        assert!(parse_host("npipe:////./pipe/docker").is_err());
    }

    #[test]
    fn contexts_resolve_through_meta_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = "remote";
        let digest = hex::encode(Sha256::digest(name.as_bytes()));
        let meta = dir.path().join("contexts/meta").join(digest);
        std::fs::create_dir_all(&meta).expect("mkdir");
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"remote","Endpoints":{"docker":{"Host":"ssh://me@box"}}}"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("config.json"), r#"{"currentContext":"remote"}"#).expect("write");
        assert_eq!(current_context(dir.path()).as_deref(), Some("remote"));
        assert_eq!(context_host(dir.path(), "remote").ok().as_deref(), Some("ssh://me@box"));
        assert!(context_host(dir.path(), "missing").is_err());
    }
}
