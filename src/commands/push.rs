//! `berth push [REF]`: tag the environment's image as REF and push it with the credentials the
//! docker CLI stored for that registry, showing progress; prints the pushed digest.
//!
//! Without REF the image is pushed under its own name, but only when that name says which
//! registry it belongs to: pushing `pytorch/pytorch:…` back to Docker Hub is never what a
//! user means by "push my environment".

use super::ExitStatus;
use std::time::Instant;

use futures_util::StreamExt;
use serde::Serialize;

use super::{Context, Project};
use crate::engine::Engine;
use crate::error::{Code, fail};
use crate::transport::push::{self, Target};
use crate::transport::save::{local_image, short};

#[derive(Debug, Serialize)]
pub struct PushResult {
    pub reference: String,
    pub id: String,
    pub digest: Option<String>,
    pub registry: String,
    pub authenticated: bool,
    pub seconds: f64,
}

pub async fn run(ctx: &Context, reference: Option<String>) -> anyhow::Result<ExitStatus> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let image = project.image()?;
    let local = local_image(&engine, &image).await?;
    let target = choose_target(reference.as_deref(), &image)?;
    let credentials = push::credentials(&push::config_dir(), &target.registry)?;
    let authenticated = credentials.is_some();
    let started = Instant::now();

    // What the tag named before, so that a failed push puts it back as it was.
    let before = engine.image_facts(&target.reference()).await?.map(|f| f.id);
    engine.tag(&local.id, &target.repo, &target.tag).await?;
    ctx.out.status(format!(
        "pushing {} ({}) to {}{}",
        target.reference(),
        short(&local.id),
        target.registry,
        if authenticated { ", logged in from docker's config" } else { "" }
    ));
    let bar = ctx.out.count_bar(local.layers.len() as u64, "{spinner} layers {pos}/{len} {msg}");
    let mut stream = std::pin::pin!(engine.push(&target.repo, &target.tag, credentials));
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                bar.abandon();
                let e = e.context(format!("pushing {}", target.reference()));
                return Err(match restore_tag(&engine, &target, &local, before.as_deref()).await {
                    Ok(()) => e,
                    Err(r) => e.context(format!("the tag {} is left behind: {r:#}", target.reference())),
                });
            }
        };
        let status = info.status;
        if ["Pushed", "Layer already exists", "Mounted from"].iter().any(|s| status.starts_with(s)) {
            bar.inc(1);
        }
        if let Some(d) = status.split("digest: ").nth(1) {
            digest = d.split_whitespace().next().map(str::to_string);
        }
        match info.current.zip(info.total) {
            Some((cur, total)) if total > 0 => bar.set_message(format!(
                "{status} {}/{}",
                crate::spec::size::format_size(cur.max(0) as u64),
                crate::spec::size::format_size(total as u64)
            )),
            _ => bar.set_message(status),
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    ctx.out.status(format!(
        "pushed {}{} in {seconds:.1} s",
        target.reference(),
        digest.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    ));
    if ctx.out.json {
        ctx.out.json(&PushResult {
            reference: target.reference(),
            id: local.id,
            digest,
            registry: target.registry,
            authenticated,
            seconds,
        })?;
    }
    Ok(ExitStatus::SUCCESS)
}

/// After a failed push: the tag berth added goes again, or points back where it did. An image
/// known only by the new tag keeps it (removing its last name would delete the image).
async fn restore_tag(
    engine: &Engine,
    target: &Target,
    local: &crate::engine::ImageFacts,
    before: Option<&str>,
) -> anyhow::Result<()> {
    match before {
        Some(id) if id == local.id => Ok(()),
        Some(id) => engine.tag(id, &target.repo, &target.tag).await,
        None if local.tags.is_empty() => Ok(()),
        None => engine.remove_image(&target.reference()).await,
    }
}

/// REF as given, or the image's own name when it names a registry.
fn choose_target(reference: Option<&str>, image: &str) -> anyhow::Result<Target> {
    let Some(given) = reference else {
        return push::target(image).filter(Target::names_registry).ok_or_else(|| {
            fail(
                Code::BadInput,
                format!("say where to push: {image} does not name a registry of yours"),
                "give a reference, e.g. `berth push registry.example.com/team/NAME:TAG`",
            )
        });
    };
    push::target(given).ok_or_else(|| {
        fail(
            Code::BadInput,
            format!("`{given}` is not a reference berth can push to"),
            "write it as [registry/]repository[:tag], e.g. registry.example.com/team/env:v1 (no @digest)",
        )
    })
}
