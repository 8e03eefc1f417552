//! What the members of a `docker save` tar are, read as they stream past, so `ship` can leave
//! out the layers the other engine already has without holding anything back.
//!
//! Two layouts exist. Docker 25 and later name each layer `blobs/sha256/<digest>`; with the
//! graphdriver store that digest is the layer's diff id. Older engines name it
//! `<v1 id>/layer.tar`, where the v1 id is a sha256 over the folder's `json` (which streams just
//! before the layer) and the layer's chain id: recomputing it for each candidate position tells
//! which layer the folder holds, with certainty, since the v1 id commits to the chain id
//! (moby: `image/v1.CreateID`, `image/tarexport/save.go`). A member that matches nothing is
//! simply sent: a wrong guess could only cost bytes, never a wrong image.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Chain ids of a layer stack: the identity the engine's layer store keys layers by.
/// `chain[0] = diff[0]`, `chain[i] = sha256(chain[i-1] + " " + diff[i])`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chains: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match chains.last() {
            None => diff.clone(),
            Some(prev) => {
                format!("sha256:{}", hex::encode(Sha256::digest(format!("{prev} {diff}").as_bytes())))
            }
        };
        chains.push(next);
    }
    chains
}

/// Recognises the layer members of one image's `docker save` stream.
#[derive(Debug, Clone)]
pub struct Layout {
    diffs: Vec<String>,
    chains: Vec<String>,
    /// v1 folder name → layer index, learnt from each folder's `json`.
    folders: BTreeMap<String, usize>,
}

impl Layout {
    pub fn new(diff_ids: &[String]) -> Layout {
        Layout { diffs: diff_ids.to_vec(), chains: chain_ids(diff_ids), folders: BTreeMap::new() }
    }

    pub fn chains(&self) -> &[String] {
        &self.chains
    }

    /// Learn from a member that is not a layer (only `<v1 id>/json` teaches anything); whether
    /// it named a layer of this image.
    pub fn observe(&mut self, path: &str, data: &[u8]) -> bool {
        let Some((folder, "json")) = path.split_once('/') else { return false };
        let Some(i) = self.v1_position(folder, data) else { return false };
        self.folders.insert(folder.to_string(), i);
        true
    }

    /// The layer index a member holds, if it is a layer berth recognised.
    pub fn layer_of(&self, path: &str) -> Option<usize> {
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            let digest = format!("sha256:{hex}");
            return self.diffs.iter().position(|d| *d == digest);
        }
        match path.split_once('/') {
            Some((folder, "layer.tar")) => self.folders.get(folder).copied(),
            _ => None,
        }
    }

    /// Which position's chain id reproduces the v1 id `folder` from its `json`.
    fn v1_position(&self, folder: &str, json: &[u8]) -> Option<usize> {
        let fields: BTreeMap<String, &RawValue> = serde_json::from_slice(json).ok()?;
        let parent: Option<String> = fields.get("parent").and_then(|p| serde_json::from_str(p.get()).ok());
        // Intermediate layers were hashed without "os" (it is set after), the top one with it.
        for keep_os in [false, true] {
            let mut base: BTreeMap<&str, String> = fields
                .iter()
                .filter(|(k, _)| {
                    k.as_str() != "id" && k.as_str() != "parent" && (keep_os || k.as_str() != "os")
                })
                .map(|(k, v)| (k.as_str(), v.get().to_string()))
                .collect();
            if let Some(p) = &parent {
                base.insert("parent", serde_json::to_string(&format!("sha256:{p}")).ok()?);
            }
            for (i, chain) in self.chains.iter().enumerate() {
                base.insert("layer_id", serde_json::to_string(chain).ok()?);
                if v1_id(&base) == folder {
                    return Some(i);
                }
            }
        }
        None
    }
}

/// Go's `json.Marshal` of a `map[string]*json.RawMessage`: keys sorted, values as they were.
fn v1_id(fields: &BTreeMap<&str, String>) -> String {
    let mut text = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(k).unwrap_or_default());
        text.push(':');
        text.push_str(v);
    }
    text.push('}');
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from `docker save` of a two-layer image on Docker 20.10.24.
    const DIFFS: [&str; 2] = [
        "sha256:961eddcef67985aa8f9518453ca47e4b230a8822154da5313d56f464ab33ea09",
        "sha256:faf009089bffa72504b1cb5a3a0e83864e8d4885df1885db9da2b8fc90324a69",
    ];
    const BASE: &str = "7d1815fcd50c80ec989354e0e2e8e882b03b51f90efddfea727d017c7e1a031e";
    const TOP: &str = "55ad009d6e9aebbae4191fa668dd4955cdef38e46f6a2ee0e73a576c6985670c";
    const BASE_JSON: &str = include_str!("testdata/v1-base.json");
    const TOP_JSON: &str = include_str!("testdata/v1-top.json");

    fn layout() -> Layout {
        Layout::new(&DIFFS.map(String::from))
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let c = chain_ids(&DIFFS.map(String::from));
        assert_eq!(c[0], DIFFS[0]);
        let expect = hex::encode(Sha256::digest(format!("{} {}", DIFFS[0], DIFFS[1]).as_bytes()));
        assert_eq!(c[1], format!("sha256:{expect}"));
    }

    #[test]
    fn legacy_folders_are_recognised_from_their_json() {
        let mut l = layout();
        assert_eq!(l.layer_of(&format!("{TOP}/layer.tar")), None, "unknown before its json");
        l.observe(&format!("{TOP}/VERSION"), b"1.0");
        l.observe(&format!("{TOP}/json"), TOP_JSON.trim_end().as_bytes());
        l.observe(&format!("{BASE}/json"), BASE_JSON.trim_end().as_bytes());
        assert_eq!(l.layer_of(&format!("{BASE}/layer.tar")), Some(0));
        assert_eq!(l.layer_of(&format!("{TOP}/layer.tar")), Some(1));
    }

    #[test]
    fn a_json_that_does_not_hash_to_its_folder_teaches_nothing() {
        let mut l = layout();
        let changed = BASE_JSON.replace("1970", "1971");
        l.observe(&format!("{BASE}/json"), changed.trim_end().as_bytes());
        assert_eq!(l.layer_of(&format!("{BASE}/layer.tar")), None);
        l.observe(&format!("{TOP}/json"), b"not json");
        assert_eq!(l.layer_of(&format!("{TOP}/layer.tar")), None);
    }

    #[test]
    fn oci_blobs_are_named_by_diff_id() {
        let l = layout();
        let hex = DIFFS[1].trim_start_matches("sha256:");
        assert_eq!(l.layer_of(&format!("blobs/sha256/{hex}")), Some(1));
        assert_eq!(l.layer_of("blobs/sha256/0000"), None);
        assert_eq!(l.layer_of("manifest.json"), None);
    }
}
