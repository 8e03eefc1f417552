//! Reading the three signals of use for running environments: sessions and jobs from the
//! engine's execs (and VS Code server processes from its `top`), GPU use from nvidia-smi (or
//! AMD's KFD sysfs) mapped to containers through each process's cgroup.
//!
//! Pure parts ([`exec_signals`], [`gpu_signals`]) take what was read; the rest reads it. GPU use
//! that cannot be read on a host with NVIDIA GPUs is a signal of its own ([`Signal::GpuUnknown`]):
//! an environment is never stopped on a guess.

use std::collections::BTreeMap;

use super::Signal;
use crate::engine::Engine;
use crate::engine::exec::RunningExec;
use crate::host::{HostFacts, HostRoot, Vendor};

/// Sessions and jobs among a container's running execs: a job's wrapper is a job, anything else
/// (`berth shell`, `berth exec`, `docker exec`, VS Code's attach) a session.
pub fn exec_signals(execs: &[RunningExec]) -> Vec<Signal> {
    let mut out = Vec::new();
    for e in execs {
        let jobs = crate::jobs::wrapper::names_in(std::slice::from_ref(&e.command));
        if jobs.is_empty() {
            let mut what: String = e.command.split_whitespace().collect::<Vec<_>>().join(" ");
            if what.chars().count() > 60 {
                what = what.chars().take(57).collect::<String>() + "...";
            }
            let kind = if e.tty { "terminal" } else { "exec" };
            out.push(Signal::Session { what: format!("{kind}: {what}") });
        } else {
            out.extend(jobs.into_iter().map(|name| Signal::Job { name }));
        }
    }
    out
}

/// A VS Code server among a container's command lines (the engine's `top`).
pub fn vscode_signal(cmdlines: &[String]) -> Option<Signal> {
    cmdlines
        .iter()
        .any(|l| {
            l.contains(".vscode-server") || l.contains(".vscode-remote") || l.contains("vscode-server/bin")
        })
        .then(|| Signal::Session { what: "VS Code server".into() })
}

/// Sessions and jobs in the running container `id` (its inspect's exec ids are `exec_ids`).
pub async fn in_container(engine: &Engine, id: &str, exec_ids: &[String]) -> anyhow::Result<Vec<Signal>> {
    let mut out =
        if exec_ids.is_empty() { Vec::new() } else { exec_signals(&engine.running_execs(exec_ids).await?) };
    if let Ok(Some(lines)) = engine.processes(id).await
        && let Some(s) = vscode_signal(&lines)
    {
        out.push(s);
    }
    Ok(out)
}

/// GPU use per container id, from one reading of the host.
#[derive(Debug, Clone, Default)]
pub struct GpuUse {
    pub by_container: BTreeMap<String, Vec<Signal>>,
    /// Why GPU use could not be read, on a host that has GPUs.
    pub unknown: Option<String>,
}

impl GpuUse {
    pub fn of(&self, container: &str) -> Vec<Signal> {
        if let Some(why) = &self.unknown {
            return vec![Signal::GpuUnknown { why: why.clone() }];
        }
        self.by_container.get(container).cloned().unwrap_or_default()
    }
}

/// Each container's GPU signals: memory its processes hold per GPU, and the utilisation of
/// each GPU it has a process on when above `threshold` percent. `apps` are `(pid, MiB, GPU
/// index)`; `container_of` maps a host pid to its container id.
pub fn gpu_signals(
    utils: &[(u32, Option<u32>)],
    apps: &[(u32, Option<u64>, u32)],
    container_of: impl Fn(u32) -> Option<String>,
    threshold: u32,
) -> BTreeMap<String, Vec<Signal>> {
    // container -> gpu -> MiB
    let mut held: BTreeMap<String, BTreeMap<u32, u64>> = BTreeMap::new();
    for (pid, mib, gpu) in apps {
        let Some(c) = container_of(*pid) else { continue };
        // A process with a context holds memory even where the platform reports none ([N/A]).
        *held.entry(c).or_default().entry(*gpu).or_default() += mib.unwrap_or(0);
    }
    held.into_iter()
        .map(|(c, gpus)| {
            let mut signals = Vec::new();
            for (gpu, mib) in gpus {
                signals.push(Signal::GpuMemory { gpu, mib });
                if let Some((_, Some(p))) = utils.iter().find(|(i, _)| *i == gpu)
                    && *p > threshold
                {
                    signals.push(Signal::GpuUtilization { gpu, percent: *p });
                }
            }
            (c, signals)
        })
        .collect()
}

/// Reads the host's GPU use once: NVIDIA through nvidia-smi (`top`'s reading, the same two
/// queries), AMD through KFD.
pub fn read_gpus(root: &HostRoot, threshold: u32) -> GpuUse {
    let host = HostFacts::probe(root);
    let mut utils: Vec<(u32, Option<u32>)> = Vec::new();
    let mut apps: Vec<(u32, Option<u64>, u32)> = Vec::new();
    let has_nvidia =
        host.gpus_of(Vendor::Nvidia).next().is_some() || host.nvidia_driver.is_some() || host.wsl.is_some();
    if has_nvidia {
        match crate::top::sources::nvidia_smi(root) {
            Ok((gpus, procs)) => {
                for (pid, mib, uuid) in procs {
                    if let Some(g) = gpus.iter().find(|g| g.uuid.as_deref() == Some(uuid.as_str())) {
                        apps.push((pid, mib, g.index));
                    }
                }
                utils.extend(gpus.iter().map(|g| (g.index, g.utilization_percent)));
            }
            Err(e) => return GpuUse { by_container: BTreeMap::new(), unknown: Some(e) },
        }
    }
    let amd: Vec<_> = host.gpus_of(Vendor::Amd).collect();
    if !amd.is_empty() {
        let (_, procs) = crate::top::sources::amd_usage(root, &amd);
        apps.extend(procs);
    }
    let container_of =
        |pid: u32| root.read(&format!("/proc/{pid}/cgroup")).and_then(|c| crate::top::container_id(&c));
    GpuUse { by_container: gpu_signals(&utils, &apps, container_of, threshold), unknown: None }
}
