//! `push`'s pure parts: where a reference points (registry, repository, tag) and the
//! credentials the docker CLI would use for that registry, read from its config
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `auths`, `credHelpers`,
//! `credsStore`). Credentials go to the engine only; berth never prints or stores them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::engine::Credentials;
use base64::Engine as _;
use serde::Deserialize;

/// The key Docker Hub's credentials are stored under.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// A reference split the way the engine reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `registry.example.com:5000`, or `docker.io` when the reference names none.
    pub registry: String,
    /// Everything before the tag: what the engine tags and pushes.
    pub repo: String,
    pub tag: String,
}

impl Target {
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repo, self.tag)
    }

    /// Whether the reference names a registry host explicitly.
    pub fn names_registry(&self) -> bool {
        self.registry != "docker.io"
    }
}

/// Split `reference` (`[host[:port]/]path[:tag]`); a digest cannot be pushed to.
pub fn target(reference: &str) -> Option<Target> {
    if reference.contains('@') || reference.is_empty() || reference.starts_with("sha256:") {
        return None;
    }
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "latest"),
    };
    let first = repo.split('/').next().unwrap_or_default();
    let registry = if repo.contains('/') && (first.contains(['.', ':']) || first == "localhost") {
        first.to_string()
    } else {
        "docker.io".to_string()
    };
    Some(Target { registry, repo: repo.to_string(), tag: tag.to_string() })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperReply {
    username: String,
    secret: String,
}

/// The docker CLI's config folder.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".docker")
}

/// The credentials stored for `registry`, if any. A helper that fails is an error (the user
/// set it up, and pushing anonymously instead would only fail later, less clearly).
pub fn credentials(dir: &Path, registry: &str) -> anyhow::Result<Option<Credentials>> {
    let text = match std::fs::read_to_string(dir.join("config.json")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("reading {}", dir.join("config.json").display()))
            );
        }
    };
    let config: DockerConfig = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not valid JSON: {e}", dir.join("config.json").display()))?;
    let key = if registry == "docker.io" { DOCKER_HUB } else { registry };
    let server = if registry == "docker.io" { DOCKER_HUB.to_string() } else { registry.to_string() };
    if let Some(helper) = config.cred_helpers.get(key).or(config.creds_store.as_ref())
        && let Some(c) = from_helper(helper, &server)?
    {
        return Ok(Some(c));
    }
    let Some(entry) = config.auths.iter().find(|(k, _)| normalise(k) == normalise(key)).map(|(_, v)| v)
    else {
        return Ok(None);
    };
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            identitytoken: Some(token.clone()),
            serveraddress: Some(server),
            ..Default::default()
        }));
    }
    let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) else { return Ok(None) };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            anyhow::anyhow!("the stored login for {registry} in config.json is not readable base64")
        })?;
    let Some((user, pass)) = decoded.split_once(':') else {
        anyhow::bail!("the stored login for {registry} in config.json is not `user:password`");
    };
    Ok(Some(Credentials {
        username: Some(user.to_string()),
        password: Some(pass.to_string()),
        serveraddress: Some(server),
        ..Default::default()
    }))
}

/// `https://host/v1/` and `host` name the same registry.
fn normalise(key: &str) -> &str {
    let k = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Ask `docker-credential-<helper>` for `server`'s login; `None` when it has none.
fn from_helper(helper: &str, server: &str) -> anyhow::Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let mut child = match Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            anyhow::bail!("the credential helper {program} named in docker's config.json cannot run: {e}")
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        if said.contains("credentials not found") {
            return Ok(None);
        }
        anyhow::bail!("the credential helper {program} failed: {}", said.trim());
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("the credential helper {program} answered something unreadable: {e}"))?;
    let creds = if reply.username == "<token>" {
        Credentials {
            identitytoken: Some(reply.secret),
            serveraddress: Some(server.into()),
            ..Default::default()
        }
    } else {
        Credentials {
            username: Some(reply.username),
            password: Some(reply.secret),
            serveraddress: Some(server.into()),
            ..Default::default()
        }
    };
    Ok(Some(creds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_the_engine_reads_them() {
        let t = target("127.0.0.1:5000/team/env:v2").expect("target");
        assert_eq!(
            (t.registry.as_str(), t.repo.as_str(), t.tag.as_str()),
            ("127.0.0.1:5000", "127.0.0.1:5000/team/env", "v2")
        );
        let t = target("localhost/env").expect("target");
        assert_eq!((t.registry.as_str(), t.tag.as_str()), ("localhost", "latest"));
        let t = target("pytorch/pytorch:2.5").expect("target");
        assert!(!t.names_registry());
        assert_eq!(t.reference(), "pytorch/pytorch:2.5");
        assert_eq!(target("x@sha256:00"), None);
        assert_eq!(target("sha256:0123"), None);
    }

    #[test]
    fn logins_come_from_auths_under_any_spelling_of_the_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = base64::engine::general_purpose::STANDARD.encode("me:s3cret");
        std::fs::write(
            dir.path().join("config.json"),
            format!(r#"{{"auths":{{"https://reg.example.com/v1/":{{"auth":"{auth}"}},"{DOCKER_HUB}":{{"identitytoken":"tok"}}}}}}"#),
        )
        .expect("write");
        let c = credentials(dir.path(), "reg.example.com").expect("read").expect("found");
        assert_eq!((c.username.as_deref(), c.password.as_deref()), (Some("me"), Some("s3cret")));
        let hub = credentials(dir.path(), "docker.io").expect("read").expect("found");
        assert_eq!(hub.identitytoken.as_deref(), Some("tok"));
        assert!(credentials(dir.path(), "other.example.com").expect("read").is_none());
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(credentials(empty.path(), "reg.example.com").expect("no file is no login").is_none());
    }

    #[test]
    fn a_missing_credential_helper_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), r#"{"credsStore":"berth-test-absent"}"#)
            .expect("write");
        let err = credentials(dir.path(), "reg.example.com").expect_err("helper missing");
        assert!(err.to_string().contains("docker-credential-berth-test-absent"));
    }
}
