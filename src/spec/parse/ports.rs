//! `ports = ["8888", "9000:8888", "0.0.0.0:9000:8888/udp", "[::1]:9000:8888"]` into
//! [`PortSpec`]s.
//!
//! Invariants: ports are 1..=65535 (a missing host port means berth picks a free one when it
//! creates the container, never 0); the host address is a parsed IP, `127.0.0.1` unless the
//! entry names one, so nothing is published beyond the machine by default; the same host
//! address, port and protocol are never published twice.

use std::net::IpAddr;

use toml::Spanned;

use super::Ctx;
use crate::spec::{PortSpec, SpecError};

const FORM: &str = "write a port as \"8888\", \"9000:8888\" or \"127.0.0.1:9000:8888\", \
                    optionally ending in \"/udp\"";
const DEFAULT_HOST_IP: &str = "127.0.0.1";

pub(super) fn ports(raw: &[Spanned<String>], cx: &Ctx) -> Result<Vec<PortSpec>, SpecError> {
    let mut out: Vec<PortSpec> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let key = format!("ports[{i}]");
        let port =
            parse_port(entry.get_ref()).map_err(|m| cx.err(entry.span(), key.clone(), m).with_hint(FORM))?;
        let same = |p: &PortSpec| {
            p.host_ip == port.host_ip
                && p.protocol == port.protocol
                && match port.host_port {
                    Some(host) => p.host_port == Some(host),
                    None => p.host_port.is_none() && p.container_port == port.container_port,
                }
        };
        if let Some(first) = out.iter().position(same) {
            let msg = format!("`{}` publishes the same port as `ports[{first}]`", port.raw);
            return Err(cx.err(entry.span(), key, msg));
        }
        out.push(port);
    }
    Ok(out)
}

/// Parses one entry; the error is the message without the key.
fn parse_port(text: &str) -> Result<PortSpec, String> {
    let (body, protocol) = match text.rsplit_once('/') {
        Some((body, p @ ("tcp" | "udp"))) => (body, p),
        Some((_, p)) => return Err(format!("`{p}` is not a protocol; use `tcp` or `udp`")),
        None => (text, "tcp"),
    };
    let (ip, host, container) = if let Some(rest) = body.strip_prefix('[') {
        // `[v6]:host:container`, the only way an IPv6 address can be told from the ports.
        let (ip, rest) = rest.split_once(']').ok_or_else(|| format!("`{text}` has `[` without `]`"))?;
        let (host, container) = rest
            .strip_prefix(':')
            .and_then(|r| r.split_once(':'))
            .ok_or_else(|| format!("`{text}` needs `[ADDRESS]:HOST:CONTAINER`"))?;
        (Some(ip), host, container)
    } else {
        match body.split(':').collect::<Vec<_>>()[..] {
            [container] => (None, "", container),
            [host, container] => (None, host, container),
            [ip, host, container] => (Some(ip), host, container),
            _ => {
                return Err(format!(
                    "`{text}` has too many `:`; write an IPv6 address in brackets, \
                     like \"[::1]:9000:8888\""
                ));
            }
        }
    };
    let host_ip = match ip {
        None => DEFAULT_HOST_IP.to_string(),
        Some(ip) => ip.parse::<IpAddr>().map_err(|_| format!("`{ip}` is not an IP address"))?.to_string(),
    };
    let host_port = match host {
        // `ADDRESS::CONTAINER`: pinned address, host port picked by berth.
        "" if ip.is_some() || !body.contains(':') => None,
        "" => return Err(format!("`{text}` has an empty host port")),
        host => Some(port_number(host)?),
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port: port_number(container)?,
        protocol: protocol.to_string(),
        raw: text.to_string(),
    })
}

fn port_number(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
        let extra = if text.contains('-') { " (port ranges are not supported; list each port)" } else { "" };
        return Err(format!("`{text}` is not a port number{extra}"));
    }
    // All digits, so a failed parse means too large.
    match text.parse::<u16>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("port {text} is out of range (1-65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse::tests::{err, parse_in};

    fn port(text: &str) -> (String, Option<u16>, u16, String) {
        let p = parse_port(text).expect(text);
        assert_eq!(p.raw, text);
        (p.host_ip, p.host_port, p.container_port, p.protocol)
    }

    #[test]
    fn accepts_docker_forms_with_safe_defaults() {
        let local = || "127.0.0.1".to_string();
        let tcp = || "tcp".to_string();
        assert_eq!(port("8888"), (local(), None, 8888, tcp()));
        assert_eq!(port("9000:8888"), (local(), Some(9000), 8888, tcp()));
        assert_eq!(port("0.0.0.0:9000:8888"), ("0.0.0.0".into(), Some(9000), 8888, tcp()));
        assert_eq!(port("127.0.0.1::8888"), (local(), None, 8888, tcp()));
        assert_eq!(port("53/udp"), (local(), None, 53, "udp".into()));
        assert_eq!(port("[::1]:9000:8888/tcp"), ("::1".into(), Some(9000), 8888, tcp()));
        assert_eq!(port("[::]::8888"), ("::".into(), None, 8888, tcp()));
        assert_eq!(port("65535"), (local(), None, 65535, tcp()));
    }

    #[test]
    fn refuses_malformed_ports() {
        let cases = [
            ("", "is not a port number"),
            ("abc", "is not a port number"),
            ("8000-8010", "ranges are not supported"),
            ("0", "out of range"),
            ("65536", "out of range"),
            ("99999999999999999999999", "out of range"),
            ("70000:80", "out of range"),
            (":8888", "empty host port"),
            ("8888/sctp", "not a protocol"),
            ("1.2.3:80:80", "not an IP address"),
            ("::1:80:80", "too many `:`"),
            ("[::1:80:80", "without `]`"),
            ("[::1]:80", "needs `[ADDRESS]:HOST:CONTAINER`"),
        ];
        for (text, want) in cases {
            let e = parse_port(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn duplicates_are_refused_at_the_second_entry() {
        let e = err(r#"ports = ["9000:80", "9000:81"]"#);
        assert_eq!((e.line, e.column), (1, 21));
        assert_eq!(e.key.as_deref(), Some("ports[1]"));
        assert!(e.message.contains("same port as `ports[0]`"), "{e}");
        assert!(err(r#"ports = ["80", "80"]"#).message.contains("same port"));
        // Different addresses or protocols do not clash.
        let (_, spec) = parse_in(r#"ports = ["9000:80", "0.0.0.0:9000:80", "9000:80/udp", "81"]"#);
        assert_eq!(spec.ports.len(), 4);
    }
}
