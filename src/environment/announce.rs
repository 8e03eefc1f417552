//! `up` names each setting that widens access (`plan::access`) once: when it is new, or changed
//! since `up` last named it. What was named is remembered in `.berth/access-announced.json`.

use std::collections::BTreeSet;

use super::Context;
use crate::plan::access;
use crate::spec::Spec;

/// Warn about each widening setting of `spec` not announced before, and remember them all.
pub fn announce(ctx: &Context, spec: &Spec) {
    let wide = access::widening(spec);
    let path = crate::state::access_announced(&spec.project_dir);
    let known: BTreeSet<String> =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let now: BTreeSet<String> = wide.iter().map(|w| w.setting.clone()).collect();
    let new: Vec<&access::Widening> = wide.iter().filter(|w| !known.contains(&w.setting)).collect();
    if !new.is_empty() {
        ctx.out.warn("this environment reaches beyond its project folder (`berth status` lists it all):");
        for w in new {
            ctx.out.warn(format!("  {}: {}", w.setting, w.effect));
        }
    }
    if now != known
        && let Ok(text) = serde_json::to_vec_pretty(&now)
        && let Err(e) = crate::fsutil::write_atomic(&path, &text, 0o600)
    {
        ctx.out.warn(format!("could not remember what was announced ({e:#})"));
    }
}
