//! What `pack`, `ship` and `push` share about the image they move: finding it on the engine,
//! the names a save carries, and the short id messages show.

use crate::engine::{Engine, ImageFacts};
use crate::error::{Code, fail};

/// The environment's image as the engine has it, or an error that says how to get it.
pub async fn local_image(engine: &Engine, reference: &str) -> anyhow::Result<ImageFacts> {
    engine.image_facts(reference).await?.ok_or_else(|| {
        // berth's own tags (`image::resolve`) come from a build, never from a registry.
        if reference.starts_with("berth/") {
            return fail(
                Code::Failure,
                format!("the image {reference} has not been built yet"),
                "run `berth build` (or `berth up`, which builds it) first",
            );
        }
        fail(
            Code::Failure,
            format!("the image {reference} is not on this engine"),
            "run `berth up` first (it pulls the image), or `docker pull` it",
        )
    })
}

/// What to ask the engine to save: every name of the image (the load restores them), or its
/// id when it has none.
pub fn save_names(facts: &ImageFacts) -> Vec<String> {
    if facts.tags.is_empty() { vec![facts.id.clone()] } else { facts.tags.clone() }
}

/// The first 12 hex digits of an id, like `docker images` shows.
pub fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}
