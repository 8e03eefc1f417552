//! `[cluster]`: where the project's host paths live on a cluster, for `berth export`.
//!
//! Each key is a host path written like a mount source (`"/data/x"`, `"./data"`, `"."`,
//! `"~/.cache/huggingface"`) and is resolved the same way, so it matches the mount it maps;
//! each value is `{ pvc = "claim" }` (a Kubernetes PersistentVolumeClaim) or
//! `{ host-path = "/mnt/x" }` (the same data at that path on every node).
//!
//! Invariants: exactly one of the two per entry; a claim name is a DNS-1123 subdomain; a node
//! path is absolute; two keys never resolve to the same host path. Nothing is looked up on disk:
//! a mapping may name a path this machine does not have.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Ctx;
use super::loose::Loose;
use super::mounts::resolve_source;
use crate::spec::{ClusterMount, ClusterVolume, SpecError};

const HINT: &str = "write `\"/host/path\" = { pvc = \"claim-name\" }` or \
                    `\"/host/path\" = { host-path = \"/path/on/the/nodes\" }`";

pub(super) fn cluster(
    raw: &BTreeMap<Spanned<String>, Spanned<Loose>>,
    cx: &Ctx,
) -> Result<Vec<ClusterMount>, SpecError> {
    let mut out: Vec<(usize, ClusterMount)> = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let name = format!("cluster.\"{}\"", key.get_ref());
        if key.get_ref().is_empty() {
            return Err(cx.err(key.span(), name, "the host path is empty").with_hint(HINT));
        }
        let source =
            resolve_source(key.get_ref(), cx).map_err(|(m, h)| cx.err(key.span(), &name, m).with_hint(h))?;
        let Loose::Table(entries) = value.get_ref() else {
            let msg = format!("expected a table, found {}", value.get_ref().kind());
            return Err(cx.err(value.span(), name, msg).with_hint(HINT));
        };
        let volume = volume(entries, value.span(), &name, cx)?;
        if let Some((_, first)) = out.iter().find(|(_, m)| m.source == source) {
            let msg = format!("`{}` and `{}` are the same host path", first.raw, key.get_ref());
            return Err(cx.err(key.span(), name, msg).with_hint("keep one of them"));
        }
        out.push((key.span().start, ClusterMount { source, raw: key.get_ref().clone(), volume }));
    }
    // The map is sorted by key; keep the file's order, which is how people read it.
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().map(|(_, m)| m).collect())
}

fn volume(
    entries: &[(String, Spanned<Loose>)],
    span: std::ops::Range<usize>,
    name: &str,
    cx: &Ctx,
) -> Result<ClusterVolume, SpecError> {
    if let Some((k, v)) = entries.iter().find(|(k, _)| k != "pvc" && k != "host-path") {
        let msg = format!("`{k}` is not `pvc` or `host-path`");
        return Err(cx.err(v.span(), name, msg).with_hint(HINT));
    }
    let [(kind, v)] = entries else {
        let msg =
            if entries.is_empty() { "the table is empty" } else { "give `pvc` or `host-path`, not both" };
        return Err(cx.err(span, name, msg).with_hint(HINT));
    };
    let Loose::Str(text) = v.get_ref() else {
        let msg = format!("`{kind}` must be a string, found {}", v.get_ref().kind());
        return Err(cx.err(v.span(), name, msg).with_hint(HINT));
    };
    if kind == "pvc" {
        if !is_dns_subdomain(text) {
            let msg = format!("`{text}` is not a valid claim name");
            return Err(cx.err(v.span(), name, msg).with_hint(
                "claim names are lowercase letters, digits, `-` and `.`, starting and ending with a \
                 letter or digit (at most 253)",
            ));
        }
        return Ok(ClusterVolume::Pvc(text.clone()));
    }
    if !text.starts_with('/') || text.contains('\0') {
        let msg = format!("`{text}` is not an absolute path");
        return Err(cx
            .err(v.span(), name, msg)
            .with_hint("write the path as the cluster's nodes see it, like \"/mnt/data\""));
    }
    let clean = super::mounts::normalise(std::path::Path::new(text));
    Ok(ClusterVolume::HostPath(clean.to_string_lossy().into_owned()))
}

/// Kubernetes' DNS-1123 subdomain: what a PersistentVolumeClaim may be called.
fn is_dns_subdomain(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    s.len() <= 253
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::super::tests::{err, parse_in};
    use crate::spec::ClusterVolume;

    #[test]
    fn keys_resolve_like_mount_sources_and_keep_file_order() {
        let text = "[cluster]\n\"/tmp\" = { host-path = \"/mnt/scratch/\" }\n\".\" = { pvc = \"code\" }\n\
                    \"~/.cache/huggingface\" = { pvc = \"hf-cache\" }";
        let (dir, spec) = parse_in(text);
        let got: Vec<_> =
            spec.cluster.iter().map(|m| (m.source.clone(), m.raw.as_str(), &m.volume)).collect();
        assert_eq!(got[0], ("/tmp".into(), "/tmp", &ClusterVolume::HostPath("/mnt/scratch".into())));
        assert_eq!(got[1], (dir.clone(), ".", &ClusterVolume::Pvc("code".into())));
        // The test HOME is the project folder.
        assert_eq!(got[2].0, dir.join(".cache/huggingface"));
    }

    #[test]
    fn mistakes_point_at_the_entry() {
        let cases = [
            ("[cluster]\n\"/d\" = 'x'", (2, 8), "expected a table"),
            ("[cluster]\n\"/d\" = {}", (2, 8), "empty"),
            ("[cluster]\n\"/d\" = { pvc = 'a', host-path = '/b' }", (2, 8), "not both"),
            ("[cluster]\n\"/d\" = { pvcs = 'a' }", (2, 17), "not `pvc` or `host-path`"),
            ("[cluster]\n\"/d\" = { pvc = 'Data_1' }", (2, 16), "not a valid claim name"),
            ("[cluster]\n\"/d\" = { pvc = 3 }", (2, 16), "must be a string"),
            ("[cluster]\n\"/d\" = { host-path = 'mnt/d' }", (2, 22), "not an absolute path"),
            ("[cluster]\n\"/d\" = { pvc = 'a' }\n\"/d/\" = { pvc = 'b' }", (3, 1), "same host path"),
            ("[cluster]\n\"\" = { pvc = 'a' }", (2, 1), "empty"),
        ];
        for (text, at, want) in cases {
            let e = err(text);
            assert_eq!((e.line, e.column), at, "{text}: {e}");
            assert!(e.message.contains(want), "{text}: {e}");
            assert!(e.key.as_deref().is_some_and(|k| k.starts_with("cluster.")), "{e:?}");
        }
    }
}
