//! `berth clean`: show what berth's own leftovers take (stopped environment containers, build
//! leftovers, dangling and superseded berth images), ask, remove them, say what was freed.
//!
//! The decision is `clean::plan` (pure); this file gathers the engine's inventory, asks, and
//! removes. Nothing without berth's label is ever listed, let alone removed.

use super::ExitStatus;
use std::collections::BTreeMap;

use serde::Serialize;

use super::Context;
use crate::clean::{self, ContainerInfo, ImageInfo, Item, Scope};
use crate::engine::{Engine, changes};
use crate::error::{Code, fail};
use crate::host::HostUser;
use crate::output::{count, table};
use crate::spec::size::format_size;

#[derive(Debug, Clone, Copy)]
pub struct CleanOptions {
    pub yes: bool,
    pub dry_run: bool,
    pub force: bool,
    pub all_users: bool,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub dry_run: bool,
    pub items: Vec<Item>,
    /// What removing every item marked `remove` frees.
    pub reclaimable_bytes: u64,
    /// What was actually removed (0 on a dry run).
    pub freed_bytes: u64,
    pub removed: usize,
    /// Items the engine refused to remove, with its reason.
    pub failed: Vec<String>,
}

pub async fn run(ctx: &Context, opts: CleanOptions) -> anyhow::Result<ExitStatus> {
    let engine = Engine::connect().await?;
    let user = HostUser::current();
    let scope = Scope { uid: user.uid, all_users: opts.all_users, force: opts.force };
    let mut containers = inventory_containers(&engine).await?;
    fill_changes(&engine, &mut containers, &scope).await?;
    let mut images = inventory_images(&engine).await?;
    // Layers decide how much of an image is its own; read them only for images that matter.
    let first = clean::plan(&containers, &images, &scope);
    fill_layers(&engine, &mut images, &first).await?;
    let items = clean::plan(&containers, &images, &scope);
    let reclaimable_bytes = items.iter().filter(|i| i.remove).map(|i| i.bytes).sum();
    let mut outcome = Outcome {
        dry_run: opts.dry_run,
        items,
        reclaimable_bytes,
        freed_bytes: 0,
        removed: 0,
        failed: vec![],
    };
    let n = outcome.items.iter().filter(|i| i.remove).count();
    if !ctx.out.json {
        show(ctx, &outcome, opts.all_users);
    }
    if n > 0 && !opts.dry_run {
        if !opts.yes {
            let question =
                format!("remove {}, reclaiming {}?", count(n, "item"), format_size(reclaimable_bytes));
            match ctx.out.confirm(&question) {
                Some(true) => {}
                Some(false) => {
                    ctx.out.status("nothing removed");
                    return Ok(ExitStatus::SUCCESS);
                }
                None => {
                    return Err(fail(
                        Code::Refused,
                        format!(
                            "berth clean would remove {}, and there is no terminal to ask",
                            count(n, "item")
                        ),
                        "add --yes to remove them, or --dry-run to only look",
                    ));
                }
            }
        }
        remove(&engine, &mut outcome).await;
    }
    if ctx.out.json {
        ctx.out.json(&outcome)?;
    } else if n > 0 && !opts.dry_run {
        ctx.out.status(format!(
            "removed {}, freed {}",
            count(outcome.removed, "item"),
            format_size(outcome.freed_bytes)
        ));
        for f in &outcome.failed {
            ctx.out.warn(f);
        }
    }
    Ok(ExitStatus::failure_if(!outcome.failed.is_empty()))
}

async fn inventory_containers(engine: &Engine) -> anyhow::Result<Vec<ContainerInfo>> {
    Ok(engine
        .all_containers(true)
        .await?
        .into_iter()
        .map(|c| ContainerInfo {
            name: c.name,
            id: c.id,
            image_id: c.image_id,
            state: c.state,
            labels: c.labels.into_iter().collect::<BTreeMap<_, _>>(),
            size_rw: c.size_rw,
            changes: Vec::new(),
        })
        .collect())
}

/// Read the writable-layer changes of each candidate container (not needed with `--force`).
async fn fill_changes(
    engine: &Engine,
    containers: &mut [ContainerInfo],
    scope: &Scope,
) -> anyhow::Result<()> {
    if scope.force {
        return Ok(());
    }
    let ids: Vec<String> =
        clean::container_candidates(containers, scope).iter().map(|c| c.id.clone()).collect();
    for c in containers.iter_mut().filter(|c| ids.contains(&c.id)) {
        let Some(inspect) = engine.inspect(&c.id).await? else { continue };
        c.changes = changes::group(&engine.significant_changes(&inspect).await?);
    }
    Ok(())
}

async fn inventory_images(engine: &Engine) -> anyhow::Result<Vec<ImageInfo>> {
    Ok(engine
        .images(None)
        .await?
        .into_iter()
        .map(|i| ImageInfo {
            id: i.id,
            tags: i.tags,
            created: i.created,
            size: i.size,
            labels: i.labels.into_iter().collect(),
            layers: Vec::new(),
        })
        .collect())
}

/// Layers of the candidate images and of every image small enough to be a base of one.
async fn fill_layers(engine: &Engine, images: &mut [ImageInfo], items: &[Item]) -> anyhow::Result<()> {
    let candidates: Vec<&str> = items.iter().filter(|i| i.kind == "image").map(|i| i.id.as_str()).collect();
    let biggest = images.iter().filter(|i| candidates.contains(&i.id.as_str())).map(|i| i.size).max();
    let Some(biggest) = biggest else { return Ok(()) };
    for img in images.iter_mut().filter(|i| i.size <= biggest) {
        img.layers = engine.image_layers(&img.id).await?;
    }
    Ok(())
}

fn show(ctx: &Context, o: &Outcome, all_users: bool) {
    let out = &ctx.out;
    let (remove, keep): (Vec<&Item>, Vec<&Item>) = o.items.iter().partition(|i| i.remove);
    if remove.is_empty() && keep.is_empty() {
        out.status("nothing to clean: no stopped berth containers or unused berth images of yours");
        return;
    }
    if !remove.is_empty() {
        let verb = if o.dry_run { "would remove" } else { "reclaimable" };
        out.status(format!(
            "{verb}: {} in {}",
            format_size(o.reclaimable_bytes),
            count(remove.len(), "item")
        ));
        let mut header = vec!["KIND", "NAME", "ENVIRONMENT", "SIZE", "WHY"];
        if all_users {
            header.insert(3, "OWNER");
        }
        let rows: Vec<Vec<String>> = remove
            .iter()
            .map(|i| {
                let mut row = vec![
                    i.kind.to_string(),
                    display_name(i),
                    i.environment.clone(),
                    format_size(i.bytes),
                    reason_words(i.reason).to_string(),
                ];
                if all_users {
                    row.insert(3, i.owner.clone());
                }
                row
            })
            .collect();
        out.data(table(&header, &rows));
    }
    for i in &keep {
        out.status(format!(
            "keeping {} {}: {}",
            i.kind,
            display_name(i),
            i.kept_because.as_deref().unwrap_or("")
        ));
    }
}

fn display_name(i: &Item) -> String {
    if !i.name.is_empty() {
        return i.name.clone();
    }
    let id = i.id.trim_start_matches("sha256:");
    format!("<untagged {}>", &id[..id.len().min(12)])
}

fn reason_words(r: clean::Reason) -> &'static str {
    match r {
        clean::Reason::Stopped => "stopped environment",
        clean::Reason::BuildLeftover => "build leftover",
        clean::Reason::Dangling => "untagged, unused",
        clean::Reason::Superseded => "superseded, unused",
    }
}

/// Containers first (their images may only then be unused), then images: superseded ones by
/// untagging each of their names, dangling ones by id. Never forced, so the engine refuses
/// anything still in use.
async fn remove(engine: &Engine, o: &mut Outcome) {
    let (containers, images): (Vec<&Item>, Vec<&Item>) =
        o.items.iter().filter(|i| i.remove).partition(|i| i.kind == "container");
    let mut freed = 0;
    let mut removed = 0;
    let mut failed = Vec::new();
    for item in containers.into_iter().chain(images) {
        let result = if item.kind == "container" {
            engine.remove_stopped(&item.id).await
        } else if item.tags.is_empty() {
            engine.remove_image(&item.id).await
        } else {
            let mut r = Ok(());
            for tag in &item.tags {
                r = engine.remove_image(tag).await;
                if r.is_err() {
                    break;
                }
            }
            r
        };
        match result {
            Ok(()) => {
                freed += item.bytes;
                removed += 1;
            }
            Err(e) => failed.push(format!("could not remove {} {}: {e:#}", item.kind, display_name(item))),
        }
    }
    o.freed_bytes = freed;
    o.removed = removed;
    o.failed = failed;
}
