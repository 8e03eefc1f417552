//! A [`ContainerPlan`] as the Engine API request that creates it.
//!
//! Pure and deterministic (maps become sorted), so the request itself is what the plan
//! snapshots show. Nothing here weakens isolation unless the plan carries a `[run]` opt-in:
//! no privileged mode, no seccomp or capability changes, host IPC or network only when asked.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, HostConfig, Mount, MountType, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};

use crate::plan::ContainerPlan;

/// The create request for `plan`; `host_ports` holds the host port chosen for each entry of
/// `plan.ports` whose port was left to berth (same order; `None` lets the engine pick).
pub(super) fn create_body(plan: &ContainerPlan, host_ports: &[Option<u16>]) -> ContainerCreateBody {
    // Typed mounts, not `src:dst` strings: a path holding `:` stays one path.
    let mounts = plan
        .mounts
        .iter()
        .map(|m| Mount {
            typ: Some(MountType::BIND),
            source: Some(m.source.to_string_lossy().into_owned()),
            target: Some(m.target.clone()),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();
    let devices = plan
        .devices
        .iter()
        .map(|d| {
            let parts: Vec<&str> = d.split(':').collect();
            let host = parts[0].to_string();
            let inside = parts.get(1).map_or(host.clone(), |s| s.to_string());
            let perms = parts.get(2).map_or("rwm".to_string(), |s| s.to_string());
            DeviceMapping {
                path_on_host: Some(host),
                path_in_container: Some(inside),
                cgroup_permissions: Some(perms),
            }
        })
        .collect();
    let device_requests = plan
        .gpu
        .device_requests
        .iter()
        .map(|r| DeviceRequest {
            driver: Some(r.driver.clone()),
            count: (r.count != 0).then_some(r.count),
            device_ids: (!r.device_ids.is_empty()).then(|| r.device_ids.clone()),
            capabilities: (!r.capabilities.is_empty()).then(|| r.capabilities.clone()),
            options: None,
        })
        .collect();
    let ulimits = plan
        .ulimits
        .iter()
        .map(|(name, v)| ResourcesUlimits { name: Some(name.clone()), soft: Some(*v), hard: Some(*v) })
        .collect();
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    for (i, p) in plan.ports.iter().enumerate() {
        let key = format!("{}/{}", p.container_port, p.protocol);
        let host_port = p.host_port.or(host_ports.get(i).copied().flatten());
        exposed.push(key.clone());
        port_bindings.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(
            PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(host_port.map_or(String::new(), |h| h.to_string())),
            },
        );
    }
    let labels: HashMap<String, String> = plan.labels.clone().into_iter().collect();
    let env: Vec<String> = plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let host_config = HostConfig {
        mounts: Some(mounts),
        devices: Some(devices),
        device_requests: Some(device_requests),
        group_add: (!plan.user.group_add.is_empty())
            .then(|| plan.user.group_add.iter().map(u32::to_string).collect()),
        shm_size: (plan.shm.bytes > 0).then_some(plan.shm.bytes as i64),
        memory: plan.memory.map(|m| m as i64),
        nano_cpus: plan.cpus.map(|c| (c * 1e9).round() as i64),
        ulimits: Some(ulimits),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        ipc_mode: plan.ipc.clone(),
        network_mode: plan.network.clone(),
        cap_add: (!plan.cap_add.is_empty()).then(|| plan.cap_add.clone()),
        init: Some(true),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        privileged: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        hostname: Some(plan.hostname.clone()),
        user: Some(plan.user.user.clone()),
        env: Some(env),
        image: Some(plan.image.clone()),
        working_dir: Some(plan.workdir.clone()),
        entrypoint: Some(plan.entrypoint.clone()),
        cmd: Some(plan.cmd.clone()),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(false),
        open_stdin: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The request as JSON (serde_json's maps are sorted), for snapshots.
pub fn create_body_json(plan: &ContainerPlan) -> serde_json::Value {
    serde_json::to_value(create_body(plan, &[])).unwrap_or_default()
}
