//! `slurm/<name>.sbatch`: the environment as a Slurm batch job, one task per node.
//!
//! torchrun's topology comes from Slurm at run time (`PET_NNODES` from the node count,
//! `PET_NODE_RANK` from each task's node id, the first allocated host as `PET_MASTER_ADDR`),
//! so the same script runs on any allocation. The project folder is where `sbatch` ran
//! (`$SLURM_SUBMIT_DIR`, or `BERTH_PROJECT_DIR`), home-relative sources use the job's `$HOME`,
//! and `[cluster] host-path` entries say where other sources are on the nodes.
//!
//! Runtimes: pyxis (`srun --container-*`, the default), Apptainer (`apptainer exec --nv|--rocm`)
//! and Docker (the node's daemon, for labs whose nodes run Docker: its containers live outside
//! Slurm's cgroups, so Slurm cannot account or confine them).

use super::{ExportMount, ExportPlan, Rendered, docker_size};
use crate::host::Vendor;
use crate::plan::portable::MountRoot;
use crate::plan::sh_quote;
use crate::spec::{ClusterVolume, UserMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Pyxis,
    Apptainer,
    Docker,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Pyxis => "pyxis",
            Runtime::Apptainer => "apptainer",
            Runtime::Docker => "docker",
        }
    }
}

/// Runs in each task: the node rank from Slurm's node id, then the command (`"$@"`).
const RANK_STEP: &str = r#"export PET_NODE_RANK="$SLURM_NODEID"; exec "$@""#;

pub fn render(p: &ExportPlan, runtime: Runtime) -> Rendered {
    let mut warnings = Vec::new();
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&p.header("#", &header_lines(p, runtime)));
    s.push_str(&format!("#SBATCH --job-name={}\n", p.dns_name));
    s.push_str(&format!("#SBATCH --nodes={}\n#SBATCH --ntasks-per-node=1\n", p.nodes));
    if p.gpus_per_node > 0 {
        s.push_str(&format!("#SBATCH --gpus-per-node={}\n", p.gpus_per_node));
    }
    if let Some(c) = p.cpus {
        s.push_str(&format!("#SBATCH --cpus-per-task={}\n", c.ceil() as u64));
    }
    if let Some(m) = p.memory {
        s.push_str(&format!("#SBATCH --mem={}M\n", m.div_ceil(1 << 20)));
    }
    s.push_str("#SBATCH --output=%x-%j.out\n");
    s.push_str("set -euo pipefail\n\n");
    s.push_str(&format!(
        "# The project folder: where sbatch ran (submit from the project folder), or BERTH_PROJECT_DIR.\n\
         project=\"${{BERTH_PROJECT_DIR:-$SLURM_SUBMIT_DIR}}\"\n\
         if [ ! -f \"$project/{file}\" ]; then\n  \
         echo \"berth: $project holds no {file}: run sbatch in the project folder or set BERTH_PROJECT_DIR\" >&2\n  \
         exit 2\nfi\n\n",
        file = crate::spec::FILE_NAME
    ));
    s.push_str("# torchrun's topology from Slurm: one node per task, the first node is the master.\n");
    s.push_str("export PET_NNODES=\"$SLURM_JOB_NUM_NODES\"\n");
    s.push_str(&format!("export PET_NPROC_PER_NODE={}\n", p.nproc_per_node()));
    s.push_str("PET_MASTER_ADDR=\"$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\"\n");
    s.push_str("export PET_MASTER_ADDR\n");
    s.push_str(&format!("export PET_MASTER_PORT=\"${{BERTH_MASTER_PORT:-{}}}\"\n\n", p.master_port));
    s.push_str("# The environment's variables");
    if p.host_env.is_empty() {
        s.push_str(".\n");
    } else {
        let verb = if p.host_env.len() == 1 { "comes" } else { "come" };
        s.push_str(&format!(
            "; {} {verb} from the submitting shell (sbatch passes it on), never from this file.\n",
            p.host_env.join(", ")
        ));
    }
    for (k, v) in &p.env {
        s.push_str(&format!("export {k}={}\n", sh_quote(v)));
    }
    let create: Vec<String> = p
        .mounts
        .iter()
        .filter(|m| m.mount.create)
        .map(|m| format!("\"{}\"", source(m, &mut Vec::new())))
        .collect();
    if !create.is_empty() {
        s.push_str(&format!("mkdir -p {}\n", create.join(" ")));
    }
    let image = match runtime {
        Runtime::Pyxis => pyxis_image(&p.image),
        Runtime::Apptainer => format!("docker://{}", p.image),
        Runtime::Docker => p.image.clone(),
    };
    s.push_str(&format!("image=\"${{BERTH_IMAGE:-{}}}\"\n\n", dq_literal(&image)));
    let sources: Vec<(String, &ExportMount)> =
        p.mounts.iter().map(|m| (source(m, &mut warnings), m)).collect();
    let binds: Vec<String> = sources
        .iter()
        .map(|(src, m)| {
            format!("{src}:{}{}", dq_literal(&m.mount.target), if m.mount.read_only { ":ro" } else { "" })
        })
        .collect();
    let command: Vec<String> = p.command.iter().map(|c| sh_quote(c)).collect();
    match runtime {
        Runtime::Pyxis => pyxis(p, &mut s, &binds, &command, &mut warnings),
        Runtime::Apptainer => apptainer(p, &mut s, &binds, &command, &mut warnings),
        Runtime::Docker => docker(p, &mut s, &binds, &command, &mut warnings),
    }
    Rendered { text: s, warnings }
}

fn header_lines(p: &ExportPlan, runtime: Runtime) -> Vec<String> {
    let mut lines: Vec<String> = p.gpus_per_node_note().into_iter().collect();
    lines.push(format!(
        "Submit from the project folder: sbatch [-p PARTITION] [-t TIME] slurm/{}.sbatch",
        p.dns_name
    ));
    lines.push(format!(
        "Runtime: {}. Override the image with BERTH_IMAGE, the port with BERTH_MASTER_PORT.",
        runtime.name()
    ));
    match runtime {
        Runtime::Pyxis => {
            lines.push("/dev/shm: pyxis cannot size it; the site's enroot configuration does.".into());
            if p.keep_alive {
                lines.push(format!(
                    "Attach: srun --jobid=JOBID --overlap --container-name=berth-{} --pty bash",
                    p.dns_name
                ));
            }
        }
        Runtime::Apptainer => {
            lines.push("/dev/shm: Apptainer shares the node's.".into());
            if p.keep_alive {
                lines.push(
                    "Attach: srun --jobid=JOBID --overlap --pty apptainer shell \"$BERTH_IMAGE\"".into(),
                );
            }
        }
        Runtime::Docker => {
            lines.push(
                "Docker runs the containers outside Slurm's cgroups: Slurm neither limits nor accounts them."
                    .into(),
            );
            if p.keep_alive {
                lines.push(format!("Attach on the node: docker exec -it berth-{}-JOBID-0 sh", p.dns_name));
            }
        }
    }
    lines
}

fn pyxis(p: &ExportPlan, s: &mut String, binds: &[String], command: &[String], warnings: &mut Vec<String>) {
    let mut names: Vec<String> = p.env.iter().map(|(k, _)| k.clone()).collect();
    names.extend(p.host_env.iter().cloned());
    names
        .extend(["PET_MASTER_ADDR", "PET_MASTER_PORT", "PET_NNODES", "PET_NPROC_PER_NODE"].map(String::from));
    names.sort();
    let mut args = vec![
        "--kill-on-bad-exit=1".to_string(),
        "--container-image=\"$image\"".into(),
        format!("--container-name=berth-{}", p.dns_name),
        format!("--container-mounts=\"{}\"", binds.join(",")),
        format!("--container-workdir={}", sh_quote(&p.workdir)),
        // Variables the image also sets would otherwise keep the image's value.
        format!("--container-env={}", names.join(",")),
    ];
    match &p.user {
        UserMode::Root => args.push("--container-remap-root".into()),
        UserMode::Named(n) => {
            warnings.push(format!("pyxis runs as the submitting user: `user.as = \"{n}\"` is ignored"))
        }
        UserMode::Host => {}
    }
    ignored_run_options(p, "pyxis", warnings);
    s.push_str("# One task per node; each sets its node rank, then runs the command in the container.\n");
    step(s, &args, &["sh".into(), "-c".into(), sh_quote(RANK_STEP), "berth-node".into()], &[], command);
}

fn apptainer(
    p: &ExportPlan,
    s: &mut String,
    binds: &[String],
    command: &[String],
    warnings: &mut Vec<String>,
) {
    let mut inner = Vec::new();
    match p.vendor {
        Some(Vendor::Nvidia) => inner.push("--nv".into()),
        Some(Vendor::Amd) => inner.push("--rocm".into()),
        None => {}
    }
    inner.push(format!("--bind=\"{}\"", binds.join(",")));
    inner.push(format!("--pwd={}", sh_quote(&p.workdir)));
    match &p.user {
        UserMode::Root => inner.push("--fakeroot".into()),
        UserMode::Named(n) => {
            warnings.push(format!("Apptainer runs as the submitting user: `user.as = \"{n}\"` is ignored"))
        }
        UserMode::Host => {}
    }
    inner.push("\"$image\"".into());
    ignored_run_options(p, "Apptainer", warnings);
    s.push_str("# One task per node; each sets its node rank, then runs the command in the container.\n");
    let wrapper =
        ["bash", "-c", &sh_quote(RANK_STEP), "berth-node", "apptainer", "exec"].map(String::from).to_vec();
    step(s, &["--kill-on-bad-exit=1".into()], &wrapper, &inner, command);
}

fn docker(p: &ExportPlan, s: &mut String, binds: &[String], command: &[String], warnings: &mut Vec<String>) {
    let gpus = match p.vendor {
        Some(Vendor::Nvidia) => {
            "g=\"${SLURM_STEP_GPUS:-${SLURM_JOB_GPUS:-}}\"; if [ -n \"$g\" ]; then set -- \"--gpus=\\\"device=$g\\\"\" \"$@\"; \
             else set -- --gpus=all \"$@\"; fi; "
        }
        Some(Vendor::Amd) => {
            "for n in /dev/kfd /dev/dri/renderD*; do set -- \"--group-add=$(stat -c %g \"$n\")\" \"$@\"; done; \
             set -- --device=/dev/kfd --device=/dev/dri -e ROCR_VISIBLE_DEVICES \"$@\"; "
        }
        None => "",
    };
    let node_step = format!(
        "{gpus}exec docker run --rm --init --network=host --name=\"berth-{}-$SLURM_JOB_ID-$SLURM_NODEID\" \
         -e PET_NODE_RANK=\"$SLURM_NODEID\" \"$@\"",
        p.dns_name
    );
    s.push_str(
        "# Each node's task: its rank from Slurm's node id and its GPUs from its step, then the container.\n",
    );
    s.push_str(&format!("node_step={}\n", sh_quote(&node_step)));
    let mut args: Vec<String> = Vec::new();
    if let Some(bytes) = p.shm {
        args.push(format!("--shm-size={}", docker_size(bytes)));
    }
    if let Some(ipc) = &p.ipc {
        args.push(format!("--ipc={ipc}"))
    }
    args.push(match &p.user {
        UserMode::Host => "--user=\"$(id -u):$(id -g)\"".into(),
        UserMode::Root => "--user=0:0".into(),
        UserMode::Named(n) => format!("--user={}", sh_quote(n)),
    });
    if let Some(m) = p.memory {
        args.push(format!("--memory={}", docker_size(m)));
    }
    args.extend(p.ulimits.iter().map(|(k, v)| format!("--ulimit={k}={v}")));
    args.extend(p.cap_add.iter().map(|c| format!("--cap-add={c}")));
    args.extend(p.devices.iter().map(|d| format!("--device={}", sh_quote(d))));
    if p.network.as_deref().is_some_and(|n| n != "host") {
        warnings.push(
            "the Docker runtime uses the node's network (torchrun needs it): `run.network` is ignored".into(),
        );
    }
    args.extend(binds.iter().map(|b| format!("-v \"{b}\"")));
    args.push(format!("-w {}", sh_quote(&p.workdir)));
    let mut names: Vec<String> = p.env.iter().map(|(k, _)| k.clone()).collect();
    names.extend(p.host_env.iter().cloned());
    names
        .extend(["PET_MASTER_ADDR", "PET_MASTER_PORT", "PET_NNODES", "PET_NPROC_PER_NODE"].map(String::from));
    names.sort();
    args.extend(names.iter().map(|n| format!("-e {n}")));
    args.push("\"$image\"".into());
    let wrapper = ["bash", "-c", "\"$node_step\"", "berth-node"].map(String::from).to_vec();
    step(s, &["--kill-on-bad-exit=1".into()], &wrapper, &args, command);
}

fn ignored_run_options(p: &ExportPlan, runtime: &str, warnings: &mut Vec<String>) {
    let mut ignored = Vec::new();
    if !p.cap_add.is_empty() {
        ignored.push("cap-add");
    }
    if !p.devices.is_empty() {
        ignored.push("devices");
    }
    if p.network.is_some() {
        ignored.push("network");
    }
    if !ignored.is_empty() {
        warnings.push(format!(
            "{runtime} shares the node's devices and network and adds no capabilities: [run] {} is ignored",
            ignored.join(", ")
        ));
    }
}

/// `srun ARGS... WRAPPER RUNTIME-ARGS... COMMAND...`, one argument per line.
fn step(s: &mut String, args: &[String], wrapper: &[String], runtime_args: &[String], command: &[String]) {
    s.push_str("srun");
    for a in args {
        s.push_str(&format!(" \\\n  {a}"));
    }
    s.push_str(&format!(" \\\n  {}", wrapper.join(" ")));
    for a in runtime_args {
        s.push_str(&format!(" \\\n    {a}"));
    }
    s.push_str(&format!(" \\\n  {}\n", command.join(" ")));
}

/// A mount source as the job sees it, in double quotes' terms (`$project/x`, `$HOME/x`).
fn source(m: &ExportMount, warnings: &mut Vec<String>) -> String {
    let join = |base: &str, path: &str| {
        if path.is_empty() { base.to_string() } else { format!("{base}/{}", dq_literal(path)) }
    };
    if let Some(t) = &m.cluster {
        match &t.volume {
            ClusterVolume::HostPath(path) => return join(&dq_literal(path), &t.sub_path),
            ClusterVolume::Pvc(claim) => warnings.push(format!(
                "[cluster] maps the source of {} to the claim \"{claim}\", which Slurm does not know: \
                 the job mounts the path itself",
                m.mount.target
            )),
        }
    }
    match m.mount.root {
        MountRoot::Project => join("$project", &m.mount.path),
        MountRoot::Home => join("$HOME", &m.mount.path),
        MountRoot::Absolute => dq_literal(&m.mount.path),
    }
}

/// Text for inside double quotes, taken literally.
fn dq_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// enroot names a registry with `#`: `nvcr.io/nvidia/pytorch:24.01` is `nvcr.io#nvidia/pytorch:24.01`.
pub fn pyxis_image(image: &str) -> String {
    match image.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            format!("{first}#{rest}")
        }
        _ => image.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_become_enroot_references() {
        assert_eq!(pyxis_image("nvcr.io/nvidia/pytorch:24.01-py3"), "nvcr.io#nvidia/pytorch:24.01-py3");
        assert_eq!(pyxis_image("localhost:5000/x"), "localhost:5000#x");
        assert_eq!(pyxis_image("pytorch/pytorch:2.5.1"), "pytorch/pytorch:2.5.1");
        assert_eq!(pyxis_image("python:3.12-slim"), "python:3.12-slim");
    }
}
