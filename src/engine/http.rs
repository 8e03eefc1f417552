//! Plain HTTP/1.0 requests on the engine's socket, for the two things bollard cannot do:
//! - read `/_ping`'s headers: `Api-Version` negotiates the API as the docker CLI does, and
//!   `Libpod-Api-Version` says Podman. bollard negotiates with `/version`, which costs Podman
//!   0.3–1 s (it gathers its whole `info`, runs `conmon --version` and `runc --version` and asks
//!   the package manager which packages they came from); `/_ping` answers in about 1 ms.
//! - Podman's own create (`/libpod/containers/create`), the only request of Podman 4 that
//!   takes CDI device names (see `create::libpod_body`).
//!
//! HTTP/1.0 without keep-alive: the engine closes the connection after its answer, so the body
//! is whatever comes before the close (a chunked answer is decoded all the same).

use std::path::PathBuf;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where requests go: the engine's unix socket (or the ssh proxy's), or a TCP address.
#[derive(Debug, Clone)]
pub(super) enum Dial {
    Unix(PathBuf),
    /// `http://host:port`, as `DOCKER_HOST` gives it.
    Tcp(String),
}

/// An engine's answer.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The answer as bollard's error when the engine refused: its `message` field (Docker's
    /// and Podman's error body), else the body as text; `None` for a 2xx.
    pub fn refusal(&self) -> Option<BollardError> {
        if (200..300).contains(&self.status) {
            return None;
        }
        let message = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_string());
        Some(BollardError::DockerResponseServerError { status_code: self.status, message })
    }
}

/// Send one request; `timeout` bounds connecting, sending and reading the whole answer.
pub(super) async fn request(
    dial: &Dial,
    method: &str,
    path: &str,
    json: Option<&[u8]>,
    timeout: Duration,
) -> Result<Answer, BollardError> {
    let exchange = async {
        match dial {
            Dial::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket).await.map_err(|err| {
                    if err.kind() == std::io::ErrorKind::NotFound {
                        BollardError::SocketNotFoundError(socket.display().to_string())
                    } else {
                        BollardError::IOError { err }
                    }
                })?;
                exchange(stream, method, path, json).await
            }
            Dial::Tcp(url) => {
                let addr = url.split("://").last().unwrap_or(url).split('/').next().unwrap_or_default();
                let stream = tokio::net::TcpStream::connect(addr).await?;
                exchange(stream, method, path, json).await
            }
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| BollardError::RequestTimeoutError)?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    json: Option<&[u8]>,
) -> Result<Answer, BollardError> {
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: berth\r\n");
    if let Some(body) = json {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if let Some(body) = json {
        stream.write_all(body).await?;
    }
    stream.flush().await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse(&raw)
}

/// Split a raw answer into status, headers and (de-chunked) body.
fn parse(raw: &[u8]) -> Result<Answer, BollardError> {
    let bad = |why: &str| BollardError::IOError {
        err: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("the engine's answer {why}")),
    };
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("has no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| bad("has no HTTP status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("has a broken chunked body"))?;
    }
    Ok(Answer { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_split_into_status_headers_and_body() {
        let raw = b"HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nLibpod-Api-Version: 4.3.1\r\n\r\nOK";
        let a = parse(raw).expect("parsed");
        assert_eq!(a.status, 200);
        assert_eq!(a.header("API-Version"), Some("1.41"));
        assert_eq!(a.header("libpod-api-version"), Some("4.3.1"));
        assert_eq!(a.body, b"OK");
        assert!(a.refusal().is_none());
    }

    #[test]
    fn a_chunked_body_is_decoded_and_a_refusal_carries_the_engines_message() {
        let raw = b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n\
                    b\r\n{\"message\":\r\n8\r\n\"no way\"\r\n1\r\n}\r\n0\r\n\r\n";
        let a = parse(raw).expect("parsed");
        assert_eq!(a.body, b"{\"message\":\"no way\"}");
        match a.refusal() {
            Some(BollardError::DockerResponseServerError { status_code, message }) => {
                assert_eq!((status_code, message.as_str()), (500, "no way"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_an_answer() {
        assert!(parse(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
        assert!(parse(b"hello\r\n\r\n").is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_reaches_a_unix_socket_and_reads_to_the_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("e.sock");
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.expect("read");
            let seen = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(b"HTTP/1.0 201 Created\r\nContent-Type: application/json\r\n\r\n{\"Id\":\"abc\"}")
                .await
                .expect("write");
            seen
        });
        let a = request(
            &Dial::Unix(sock),
            "POST",
            "/v4.0.0/libpod/containers/create",
            Some(b"{}"),
            Duration::from_secs(5),
        )
        .await
        .expect("answer");
        assert_eq!(a.status, 201);
        assert_eq!(a.body, b"{\"Id\":\"abc\"}");
        let seen = server.await.expect("server");
        assert!(seen.starts_with("POST /v4.0.0/libpod/containers/create HTTP/1.0\r\n"), "{seen}");
        assert!(seen.contains("Content-Length: 2\r\n") && seen.ends_with("\r\n\r\n{}"), "{seen}");
        let missing =
            request(&Dial::Unix(dir.path().join("none.sock")), "GET", "/_ping", None, Duration::from_secs(1))
                .await;
        assert!(matches!(missing, Err(BollardError::SocketNotFoundError(_))), "{missing:?}");
    }
}
