//! Which berth runs on the server: one of this same version on its PATH first, else the copy
//! in the ssh user's home (`~/.local/share/berth/bin/berth-<version>`). When neither is there,
//! berth offers to copy itself — only to a server of the same OS and architecture whose C
//! library is at least as new as the one this binary needs; otherwise it says what to
//! install. No root, no daemon: one file in the user's home. Only asked when a call found no
//! berth of this version where the last one was ([`super::call`]); the answer is remembered.

use std::io::{Read, Write};
use std::process::Stdio;

use anyhow::Context as _;

use super::session::Session;
use crate::error::{Code, fail};
use crate::output::{self, Printer};
use crate::spec::size::format_size;
use crate::ssh::sh_quote;

/// Under the ssh user's home on the server.
pub const INSTALL_DIR: &str = ".local/share/berth/bin";

/// What `berth --version` prints for this build.
pub fn version_line() -> String {
    format!("berth {}", env!("CARGO_PKG_VERSION"))
}

fn install_name() -> String {
    format!("berth-{}", env!("CARGO_PKG_VERSION"))
}

/// One round trip: the system, its C library, and the berths there with their versions.
pub fn probe_script() -> String {
    format!(
        r#"echo "UNAME $(uname -sm)"
echo "LIBC $(getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>&1 | head -n 1)"
for c in "$(command -v berth 2>/dev/null)" "$HOME/{INSTALL_DIR}/{name}"; do
  if [ -n "$c" ] && [ -x "$c" ]; then printf 'BERTH\t%s\t%s\n' "$c" "$("$c" --version 2>/dev/null | head -n 1)"; fi
done
true
"#,
        name = install_name()
    )
}

/// What the server said about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFacts {
    /// `uname -sm`, e.g. `Linux x86_64`.
    pub system: String,
    /// The glibc version, when the C library is glibc.
    pub glibc: Option<(u32, u32)>,
    /// What the C library check printed.
    pub libc_text: String,
    /// Executable berths found: path and what `--version` printed.
    pub berths: Vec<(String, String)>,
}

pub fn parse_probe(text: &str) -> ServerFacts {
    let mut facts = ServerFacts::default();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("UNAME ") {
            facts.system = s.trim().to_string();
        } else if let Some(s) = line.strip_prefix("LIBC ") {
            facts.libc_text = s.trim().to_string();
            let lower = s.to_ascii_lowercase();
            if lower.contains("glibc") || lower.contains("gnu libc") {
                facts.glibc = s.split_whitespace().last().and_then(parse_version);
            }
        } else if let Some(s) = line.strip_prefix("BERTH\t") {
            let mut parts = s.splitn(2, '\t');
            let path = parts.next().unwrap_or_default().to_string();
            let version = parts.next().unwrap_or_default().trim().to_string();
            facts.berths.push((path, version));
        }
    }
    facts
}

/// `2.36` or `2.36-9+deb12u4` → (2, 36).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// This binary: its system in `uname -sm` words and the newest glibc symbol version it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub system: String,
    pub glibc: Option<(u32, u32)>,
}

impl Local {
    pub fn this_binary() -> Local {
        let os = match std::env::consts::OS {
            "linux" => "Linux",
            "macos" => "Darwin",
            other => other,
        };
        let glibc = if cfg!(target_env = "gnu") {
            std::env::current_exe().ok().and_then(|p| std::fs::read(p).ok()).and_then(|b| newest_glibc(&b))
        } else {
            None
        };
        Local { system: format!("{os} {}", std::env::consts::ARCH), glibc }
    }
}

/// The newest `GLIBC_2.N` version named in an executable (its symbol version needs).
pub fn newest_glibc(binary: &[u8]) -> Option<(u32, u32)> {
    let needle = b"GLIBC_";
    let mut best = None;
    let mut i = 0;
    while let Some(at) = binary[i..].windows(needle.len()).position(|w| w == needle) {
        let start = i + at + needle.len();
        let end = binary[start..]
            .iter()
            .position(|c| !(c.is_ascii_digit() || *c == b'.'))
            .map_or(binary.len(), |n| start + n);
        if let Some(v) = std::str::from_utf8(&binary[start..end]).ok().and_then(parse_version) {
            best = best.max(Some(v));
        }
        i = end.max(start);
    }
    best
}

fn normalize(system: &str) -> String {
    system.replace("amd64", "x86_64").replace("arm64", "aarch64")
}

/// What to do about berth on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A berth of this version is there.
    Use(String),
    /// None is; this binary can run there.
    Copy { found: Vec<(String, String)> },
    /// None is, and this binary cannot run there: what to say.
    Install { why: String },
}

pub fn decide(facts: &ServerFacts, local: &Local) -> Decision {
    let want = version_line();
    if let Some((path, _)) = facts.berths.iter().find(|(_, v)| *v == want) {
        return Decision::Use(path.clone());
    }
    if normalize(&facts.system) != normalize(&local.system) {
        return Decision::Install {
            why: format!(
                "the server runs {}; this berth is built for {}",
                if facts.system.is_empty() { "an unknown system" } else { &facts.system },
                local.system
            ),
        };
    }
    if let Some(need) = local.glibc {
        match facts.glibc {
            Some(have) if have >= need => {}
            Some(have) => {
                return Decision::Install {
                    why: format!(
                        "the server's C library is glibc {}.{}; this berth needs glibc {}.{} or newer",
                        have.0, have.1, need.0, need.1
                    ),
                };
            }
            None => {
                return Decision::Install {
                    why: format!(
                        "the server's C library is not glibc ({}); this berth needs glibc {}.{} or newer",
                        if facts.libc_text.is_empty() { "unknown" } else { &facts.libc_text },
                        need.0,
                        need.1
                    ),
                };
            }
        }
    }
    Decision::Copy { found: facts.berths.clone() }
}

/// The path of a berth of this version on the server, copying this one there when allowed.
/// `failed` are berths there that did not answer as this one (one may still claim this version:
/// an older build of it): they are passed over.
/// Returns the path, and whether this berth was just copied there.
pub fn ensure(
    session: &Session,
    out: &Printer,
    yes: bool,
    failed: &[String],
) -> anyhow::Result<(String, bool)> {
    let probe = session.run(&probe_script(), "looking for berth")?;
    let mut facts = parse_probe(&String::from_utf8_lossy(&probe.stdout));
    for (path, version) in &mut facts.berths {
        if failed.contains(path) {
            version.push_str(" (another build: it does not answer as this one)");
        }
    }
    // Reading this binary (for its C library needs) is only worth it when berth is missing there.
    let wanted = facts.berths.iter().find(|(_, v)| *v == version_line()).map(|(p, _)| p.clone());
    let local =
        if wanted.is_some() { Local { system: String::new(), glibc: None } } else { Local::this_binary() };
    let path = match wanted.map(Decision::Use).unwrap_or_else(|| decide(&facts, &local)) {
        Decision::Use(path) => (path, false),
        Decision::Install { why } => {
            return Err(fail(
                Code::Refused,
                format!(
                    "{} has no {} and this binary cannot run there: {why}",
                    session.label,
                    version_line()
                ),
                format!(
                    "install berth {v} there (built for that server) on its PATH or as ~/{INSTALL_DIR}/{n}, \
                     then run the command again",
                    v = env!("CARGO_PKG_VERSION"),
                    n = install_name()
                ),
            ));
        }
        Decision::Copy { found } => {
            let exe = std::env::current_exe().context("finding this berth's own file")?;
            let size = std::fs::metadata(&exe).map(|m| m.len()).unwrap_or(0);
            let what = if found.is_empty() {
                "no berth".to_string()
            } else {
                let seen: Vec<String> = found.iter().map(|(p, v)| format!("{p}: {v}")).collect();
                format!("another berth ({})", seen.join(", "))
            };
            let target = format!("~/{INSTALL_DIR}/{}", install_name());
            let question = format!(
                "{} has {what}. Copy this berth ({}, {}, {}) to {target} there? (no root; nothing runs in the background)",
                session.label,
                version_line(),
                local.system,
                format_size(size)
            );
            if !yes {
                match out.confirm(&question) {
                    Some(true) => {}
                    Some(false) => {
                        return Err(fail(
                            Code::Refused,
                            "berth was not copied; nothing changed",
                            "install berth there yourself, or answer y",
                        ));
                    }
                    None => {
                        return Err(fail(
                            Code::Refused,
                            format!(
                                "{} has {what}, and there is no terminal to ask whether to copy this berth to {target} there",
                                session.label
                            ),
                            "add --yes (berth --on NAME --yes ...) to copy it, or install berth there yourself",
                        ));
                    }
                }
            }
            (copy(session, out, &exe, size)?, true)
        }
    };
    Ok(path)
}

/// Stream this binary into the user's home there, check that it runs, then move it in place.
fn copy(session: &Session, out: &Printer, exe: &std::path::Path, size: u64) -> anyhow::Result<String> {
    let name = install_name();
    let want = version_line();
    let script = format!(
        r#"set -e
d="$HOME/{INSTALL_DIR}"
mkdir -p "$d"
t="$d/.{name}.tmp.$$"
trap 'rm -f "$t"' EXIT
cat > "$t"
chmod 755 "$t"
v=$("$t" --version 2>&1 | head -n 1)
if [ "$v" != {want} ]; then echo "the copy does not run there; it says: $v" >&2; exit 1; fi
mv -f "$t" "$d/{name}"
trap - EXIT
printf '%s\n' "$d/{name}"
"#,
        want = sh_quote(&want)
    );
    out.status(format!("copying {want} to {}", session.label));
    let mut child = session
        .command(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the system ssh")?;
    let bar = output::bytes(out, size, "copying berth");
    let mut file = std::fs::File::open(exe).with_context(|| format!("reading {}", exe.display()))?;
    let mut stdin = child.stdin.take().context("ssh's stdin")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut sent = Ok(());
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", exe.display()))?;
        if n == 0 {
            break;
        }
        if let Err(e) = stdin.write_all(&buf[..n]) {
            sent = Err(e);
            break;
        }
        output::advance(&bar, n as u64);
    }
    drop(stdin);
    bar.finish_and_clear();
    let done = child.wait_with_output()?;
    if !done.status.success() || sent.is_err() {
        return Err(session.failure("copying berth", &done));
    }
    let path = String::from_utf8_lossy(&done.stdout).trim().to_string();
    out.status(format!("copied {want} to {path} on {}", session.label));
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(system: &str, libc: &str, berths: &[(&str, &str)]) -> ServerFacts {
        let mut text = format!("UNAME {system}\nLIBC {libc}\n");
        for (p, v) in berths {
            text.push_str(&format!("BERTH\t{p}\t{v}\n"));
        }
        parse_probe(&text)
    }

    fn local() -> Local {
        Local { system: "Linux x86_64".into(), glibc: Some((2, 34)) }
    }

    #[test]
    fn a_matching_berth_is_used_first() {
        let f = facts(
            "Linux x86_64",
            "glibc 2.36",
            &[("/usr/bin/berth", &version_line()), ("/h/x", "berth 0.0.1")],
        );
        assert_eq!(decide(&f, &local()), Decision::Use("/usr/bin/berth".into()));
    }

    #[test]
    fn another_version_or_none_is_a_copy_when_it_can_run() {
        let f = facts(
            "Linux x86_64",
            "ldd (Debian GLIBC 2.36-9+deb12u4) 2.36",
            &[("/usr/bin/berth", "berth 0.0.1")],
        );
        assert_eq!(f.glibc, Some((2, 36)));
        assert!(matches!(decide(&f, &local()), Decision::Copy { found } if found.len() == 1));
        let same = facts("Linux x86_64", "glibc 2.34", &[]);
        assert!(matches!(decide(&same, &local()), Decision::Copy { .. }));
    }

    #[test]
    fn another_system_or_an_older_c_library_says_what_to_install() {
        let arm = facts("Linux aarch64", "glibc 2.36", &[]);
        assert!(matches!(decide(&arm, &local()), Decision::Install { why } if why.contains("Linux aarch64")));
        let old = facts("Linux x86_64", "glibc 2.28", &[]);
        assert!(
            matches!(decide(&old, &local()), Decision::Install { why } if why.contains("glibc 2.28") && why.contains("2.34"))
        );
        let musl = facts("Linux x86_64", "musl libc (x86_64)", &[]);
        assert!(matches!(decide(&musl, &local()), Decision::Install { why } if why.contains("not glibc")));
        let static_local = Local { glibc: None, ..local() };
        assert!(matches!(decide(&musl, &static_local), Decision::Copy { .. }));
    }

    #[test]
    fn the_newest_glibc_named_in_a_binary() {
        let bin = b"\0GLIBC_2.2.5\0GLIBC_2.34\0xGLIBC_2.17\0GLIBC_PRIVATE\0";
        assert_eq!(newest_glibc(bin), Some((2, 34)));
        assert_eq!(newest_glibc(b"nothing"), None);
        if cfg!(target_env = "gnu") {
            assert!(Local::this_binary().glibc.is_some());
        }
    }
}
