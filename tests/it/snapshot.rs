//! Whole-output assertions, as uv's `uv_snapshot!` does: a berth run is shown as its exit code,
//! stdout and stderr, with what differs between runs (temporary folders, ids and hashes, times)
//! redacted, and compared with a reviewed snapshot under `tests/it/snapshots/`
//! (`INSTA_UPDATE=always cargo test --test it cli_` rewrites them; review the diff).

use crate::support::{Run, TestEnv};

impl Run {
    /// The run as a snapshot: `exit: N`, then `--- stdout ---` and `--- stderr ---`, redacted.
    pub fn snapshot(&self, env: &TestEnv) -> String {
        let text =
            format!("exit: {}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr);
        redact(&text, env)
    }
}

/// Replaces the test's temporary root with `[ROOT]`, the caller's user name and uid:gid in
/// container names and plan lines with `[USER]` and `[UID]:[GID]`, runs of 8 or more hex digits (ids, path
/// hashes, digests) with `[HEX]`, and durations (`0.4 s`, `12 ms`, `3.1s`) with `[TIME]`.
pub fn redact(text: &str, env: &TestEnv) -> String {
    let mut text = text.to_string();
    let root = env.root.path();
    for path in [root.canonicalize().unwrap_or(root.to_path_buf()), root.to_path_buf()] {
        text = text.replace(&path.display().to_string(), "[ROOT]");
    }
    let id = |flag: &str| {
        let out = std::process::Command::new("id").arg(flag).output().expect("id");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (user, uid, gid) = match &env.as_user {
        Some((uid, gid, name)) => (name.clone(), uid.to_string(), gid.to_string()),
        None => (id("-un"), id("-u"), id("-g")),
    };
    text = text.replace(&format!("berth-{user}-"), "berth-[USER]-");
    text = text.replace(&format!("user {uid}:{gid}"), "user [UID]:[GID]");
    durations(&hex_runs(&text))
}

fn hex_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        let mut j = i;
        while j < chars.len() && chars[j].is_ascii_hexdigit() && !chars[j].is_ascii_uppercase() {
            j += 1;
        }
        let ends_word = j == chars.len() || !chars[j].is_ascii_alphanumeric();
        if starts_word && ends_word && j - i >= 8 && chars[i..j].iter().any(|c| c.is_ascii_digit()) {
            out.push_str("[HEX]");
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn durations(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !chars[i - 1].is_ascii_alphanumeric() && chars[i - 1] != '.';
        if starts_word && chars[i].is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                j += 1;
            }
            let mut k = j;
            if k < chars.len() && chars[k] == ' ' {
                k += 1;
            }
            let unit: String = chars[k..].iter().take_while(|c| c.is_alphabetic()).collect();
            if unit == "s" || unit == "ms" {
                out.push_str("[TIME]");
                i = k + unit.chars().count();
                continue;
            }
            out.extend(&chars[i..j]);
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}
