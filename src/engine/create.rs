//! A [`ContainerPlan`] as the Engine API request that creates it: Docker's create
//! ([`create_body`]), or Podman's own ([`libpod_body`]) for a plan with CDI names, which Podman's
//! Docker-compatible API cannot carry (see `plan::gpu`).
//!
//! Pure and deterministic (maps become sorted), so the request itself is what the plan
//! snapshots show. Nothing here weakens isolation unless the plan carries a `[run]` opt-in:
//! no privileged mode, no seccomp or capability changes, host IPC or network only when asked.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, HostConfig, Mount, MountType, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};

use serde_json::{Map, Value, json};

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

/// Podman's own create request (`POST /libpod/containers/create`, a `SpecGenerator`) for a plan
/// whose GPUs are CDI names: the same container [`create_body`] asks for, as Podman 4.3's
/// Docker-compatible handler turns that request into this one (`compat.cliOpts`: the bridge
/// network unless one is named, the work folder created, CPUs as a quota per 100 ms period, swap
/// twice the memory limit), plus the CDI names as devices. One difference: that handler drops
/// `Ulimits` on rootless Podman, where this request keeps them (the plan fits them to the
/// engine's hard limits, `plan::ulimits`).
pub(super) fn libpod_body(plan: &ContainerPlan, host_ports: &[Option<u16>]) -> serde_json::Value {
    let mounts: Vec<Value> = plan
        .mounts
        .iter()
        .map(|m| {
            let mut options = vec!["rbind"];
            if m.read_only {
                options.push("ro");
            }
            json!({
                "destination": m.target,
                "source": m.source.to_string_lossy(),
                "type": "bind",
                "options": options,
            })
        })
        .collect();
    // `host:inside:perms`, the form Podman's own `--device` takes, then the CDI names.
    let devices: Vec<Value> = plan
        .devices
        .iter()
        .map(|d| {
            let parts: Vec<&str> = d.split(':').collect();
            let inside = parts.get(1).copied().unwrap_or(parts[0]);
            let perms = parts.get(2).copied().unwrap_or("rwm");
            json!({ "path": format!("{}:{inside}:{perms}", parts[0]) })
        })
        .chain(plan.gpu.cdi_devices.iter().map(|name| json!({ "path": name })))
        .collect();
    // Unlimited (`-1`) is RLIM_INFINITY in the OCI spec's unsigned limits.
    let rlimit = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
    let r_limits: Vec<Value> = plan
        .ulimits
        .iter()
        .map(|(name, v)| json!({ "type": name, "soft": rlimit(*v), "hard": rlimit(*v) }))
        .collect();
    let mut portmappings = Vec::new();
    let mut expose = Map::new();
    for (i, p) in plan.ports.iter().enumerate() {
        let host_port = p.host_port.or(host_ports.get(i).copied().flatten()).unwrap_or(0);
        portmappings.push(json!({
            "host_ip": p.host_ip,
            "container_port": p.container_port,
            "host_port": host_port,
            "protocol": p.protocol,
        }));
        expose.insert(p.container_port.to_string(), json!(p.protocol));
    }
    let env: Map<String, Value> = plan.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut body = Map::new();
    let mut set = |key: &str, value: Value| {
        body.insert(key.to_string(), value);
    };
    set("name", json!(plan.name));
    set("hostname", json!(plan.hostname));
    set("image", json!(plan.image));
    set("labels", json!(plan.labels));
    set("env", Value::Object(env));
    set("user", json!(plan.user.user));
    set("work_dir", json!(plan.workdir));
    set("create_working_dir", json!(true));
    set("entrypoint", json!(plan.entrypoint));
    set("command", json!(plan.cmd));
    set("init", json!(true));
    set("restart_policy", json!("unless-stopped"));
    set("privileged", json!(false));
    set("terminal", json!(false));
    set("stdin", json!(false));
    set("image_volume_mode", json!("anonymous"));
    set("mounts", json!(mounts));
    set("devices", json!(devices));
    set("r_limits", json!(r_limits));
    match plan.network.as_deref() {
        None => set("netns", namespace("bridge")),
        Some(mode @ ("host" | "none" | "bridge")) => set("netns", namespace(mode)),
        Some(named) => {
            set("netns", namespace("bridge"));
            let mut networks = Map::new();
            networks.insert(named.to_string(), json!({}));
            set("Networks", Value::Object(networks));
        }
    }
    if let Some(ipc) = plan.ipc.as_deref() {
        set("ipcns", namespace(ipc));
    }
    if !plan.user.group_add.is_empty() {
        set("groups", json!(plan.user.group_add.iter().map(u32::to_string).collect::<Vec<_>>()));
    }
    if plan.shm.bytes > 0 {
        set("shm_size", json!(plan.shm.bytes));
    }
    if !plan.cap_add.is_empty() {
        set("cap_add", json!(plan.cap_add));
    }
    if !portmappings.is_empty() {
        set("portmappings", json!(portmappings));
        set("expose", Value::Object(expose));
    }
    let mut limits = Map::new();
    if let Some(m) = plan.memory {
        limits.insert("memory".into(), json!({ "limit": m, "swap": m.saturating_mul(2) }));
    }
    if let Some(c) = plan.cpus {
        limits.insert("cpu".into(), json!({ "quota": (c * 1e5).round() as i64, "period": 100_000 }));
    }
    if !limits.is_empty() {
        set("resource_limits", Value::Object(limits));
    }
    Value::Object(body)
}

/// A namespace as `SpecGenerator` writes it: `host`, `none`, `private`, `bridge`,
/// `container:ID`.
fn namespace(mode: &str) -> Value {
    match mode.split_once(':') {
        Some((kind, value)) => json!({ "nsmode": kind, "value": value }),
        None => json!({ "nsmode": mode }),
    }
}

/// The request as JSON (serde_json's maps are sorted), for snapshots.
pub fn create_body_json(plan: &ContainerPlan) -> serde_json::Value {
    serde_json::to_value(create_body(plan, &[])).unwrap_or_default()
}

/// Podman's own request ([`libpod_body`]), for snapshots.
pub fn libpod_body_json(plan: &ContainerPlan) -> serde_json::Value {
    libpod_body(plan, &[])
}
