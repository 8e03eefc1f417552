//! What differs between the Python packages a container has and what the project asks for.
//!
//! The requirements are `[image] pip` plus the requirements file. Packages installed or removed
//! by hand are read from the container's writable layer (`*.dist-info` / `*.egg-info` folders
//! added or deleted under `site-packages` / `dist-packages`), so the image's own packages never
//! count as drift; versions come from `pip list`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::changes::{Change, Kind};

/// Normalised package name (PEP 503: lowercase, runs of `-_.` become `-`).
pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// `name -> pinned version (for ==)` from requirement lines (options and comments skipped).
pub fn parse_requirements(lines: &[String]) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for line in lines {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('-') || line.contains("://") {
            continue;
        }
        let line = line.split(';').next().unwrap_or("").trim();
        let end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(line.len());
        let name = normalise(&line[..end]);
        if name.is_empty() {
            continue;
        }
        let rest = line[end..].trim_start();
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']').map_or("", |(_, x)| x).trim_start(),
            None => rest,
        };
        let pinned =
            rest.strip_prefix("==").map(|v| v.trim().to_string()).filter(|v| !v.contains(['*', ',']));
        out.insert(name, pinned);
    }
    out
}

/// `(name, version)` of a metadata folder path, if it is one under a Python site folder.
fn dist_info(path: &str) -> Option<(String, String)> {
    if !(path.contains("/site-packages/") || path.contains("/dist-packages/")) {
        return None;
    }
    let last = path.rsplit('/').next()?;
    let stem = last.strip_suffix(".dist-info").or_else(|| last.strip_suffix(".egg-info"))?;
    let (name, version) = stem.split_once('-')?;
    let version = version.split('-').next().unwrap_or(version);
    Some((normalise(name), version.to_string()))
}

/// How many Python packages were installed or removed by hand (from the layer alone).
pub fn hand_changed(changes: &[Change]) -> usize {
    let mut names: Vec<String> = changes.iter().filter_map(|c| dist_info(&c.path)).map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    names.len()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Drift {
    /// Installed by hand and not in the requirements.
    pub added: Vec<Package>,
    /// Asked for but not installed (or removed by hand).
    pub removed: Vec<Package>,
    /// Installed in another version than the requirements pin (or than the image had).
    pub changed: Vec<Changed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: String,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub name: String,
    pub from: String,
    pub to: String,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compare `installed` (`pip list`) and the layer's `changes` with the requirements.
pub fn compare(
    installed: &BTreeMap<String, String>,
    changes: &[Change],
    requirements: &BTreeMap<String, Option<String>>,
) -> Drift {
    let mut hand_added: BTreeMap<String, String> = BTreeMap::new();
    let mut hand_removed: BTreeMap<String, String> = BTreeMap::new();
    for c in changes {
        let Some((name, version)) = dist_info(&c.path) else { continue };
        match c.kind {
            Kind::Added => {
                hand_added.insert(name, version);
            }
            Kind::Deleted => {
                hand_removed.insert(name, version);
            }
            Kind::Changed => {}
        }
    }
    let mut d = Drift::default();
    for (name, version) in &hand_added {
        let now = installed.get(name).cloned().unwrap_or_else(|| version.clone());
        match (requirements.get(name), hand_removed.get(name)) {
            (Some(Some(pin)), _) if *pin != now => {
                d.changed.push(Changed { name: name.clone(), from: pin.clone(), to: now })
            }
            (Some(_), _) => {}
            (None, Some(old)) if *old != now => {
                d.changed.push(Changed { name: name.clone(), from: old.clone(), to: now })
            }
            (None, Some(_)) => {}
            (None, None) => d.added.push(Package { name: name.clone(), version: Some(now) }),
        }
    }
    for (name, pin) in requirements {
        match installed.get(name) {
            None => d.removed.push(Package { name: name.clone(), version: pin.clone() }),
            Some(v) if !hand_added.contains_key(name) => {
                if let Some(p) = pin
                    && p != v
                {
                    d.changed.push(Changed { name: name.clone(), from: p.clone(), to: v.clone() });
                }
            }
            Some(_) => {}
        }
    }
    for (name, version) in &hand_removed {
        if !installed.contains_key(name) && !requirements.contains_key(name) {
            d.removed.push(Package { name: name.clone(), version: Some(version.clone()) });
        }
    }
    d
}

/// A pinned requirements file for what is installed: every requirement and every package
/// added by hand, as `name==version`.
pub fn pinned(
    installed: &BTreeMap<String, String>,
    drift: &Drift,
    requirements: &BTreeMap<String, Option<String>>,
) -> String {
    let mut names: Vec<&String> = requirements.keys().collect();
    names.extend(drift.added.iter().map(|p| &p.name));
    names.sort();
    names.dedup();
    let mut out = String::new();
    for n in names {
        if let Some(v) = installed.get(n) {
            out.push_str(&format!("{n}=={v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, kind: Kind) -> Change {
        Change { path: path.into(), kind }
    }

    #[test]
    fn requirement_lines_parse() {
        let lines: Vec<String> = [
            "numpy==1.26.4",
            "Torch_Vision>=0.20 # c",
            "--index-url https://x",
            "rich[jupyter]==13.7.1; python_version>'3'",
            "",
            "-r other.txt",
            "scipy==1.*",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = parse_requirements(&lines);
        assert_eq!(r.get("numpy"), Some(&Some("1.26.4".into())));
        assert_eq!(r.get("torch-vision"), Some(&None));
        assert_eq!(r.get("rich"), Some(&Some("13.7.1".into())));
        assert_eq!(r.get("scipy"), Some(&None));
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn drift_sorts_hand_work_into_added_removed_changed() {
        let site = "/usr/local/lib/python3.11/dist-packages";
        let changes = vec![
            change(&format!("{site}/handmade-1.0.dist-info"), Kind::Added),
            change(&format!("{site}/numpy-2.0.0.dist-info"), Kind::Added),
            change(&format!("{site}/numpy-1.26.4.dist-info"), Kind::Deleted),
            change(&format!("{site}/six-1.16.0.dist-info"), Kind::Deleted),
            change("/root/notes.txt", Kind::Added),
        ];
        let installed: BTreeMap<String, String> =
            [("handmade", "1.0"), ("numpy", "2.0.0"), ("pip", "23.0.1")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        let reqs = parse_requirements(&["numpy==1.26.4".into(), "rich".into()]);
        let d = compare(&installed, &changes, &reqs);
        assert_eq!(d.added, vec![Package { name: "handmade".into(), version: Some("1.0".into()) }]);
        assert_eq!(
            d.changed,
            vec![Changed { name: "numpy".into(), from: "1.26.4".into(), to: "2.0.0".into() }]
        );
        assert_eq!(
            d.removed,
            vec![
                Package { name: "rich".into(), version: None },
                Package { name: "six".into(), version: Some("1.16.0".into()) }
            ]
        );
        assert_eq!(pinned(&installed, &d, &reqs), "handmade==1.0\nnumpy==2.0.0\n");
    }
}
