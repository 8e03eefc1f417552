//! What `berth top` reads below a [`HostRoot`]: each process's cgroup, namespace pids, parent,
//! process group and owner (procfs), AMD per-process VRAM (KFD sysfs), user names
//! (`/etc/passwd`) and the job pid files of berth projects. Missing files mean unknown, never
//! an error: processes come and go while we read.

use std::collections::BTreeMap;

use super::{GpuUse, Jobs, ProcInfo, container_id};
use crate::host::{Gpu, HostRoot};

/// What nvidia-smi is asked about each GPU (`top` shows it all; the idle check reads the
/// utilisation); a recorded host keeps the answer in `nvidia-smi/query-gpu.csv`.
pub const NVIDIA_GPU_QUERY: &str = "--query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu";
/// The processes on the GPUs; recorded in `nvidia-smi/query-compute-apps.csv`.
pub const NVIDIA_APPS_QUERY: &str = "--query-compute-apps=pid,used_memory,gpu_uuid";

/// Ancestors followed at most (a container's process tree is shallow; this bounds a loop).
const MAX_DEPTH: usize = 64;

/// What procfs says about `pid` (host pid).
pub fn proc_info(root: &HostRoot, pid: u32) -> ProcInfo {
    let status = root.read(&format!("/proc/{pid}/status")).unwrap_or_default();
    let container = root.read(&format!("/proc/{pid}/cgroup")).and_then(|c| container_id(&c));
    let command = root
        .read_line(&format!("/proc/{pid}/comm"))
        .or_else(|| field(&status, "Name:").map(str::to_string))
        .unwrap_or_default();
    let uid = field(&status, "Uid:").and_then(|v| v.split_whitespace().next()?.parse().ok());
    let mut ns_pids = Vec::new();
    if container.is_some() {
        let in_same =
            |p: u32| root.read(&format!("/proc/{p}/cgroup")).and_then(|c| container_id(&c)) == container;
        let mut push = |p: Option<u32>| {
            if let Some(p) = p.filter(|p| !ns_pids.contains(p)) {
                ns_pids.push(p);
            }
        };
        push(ns_pid(&status));
        if let Some(leader) = root.read(&format!("/proc/{pid}/stat")).and_then(|s| stat_pgrp(&s))
            && in_same(leader)
        {
            push(root.read(&format!("/proc/{leader}/status")).and_then(|s| ns_pid(&s)));
        }
        let mut current = field(&status, "PPid:").and_then(|p| p.parse::<u32>().ok());
        for _ in 0..MAX_DEPTH {
            let Some(parent) = current.filter(|p| *p > 1 && in_same(*p)) else { break };
            let parent_status = root.read(&format!("/proc/{parent}/status")).unwrap_or_default();
            push(ns_pid(&parent_status));
            current = field(&parent_status, "PPid:").and_then(|p| p.parse().ok());
        }
    }
    ProcInfo { pid, uid, command, container, ns_pids }
}

/// The value after `key` on its line of a `status` file.
fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

/// The innermost namespace's pid: the last number of `NSpid:`.
fn ns_pid(status: &str) -> Option<u32> {
    field(status, "NSpid:")?.split_whitespace().last()?.parse().ok()
}

/// The process group in `/proc/<pid>/stat` (`pid (comm) state ppid pgrp ...`; comm may hold
/// spaces and parentheses, so fields are counted after the last `)`).
fn stat_pgrp(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// uid → name from `/etc/passwd`.
pub fn user_names(root: &HostRoot) -> BTreeMap<u32, String> {
    root.read("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect()
}

/// Jobs of the project at `project` (a host path) that have not exited, with the process group
/// their `pid` file names.
pub fn running_jobs(root: &HostRoot, project: &str) -> Jobs {
    crate::jobs::list(&root.path(project))
        .into_iter()
        .filter(|j| j.exit_code.is_none())
        .filter_map(|j| {
            let pid = std::fs::read_to_string(j.dir.join("pid")).ok()?.trim().parse().ok()?;
            Some((j.meta.name, pid))
        })
        .collect()
}

/// `(pid, MiB, GPU uuid)`: one process on an NVIDIA GPU as nvidia-smi lists it.
pub type NvidiaProcess = (u32, Option<u64>, String);

/// The GPUs ([`NVIDIA_GPU_QUERY`]) and their processes ([`NVIDIA_APPS_QUERY`]) as nvidia-smi
/// answers, or as a recorded host keeps them; an error says why they could not be read.
pub fn nvidia_smi(root: &HostRoot) -> Result<(Vec<GpuUse>, Vec<NvidiaProcess>), String> {
    let gpus = nvidia_smi_query(root, NVIDIA_GPU_QUERY, "query-gpu.csv")?;
    let apps = nvidia_smi_query(root, NVIDIA_APPS_QUERY, "query-compute-apps.csv")?;
    Ok((super::parse_nvidia_gpus(&gpus), super::parse_nvidia_apps(&apps)))
}

/// One nvidia-smi query's CSV (`--format=csv,noheader,nounits`): run it, or, on a recorded host,
/// read `nvidia-smi/<recorded>` below it.
fn nvidia_smi_query(root: &HostRoot, query: &str, recorded: &str) -> Result<String, String> {
    if root.is_recorded() {
        let path = root.dir().join("nvidia-smi").join(recorded);
        return std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()));
    }
    // WSL keeps nvidia-smi beside the Windows driver's libraries, often off PATH.
    let mut last = String::new();
    for program in ["nvidia-smi", "/usr/lib/wsl/lib/nvidia-smi"] {
        match std::process::Command::new(program).args([query, "--format=csv,noheader,nounits"]).output() {
            Ok(out) if out.status.success() => return Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Ok(out) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let err = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default().to_string();
                return Err(format!("nvidia-smi failed: {err}"));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("nvidia-smi is not installed or not on PATH ({last}); it comes with the NVIDIA driver"))
}

/// `(pid, MiB, GPU index)`: one process's memory on one GPU.
pub type GpuProcess = (u32, Option<u64>, u32);

/// AMD GPUs with their memory, and each process holding VRAM on them, from
/// `/sys/class/kfd/kfd/proc/<pid>/vram_<gpu_id>`.
pub fn amd_usage(root: &HostRoot, gpus: &[&Gpu]) -> (Vec<GpuUse>, Vec<GpuProcess>) {
    const MIB: u64 = 1 << 20;
    let ids: Vec<(u32, Option<String>)> = gpus
        .iter()
        .map(|g| {
            let node = g.kfd_node.map(|n| format!("/sys/class/kfd/kfd/topology/nodes/{n}/gpu_id"));
            (g.index, node.and_then(|p| root.read_line(&p)))
        })
        .collect();
    let uses = gpus
        .iter()
        .map(|g| {
            let minor = g
                .render_node
                .as_ref()
                .and_then(|n| n.path.strip_prefix("/dev/dri/renderD").map(str::to_string));
            let used = minor
                .and_then(|m| root.read_line(&format!("/sys/class/drm/renderD{m}/device/mem_info_vram_used")))
                .and_then(|v| v.parse::<u64>().ok());
            GpuUse {
                index: g.index,
                vendor: "amd",
                uuid: g.uuid.clone(),
                name: g.model.clone().unwrap_or_else(|| {
                    format!("AMD GPU ({})", g.gfx_target.as_deref().unwrap_or("unknown target"))
                }),
                used_mib: used.map(|b| b.div_ceil(MIB)),
                total_mib: g.vram_bytes.map(|b| b / MIB),
                utilization_percent: None,
                processes: Vec::new(),
                leases: Vec::new(),
                used_without_lease: false,
                lease_idle: false,
            }
        })
        .collect();
    let mut procs = Vec::new();
    for pid in root.list("/sys/class/kfd/kfd/proc").iter().filter_map(|p| p.parse::<u32>().ok()) {
        for (index, gpu_id) in &ids {
            let Some(gpu_id) = gpu_id else { continue };
            let bytes = root.read_line(&format!("/sys/class/kfd/kfd/proc/{pid}/vram_{gpu_id}"));
            if let Some(b) = bytes.and_then(|b| b.parse::<u64>().ok()).filter(|b| *b > 0) {
                procs.push((pid, Some(b.div_ceil(MIB)), *index));
            }
        }
    }
    (uses, procs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        assert_eq!(stat_pgrp("412345 (python) S 412300 412300 412100 0 -1"), Some(412300));
        assert_eq!(stat_pgrp("77 (my (odd) cmd) R 1 70 70 0"), Some(70));
        assert_eq!(stat_pgrp("garbage"), None);
    }

    #[test]
    fn the_innermost_pid_is_the_last_nspid() {
        assert_eq!(ns_pid("Name:\tpython\nNSpid:\t412345\t15\n"), Some(15));
        assert_eq!(ns_pid("NSpid:\t3100\n"), Some(3100));
        assert_eq!(ns_pid("Name:\tx\n"), None);
    }
}
