//! Published ports as a user reaches them: container port → host address and port → URL, the
//! one `ssh -L` line a laptop needs for all of them, and the record that keeps berth's chosen
//! host ports across `down` and `up`.
//!
//! The host port of a bare `ports = ["8888"]` is chosen when the container is created
//! ([`assign`]), never in the plan or an export: the plan stays the same on every machine.

pub mod assign;
pub mod url;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::engine::{Container, Engine};
use crate::environment::Project;
use crate::error::{Code, fail};
use crate::plan::sh_quote;

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: String,
    pub host_port: u16,
    /// `http://127.0.0.1:24567/` (TCP only); through `berth ports --ssh` a laptop uses the same.
    pub url: Option<String>,
}

/// The container's published ports, by container port. From the bindings it was created with
/// (so a stopped environment lists them too), with the engine's live view for a binding whose
/// host port the engine picked.
pub fn published(c: &Container) -> Vec<Published> {
    let mut out: Vec<Published> = c
        .port_bindings
        .iter()
        .filter_map(|b| {
            let (port, protocol) = b.inside.split_once('/').unwrap_or((b.inside.as_str(), "tcp"));
            let container_port = port.parse::<u16>().ok()?;
            let host_port = b.host_port.parse::<u16>().ok().or_else(|| {
                c.ports
                    .iter()
                    .find(|p| p.inside == b.inside && (b.host_ip.is_empty() || p.host_ip == b.host_ip))
                    .and_then(|p| p.host_port.parse().ok())
            })?;
            let host_ip = if b.host_ip.is_empty() { "0.0.0.0".to_string() } else { b.host_ip.clone() };
            let url = (protocol == "tcp").then(|| format!("http://{}:{host_port}/", url::url_host(&host_ip)));
            Some(Published { container_port, protocol: protocol.to_string(), host_ip, host_port, url })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.container_port, &a.protocol, &a.host_ip).cmp(&(b.container_port, &b.protocol, &b.host_ip))
    });
    out.dedup();
    out
}

/// The project's environment and what it publishes; an error when it does not exist.
pub async fn of_environment(
    project: &Project,
    engine: &Engine,
) -> anyhow::Result<(Container, Vec<Published>)> {
    let Some(c) = project.environment(engine).await? else {
        return Err(fail(
            Code::BadInput,
            format!("{} does not exist; it publishes no ports", project.container),
            "`berth up` creates it",
        ));
    };
    let list = published(&c);
    Ok((c, list))
}

/// From the container's `/proc/net/tcp` and `tcp6`: whether the sockets listening on
/// `port` all listen on a loopback address only (a published port cannot reach those: Jupyter
/// and TensorBoard do so by default). `None` when nothing listens on it.
pub fn loopback_only(proc_net: &str, port: u16) -> Option<bool> {
    let want = format!("{port:04X}");
    let mut found = None;
    for line in proc_net.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `sl local_address rem_address st …`; 0A is LISTEN.
        let (Some(local), Some("0A")) = (fields.get(1), fields.get(3).copied()) else { continue };
        let Some((addr, p)) = local.split_once(':') else { continue };
        if !p.eq_ignore_ascii_case(&want) {
            continue;
        }
        // Little-endian words: 127.x.x.x is `..7F`, ::1 is `…01000000`, ::ffff:127.x `FFFF0000…7F`.
        let addr = addr.to_ascii_uppercase();
        let loopback = match addr.len() {
            8 => addr.ends_with("7F"),
            32 => {
                addr == "00000000000000000000000001000000"
                    || (&addr[16..24] == "FFFF0000" && addr.ends_with("7F"))
            }
            _ => false,
        };
        found = Some(found.unwrap_or(true) && loopback);
    }
    found
}

/// An ssh destination as given to `--ssh`: `[user@]host` or `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub target: String,
    pub port: Option<u16>,
}

impl Destination {
    pub fn parse(text: &str) -> anyhow::Result<Destination> {
        let bad = |why: &str| {
            fail(
                Code::BadInput,
                format!("`{}` is not an ssh destination: {why}", crate::output::escape(text)),
                "write it as user@server (or ssh://user@server:2222), as you would after `ssh`",
            )
        };
        let (target, port) = match text.strip_prefix("ssh://") {
            Some(rest) => {
                let rest = rest.trim_end_matches('/');
                match rest.rsplit_once(':') {
                    Some((t, p)) if !rest.ends_with(']') => {
                        let port = p
                            .parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| bad("the port is not a number"))?;
                        (t.to_string(), Some(port))
                    }
                    _ => (rest.to_string(), None),
                }
            }
            None => (text.to_string(), None),
        };
        if target.is_empty() || target.ends_with('@') {
            return Err(bad("it names no server"));
        }
        if target.starts_with('-') {
            return Err(bad("it starts with `-`, which ssh reads as an option"));
        }
        if target.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '\'' | '"')) {
            return Err(bad("it holds a space, a quote, a slash or a control character"));
        }
        Ok(Destination { target, port })
    }
}

/// The ssh command a laptop runs to reach every TCP port here at the same port on its own
/// 127.0.0.1 (so the URLs `berth ports` prints work there unchanged). UDP cannot be forwarded
/// by `ssh -L`; `None` when nothing is left to forward.
pub fn ssh_forward(published: &[Published], dest: &Destination) -> Option<Vec<String>> {
    let mut argv = vec!["ssh".to_string(), "-N".to_string()];
    if let Some(p) = dest.port {
        argv.extend(["-p".to_string(), p.to_string()]);
    }
    let mut any = false;
    let mut seen = std::collections::BTreeSet::new();
    for p in published.iter().filter(|p| p.protocol == "tcp") {
        if !seen.insert(p.host_port) {
            continue;
        }
        any = true;
        argv.push("-L".into());
        argv.push(format!("127.0.0.1:{0}:{1}:{0}", p.host_port, url::url_host(&p.host_ip)));
    }
    argv.push(dest.target.clone());
    any.then_some(argv)
}

/// `argv` as one line for a POSIX shell.
pub fn command_line(argv: &[String]) -> String {
    argv.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
}

/// The host ports berth chose at the last create, by [`assign::key`] (`.berth/ports.json`).
///
/// Only ports of [`assign::RANGE`] are believed: `.berth` is mounted into the container, so
/// whatever runs inside can rewrite the record, and must not make the next create listen on the
/// host's port 22, 80 or 5432 (a port nothing holds yet is "free"). A port outside the range
/// that berth gave (the kernel's pick when the whole range was held) is then simply chosen anew.
pub fn read_record(project_dir: &Path) -> BTreeMap<String, u16> {
    let record: BTreeMap<String, u16> = std::fs::read(crate::state::ports_record(project_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    record.into_iter().filter(|(_, port)| assign::RANGE.contains(port)).collect()
}

/// Remember the host ports `c` was created with (private to the user, like the rest of `.berth`).
pub fn write_record(project_dir: &Path, c: &Container) -> anyhow::Result<()> {
    let record: BTreeMap<String, u16> = published(c)
        .iter()
        .map(|p| (assign::key(&p.host_ip, p.container_port, &p.protocol), p.host_port))
        .collect();
    let path = crate::state::ports_record(project_dir);
    crate::fsutil::write_atomic(&path, serde_json::to_string_pretty(&record)?.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PublishedPort;

    fn bind(inside: &str, ip: &str, port: &str) -> PublishedPort {
        PublishedPort { inside: inside.into(), host_ip: ip.into(), host_port: port.into() }
    }

    #[test]
    fn published_reads_bindings_even_when_stopped_and_live_ports_for_engine_picked_ones() {
        let c = Container {
            port_bindings: vec![
                bind("8888/tcp", "127.0.0.1", "24567"),
                bind("53/udp", "127.0.0.1", ""),
                bind("6006/tcp", "::1", "21000"),
            ],
            ports: vec![bind("53/udp", "127.0.0.1", "40000")],
            ..Default::default()
        };
        let p = published(&c);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].container_port, p[0].host_port, p[0].url.as_deref()), (53, 40000, None));
        assert_eq!(p[1].url.as_deref(), Some("http://[::1]:21000/"));
        assert_eq!(p[2].url.as_deref(), Some("http://127.0.0.1:24567/"));
        let line = command_line(
            &ssh_forward(&p, &Destination::parse("ada@gpu1").expect("test input")).expect("test input"),
        );
        assert_eq!(
            line,
            "ssh -N -L '127.0.0.1:21000:[::1]:21000' -L 127.0.0.1:24567:127.0.0.1:24567 ada@gpu1"
        );
        let only_udp = &p[..1];
        assert_eq!(ssh_forward(only_udp, &Destination::parse("gpu1").expect("test input")), None);
    }

    #[test]
    fn a_record_rewritten_inside_cannot_ask_for_a_port_outside_berths_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".berth")).expect("mkdir");
        std::fs::write(
            crate::state::ports_record(dir.path()),
            r#"{"127.0.0.1:8888/tcp": 22, "127.0.0.1:6006/tcp": 24000, "127.0.0.1:80/tcp": 0,
                "127.0.0.1:9000/tcp": 40000}"#,
        )
        .expect("write");
        let record = read_record(dir.path());
        assert_eq!(record.into_iter().collect::<Vec<_>>(), [("127.0.0.1:6006/tcp".to_string(), 24000)]);
        std::fs::write(crate::state::ports_record(dir.path()), "not json").expect("write");
        assert!(read_record(dir.path()).is_empty());
    }

    #[test]
    fn loopback_only_listeners_are_told_apart() {
        let head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        let jupyter_default = format!(
            "{head}   0: 0100007F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n"
        );
        assert_eq!(loopback_only(&jupyter_default, 8888), Some(true));
        let all = format!(
            "{head}   0: 00000000:22B8 00000000:0000 0A 0 0 0 0 0 0 1\n   1: 0100007F:22B8 0100007F:9C40 01 0\n"
        );
        assert_eq!(loopback_only(&all, 8888), Some(false));
        let v6 = "   0: 00000000000000000000000001000000:1776 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(loopback_only(v6, 6006), Some(true));
        let v6_any =
            "   0: 00000000000000000000000000000000:1776 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(loopback_only(v6_any, 6006), Some(false));
        assert_eq!(loopback_only(&jupyter_default, 6006), None);
    }

    #[test]
    fn destinations() {
        assert_eq!(
            Destination::parse("ada@gpu1").expect("test input"),
            Destination { target: "ada@gpu1".into(), port: None }
        );
        assert_eq!(
            Destination::parse("ssh://ada@127.0.0.1:2222").expect("test input"),
            Destination { target: "ada@127.0.0.1".into(), port: Some(2222) }
        );
        assert_eq!(Destination::parse("ssh://gpu1/").expect("test input").port, None);
        for bad in ["", "ada@", "-oProxyCommand=x", "a b", "ssh://h:x", "ssh://h:0", "a'b", "a\u{1b}b"] {
            assert!(Destination::parse(bad).is_err(), "{bad:?}");
        }
    }
}
