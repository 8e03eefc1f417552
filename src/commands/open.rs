//! `berth open NAME|PORT`: the URL of a job's server (Jupyter, TensorBoard: the address it
//! printed in its log, token included, moved to the host port) or of a published container
//! port. Printed on stdout; opened in a browser too when this session has a desktop.
//!
//! A NAME of digits only is a container port. The URL reaches the server from this host, and
//! from a laptop through the forward `berth ports --ssh` prints (laptop ports equal host ports).
//! berth reads the token from the job's private log and writes it nowhere else.

use super::ExitStatus;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Context, Project};
use crate::engine::Engine;
use crate::engine::exec::ExecRequest;
use crate::error::{Code, fail};
use crate::jobs;
use crate::ports::{self, Published, url};

/// How long `open` waits for a job that has just started to print its address.
const WAIT_FOR_ADDRESS: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize)]
struct Opened {
    url: String,
    container_port: u16,
    host_port: u16,
    /// The job whose log named the address (absent for a port).
    job: Option<String>,
    /// Whether berth handed the URL to a browser.
    opened: bool,
}

pub async fn run(ctx: &Context, target: &str, print: bool) -> anyhow::Result<ExitStatus> {
    let (project, engine) = Project::existing(ctx).await?;
    let (c, published) = ports::of_environment(&project, &engine).await?;
    if !c.is_running() {
        ctx.out.warn(format!("{} is not running: `berth up` starts it", c.shown_name()));
    }
    let mut opened = if !target.is_empty() && target.chars().all(|ch| ch.is_ascii_digit()) {
        let port: u16 = target.parse().map_err(|_| {
            fail(Code::BadInput, format!("port {target} is out of range (1-65535)"), "give a container port")
        })?;
        let p = host_side(&published, port, None)?;
        Opened {
            url: p.url.clone().unwrap_or_default(),
            container_port: port,
            host_port: p.host_port,
            job: None,
            opened: false,
        }
    } else {
        let found = address_in_log(&project, target).await?;
        let p = host_side(&published, found.port, Some(target))?;
        Opened {
            url: url::on_host(&found, &p.host_ip, p.host_port),
            container_port: found.port,
            host_port: p.host_port,
            job: Some(target.to_string()),
            opened: false,
        }
    };
    if c.is_running() {
        unreachable_listener(ctx, &engine, &c.id, &opened).await;
    }
    if !print {
        opened.opened = launch(&opened.url);
    }
    if ctx.out.json {
        ctx.out.json(&opened)?;
        return Ok(ExitStatus::SUCCESS);
    }
    ctx.out.data(format!("{}\n", opened.url));
    if !opened.opened {
        ctx.out.status(format!(
            "from a laptop: keep `berth ports --ssh USER@SERVER`'s line running there, then open the URL \
             (its port {} is the same on both)",
            opened.host_port
        ));
    }
    Ok(ExitStatus::SUCCESS)
}

/// Warns when the server listens on the container's loopback only (Jupyter's and TensorBoard's
/// default), which no published port reaches. Best effort: a container without `cat` says nothing.
async fn unreachable_listener(ctx: &Context, engine: &Engine, id: &str, opened: &Opened) {
    let req = ExecRequest {
        container: id.to_string(),
        cmd: vec!["cat".into(), "/proc/net/tcp".into(), "/proc/net/tcp6".into()],
        ..Default::default()
    };
    let Ok(out) = engine.exec_capture(&req).await else { return };
    if ports::loopback_only(&out.stdout, opened.container_port) == Some(true) {
        let what = opened.job.as_ref().map_or_else(|| "the server".to_string(), |j| format!("job {j}"));
        ctx.out.warn(format!(
            "{what} listens on the container's 127.0.0.1:{} only, which the published port cannot reach; \
             start it listening on all addresses: `jupyter lab --ip=0.0.0.0`, `tensorboard --bind_all`, \
             `python3 -m http.server` (its default)",
            opened.container_port
        ));
    }
}

/// The published TCP port for `container_port`, or what to add to berth.toml.
fn host_side<'a>(
    published: &'a [Published],
    container_port: u16,
    job: Option<&str>,
) -> anyhow::Result<&'a Published> {
    published.iter().find(|p| p.container_port == container_port && p.protocol == "tcp").ok_or_else(|| {
        let what = match job {
            Some(j) => format!("job {j} serves on container port {container_port}, which is not published"),
            None => format!("container port {container_port} is not published"),
        };
        let listed: Vec<String> =
            published.iter().map(|p| format!("{}/{}", p.container_port, p.protocol)).collect();
        let now = if listed.is_empty() { "none".to_string() } else { listed.join(", ") };
        fail(
            Code::BadInput,
            format!("{what} (published now: {now})"),
            format!("add \"{container_port}\" to `ports` in berth.toml, then run `berth up --recreate`"),
        )
    })
}

/// The address the job's server printed last, waiting a little while the job runs and has
/// printed none yet (`berth run … && berth open NAME`).
async fn address_in_log(project: &Project, name: &str) -> anyhow::Result<url::Found> {
    let job = jobs::view::find(project, Some(name))?;
    let path = job.log_path();
    let started = Instant::now();
    loop {
        if let Some(found) = url::find(&tail(&path)) {
            return Ok(found);
        }
        let ended = jobs::list(&project.spec.project_dir)
            .into_iter()
            .find(|j| j.meta.name == name)
            .is_none_or(|j| j.exit_code.is_some());
        if ended || started.elapsed() > WAIT_FOR_ADDRESS {
            let why = if ended { "it ended without printing one" } else { "none yet" };
            return Err(fail(
                Code::Failure,
                format!("job {name}'s log holds no http:// address ({why})"),
                format!(
                    "`berth logs {name}` shows what it printed; a server must print its address (Jupyter and \
                     TensorBoard do), or open its port with `berth open PORT`"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The end of a log (a server prints its address near the start, but a long-running one may
/// have printed a lot since: the last MiB is enough to find its latest).
fn tail(path: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    const MAX: u64 = 1 << 20;
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(MAX)));
    let mut buf = Vec::new();
    let _ = f.take(MAX).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Hands the URL to the desktop's browser when this session has one (not over SSH); whether
/// it did. The URL is an argument, never run through a shell. A URL with a query (Jupyter's
/// token) is never an argument: every user of the machine reads a process's arguments (`ps`),
/// and a browser started by the opener keeps them for its life. The browser gets a page in the
/// caller's private runtime folder instead, which sends it on (Jupyter's own
/// `jpserver-*-open.html` for the same reason); without such a folder berth only prints.
fn launch(url: &str) -> bool {
    if std::env::var_os("SSH_CONNECTION").is_some() {
        return false;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        "xdg-open"
    } else {
        return false;
    };
    let target = if url.contains(['?', '#']) {
        match redirect_page(url) {
            Some(page) => page,
            None => return false,
        }
    } else {
        url.to_string()
    };
    std::process::Command::new(opener)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `file://…/berth-open.html` in the caller's runtime folder (`$XDG_RUNTIME_DIR`, or macOS's
/// per-user `$TMPDIR`; it must be the caller's own and closed to others), a 0600 page that sends
/// the browser to `url`. `None` when there is no such folder or the page cannot be written.
fn redirect_page(url: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let var = if cfg!(target_os = "macos") { "TMPDIR" } else { "XDG_RUNTIME_DIR" };
    let dir = std::path::PathBuf::from(std::env::var_os(var)?);
    let meta = std::fs::metadata(&dir).ok()?;
    if !dir.is_absolute()
        || !meta.is_dir()
        || meta.uid() != crate::host::HostUser::current().uid
        || meta.mode() & 0o077 != 0
    {
        return None;
    }
    let page = dir.join("berth-open.html");
    crate::fsutil::write_atomic(&page, redirect_html(url).as_bytes(), 0o600).ok()?;
    Some(file_url(&page))
}

/// The page: a refresh to `url` and a link for a browser that does not follow it. `url` holds
/// only URL characters (`ports::url`); `&` is the one HTML needs escaped in an attribute.
fn redirect_html(url: &str) -> String {
    let url = url.replace('&', "&amp;");
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={url}\"><title>berth open</title></head>\n\
         <body><p><a href=\"{url}\">{url}</a></p></body></html>\n"
    )
}

/// `file://` and the path, every byte outside `A-Za-z0-9/._-~` percent-encoded.
fn file_url(path: &std::path::Path) -> String {
    let mut out = String::from("file://");
    for b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(b) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_page_sends_the_browser_on_and_its_address_is_a_plain_file_url() {
        let html = redirect_html("http://127.0.0.1:24567/lab?token=ab&x=1");
        assert!(html.contains("content=\"0;url=http://127.0.0.1:24567/lab?token=ab&amp;x=1\""), "{html}");
        assert_eq!(
            file_url(std::path::Path::new("/run/user/1000/my dir/berth-open.html")),
            "file:///run/user/1000/my%20dir/berth-open.html"
        );
    }
}
