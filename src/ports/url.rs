//! The address a server in a job printed (Jupyter's `http://127.0.0.1:8888/lab?token=…`,
//! TensorBoard's `http://localhost:6006/`), found in the job's log and moved to the host port.
//!
//! Pure text work. The URL (and its token) only ever goes to stdout: it is never stored,
//! logged or put in a label by berth.

/// One `http(s)://` address found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Everything after the port: `/lab?token=…` (`/` when nothing followed).
    pub rest: String,
}

/// The last address in `log` a server inside the container printed for itself: its host is a
/// loopback or any-address name, or any other name when no such line exists (a server started
/// with `--ip=<hostname>` prints only that). The last one wins: a restarted server's new token.
pub fn find(log: &str) -> Option<Found> {
    let all: Vec<Found> = log.lines().flat_map(in_line).collect();
    let own =
        |f: &&Found| matches!(f.host.as_str(), "127.0.0.1" | "localhost" | "0.0.0.0" | "[::1]" | "[::]");
    all.iter().rfind(own).or(all.last()).cloned()
}

/// The same address as the host (or a laptop through the forward) reaches it.
pub fn on_host(found: &Found, host_ip: &str, host_port: u16) -> String {
    format!("{}://{}:{host_port}{}", found.scheme, url_host(host_ip), found.rest)
}

/// The host part of a URL that reaches `host_ip`: loopback for an any-address binding.
pub fn url_host(host_ip: &str) -> String {
    match host_ip {
        "" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "[::1]".to_string(),
        ip if ip.contains(':') => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

fn in_line(line: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("http") {
        let tail = &rest[at..];
        // A word ends at the first character no URL holds (a space, a quote, a control character
        // such as a terminal escape, anything outside ASCII), or at prose's `'`, `)`, `]` and
        // `,`; `]` only after the authority, to keep `[::1]` whole.
        let v6 = tail.starts_with("http://[") || tail.starts_with("https://[");
        let end = tail
            .find(|c: char| !url_char(c) || matches!(c, '\'' | ')' | ',') || (c == ']' && !v6))
            .unwrap_or(tail.len());
        let word = &tail[..end];
        if let Some(f) = parse(word) {
            out.push(f);
        }
        rest = &tail[word.len().max(4)..];
    }
    out
}

/// Whether `c` may appear in a URL as written (RFC 3986: unreserved, reserved and `%`). What
/// `berth open` prints or hands to a browser is made of these only: a job's log cannot slip a
/// terminal escape or a right-to-left override into it.
fn url_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

fn parse(word: &str) -> Option<Found> {
    let (scheme, after) = word.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let split = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(split);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, tail) = v6.split_once(']')?;
        (format!("[{ip}]"), tail.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() || host.contains('@') {
        return None;
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0)?,
        None if scheme == "https" => 443,
        None => 80,
    };
    let rest = rest.trim_end_matches(['.', ';']);
    let rest = if rest.is_empty() { "/".to_string() } else { rest.to_string() };
    Some(Found { scheme: scheme.to_string(), host, port, rest })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUPYTER: &str = "[I 2026-11-30 22:00:01.000 ServerApp] Jupyter Server 2.14.2 is running at:
[I 2026-11-30 22:00:01.000 ServerApp] http://3f2a1b:8888/lab?token=0123abcd
[I 2026-11-30 22:00:01.000 ServerApp]     http://127.0.0.1:8888/lab?token=0123abcd
    To access the server, open this file in a browser:
        file:///root/.local/share/jupyter/runtime/jpserver-7-open.html
    Or copy and paste one of these URLs:
        http://3f2a1b:8888/lab?token=0123abcd
        http://127.0.0.1:8888/lab?token=0123abcd
";

    #[test]
    fn finds_jupyters_loopback_url_with_its_token() {
        let f = find(JUPYTER).expect("test input");
        assert_eq!((f.host.as_str(), f.port, f.rest.as_str()), ("127.0.0.1", 8888, "/lab?token=0123abcd"));
        assert_eq!(on_host(&f, "127.0.0.1", 24567), "http://127.0.0.1:24567/lab?token=0123abcd");
    }

    #[test]
    fn finds_tensorboards_url_and_the_latest_of_several() {
        let log = "TensorBoard 2.17.0 at http://localhost:6006/ (Press CTRL+C to quit)\n";
        let f = find(log).expect("test input");
        assert_eq!((f.host.as_str(), f.port, f.rest.as_str()), ("localhost", 6006, "/"));
        let twice = format!("{JUPYTER}restarted\n    http://127.0.0.1:8888/lab?token=ffff\n");
        assert_eq!(find(&twice).expect("test input").rest, "/lab?token=ffff");
    }

    #[test]
    fn other_forms() {
        let f = find("Serving HTTP on 0.0.0.0 port 8000 (http://0.0.0.0:8000/) ...").expect("test input");
        assert_eq!((f.host.as_str(), f.port, f.rest.as_str()), ("0.0.0.0", 8000, "/"));
        let f = find("see http://[::1]:9000/x?y=1.").expect("test input");
        assert_eq!((f.host.as_str(), f.port, f.rest.as_str()), ("[::1]", 9000, "/x?y=1"));
        assert_eq!(find("https://example.org").expect("test input").port, 443);
        // Only a hostname: that one.
        assert_eq!(find("at http://box:7000/").expect("test input").port, 7000);
        for none in
            ["", "no address", "http://", "ftp://a:1/", "http://a:0/", "http://a:99999/", "httpd started"]
        {
            assert_eq!(find(none), None, "{none}");
        }
        assert_eq!(url_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(url_host("::"), "[::1]");
        assert_eq!(url_host("fe80::1"), "[fe80::1]");
    }

    #[test]
    fn a_log_cannot_put_terminal_escapes_or_other_text_into_the_url() {
        // A clear-screen, a window-title escape, a bell: the URL stops before each.
        for log in [
            "http://127.0.0.1:8888/lab?token=abc\x1b[2J\x1b]0;pwned\x07",
            "http://127.0.0.1:8888/lab?token=abc\x1b]8;;http://evil.example/\x07",
            "http://127.0.0.1:8888/lab?token=abc\u{7}after",
            "http://127.0.0.1:8888/lab?token=abc\u{9b}2J",
        ] {
            let f = find(log).expect("test input");
            assert_eq!(f.rest, "/lab?token=abc", "{log:?}");
        }
        // A right-to-left override or any other character outside ASCII ends it too.
        let f = find("http://127.0.0.1:8888/\u{202e}gpj.exe").expect("test input");
        assert_eq!(f.rest, "/");
        let f = find("[::1] http://[::1]:9000/a\x1b[31mred").expect("test input");
        assert_eq!((f.host.as_str(), f.rest.as_str()), ("[::1]", "/a"));
        assert!(on_host(&f, "127.0.0.1", 20001).chars().all(|c| c.is_ascii_graphic()));
    }
}
