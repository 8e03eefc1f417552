//! Building an image through the engine API with the classic builder (what Debian's Engine
//! 20.10 offers API clients), streaming its output as progress on a terminal and, always,
//! into a log file; a failed build ends with the log's last lines and where the rest is.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::{Engine, Progress, explain};
use crate::error::{Code, fail};

/// What one build asks for.
#[derive(Debug)]
pub struct BuildRequest<'a> {
    pub context_tar: Vec<u8>,
    pub dockerfile: &'a str,
    pub tag: &'a str,
    pub labels: HashMap<String, String>,
    pub log: &'a Path,
}

impl Engine {
    /// Build and tag an image; returns its id.
    pub async fn build(&self, req: BuildRequest<'_>, bar: &dyn Progress) -> anyhow::Result<String> {
        if let Some(dir) = req.log.parent() {
            crate::fsutil::create_state_dir(dir)?;
        }
        let mut log = crate::fsutil::open_own_file(req.log, true, 0o600)
            .map_err(|e| crate::fsutil::io_failure(req.log, "write", &e))?;
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile(req.dockerfile)
            .t(req.tag)
            .rm(true)
            .forcerm(true)
            .labels(&req.labels)
            .build();
        // Builds outlive the client's default request timeout easily (big pip installs).
        let docker = self.docker.clone().with_timeout(std::time::Duration::from_secs(6 * 3600));
        let mut stream = docker.build_image(opts, None, Some(bollard::body_full(req.context_tar.into())));
        let mut id = None;
        let mut tail: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    bar.finish();
                    let error = crate::output::strip_terminal_codes(&error);
                    let _ = writeln!(log, "{error}");
                    return Err(failed(req.tag, &error, &tail, req.log));
                }
                Err(e) => {
                    bar.finish();
                    return Err(explain(e, &self.endpoint).context(format!("building {}", req.tag)));
                }
            };
            if let Some(text) = &info.stream {
                // Colours and cursor moves are for a terminal; the log is read later, in a pager.
                let text = crate::output::strip_terminal_codes(text);
                let _ = log.write_all(text.as_bytes());
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    if line.starts_with("Step ") {
                        bar.message(&line.chars().take(100).collect::<String>());
                    }
                    tail.push(line.to_string());
                    if tail.len() > 12 {
                        tail.remove(0);
                    }
                }
            }
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                bar.finish();
                let detail = crate::output::strip_terminal_codes(&detail);
                let _ = writeln!(log, "{detail}");
                return Err(failed(req.tag, &detail, &tail, req.log));
            }
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = Some(aux);
            }
        }
        bar.finish();
        match id {
            Some(id) => Ok(id),
            // The classic builder of some engines reports the id only in "Successfully built".
            None => self
                .docker
                .inspect_image(req.tag)
                .await
                .map_err(|e| explain(e, &self.endpoint))?
                .id
                .context("the engine built the image but did not name it"),
        }
    }
}

fn failed(tag: &str, error: &str, tail: &[String], log: &Path) -> anyhow::Error {
    let mut message = format!("building {tag} failed: {}", error.trim());
    for line in tail.iter().rev().take(8).rev() {
        message.push_str(&format!("\n    {line}"));
    }
    let offline = [
        "Temporary failure resolving",
        "Could not resolve",
        "Failed to establish a new connection",
        "No matching distribution",
        "pull access denied",
        "dial tcp",
        "lookup ",
    ]
    .iter()
    .any(|m| error.contains(m) || tail.iter().any(|l| l.contains(m)));
    let hint = if offline {
        format!(
            "the build could not reach a package index or registry; set `apt-mirror` / `pip-index-url` in [image], \
             or load the base image first (`docker load`); full log: {}",
            log.display()
        )
    } else {
        format!(
            "fix the failing step (`berth build --print` shows the Dockerfile); full log: {}",
            log.display()
        )
    };
    fail(Code::Failure, message, hint)
}
