//! `[env]` and `[run]`: the tables whose keys or values come from open-ended sets (variable
//! names, capabilities, device paths, ulimit names), each checked against what Docker accepts.
//!
//! Invariants: `{ from-host = true }` becomes a name only (the value is read at start, never
//! stored); capabilities are stored without the `CAP_` prefix; every `[run]` option is an
//! explicit opt-in, so an absent key stays `None` / empty.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::loose::Loose;
use super::{Ctx, one_of};
use crate::spec::error::suggest;
use crate::spec::{EnvValue, EnvVar, RunOptions, SpecError};

const IPC_MODES: [&str; 4] = ["host", "private", "shareable", "none"];
/// Docker's `--ulimit` names.
const ULIMITS: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];
/// Linux capabilities (capabilities(7)), without `CAP_`.
const CAPABILITIES: [&str; 41] = [
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];
const FROM_HOST: &str = "from-host";
const ENV_HINT: &str = "write `KEY = \"value\"`, or `KEY = { from-host = true }` to pass berth's \
                        own value at start";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawRun {
    ipc: Option<Spanned<String>>,
    network: Option<Spanned<String>>,
    #[serde(default)]
    cap_add: Vec<Spanned<String>>,
    #[serde(default)]
    devices: Vec<Spanned<String>>,
    #[serde(default)]
    ulimits: BTreeMap<Spanned<String>, Spanned<i64>>,
}

pub(super) fn env(
    raw: &BTreeMap<Spanned<String>, Spanned<Loose>>,
    cx: &Ctx,
) -> Result<Vec<EnvVar>, SpecError> {
    let mut out = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let key = format!("env.{}", name.get_ref());
        if !is_env_name(name.get_ref()) {
            let msg = format!("`{}` is not a valid variable name", name.get_ref());
            return Err(cx
                .err(name.span(), key, msg)
                .with_hint("names are letters, digits and `_`, not starting with a digit"));
        }
        let value = match value.get_ref() {
            Loose::Str(s) if s.contains('\0') => {
                return Err(cx.err(value.span(), key, "the value contains a NUL character"));
            }
            Loose::Str(s) => EnvValue::Literal(s.clone()),
            Loose::Table(entries) => from_host(entries, value.span(), &key, cx)?,
            other => {
                let msg = format!("expected a string or `{{ from-host = true }}`, found {}", other.kind());
                return Err(cx.err(value.span(), key, msg).with_hint(ENV_HINT));
            }
        };
        out.push(EnvVar { key: name.get_ref().clone(), value });
    }
    Ok(out)
}

/// `{ from-host = true }` and nothing else.
fn from_host(
    entries: &[(String, Spanned<Loose>)],
    span: std::ops::Range<usize>,
    key: &str,
    cx: &Ctx,
) -> Result<EnvValue, SpecError> {
    // Point at the stray entry's value: the key's own span is not kept.
    if let Some((k, v)) = entries.iter().find(|(k, _)| k != FROM_HOST) {
        let msg = format!("only `from-host = true` may appear here, not `{k}`");
        return Err(cx.err(v.span(), key, msg).with_hint(ENV_HINT));
    }
    // TOML forbids duplicate keys, so what is left is one `from-host` or nothing.
    let Some((_, v)) = entries.first() else {
        return Err(cx.err(span, key, "the table is empty").with_hint(ENV_HINT));
    };
    match v.get_ref() {
        Loose::Bool(true) => Ok(EnvValue::FromHost),
        Loose::Bool(false) => Err(cx
            .err(v.span(), key, "`from-host = false` means nothing")
            .with_hint("remove the variable, or give it a value as a string")),
        other => {
            let msg = format!("`from-host` must be `true`, found {}", other.kind());
            Err(cx.err(v.span(), key, msg).with_hint(ENV_HINT))
        }
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn run(raw: &RawRun, cx: &Ctx) -> Result<RunOptions, SpecError> {
    let ipc = match &raw.ipc {
        Some(v) if !IPC_MODES.contains(&v.get_ref().as_str()) => {
            return Err(one_of(cx, v.span(), "run.ipc", v.get_ref(), &IPC_MODES));
        }
        v => v.as_ref().map(|v| v.get_ref().clone()),
    };
    let network = match &raw.network {
        Some(v) if !is_network(v.get_ref()) => {
            let msg = format!("`{}` is not \"host\", \"bridge\", \"none\" or a network name", v.get_ref());
            return Err(cx.err(v.span(), "run.network", msg).with_hint(
                "network names are letters, digits, `_`, `.` and `-`; sharing another \
                 container's network is not supported",
            ));
        }
        v => v.as_ref().map(|v| v.get_ref().clone()),
    };
    let mut cap_add: Vec<String> = Vec::new();
    for (i, cap) in raw.cap_add.iter().enumerate() {
        let key = format!("run.cap-add[{i}]");
        let name = capability(cap.get_ref()).map_err(|(m, h)| {
            let e = cx.err(cap.span(), key.clone(), m);
            if let Some(h) = h { e.with_hint(h) } else { e }
        })?;
        if cap_add.contains(&name) {
            return Err(cx.err(cap.span(), key, format!("`{name}` is listed twice")));
        }
        cap_add.push(name);
    }
    let mut devices: Vec<String> = Vec::new();
    for (i, dev) in raw.devices.iter().enumerate() {
        let key = format!("run.devices[{i}]");
        if let Err(m) = check_device(dev.get_ref()) {
            return Err(cx
                .err(dev.span(), key, m)
                .with_hint("write a device as \"/dev/x\", \"/dev/x:/dev/y\" or \"/dev/x:/dev/y:rw\""));
        }
        if devices.contains(dev.get_ref()) {
            return Err(cx.err(dev.span(), key, format!("`{}` is listed twice", dev.get_ref())));
        }
        devices.push(dev.get_ref().clone());
    }
    let mut ulimits = BTreeMap::new();
    for (name, value) in &raw.ulimits {
        let key = format!("run.ulimits.{}", name.get_ref());
        if !ULIMITS.contains(&name.get_ref().as_str()) {
            let hint = match suggest(name.get_ref(), &ULIMITS) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("known limits: {}", ULIMITS.join(", ")),
            };
            let msg = format!("`{}` is not a ulimit name", name.get_ref());
            return Err(cx.err(name.span(), key, msg).with_hint(hint));
        }
        if *value.get_ref() < -1 {
            let msg = format!("{} is not a limit; use -1 (unlimited) or a number ≥ 0", value.get_ref());
            return Err(cx.err(value.span(), key, msg));
        }
        ulimits.insert(name.get_ref().clone(), *value.get_ref());
    }
    Ok(RunOptions { ipc, network, cap_add, devices, ulimits })
}

fn is_network(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The capability's name without `CAP_`, or a message and maybe a hint.
fn capability(raw: &str) -> Result<String, (String, Option<String>)> {
    let name = raw.strip_prefix("CAP_").unwrap_or(raw);
    if name == "ALL" {
        let msg = "`ALL` would give the container every capability".to_string();
        return Err((msg, Some("list only the capabilities you need, like \"SYS_PTRACE\"".into())));
    }
    if CAPABILITIES.contains(&name) {
        return Ok(name.to_string());
    }
    let upper = name.to_ascii_uppercase();
    let upper = upper.strip_prefix("CAP_").unwrap_or(&upper);
    let hint = if CAPABILITIES.contains(&upper) {
        Some(format!("capability names are uppercase: \"{upper}\""))
    } else {
        suggest(upper, &CAPABILITIES).map(|near| format!("did you mean \"{near}\"?"))
    };
    Err((format!("`{raw}` is not a Linux capability"), hint))
}

/// `/dev/x[:/dev/y][:perms]` with perms a non-empty subset of `rwm`.
fn check_device(text: &str) -> Result<(), String> {
    let is_dev = |p: &str| p.len() > "/dev/".len() && p.starts_with("/dev/");
    let is_perms = |p: &str| {
        !p.is_empty()
            && p.chars().all(|c| "rwm".contains(c))
            && p.chars().enumerate().all(|(i, c)| !p[i + 1..].contains(c))
    };
    let parts: Vec<&str> = text.split(':').collect();
    let ok = match parts[..] {
        [host] => is_dev(host),
        [host, second] => is_dev(host) && (is_dev(second) || is_perms(second)),
        [host, inner, perms] => is_dev(host) && is_dev(inner) && is_perms(perms),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{text}` is not a device path (`/dev/...`) with optional target and `rwm` permissions"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse::tests::{err, parse_in};

    #[test]
    fn env_takes_strings_and_from_host() {
        let (_, spec) = parse_in("[env]\nPYTHONUNBUFFERED = \"1\"\nHF_TOKEN = { from-host = true }\n_X = ''");
        let vars: Vec<(&str, &EnvValue)> = spec.env.iter().map(|v| (v.key.as_str(), &v.value)).collect();
        assert_eq!(
            vars,
            [
                ("HF_TOKEN", &EnvValue::FromHost),
                ("PYTHONUNBUFFERED", &EnvValue::Literal("1".into())),
                ("_X", &EnvValue::Literal(String::new())),
            ]
        );
    }

    #[test]
    fn env_mistakes_point_at_the_entry() {
        let cases = [
            ("[env]\n\"1X\" = 'a'", (2, 1), "not a valid variable name"),
            ("[env]\n\"A-B\" = 'a'", (2, 1), "not a valid variable name"),
            ("[env]\nA = \"x\\u0000y\"", (2, 5), "NUL"),
            ("[env]\nA = { from-host = false }", (2, 19), "from-host = false"),
            ("[env]\nA = { from-host = 1 }", (2, 19), "must be `true`"),
            ("[env]\nA = { from_host = true }", (2, 19), "not `from_host`"),
            ("[env]\nA = { from-host = true, x = 1 }", (2, 29), "not `x`"),
            ("[env]\nA = {}", (2, 5), "empty"),
            ("[env]\nA = 1", (2, 5), "found an integer"),
        ];
        for (text, at, want) in cases {
            let e = err(text);
            assert_eq!((e.line, e.column), at, "{text}: {e}");
            assert!(e.message.contains(want), "{text}: {e}");
            assert!(e.key.as_deref().is_some_and(|k| k.starts_with("env.")), "{e:?}");
        }
    }

    #[test]
    fn run_options_are_validated_and_normalised() {
        let text = "[run]\nipc = 'host'\nnetwork = 'my-net'\ncap-add = ['SYS_PTRACE', 'CAP_IPC_LOCK']\n\
                    devices = ['/dev/infiniband', '/dev/fuse:/dev/fuse:rwm', '/dev/a:r']\n\
                    ulimits = { memlock = -1, stack = 67108864 }";
        let (_, spec) = parse_in(text);
        let run = spec.run;
        assert_eq!(run.ipc.as_deref(), Some("host"));
        assert_eq!(run.network.as_deref(), Some("my-net"));
        assert_eq!(run.cap_add, ["SYS_PTRACE", "IPC_LOCK"]);
        assert_eq!(run.devices.len(), 3);
        assert_eq!(run.ulimits.get("memlock"), Some(&-1));
        assert_eq!(run.ulimits.get("stack"), Some(&67_108_864));
    }

    #[test]
    fn run_mistakes_are_refused() {
        let cases = [
            ("[run]\nipc = 'hots'", "did you mean \"host\"?"),
            ("[run]\nnetwork = 'container:x'", ""),
            ("[run]\ncap-add = ['sys_ptrace']", "uppercase: \"SYS_PTRACE\""),
            ("[run]\ncap-add = ['SYS_PTRAC']", "did you mean \"SYS_PTRACE\"?"),
            ("[run]\ncap-add = ['ALL']", "only the capabilities"),
            ("[run]\ncap-add = ['NET_RAW', 'CAP_NET_RAW']", ""),
            ("[run]\ndevices = ['/tmp/x']", ""),
            ("[run]\ndevices = ['/dev/x:rwx']", ""),
            ("[run]\ndevices = ['/dev/x:/dev/y:rr']", ""),
            ("[run]\nulimits = { nofiles = 1 }", "did you mean `nofile`?"),
            ("[run]\nulimits = { stack = -2 }", ""),
        ];
        for (text, hint) in cases {
            let e = err(text);
            assert_eq!(e.line, 2, "{text}: {e}");
            assert!(e.key.as_deref().is_some_and(|k| k.starts_with("run.")), "{e:?}");
            assert!(e.hint().unwrap_or_default().contains(hint), "{text}: {:?}", e.hint());
        }
    }
}
