//! `daemon.json`: read it without losing anything, merge berth's few settings in, render it back.
//!
//! Invariants: every key berth does not set survives with its value and its place (`ordered`);
//! a file that does not parse, or whose keys berth touches have the wrong
//! type, is refused before anything is written; writing is, under a lock, a backup beside the
//! file, then an atomic rename of a complete new file, the old one re-read just before (see
//! [`write`]).

mod diff;
mod ordered;
mod write;

pub use diff::diff;
pub use ordered::{Json, Object};
pub use write::{
    Changed, LinkError, backup_path, backups, lock, lock_path, remove_stale_temporaries, resolve,
    write_with_backup,
};

use serde_json::{Map, Value};

/// The settings `berth host configure` can make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub data_root: Option<String>,
    pub registry_mirrors: Vec<String>,
    pub nvidia_runtime: bool,
    pub cdi: bool,
    pub live_restore: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// Whether applying these needs a daemon restart; the rest is reloaded with SIGHUP
    /// (`systemctl reload docker`): registry mirrors, runtimes and live-restore are on dockerd's
    /// reloadable list, `data-root` is not, and the CDI cache is built at start-up.
    pub fn need_restart(&self) -> bool {
        self.data_root.is_some() || self.cdi
    }
}

/// A problem with the file or with what was asked, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("it does not parse as JSON (line {line}, column {column}: {message})")]
    Syntax { line: usize, column: usize, message: String },
    #[error("its top level is not a JSON object")]
    NotAnObject,
    #[error("`{key}` is {found}, but dockerd expects {expected}")]
    WrongType { key: String, found: &'static str, expected: &'static str },
    #[error("{0}")]
    BadValue(String),
}

/// Parse a daemon.json text, keys in file order; an empty file is an empty object.
pub fn parse(text: &str) -> Result<Object, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Object::default());
    }
    let value: Json = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    match value {
        Json::Object(map) => Ok(map),
        _ => Err(ConfigError::NotAnObject),
    }
}

/// serde_json appends " at line L column C"; berth says where itself.
fn strip_position(message: &str) -> String {
    message.split(" at line ").next().unwrap_or(message).to_string()
}

/// The indentation the file already uses (first indented line), so a rewrite keeps its look.
pub fn indent_of(text: &str) -> String {
    text.lines()
        .find_map(|line| {
            let trimmed = line.trim_start_matches([' ', '\t']);
            let indent = &line[..line.len() - trimmed.len()];
            (!indent.is_empty() && trimmed.starts_with('"')).then(|| indent.to_string())
        })
        .unwrap_or_else(|| "  ".to_string())
}

/// Pretty JSON with this indentation and a final newline.
pub fn render(map: &Object, indent: &str) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    // Serialising a map of JSON values into memory cannot fail.
    let _ = map.serialize(&mut ser);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    text.push('\n');
    text
}

/// The runtime entry `nvidia-ctk runtime configure --runtime=docker` writes.
fn nvidia_runtime() -> Json {
    let mut entry = Object::default();
    entry.insert("args", Json::Array(Vec::new()));
    entry.insert("path", Json::String("nvidia-container-runtime".into()));
    Json::Object(entry)
}

/// Merge `changes` into `map`; returns one line per setting that actually changed (empty: the
/// file already says all of it).
pub fn apply(map: &mut Object, changes: &Changes) -> Result<Vec<String>, ConfigError> {
    check(&map.to_map())?;
    // Everything is validated before the first change, so a refusal leaves `map` untouched.
    let data_root = changes.data_root.as_deref().map(validate_data_root).transpose()?;
    let mirrors =
        changes.registry_mirrors.iter().map(|u| validate_mirror(u)).collect::<Result<Vec<_>, _>>()?;
    let mut done = Vec::new();
    if let Some(root) = data_root {
        let old = map.get("data-root").and_then(Json::as_str).map(str::to_string);
        if old.as_deref() != Some(root.as_str()) {
            done.push(format!(
                "data-root: {} -> {root}",
                old.as_deref().unwrap_or("(default /var/lib/docker)")
            ));
            map.insert("data-root", Json::String(root));
        }
    }
    if !mirrors.is_empty() {
        let items = map
            .entry("registry-mirrors", Json::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| wrong("registry-mirrors", "a list of URLs"))?;
        for url in mirrors {
            let same =
                |v: &Json| v.as_str().is_some_and(|s| s.trim_end_matches('/') == url.trim_end_matches('/'));
            if !items.iter().any(same) {
                done.push(format!("registry-mirrors: added {url}"));
                items.push(Json::String(url));
            }
        }
    }
    if changes.nvidia_runtime {
        let runtimes = map
            .entry("runtimes", Json::Object(Object::default()))
            .as_object_mut()
            .ok_or_else(|| wrong("runtimes", "an object of runtimes"))?;
        if !runtimes.contains_key("nvidia") {
            runtimes.insert("nvidia", nvidia_runtime());
            done.push("runtimes: registered nvidia (nvidia-container-runtime)".into());
        }
    }
    if changes.cdi {
        let features = map
            .entry("features", Json::Object(Object::default()))
            .as_object_mut()
            .ok_or_else(|| wrong("features", "an object of true/false flags"))?;
        // Only `cdi` changes; nvidia-ctk and amd-ctk replace the whole object, losing other flags.
        if features.get("cdi") != Some(&Json::Bool(true)) {
            features.insert("cdi", Json::Bool(true));
            done.push("features.cdi: true".into());
        }
    }
    if changes.live_restore && map.get("live-restore") != Some(&Json::Bool(true)) {
        map.insert("live-restore", Json::Bool(true));
        done.push("live-restore: true".into());
    }
    Ok(done)
}

/// `check` ran first, so this is only reached if it and `apply` disagree.
fn wrong(key: &str, expected: &'static str) -> ConfigError {
    ConfigError::WrongType { key: key.into(), found: "of another type", expected }
}

/// The types dockerd expects for the keys berth reads or writes; a wrong one is refused, since
/// merging into it would either fail or hide the mistake.
pub fn check(map: &Map<String, Value>) -> Result<(), ConfigError> {
    let expect = |key: &str, ok: fn(&Value) -> bool, expected: &'static str| match map.get(key) {
        Some(v) if !ok(v) => Err(ConfigError::WrongType { key: key.into(), found: type_name(v), expected }),
        _ => Ok(()),
    };
    expect("data-root", Value::is_string, "a string (a folder)")?;
    expect(
        "registry-mirrors",
        |v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "a list of URLs",
    )?;
    expect(
        "runtimes",
        |v| v.as_object().is_some_and(|m| m.values().all(Value::is_object)),
        "an object of runtimes",
    )?;
    expect(
        "features",
        |v| v.as_object().is_some_and(|m| m.values().all(Value::is_boolean)),
        "an object of true/false flags",
    )?;
    expect("live-restore", Value::is_boolean, "true or false")?;
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn validate_data_root(path: &str) -> Result<String, ConfigError> {
    let trimmed = path.trim_end_matches('/');
    if !path.starts_with('/') || trimmed.is_empty() {
        return Err(ConfigError::BadValue(format!(
            "--data-root must be an absolute folder other than /, not `{path}`"
        )));
    }
    Ok(trimmed.to_string())
}

/// dockerd accepts `http(s)://host[:port]` with no path, query or credentials.
fn validate_mirror(url: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        ConfigError::BadValue(format!("--registry-mirror `{url}`: {why} (e.g. https://mirror.example.com)"))
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with https:// or http://"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if host.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad("must be a bare host and port, without a path, query or credentials"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests;
