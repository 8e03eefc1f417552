//! What `berth clean` may reclaim: a pure decision over what the engine holds.
//!
//! Invariants: only things carrying berth's `dev.berth.managed` label are ever candidates;
//! another user's are only listed with `--all-users` and only removed by root with `--force`;
//! a stopped environment whose writable layer holds changes that matter is kept without
//! `--force`; so is a superseded snapshot of an environment (an image committed from one: it may
//! hold work no build can remake); an image any remaining container uses is never a candidate.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::{LABEL_MANAGED, LABEL_NAME, LABEL_OWNER, LABEL_OWNER_UID, LABEL_PLAN, LABEL_PROJECT};

#[cfg(test)]
mod tests;

/// Containers berth starts for a build (not environments): scratch, removed whatever they hold.
pub const LABEL_BUILD: &str = "dev.berth.build";

#[derive(Debug, Clone, Default)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image_id: String,
    /// `running`, `exited`, `created`, `dead`, `paused`, `restarting`.
    pub state: String,
    pub labels: BTreeMap<String, String>,
    pub size_rw: u64,
    /// Grouped changes that matter in its writable layer (filled for candidates only).
    pub changes: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    pub id: String,
    /// `repo:tag` names (none, or only `<none>:<none>`: dangling).
    pub tags: Vec<String>,
    /// Seconds since the epoch.
    pub created: i64,
    pub size: u64,
    pub labels: BTreeMap<String, String>,
    /// Layer digests, base first.
    pub layers: Vec<String>,
}

/// Who asks, and how far they reach.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub uid: u32,
    pub all_users: bool,
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A stopped environment container (`berth up` recreates it from berth.toml).
    Stopped,
    /// A container a berth build left behind.
    BuildLeftover,
    /// An untagged berth image no container uses.
    Dangling,
    /// A tagged berth image with a newer one for the same project, unused.
    Superseded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `container` or `image`.
    pub kind: &'static str,
    pub id: String,
    /// Container name, or the image's tags (empty for dangling images).
    pub name: String,
    pub environment: String,
    pub owner: String,
    pub reason: Reason,
    /// Space freed by removing it (images: the layers no other image has, an estimate).
    pub bytes: u64,
    pub remove: bool,
    /// Why it is kept, when it is.
    pub kept_because: Option<String>,
    /// Tags to remove one by one (superseded images), else the id is removed.
    #[serde(skip)]
    pub tags: Vec<String>,
}

fn managed(labels: &BTreeMap<String, String>) -> bool {
    labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
}

/// A container berth created: images berth builds carry `managed` too, and the engine copies
/// image labels onto any container made from them; only berth's containers carry a plan hash.
fn berth_container(labels: &BTreeMap<String, String>) -> bool {
    managed(labels) && labels.get(crate::plan::LABEL_HASH).is_some_and(|h| !h.is_empty())
}

fn owner_uid(labels: &BTreeMap<String, String>) -> Option<u32> {
    labels.get(LABEL_OWNER_UID)?.parse().ok()
}

fn label(labels: &BTreeMap<String, String>, key: &str) -> String {
    labels.get(key).cloned().unwrap_or_default()
}

/// The environment's name, else its project folder's (build images carry only the project).
fn environment(labels: &BTreeMap<String, String>) -> String {
    let name = label(labels, LABEL_NAME);
    if !name.is_empty() {
        return name;
    }
    label(labels, LABEL_PROJECT).rsplit('/').next().unwrap_or_default().to_string()
}

/// `None`: out of scope (another user's, without `--all-users`). `Some(Some(why))`: listed but
/// kept for ownership reasons.
fn ownership(labels: &BTreeMap<String, String>, scope: &Scope) -> Option<Option<String>> {
    let owner = owner_uid(labels);
    if owner == Some(scope.uid) {
        return Some(None);
    }
    if !scope.all_users {
        return None;
    }
    let who =
        labels.get(LABEL_OWNER).cloned().unwrap_or_else(|| format!("uid {}", owner.map_or(-1, i64::from)));
    if scope.uid != 0 {
        return Some(Some(format!("belongs to {who}; only root may remove another user's")));
    }
    if !scope.force {
        return Some(Some(format!("belongs to {who}; add --force to remove another user's")));
    }
    Some(None)
}

/// Stopped berth containers in scope, whose changes the caller must look up before [`plan`].
pub fn container_candidates<'a>(containers: &'a [ContainerInfo], scope: &Scope) -> Vec<&'a ContainerInfo> {
    containers
        .iter()
        .filter(|c| berth_container(&c.labels) && matches!(c.state.as_str(), "exited" | "created" | "dead"))
        .filter(|c| ownership(&c.labels, scope).is_some())
        .collect()
}

/// Everything `clean` would list, removals and keeps, containers first.
pub fn plan(containers: &[ContainerInfo], images: &[ImageInfo], scope: &Scope) -> Vec<Item> {
    let mut items: Vec<Item> = container_candidates(containers, scope)
        .into_iter()
        .map(|c| {
            let build = c.labels.get(LABEL_BUILD).map(String::as_str) == Some("true");
            let mut kept = ownership(&c.labels, scope).flatten();
            if kept.is_none() && !build && !c.changes.is_empty() && !scope.force {
                let first = c.changes.first().cloned().unwrap_or_default();
                let more = if c.changes.len() > 1 {
                    format!(" and {} more", c.changes.len() - 1)
                } else {
                    String::new()
                };
                kept = Some(format!("holds changes that matter ({first}{more}); --force removes it"));
            }
            Item {
                kind: "container",
                id: c.id.clone(),
                name: c.name.clone(),
                environment: environment(&c.labels),
                owner: label(&c.labels, LABEL_OWNER),
                reason: if build { Reason::BuildLeftover } else { Reason::Stopped },
                bytes: c.size_rw,
                remove: kept.is_none(),
                kept_because: kept,
                tags: Vec::new(),
            }
        })
        .collect();
    let removed: Vec<String> = items.iter().filter(|i| i.remove).map(|i| i.id.clone()).collect();
    let in_use =
        |img: &ImageInfo| containers.iter().any(|c| c.image_id == img.id && !removed.contains(&c.id));
    for img in images.iter().filter(|i| managed(&i.labels) && !in_use(i)) {
        let Some(kept) = ownership(&img.labels, scope) else { continue };
        let tags: Vec<String> = img.tags.iter().filter(|t| *t != "<none>:<none>").cloned().collect();
        // An image the user tagged (or built FROM a berth image, inheriting its labels) is theirs.
        if tags.iter().any(|t| !t.starts_with("berth/")) {
            continue;
        }
        let reason = if tags.is_empty() {
            Reason::Dangling
        } else if superseded(img, images) {
            Reason::Superseded
        } else {
            continue;
        };
        // A committed container carries the container's own labels (the plan among them); a
        // build's image does not.
        let snapshot = img.labels.contains_key(LABEL_PLAN);
        let kept = kept.or_else(|| {
            (reason == Reason::Superseded && snapshot && !scope.force).then(|| {
                "a snapshot committed from an environment (it may hold work no build remakes); \
                 --force removes it"
                    .to_string()
            })
        });
        items.push(Item {
            kind: "image",
            id: img.id.clone(),
            name: tags.join(", "),
            environment: environment(&img.labels),
            owner: label(&img.labels, LABEL_OWNER),
            reason,
            bytes: unique_bytes(img, images),
            remove: kept.is_none(),
            kept_because: kept,
            tags: if reason == Reason::Superseded { tags } else { Vec::new() },
        });
    }
    items
}

/// A newer berth image exists for the same project and owner.
fn superseded(img: &ImageInfo, images: &[ImageInfo]) -> bool {
    let key = |i: &ImageInfo| (i.labels.get(LABEL_PROJECT).cloned(), owner_uid(&i.labels));
    key(img).0.is_some()
        && images
            .iter()
            .any(|o| o.id != img.id && managed(&o.labels) && key(o) == key(img) && o.created > img.created)
}

/// Bytes only this image holds: its size minus the biggest other image whose layers are a
/// prefix of its own (its base, or the image it was committed from). An estimate: layers shared
/// with an image that is not a prefix still count as this image's.
pub fn unique_bytes(img: &ImageInfo, images: &[ImageInfo]) -> u64 {
    let shared = images
        .iter()
        .filter(|o| o.id != img.id && !o.layers.is_empty() && o.layers.len() <= img.layers.len())
        .filter(|o| img.layers.starts_with(&o.layers))
        .map(|o| o.size)
        .max()
        .unwrap_or(0);
    img.size.saturating_sub(shared)
}
