//! Drift: what differs between the plan for the file as it is now and the container that runs.
//!
//! A container keeps a [`Summary`] of the plan it was made from in a label. Comparing two
//! summaries field by field gives the lines `up` prints before asking for `--recreate`. Only
//! what the container cannot change without being recreated is in the summary; host ports berth
//! picked itself are written as `auto` so a fresh pick is not drift.

use serde::{Deserialize, Serialize};

use super::{ContainerPlan, GpuMode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Summary {
    pub image: String,
    pub user: String,
    pub groups: Vec<u32>,
    pub workdir: String,
    pub mounts: Vec<String>,
    pub shm: u64,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub gpus: String,
    pub ports: Vec<String>,
    pub env: Vec<String>,
    pub ipc: Option<String>,
    pub network: Option<String>,
    pub cap_add: Vec<String>,
    pub devices: Vec<String>,
    pub ulimits: Vec<String>,
}

impl Summary {
    pub fn of(plan: &ContainerPlan) -> Summary {
        let gpus = match plan.gpu.mode {
            GpuMode::None => "none".to_string(),
            GpuMode::Wsl => "wsl:all".to_string(),
            mode => {
                let ids: Vec<String> = plan
                    .gpu
                    .selected
                    .iter()
                    .map(|s| s.uuid.clone().unwrap_or_else(|| s.index.to_string()))
                    .collect();
                let mode = serde_json::to_value(mode).ok().and_then(|v| v.as_str().map(str::to_string));
                format!(
                    "{}:{}",
                    mode.unwrap_or_default(),
                    if plan.gpu.all { "all".into() } else { ids.join(",") }
                )
            }
        };
        Summary {
            image: plan.image.clone(),
            user: plan.user.user.clone(),
            groups: plan.user.group_add.clone(),
            workdir: plan.workdir.clone(),
            mounts: plan
                .mounts
                .iter()
                .map(|m| {
                    format!("{}:{}:{}", m.source.display(), m.target, if m.read_only { "ro" } else { "rw" })
                })
                .collect(),
            shm: plan.shm.bytes,
            memory: plan.memory,
            cpus: plan.cpus,
            gpus,
            ports: plan
                .ports
                .iter()
                .map(|p| {
                    let host = p.host_port.map_or("auto".to_string(), |h| h.to_string());
                    format!("{}:{}:{}/{}", p.host_ip, host, p.container_port, p.protocol)
                })
                .collect(),
            env: plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            ipc: plan.ipc.clone(),
            network: plan.network.clone(),
            cap_add: plan.cap_add.clone(),
            devices: plan.devices.clone(),
            ulimits: plan.ulimits.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        }
    }

    pub fn from_label(json: &str) -> Option<Summary> {
        serde_json::from_str(json).ok()
    }
}

/// Human lines describing how `new` differs from `old` (empty when they match).
pub fn differences(old: &Summary, new: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    let mut scalar = |what: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{what}: {a} → {b}"));
        }
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "default".into());
    let num = |v: Option<u64>| v.map_or("none".to_string(), crate::spec::size::format_size);
    scalar("image", old.image.clone(), new.image.clone());
    scalar("user", old.user.clone(), new.user.clone());
    scalar("groups", format!("{:?}", old.groups), format!("{:?}", new.groups));
    scalar("workdir", old.workdir.clone(), new.workdir.clone());
    scalar("shm", crate::spec::size::format_size(old.shm), crate::spec::size::format_size(new.shm));
    scalar("memory", num(old.memory), num(new.memory));
    scalar("cpus", format!("{:?}", old.cpus), format!("{:?}", new.cpus));
    scalar("gpus", old.gpus.clone(), new.gpus.clone());
    scalar("ipc", opt(&old.ipc), opt(&new.ipc));
    scalar("network", opt(&old.network), opt(&new.network));
    let lists: [(&str, &Vec<String>, &Vec<String>); 6] = [
        ("mount", &old.mounts, &new.mounts),
        ("port", &old.ports, &new.ports),
        ("env", &old.env, &new.env),
        ("cap-add", &old.cap_add, &new.cap_add),
        ("device", &old.devices, &new.devices),
        ("ulimit", &old.ulimits, &new.ulimits),
    ];
    for (what, a, b) in lists {
        for gone in a.iter().filter(|x| !b.contains(x)) {
            out.push(format!("{what} removed: {gone}"));
        }
        for added in b.iter().filter(|x| !a.contains(x)) {
            out.push(format!("{what} added: {added}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_changed_field() {
        let old = Summary {
            image: "a:1".into(),
            shm: 1 << 30,
            mounts: vec!["/d:/d:ro".into()],
            ..Default::default()
        };
        let new = Summary {
            image: "a:2".into(),
            shm: 2 << 30,
            mounts: vec!["/e:/e:ro".into()],
            ..Default::default()
        };
        let d = differences(&old, &new);
        assert_eq!(
            d,
            vec![
                "image: a:1 → a:2".to_string(),
                "shm: 1 GiB → 2 GiB".to_string(),
                "mount removed: /d:/d:ro".to_string(),
                "mount added: /e:/e:ro".to_string(),
            ]
        );
        assert!(differences(&new, &new).is_empty());
    }
}
