//! berth's knowledge tables (`data/*.toml`, each citing its sources), compiled into the binary.
//!
//! Parsed on first use; a table that does not parse is a bug caught by the tests below, so the
//! accessors fall back to empty tables rather than failing a user's command.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
pub struct TorchTable {
    pub torch: Vec<TorchRow>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct TorchRow {
    pub minor: String,
    pub torchvision: String,
    pub cuda: Vec<String>,
    pub rocm: Vec<String>,
    pub python: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct DriverTable {
    pub cuda: Vec<DriverFloor>,
    pub release: Vec<ReleaseDriver>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct DriverFloor {
    pub version: String,
    pub minimum: String,
}

#[derive(Debug, Deserialize, Clone)]
pub struct ReleaseDriver {
    pub cuda: String,
    pub driver: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct GfxTable {
    pub targets: BTreeMap<String, Vec<String>>,
    #[serde(rename = "override")]
    pub overrides: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct ImageTable {
    pub pytorch: Vec<ImageRow>,
    pub ngc: Vec<ImageRow>,
    pub rocm: Vec<ImageRow>,
    pub cuda: Vec<ImageRow>,
    pub python: PythonRow,
}

#[derive(Debug, Deserialize, Clone, Default)]
pub struct ImageRow {
    #[serde(default)]
    pub torch: Option<String>,
    #[serde(default)]
    pub cuda: Option<String>,
    #[serde(default)]
    pub rocm: Option<String>,
    #[serde(default)]
    pub python: Option<String>,
    pub tag: String,
}

#[derive(Debug, Deserialize, Clone, Default)]
pub struct PythonRow {
    pub versions: Vec<String>,
    pub default: String,
}

fn load<T: for<'de> Deserialize<'de> + Default>(text: &str) -> T {
    toml::from_str(text).unwrap_or_default()
}

pub fn torch() -> &'static TorchTable {
    static T: OnceLock<TorchTable> = OnceLock::new();
    T.get_or_init(|| load(include_str!("../../data/torch.toml")))
}

pub fn drivers() -> &'static DriverTable {
    static T: OnceLock<DriverTable> = OnceLock::new();
    T.get_or_init(|| load(include_str!("../../data/cuda-drivers.toml")))
}

pub fn gfx() -> &'static GfxTable {
    static T: OnceLock<GfxTable> = OnceLock::new();
    T.get_or_init(|| load(include_str!("../../data/rocm-gfx.toml")))
}

pub fn images() -> &'static ImageTable {
    static T: OnceLock<ImageTable> = OnceLock::new();
    T.get_or_init(|| load(include_str!("../../data/images.toml")))
}

/// Compare dotted versions numerically (`12.10` > `12.9`).
pub fn version_key(v: &str) -> Vec<u64> {
    v.split(['.', '-', '+']).map_while(|p| p.parse().ok()).collect()
}

/// Whether `version` matches a user's `pin` (`2.5` matches `2.5.1`; `2.5.1` only itself).
pub fn matches_pin(version: &str, pin: &str) -> bool {
    let (v, p) = (version_key(version), version_key(pin));
    v.len() >= p.len() && v[..p.len()] == p[..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parses<T: for<'de> Deserialize<'de>>(text: &str) {
        if let Err(e) = toml::from_str::<T>(text) {
            panic!("a data table does not parse: {e}");
        }
    }

    #[test]
    fn every_table_parses_and_is_not_empty() {
        parses::<TorchTable>(include_str!("../../data/torch.toml"));
        parses::<DriverTable>(include_str!("../../data/cuda-drivers.toml"));
        parses::<GfxTable>(include_str!("../../data/rocm-gfx.toml"));
        parses::<ImageTable>(include_str!("../../data/images.toml"));
        assert!(torch().torch.len() >= 8);
        assert_eq!(drivers().cuda.len(), 3);
        assert!(gfx().targets.contains_key("6.3"));
        assert!(!images().pytorch.is_empty() && !images().python.versions.is_empty());
    }

    #[test]
    fn versions_compare_numerically_and_pins_match_prefixes() {
        assert!(version_key("12.10") > version_key("12.9"));
        assert!(matches_pin("2.5.1", "2.5"));
        assert!(!matches_pin("2.5.1", "2.5.0"));
        assert!(!matches_pin("2.50.1", "2.5"));
        assert!(matches_pin("12.4", "12"));
    }
}
