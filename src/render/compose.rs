//! `compose.yaml`: the environment as a Docker Compose service, or `--nodes N` services on a
//! private network that rehearse a multi-node torchrun on one server.
//!
//! Written for both Debian's docker-compose 1.29.2 and Compose v2: no top-level `name` or
//! `version`, no service-level `gpus` (NVIDIA GPUs are device reservations), short volume
//! syntax. Compose interpolates `$` everywhere, so literal text has every `$` doubled; the only
//! variables left for compose are `${HOME}` and berth's `${BERTH_*}` overrides, each with a
//! default where one makes sense. Rehearsal nodes get static torchrun rendezvous through
//! `PET_*`: node `i` has rank `i`, and `node0` is the master, reached by its service name.

use super::yaml::{Map, Yaml, document, strs};
use super::{ExportPlan, LocalGpus, RenderError, Rendered, cpus_text, docker_size, refuse};
use crate::host::Vendor;
use crate::plan::portable::MountRoot;
use crate::spec::UserMode;

/// The private network of a multi-node rehearsal.
const NETWORK: &str = "berth";

/// `project_ref`: the project folder as seen from the compose file's folder (`.` when the file
/// is in the project, as by default).
pub fn render(p: &ExportPlan, project_ref: &str) -> Result<Rendered, RenderError> {
    if p.nodes > 1 && p.network.is_some() {
        return Err(refuse(
            "`run.network` cannot be combined with --nodes: the rehearsal's nodes share a private network",
            "leave --nodes out, or remove `network` from [run] in berth.toml",
        ));
    }
    let per_node = node_gpus(p)?;
    let mut services = Map::new();
    if p.nodes == 1 {
        services = services.set(&p.dns_name, service(p, project_ref, None, &per_node[0]));
    } else {
        for rank in 0..p.nodes {
            let name = format!("node{rank}");
            services = services.set(&name, service(p, project_ref, Some(rank), &per_node[rank as usize]));
        }
    }
    let mut extra = vec![
        "Works with docker-compose 1.29 and Compose v2: `docker-compose up -d` or `docker compose up -d`."
            .into(),
    ];
    if matches!(p.user, UserMode::Host) {
        extra.push("The user is ${BERTH_UID}:${BERTH_GID} (default 1000:1000): run compose with".into());
        extra.push("  BERTH_UID=$(id -u) BERTH_GID=$(id -g) so files in mounted folders are yours.".into());
    }
    if p.vendor == Some(Vendor::Amd) {
        extra.push("AMD: /dev/kfd and /dev/dri belong to the host's video and render groups; set".into());
        extra.push("  BERTH_VIDEO_GID / BERTH_RENDER_GID to their ids (`getent group render`) if the".into());
        extra.push("  image's group names differ from the host's.".into());
    }
    let missing: Vec<String> =
        p.mounts.iter().filter(|m| m.mount.create).map(|m| source(&m.mount, project_ref)).collect();
    if !missing.is_empty() {
        extra.push(format!(
            "Create missing mount sources first (compose would make them as root): {}",
            missing.join(" ")
        ));
    }
    if p.nodes > 1 {
        extra.push(format!(
            "A {}-node rehearsal: node0..node{} on the network \"{NETWORK}\", static rendezvous at node0:{}.",
            p.nodes,
            p.nodes - 1,
            p.master_port
        ));
        if !p.ports.is_empty() {
            extra.push("Ports are published by node0 only.".into());
        }
    }
    let mut doc = Map::new().set("services", services);
    if p.nodes > 1 {
        doc = doc.set("networks", Map::new().set(NETWORK, Map::new().set("driver", "bridge")));
    }
    let text = format!("{}{}", p.header("#", &extra), document(&doc));
    Ok(Rendered { text, warnings: Vec::new() })
}

/// What each node's container gets: NVIDIA device ids, or AMD visible devices; `None` = all.
fn node_gpus(p: &ExportPlan) -> Result<Vec<Option<Vec<String>>>, RenderError> {
    let nodes = p.nodes as usize;
    if p.vendor.is_none() {
        return Ok(vec![None; nodes]);
    }
    if nodes == 1 {
        return Ok(vec![match &p.local_gpus {
            LocalGpus::All => None,
            LocalGpus::Count(n) => Some((0..*n).map(|i| i.to_string()).collect()),
            LocalGpus::Ids(ids) => Some(ids.clone()),
        }]);
    }
    // A rehearsal node is a cluster node with its own GPUs: split the server's among them.
    let pool: Vec<String> = match (&p.local_gpus, p.gpus_per_node_assumed) {
        (LocalGpus::Ids(ids), false) => ids.clone(),
        (LocalGpus::All, true) => {
            return Err(refuse(
                "with --nodes, each rehearsal node needs its own GPUs, and gpu.devices is \"all\"",
                "say how many each node gets: --gpus-per-node N (node i gets GPUs i*N..i*N+N-1)",
            ));
        }
        _ => (0..p.gpus_per_node * p.nodes).map(|i| i.to_string()).collect(),
    };
    if pool.is_empty() || !pool.len().is_multiple_of(nodes) {
        return Err(refuse(
            format!("{} GPUs cannot be shared evenly among {} nodes", pool.len(), nodes),
            "list a multiple of --nodes in gpu.devices, or pass --gpus-per-node N",
        ));
    }
    let each = pool.len() / nodes;
    Ok(pool.chunks(each).map(|c| Some(c.to_vec())).collect())
}

fn service(p: &ExportPlan, project_ref: &str, rank: Option<u32>, gpus: &Option<Vec<String>>) -> Map {
    let hostname = match rank {
        Some(r) => format!("node{r}"),
        None => p.dns_name.clone(),
    };
    let mut env: Vec<String> = p.env.iter().map(|(k, v)| format!("{k}={}", esc(v))).collect();
    if let Some(rank) = rank {
        env.push("PET_MASTER_ADDR=node0".to_string());
        env.push(format!("PET_MASTER_PORT={}", p.master_port));
        env.push(format!("PET_NNODES={}", p.nodes));
        env.push(format!("PET_NODE_RANK={rank}"));
        env.push(format!(
            "PET_NPROC_PER_NODE={}",
            gpus.as_ref().map_or(p.nproc_per_node() as usize, Vec::len).max(1)
        ));
    }
    if p.vendor == Some(Vendor::Amd)
        && let Some(ids) = gpus
    {
        env.push(format!("ROCR_VISIBLE_DEVICES={}", ids.join(",")));
    }
    env.sort();
    // Passed through from the shell that runs compose; never written here.
    env.extend(p.host_env.iter().cloned());

    let restart = if p.keep_alive { "unless-stopped" } else { "no" };
    let mut s = Map::new()
        .set("image", esc(&p.image))
        .set("hostname", hostname)
        .set("init", true)
        .set("restart", restart)
        .set("entrypoint", strs(&p.command.iter().map(|c| esc(c)).collect::<Vec<_>>()))
        .set("working_dir", esc(&p.workdir))
        .set_opt("user", user(&p.user))
        .set_seq("environment", env.into_iter().map(Yaml::Str).collect())
        .set_seq(
            "volumes",
            p.mounts
                .iter()
                .map(|m| {
                    let ro = if m.mount.read_only { ":ro" } else { "" };
                    Yaml::Str(format!("{}:{}{ro}", source(&m.mount, project_ref), esc(&m.mount.target)))
                })
                .collect(),
        )
        .set_opt("shm_size", p.shm.map(docker_size))
        .set_opt("mem_limit", p.memory.map(docker_size))
        .set_opt("cpus", p.cpus.map(cpus_text))
        .set_map("ulimits", p.ulimits.iter().fold(Map::new(), |m, (k, v)| m.set(k, *v)))
        .set_opt("ipc", p.ipc.clone())
        .set_opt("network_mode", p.network.clone())
        .set_seq("cap_add", p.cap_add.iter().map(Yaml::from).collect());
    let mut devices: Vec<Yaml> = Vec::new();
    if p.vendor == Some(Vendor::Amd) {
        devices.push("/dev/kfd".into());
        devices.push("/dev/dri".into());
        s = s.set("group_add", strs(&["${BERTH_VIDEO_GID:-video}", "${BERTH_RENDER_GID:-render}"]));
    }
    devices.extend(p.devices.iter().map(|d| Yaml::Str(esc(d))));
    s = s.set_seq("devices", devices);
    if p.vendor == Some(Vendor::Nvidia) {
        let mut request = Map::new().set("driver", "nvidia");
        request = match gpus {
            None => request.set("count", "all"),
            Some(ids) => request.set("device_ids", strs(ids)),
        };
        request = request.set("capabilities", strs(&["gpu"]));
        let reservations = Map::new().set("devices", Yaml::Seq(vec![request.into()]));
        s = s.set("deploy", Map::new().set("resources", Map::new().set("reservations", reservations)));
    }
    if rank.unwrap_or(0) == 0 {
        s = s.set_seq("ports", p.ports.iter().map(|port| Yaml::Str(port_text(port))).collect());
    }
    if rank.is_some() {
        s = s.set("networks", strs(&[NETWORK]));
    }
    s
}

fn user(mode: &UserMode) -> Option<String> {
    match mode {
        UserMode::Host => Some("${BERTH_UID:-1000}:${BERTH_GID:-1000}".into()),
        UserMode::Root => Some("0:0".into()),
        UserMode::Named(name) => Some(esc(name)),
    }
}

fn port_text(p: &crate::plan::PortPlan) -> String {
    let host = p.host_port.map(|h| h.to_string()).unwrap_or_default();
    let proto = if p.protocol == "tcp" { String::new() } else { format!("/{}", p.protocol) };
    format!("{}:{host}:{}{proto}", p.host_ip, p.container_port)
}

/// A mount source as compose reads it: relative to the compose file, `${HOME}`, or absolute.
fn source(m: &crate::plan::portable::PortableMount, project_ref: &str) -> String {
    let join =
        |base: &str| if m.path.is_empty() { base.to_string() } else { format!("{base}/{}", esc(&m.path)) };
    match m.root {
        MountRoot::Project => join(&esc(project_ref)),
        MountRoot::Home => join("${HOME}"),
        MountRoot::Absolute => esc(&m.path),
    }
}

/// Literal text: compose would interpolate a lone `$`.
fn esc(s: &str) -> String {
    s.replace('$', "$$")
}
