//! `berth ship ssh://[user@]host[:port] [--project DIR] [--force]`: copy the environment's
//! image into another server's Docker through the system ssh, sending only the layers it lacks.
//!
//! One probe asks the other engine what it has; the local `docker save` streams through a
//! filter that drops the layers it has (and through zstd when it has `zstd`) into
//! `ssh host docker load`. The result is checked: the same image id on both sides. An engine
//! that cannot take a partial image (containerd store), or a partial load that fails, gets the
//! whole image, and berth says so. `--project` writes the pinned `berth.toml` there too.

use super::ExitStatus;
use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::process::ChildStdin;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::{Endpoint, Engine, ImageFacts, parse_host};
use crate::error::{Code, fail};
use crate::spec::size::format_size;
use crate::ssh::sh_quote;
use crate::transport::progress::{self, CountingWriter};
use crate::transport::remote::Remote;
use crate::transport::save::{local_image, save_names, short};
use crate::transport::ship::{self, RemoteFacts, Sent, Transfer};
use crate::transport::{bridge, pinned};

#[derive(Debug, Clone)]
pub struct ShipOptions {
    pub destination: String,
    pub project: Option<String>,
    pub force: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct ShipResult {
    pub destination: String,
    pub image: String,
    pub id: String,
    /// `nothing`, `partial` or `full`.
    pub transfer: String,
    pub layers: usize,
    pub layers_sent: usize,
    pub layers_skipped: usize,
    /// Uncompressed bytes of the layers sent: what the other side lacked.
    pub layer_bytes_sent: u64,
    /// Bytes that went into ssh.
    pub bytes_sent: u64,
    pub compressed: bool,
    pub verified: bool,
    pub project_file: Option<String>,
    pub seconds: f64,
}

pub async fn run(ctx: &Context, opts: ShipOptions) -> anyhow::Result<ExitStatus> {
    let (destination, port) = match parse_host(&opts.destination) {
        Ok(Endpoint::Ssh { destination, port }) => (destination, port),
        _ => {
            return Err(fail(
                Code::BadInput,
                format!("`{}` is not an ssh address", opts.destination),
                "write it as ssh://[user@]host[:port], e.g. ssh://me@gpu-server",
            ));
        }
    };
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let reference = project.image()?;
    let local = local_image(&engine, &reference).await?;
    let remote = Remote::new(&destination, port)?;
    let started = Instant::now();

    // `~/x` arrives quoted: the remote shell would not expand it, but ssh starts in the home.
    let project_dir = opts.project.as_deref().map(|d| d.strip_prefix("~/").unwrap_or(d).to_string());
    ctx.out.status(format!("asking {} which layers its engine has", remote.label));
    let probe = remote.run(&ship::probe(project_dir.as_deref()), "asking its engine (docker info)")?;
    let facts = ship::parse_probe(&String::from_utf8_lossy(&probe.stdout))?;
    let pinned = match &project_dir {
        Some(dir) => Some((
            dir.clone(),
            prepare_project(&remote, &project, &local, &reference, dir, &facts, opts.force)?,
        )),
        None => None,
    };

    let mut result = ShipResult {
        destination: remote.label.clone(),
        image: reference.clone(),
        id: local.id.clone(),
        layers: local.layers.len(),
        compressed: facts.zstd,
        ..ShipResult::default()
    };
    let plan = ship::decide(&local, &facts);
    let sent = match &plan {
        Transfer::Nothing => {
            ctx.out.status(format!("{} already has {reference} ({})", remote.label, short(&local.id)));
            result.transfer = "nothing".into();
            let out = remote.run(&ship::inspect(&save_names(&local)), "checking the image")?;
            verify(&remote, &local, &facts, &String::from_utf8_lossy(&out.stdout))?;
            None
        }
        Transfer::Full { reason } => {
            ctx.out.warn(format!("sending the whole image: {reason}"));
            result.transfer = "full".into();
            Some(send(ctx, &engine, &remote, &local, &facts, &BTreeSet::new()).await?)
        }
        Transfer::Partial { skip } => {
            let kept = skip.len();
            let total = local.layers.len();
            ctx.out.status(if kept == 0 {
                format!("{} has none of the {total} layers of {reference}; sending them all", remote.label)
            } else {
                format!("{} has {kept} of the {total} layers of {reference}; sending the rest", remote.label)
            });
            result.transfer = "partial".into();
            match send(ctx, &engine, &remote, &local, &facts, skip).await {
                Ok(s) => Some(s),
                Err(e) if kept > 0 => {
                    ctx.out.warn(format!("the partial load failed ({e:#}); sending the whole image instead"));
                    result.transfer = "full".into();
                    Some(send(ctx, &engine, &remote, &local, &facts, &BTreeSet::new()).await?)
                }
                Err(e) => return Err(e),
            }
        }
    };
    if let Some((sent, bytes)) = &sent {
        result.layers_sent = sent.layers_sent;
        result.layers_skipped = local.layers.len().saturating_sub(sent.layers_sent);
        result.layer_bytes_sent = sent.layer_bytes_sent;
        result.bytes_sent = *bytes;
    } else {
        result.layers_skipped = local.layers.len();
    }
    // Each transfer checked the image ids right after its load (see `send`).
    result.verified = true;
    if let Some((dir, text)) = pinned {
        let script = format!(
            "mkdir -p {d} && cat > {d}/.berth.toml.partial && mv {d}/.berth.toml.partial {d}/berth.toml",
            d = sh_quote(&dir)
        );
        remote.run_with_input(&script, text.as_bytes(), "writing berth.toml")?;
        result.project_file = Some(format!("{dir}/berth.toml"));
    }
    result.seconds = started.elapsed().as_secs_f64();
    report(ctx, &result);
    if ctx.out.json {
        ctx.out.json(&result)?;
    }
    Ok(ExitStatus::SUCCESS)
}

/// Refuse early when the remote folder holds a `berth.toml` (unless `force`); the pinned text.
fn prepare_project(
    remote: &Remote,
    project: &Project,
    local: &ImageFacts,
    reference: &str,
    dir: &str,
    facts: &RemoteFacts,
    force: bool,
) -> anyhow::Result<String> {
    if facts.project_exists && !force {
        return Err(fail(
            Code::Refused,
            format!("{dir}/berth.toml already exists on {}; nothing was sent", remote.label),
            "choose another --project folder, or add --force to replace it",
        ));
    }
    let original = std::fs::read_to_string(&project.spec.file)
        .with_context(|| format!("reading {}", project.spec.file.display()))?;
    pinned::pin(&original, &project.spec.name, &local.id, reference)
}

/// Stream the image into `docker load` there, leaving out the layers in `skip`, and check the
/// result in the same round trip.
async fn send(
    ctx: &Context,
    engine: &Engine,
    remote: &Remote,
    local: &ImageFacts,
    facts: &RemoteFacts,
    skip: &BTreeSet<usize>,
) -> anyhow::Result<(Sent, u64)> {
    let decompress = if facts.zstd { "zstd -dcq | " } else { "" };
    let script = format!("{decompress}docker load >&2 && {}", ship::inspect(&save_names(local)));
    let mut child = remote.spawn(&script)?;
    let stdin = child.stdin.take().context("no pipe to ssh")?;
    let bar = progress::bytes(&ctx.out, local.size, format!("shipping to {}", remote.label));
    let (tx, reader) = bridge::reader();
    let input = progress::Counted { inner: reader, bar: bar.clone() };
    let diffs = local.layers.clone();
    let skip = skip.clone();
    let zstd = facts.zstd;
    let work = tokio::task::spawn_blocking(move || -> anyhow::Result<(Sent, u64)> {
        let wire = CountingWriter { inner: stdin, bytes: 0 };
        let out = Wire::new(wire, zstd)?;
        let (out, sent) = ship::filter(input, BufWriter::with_capacity(1 << 20, out), &diffs, &skip)?;
        let wire = out.into_inner().map_err(|e| e.into_error())?.finish()?;
        Ok((sent, wire.bytes))
    });
    let feed = bridge::forward(engine.save(&save_names(local)), tx);
    let (_, done) = tokio::join!(feed, work);
    bar.finish_and_clear();
    let done = done.context("the shipping thread failed")?;
    // Closing stdin (the wire was dropped) ends the load; wait for its verdict either way.
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    // A local failure (the save) explains itself; a broken pipe means the other side stopped
    // first, and its own message says why.
    let broken_pipe = |e: &anyhow::Error| {
        e.chain()
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    };
    let done = match done {
        Err(e) if out.status.success() || !broken_pipe(&e) => return Err(e.context("sending the image")),
        _ if !out.status.success() => return Err(remote.failure("docker load", &out)),
        other => other?,
    };
    verify(remote, local, facts, &String::from_utf8_lossy(&out.stdout))?;
    Ok(done)
}

/// The bytes on their way into ssh, compressed or not.
enum Wire {
    Plain(CountingWriter<ChildStdin>),
    Zstd(zstd::Encoder<'static, CountingWriter<ChildStdin>>),
}

impl Wire {
    fn new(wire: CountingWriter<ChildStdin>, compress: bool) -> anyhow::Result<Wire> {
        if !compress {
            return Ok(Wire::Plain(wire));
        }
        let mut enc = zstd::Encoder::new(wire, crate::transport::ZSTD_LEVEL)?;
        enc.multithread(crate::transport::zstd_threads())?;
        Ok(Wire::Zstd(enc))
    }

    fn finish(self) -> anyhow::Result<CountingWriter<ChildStdin>> {
        Ok(match self {
            Wire::Plain(w) => w,
            Wire::Zstd(e) => e.finish()?,
        })
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(w) => w.write(buf),
            Wire::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Plain(w) => w.flush(),
            Wire::Zstd(e) => e.flush(),
        }
    }
}

/// The other engine must now have the image under every name, with the same id (the
/// containerd store names images by manifest: there the layers must match instead).
fn verify(remote: &Remote, local: &ImageFacts, facts: &RemoteFacts, inspected: &str) -> anyhow::Result<()> {
    let names = save_names(local);
    let layers = serde_json::to_string(&local.layers)?;
    let lines: Vec<&str> = inspected.lines().collect();
    if lines.len() != names.len() {
        return Err(fail(
            Code::Failure,
            format!("after the load, {} could not show {}", remote.label, names.join(", ")),
            "ship again; if it persists, compare `docker image inspect` on both sides",
        ));
    }
    for (name, line) in names.iter().zip(lines) {
        let (id, there) = line.split_once(' ').unwrap_or((line, ""));
        let same = id == local.id || (facts.containerd_store && there == layers);
        if !same {
            return Err(fail(
                Code::Failure,
                format!("after the load, {name} on {} is {id}, not {}", remote.label, local.id),
                "ship again; if it persists, compare `docker image inspect` on both sides",
            ));
        }
    }
    Ok(())
}

fn report(ctx: &Context, r: &ShipResult) {
    let how = match r.transfer.as_str() {
        "nothing" => "nothing to send".to_string(),
        _ => format!(
            "sent {} of {} layers ({} of layer data, {} over ssh{})",
            r.layers_sent,
            r.layers,
            format_size(r.layer_bytes_sent),
            format_size(r.bytes_sent),
            if r.compressed { ", zstd" } else { "" }
        ),
    };
    ctx.out.status(format!(
        "shipped {} ({}) to {}: {how}; same image id there; {:.1} s",
        r.image,
        short(&r.id),
        r.destination,
        r.seconds
    ));
    if let Some(f) = &r.project_file {
        ctx.out.status(format!("wrote {f} there: `cd {} && berth up`", f.trim_end_matches("/berth.toml")));
    }
}
