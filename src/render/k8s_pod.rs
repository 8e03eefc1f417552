//! The pod every Kubernetes flavor runs: volumes, the container's mounts, env and resources.
//!
//! Mounts: a `[cluster]` entry makes a PVC (with `subPath` for folders inside it) or a
//! hostPath on the nodes; berth's own folder and the caches without one are `emptyDir` (they
//! are per pod anyway); the file's other mounts become hostPath volumes of this machine's path,
//! with a warning, since nothing else can be said about them. `/dev/shm` is a memory-backed
//! `emptyDir` with a size limit (Kubernetes has no shm size, kubernetes/kubernetes#28272).

use super::yaml::{Map, Yaml, strs};
use super::{ExportMount, ExportPlan, cpus_text, dns_label};
use crate::host::Vendor;
use crate::plan::portable::{MountKind, MountRoot};
use crate::spec::ClusterVolume;

/// The annotation that holds an Indexed Job pod's completion index: the node rank.
pub const INDEX_ANNOTATION: &str = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
pub const CONTAINER: &str = "node";

/// A pod's volumes and the container's mounts of them.
pub struct Storage {
    pub volumes: Vec<Yaml>,
    pub mounts: Vec<Yaml>,
}

pub fn storage(p: &ExportPlan, warnings: &mut Vec<String>) -> Storage {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let mut used: Vec<String> = Vec::new();
    for m in &p.mounts {
        let mut name = dns_label(m.mount.target.trim_start_matches('/'), 50);
        if used.contains(&name) || name == "dshm" {
            name = format!("{name}-{}", used.len());
        }
        used.push(name.clone());
        let (volume, sub_path) = volume(p, m, warnings);
        volumes.push(Map::new().set("name", name.as_str()).set(volume.0, volume.1).into());
        let mut mount = Map::new().set("name", name.as_str()).set("mountPath", m.mount.target.as_str());
        if !sub_path.is_empty() {
            mount = mount.set("subPath", sub_path);
        }
        if m.mount.read_only {
            mount = mount.set("readOnly", true);
        }
        mounts.push(mount.into());
    }
    if let Some(bytes) = p.shm {
        let empty_dir = Map::new().set("medium", "Memory").set("sizeLimit", quantity(bytes));
        volumes.push(Map::new().set("name", "dshm").set("emptyDir", empty_dir).into());
        mounts.push(Map::new().set("name", "dshm").set("mountPath", "/dev/shm").into());
    }
    Storage { volumes, mounts }
}

/// The volume source (`persistentVolumeClaim`, `hostPath` or `emptyDir`) and the subPath.
fn volume(p: &ExportPlan, m: &ExportMount, warnings: &mut Vec<String>) -> ((&'static str, Map), String) {
    if let Some(t) = &m.cluster {
        return match &t.volume {
            ClusterVolume::Pvc(claim) => {
                let mut pvc = Map::new().set("claimName", claim.as_str());
                if m.mount.read_only {
                    pvc = pvc.set("readOnly", true);
                }
                (("persistentVolumeClaim", pvc), t.sub_path.clone())
            }
            ClusterVolume::HostPath(path) => {
                let full =
                    if t.sub_path.is_empty() { path.clone() } else { format!("{path}/{}", t.sub_path) };
                (("hostPath", Map::new().set("path", full)), String::new())
            }
        };
    }
    match (m.mount.kind, &m.host_source) {
        (MountKind::User, Some(source)) => {
            let path = source.to_string_lossy().into_owned();
            let how = match m.mount.root {
                MountRoot::Absolute => String::new(),
                _ => format!(" (`{}` on this machine)", m.mount.path_or_dot()),
            };
            warnings.push(format!(
                "{} has no [cluster] entry: it becomes a hostPath volume of {path}{how}, which every node \
                 must have; map it in berth.toml, e.g. `[cluster]` `\"{}\" = {{ pvc = \"{}\" }}`",
                m.mount.target,
                m.mount.path_or_dot(),
                dns_label(&p.name, 40)
            ));
            (("hostPath", Map::new().set("path", path)), String::new())
        }
        // berth's own folder and the caches: per pod unless `[cluster]` keeps them.
        _ => (("emptyDir", Map::new()), String::new()),
    }
}

/// The container's env: the file's variables, `extra` (topology), and the from-host names from
/// a Secret the user creates (`<name>-env`).
pub fn env(p: &ExportPlan, extra: Vec<Yaml>) -> Vec<Yaml> {
    let mut env: Vec<Yaml> = p
        .env
        .iter()
        .map(|(k, v)| Map::new().set("name", k.as_str()).set("value", v.as_str()).into())
        .collect();
    env.extend(extra);
    for name in &p.host_env {
        let key_ref = Map::new().set("name", secret_name(p)).set("key", name.as_str());
        let from = Map::new().set("secretKeyRef", key_ref);
        env.push(Map::new().set("name", name.as_str()).set("valueFrom", from).into());
    }
    env
}

pub fn secret_name(p: &ExportPlan) -> String {
    format!("{}-env", p.dns_name)
}

/// A `name: value` env entry.
pub fn var(name: &str, value: impl Into<String>) -> Yaml {
    Map::new().set("name", name).set("value", value.into()).into()
}

/// `PET_NODE_RANK` from the pod's completion index.
pub fn rank_var() -> Yaml {
    let field = Map::new().set("fieldRef", Map::new().set("fieldPath", INDEX_ANNOTATION));
    Map::new().set("name", "PET_NODE_RANK").set("valueFrom", field).into()
}

/// `limits` for one node: its GPUs, memory and CPUs.
pub fn limits(p: &ExportPlan) -> Map {
    let mut limits = Map::new();
    match p.vendor {
        Some(Vendor::Nvidia) if p.gpus_per_node > 0 => limits = limits.set("nvidia.com/gpu", p.gpus_per_node),
        Some(Vendor::Amd) if p.gpus_per_node > 0 => limits = limits.set("amd.com/gpu", p.gpus_per_node),
        _ => {}
    }
    if let Some(m) = p.memory {
        limits = limits.set("memory", quantity(m));
    }
    if let Some(c) = p.cpus {
        limits = limits.set("cpu", cpus_text(c));
    }
    limits
}

/// The container's securityContext: the user and added capabilities.
pub fn security(p: &ExportPlan) -> Map {
    let mut sc = Map::new();
    if p.user == crate::spec::UserMode::Root {
        sc = sc.set("runAsUser", 0i64).set("runAsGroup", 0i64);
    }
    if !p.cap_add.is_empty() {
        sc = sc.set("capabilities", Map::new().set("add", strs(&p.cap_add)));
    }
    sc
}

/// What a pod cannot take from the file, said once per export.
pub fn unsupported(p: &ExportPlan, warnings: &mut Vec<String>) {
    if let crate::spec::UserMode::Named(n) = &p.user {
        warnings.push(format!("Kubernetes needs numeric ids: `user.as = \"{n}\"` is left to the image"));
    }
    if !p.devices.is_empty() {
        warnings.push("Kubernetes hands out devices through device plugins: [run] devices is ignored".into());
    }
    if p.network.as_deref().is_some_and(|n| n != "host") {
        warnings.push("pods use the cluster's network: [run] network is ignored".into());
    }
}

/// A Kubernetes quantity: `16Gi`, `512Mi`, or bytes.
pub fn quantity(bytes: u64) -> String {
    for (unit, suffix) in [(1u64 << 40, "Ti"), (1 << 30, "Gi"), (1 << 20, "Mi"), (1 << 10, "Ki")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

pub fn labels(p: &ExportPlan) -> Map {
    Map::new().set("app.kubernetes.io/name", p.dns_name.as_str()).set("app.kubernetes.io/managed-by", "berth")
}
