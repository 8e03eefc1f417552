//! Who an environment is: its container name, hostname and labels.
//!
//! The name is readable and cannot collide between users or clones: owner, project name and a
//! short hash of the project folder's path. Labels carry path, owner and a summary of the plan
//! whose hash tells `up` whether the running container still matches the file.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::host::HostUser;
use crate::spec::Spec;

use super::ContainerPlan;
use super::drift::Summary;

pub const LABEL_MANAGED: &str = "dev.berth.managed";
pub const LABEL_PROJECT: &str = "dev.berth.project";
pub const LABEL_FILE: &str = "dev.berth.file";
pub const LABEL_NAME: &str = "dev.berth.name";
pub const LABEL_OWNER: &str = "dev.berth.owner";
pub const LABEL_OWNER_UID: &str = "dev.berth.owner-uid";
pub const LABEL_HASH: &str = "dev.berth.config-hash";
pub const LABEL_PLAN: &str = "dev.berth.plan";
pub const LABEL_VERSION: &str = "dev.berth.version";
/// The CDI names a Podman container was given (comma-separated): Podman's inspect shows none.
pub const LABEL_CDI: &str = "dev.berth.cdi-devices";

/// Labels only containers carry (an image made from a container must not inherit them).
pub const CONTAINER_ONLY_LABELS: [&str; 7] =
    [LABEL_HASH, LABEL_PLAN, LABEL_FILE, LABEL_NAME, LABEL_OWNER, LABEL_VERSION, LABEL_CDI];

/// `berth-<owner>-<name>-<8 hex of sha256(path)>`.
pub fn container_name(owner: &str, name: &str, project_dir: &Path) -> String {
    let digest = hex::encode(Sha256::digest(project_dir.as_os_str().as_encoded_bytes()));
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' })
            .collect()
    };
    format!("berth-{}-{}-{}", clean(owner), clean(name), &digest[..8])
}

/// A valid hostname from the project name (letters, digits, dashes; at most 63).
pub fn hostname(name: &str) -> String {
    let h: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(63)
        .collect();
    let h = h.trim_matches('-').to_string();
    if h.is_empty() { "berth".into() } else { h }
}

/// Fill labels and the config hash once everything else in the plan is final.
pub(super) fn stamp(plan: &mut ContainerPlan, spec: &Spec, user: &HostUser) {
    let summary = Summary::of(plan);
    let json = serde_json::to_string(&summary).unwrap_or_default();
    let hash = hex::encode(Sha256::digest(json.as_bytes()))[..16].to_string();
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
    labels.insert(LABEL_PROJECT.to_string(), spec.project_dir.display().to_string());
    labels.insert(LABEL_FILE.to_string(), spec.file.display().to_string());
    labels.insert(LABEL_NAME.to_string(), spec.name.clone());
    labels.insert(LABEL_OWNER.to_string(), user.name.clone());
    labels.insert(LABEL_OWNER_UID.to_string(), user.uid.to_string());
    labels.insert(LABEL_HASH.to_string(), hash.clone());
    labels.insert(LABEL_PLAN.to_string(), json);
    labels.insert(LABEL_VERSION.to_string(), env!("CARGO_PKG_VERSION").to_string());
    if !plan.gpu.cdi_devices.is_empty() {
        labels.insert(LABEL_CDI.to_string(), plan.gpu.cdi_devices.join(","));
    }
    plan.labels = labels;
    plan.config_hash = hash;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_by_owner_and_path_but_stay_readable() {
        let a = container_name("alice", "sdcnet", Path::new("/home/alice/sdcnet"));
        let b = container_name("alice", "sdcnet", Path::new("/home/alice/clone/sdcnet"));
        let c = container_name("bob", "sdcnet", Path::new("/home/alice/sdcnet"));
        assert!(a.starts_with("berth-alice-sdcnet-"));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), "berth-alice-sdcnet-".len() + 8);
    }

    #[test]
    fn hostnames_are_valid() {
        assert_eq!(hostname("My_Project.v2"), "my-project-v2");
        assert_eq!(hostname("__"), "berth");
    }
}
