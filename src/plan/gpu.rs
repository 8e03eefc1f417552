//! Which GPUs an environment gets and how the engine is asked for them.
//!
//! NVIDIA on Docker: the device request `docker run --gpus` sends (empty driver, `[["gpu"]]`), or
//! a `cdi` request when the engine lists `nvidia.com/gpu` devices. NVIDIA on Podman: CDI names
//! passed as devices (`podman --device nvidia.com/gpu=0`), refused before anything is created
//! when no spec on the host names them. AMD: `/dev/kfd` plus only the chosen render nodes, with
//! their numeric group ids. WSL2: `/dev/dxg` and the driver library folder. Integrated GPUs are
//! never picked by `all` or a count, only when listed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::engine::facts::EngineFacts;
use crate::engine::kind::EngineKind;
use crate::host::cdi::{NVIDIA_GPU, SPEC_DIRS};
use crate::host::{DeviceNode, Gpu, HostFacts, Vendor};
use crate::spec::{DeviceSelection, GpuRef, VendorChoice};

use super::PlanError;

/// How GPUs reach the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    None,
    Nvidia,
    Amd,
    /// NVIDIA (or any) GPU through WSL2's paravirtual `/dev/dxg`.
    Wsl,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelectedGpu {
    pub index: u32,
    pub uuid: Option<String>,
    pub pci: String,
    pub model: Option<String>,
    /// Another container holds it too (only when nothing free was left).
    pub shared: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRequestPlan {
    /// `""` (classic `--gpus`) or `cdi`.
    pub driver: String,
    /// `-1` for all, `0` when `device_ids` lists them.
    pub count: i64,
    pub device_ids: Vec<String>,
    pub capabilities: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuPlan {
    pub mode: GpuMode,
    pub selected: Vec<SelectedGpu>,
    /// True when the whole set was asked for (`devices = "all"`).
    pub all: bool,
    pub device_requests: Vec<DeviceRequestPlan>,
    /// CDI device names passed as devices (`nvidia.com/gpu=0`): how Podman takes NVIDIA GPUs.
    pub cdi_devices: Vec<String>,
    /// Host device nodes passed as devices (same path inside).
    pub devices: Vec<String>,
    /// Numeric group ids owning those nodes that the user needs.
    pub group_ids: Vec<u32>,
    /// WSL2's library folder, mounted read-only.
    pub wsl_lib: Option<String>,
    /// What berth wants the user to know (shared GPUs, ignored selections).
    pub notes: Vec<String>,
}

/// GPU ids (index and UUID forms) other containers hold.
pub type BusyGpus = BTreeSet<String>;

/// What else holds each GPU (by host index), in words; the environment's own GPUs are left out
/// by whoever fills it (`environment::up`).
#[derive(Debug, Clone, Default)]
pub struct GpuClaims {
    /// Another user's lease: `leased by alice until 2026-11-30 23:15 UTC (in 52m)`.
    pub leased: BTreeMap<u32, String>,
    /// Others' processes on it: `container jupyter (user bob, 20480 MiB)`.
    pub used: BTreeMap<u32, Vec<String>>,
    /// Take leased GPUs anyway (`up --force`): said, not refused.
    pub force: bool,
}

impl GpuClaims {
    fn why(&self, index: u32) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(l) = self.leased.get(&index) {
            parts.push(format!("is {l}"));
        }
        if let Some(u) = self.used.get(&index) {
            parts.push(format!("holds {}", u.join(", ")));
        }
        (!parts.is_empty()).then(|| format!("GPU {index} {}", parts.join(" and ")))
    }
}

pub fn plan_gpus(
    choice: VendorChoice,
    selection: &DeviceSelection,
    host: &HostFacts,
    engine: &EngineFacts,
    busy: &BusyGpus,
    claims: &GpuClaims,
    prefer: &[String],
) -> Result<GpuPlan, PlanError> {
    let mode = resolve_mode(choice, host)?;
    if mode == GpuMode::None && choice == VendorChoice::Auto {
        // `all` (the default) means "whatever this host has"; a count or a list is a request.
        let asked = match selection {
            DeviceSelection::All => None,
            DeviceSelection::Count(n) => Some(format!("{n} GPU{}", if *n == 1 { "" } else { "s" })),
            DeviceSelection::List(refs) => Some(
                refs.iter()
                    .map(|r| match r {
                        GpuRef::Index(i) => format!("GPU {i}"),
                        GpuRef::Uuid(u) => format!("GPU {u}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        if let Some(asked) = asked {
            return Err(PlanError::Gpu {
                message: format!(
                    "`gpu.devices` asks for {asked}, but this host has no GPU berth can pass \
                     (looked in /sys/bus/pci/devices and /sys/class/kfd)"
                ),
                hint: "remove `gpu.devices` or set `gpu.vendor = \"none\"` to run on the CPU; \
                       `berth doctor` shows what the host has"
                    .into(),
            });
        }
    }
    let mut plan = GpuPlan {
        mode,
        selected: Vec::new(),
        all: matches!(selection, DeviceSelection::All),
        device_requests: Vec::new(),
        cdi_devices: Vec::new(),
        devices: Vec::new(),
        group_ids: Vec::new(),
        wsl_lib: None,
        notes: Vec::new(),
    };
    match mode {
        GpuMode::None => {}
        GpuMode::Wsl => {
            let Some(wsl) = &host.wsl else { return Ok(plan) };
            plan.devices.push(wsl.dxg.path.clone());
            add_group(&mut plan.group_ids, &wsl.dxg);
            plan.wsl_lib = Some("/usr/lib/wsl".to_string());
            if !plan.all {
                plan.notes.push(
                    "WSL2 shares every GPU through /dev/dxg: `gpu.devices` cannot narrow it; \
                     use CUDA_VISIBLE_DEVICES inside"
                        .to_string(),
                );
            }
        }
        GpuMode::Nvidia => {
            let gpus: Vec<&Gpu> = host.gpus_of(Vendor::Nvidia).collect();
            plan.selected = select(&gpus, selection, busy, claims, prefer, &mut plan.notes)?;
            if EngineKind::of(engine).is_podman() {
                plan.cdi_devices = podman_cdi_names(&plan.selected, plan.all, engine)?;
            } else {
                plan.device_requests.push(nvidia_request(&plan.selected, plan.all, engine));
            }
        }
        GpuMode::Amd => {
            let gpus: Vec<&Gpu> = host.gpus_of(Vendor::Amd).collect();
            plan.selected = select(&gpus, selection, busy, claims, prefer, &mut plan.notes)?;
            let kfd = host.kfd.as_ref().ok_or_else(|| PlanError::Gpu {
                message: "AMD GPUs were found but /dev/kfd is missing".into(),
                hint: "load the amdgpu driver (`sudo modprobe amdgpu`) and check `berth doctor`".into(),
            })?;
            plan.devices.push(kfd.path.clone());
            add_group(&mut plan.group_ids, kfd);
            for sel in &plan.selected {
                let gpu = gpus.iter().find(|g| g.index == sel.index);
                if let Some(node) = gpu.and_then(|g| g.render_node.as_ref()) {
                    plan.devices.push(node.path.clone());
                    add_group(&mut plan.group_ids, node);
                }
            }
        }
    }
    plan.group_ids.sort_unstable();
    plan.group_ids.dedup();
    Ok(plan)
}

fn resolve_mode(choice: VendorChoice, host: &HostFacts) -> Result<GpuMode, PlanError> {
    let has_nvidia = host.gpus_of(Vendor::Nvidia).next().is_some();
    let has_amd = host.gpus_of(Vendor::Amd).next().is_some();
    match choice {
        VendorChoice::None => Ok(GpuMode::None),
        VendorChoice::Auto if has_nvidia => Ok(GpuMode::Nvidia),
        VendorChoice::Auto if has_amd => Ok(GpuMode::Amd),
        VendorChoice::Auto if host.wsl.is_some() => Ok(GpuMode::Wsl),
        VendorChoice::Auto => Ok(GpuMode::None),
        VendorChoice::Gpu(Vendor::Nvidia) if has_nvidia => Ok(GpuMode::Nvidia),
        VendorChoice::Gpu(Vendor::Nvidia) if host.wsl.is_some() => Ok(GpuMode::Wsl),
        VendorChoice::Gpu(Vendor::Nvidia) => Err(PlanError::Gpu {
            message: "`gpu.vendor` is \"nvidia\" but no NVIDIA GPU was found on this host \
                      (looked in /sys/bus/pci/devices)"
                .into(),
            hint: "set `gpu.vendor = \"auto\"` (or \"none\") in berth.toml, or run `berth doctor`".into(),
        }),
        VendorChoice::Gpu(Vendor::Amd) if has_amd => Ok(GpuMode::Amd),
        VendorChoice::Gpu(Vendor::Amd) => Err(PlanError::Gpu {
            message: "`gpu.vendor` is \"amd\" but no AMD GPU was found on this host \
                      (looked in /sys/class/kfd/kfd/topology)"
                .into(),
            hint: "set `gpu.vendor = \"auto\"` (or \"none\") in berth.toml, or run `berth doctor`".into(),
        }),
    }
}

fn add_group(groups: &mut Vec<u32>, node: &DeviceNode) {
    // Nodes everyone may open (NVIDIA's 0666) need no group; root's group 0 never helps.
    let world_rw = node.mode & 0o006 == 0o006;
    if !world_rw && node.gid != 0 {
        groups.push(node.gid);
    }
}

/// Every name another container may hold this GPU by: index, PCI address, UUID, render node.
fn ids_of(gpu: &Gpu) -> Vec<String> {
    let mut ids = vec![gpu.index.to_string(), gpu.pci.clone()];
    ids.extend(gpu.uuid.clone());
    ids.extend(gpu.render_node.as_ref().map(|n| n.path.clone()));
    ids
}

fn selected(gpu: &Gpu, shared: bool) -> SelectedGpu {
    SelectedGpu {
        index: gpu.index,
        uuid: gpu.uuid.clone(),
        pci: gpu.pci.clone(),
        model: gpu.model.clone(),
        shared,
    }
}

fn describe(gpus: &[&Gpu]) -> String {
    if gpus.is_empty() {
        return "none".into();
    }
    gpus.iter().map(|g| g.index.to_string()).collect::<Vec<_>>().join(", ")
}

fn select(
    gpus: &[&Gpu],
    selection: &DeviceSelection,
    busy: &BusyGpus,
    claims: &GpuClaims,
    prefer: &[String],
    notes: &mut Vec<String>,
) -> Result<Vec<SelectedGpu>, PlanError> {
    // A container holding "all" holds every GPU.
    let is_busy = |g: &Gpu| busy.contains("all") || ids_of(g).iter().any(|id| busy.contains(id));
    let leased = |g: &Gpu| claims.leased.contains_key(&g.index);
    let used = |g: &Gpu| claims.used.contains_key(&g.index);
    let discrete: Vec<&Gpu> = gpus.iter().copied().filter(|g| !g.integrated).collect();
    let mut out = match selection {
        DeviceSelection::All => {
            for g in discrete.iter().filter(|g| leased(g)) {
                notes.push(format!(
                    "GPU {} is {}: `devices = \"all\"` takes it too; set `gpu.devices` to a count \
                     (`devices = 1`) to leave leased GPUs alone",
                    g.index, claims.leased[&g.index]
                ));
            }
            discrete.iter().map(|g| selected(g, is_busy(g))).collect()
        }
        DeviceSelection::Count(n) => {
            let n = *n as usize;
            if n > discrete.len() {
                return Err(PlanError::Gpu {
                    message: format!(
                        "`gpu.devices` asks for {n} GPUs but this host has {} (GPUs {})",
                        discrete.len(),
                        describe(&discrete)
                    ),
                    hint: format!("set `gpu.devices` to {} or fewer", discrete.len()),
                });
            }
            // Keep what the environment already holds, then free GPUs, then shared ones; another
            // user's lease is never taken by a count (unless forced, and then last).
            let held = |g: &Gpu| ids_of(g).iter().any(|id| prefer.contains(id));
            // A GPU a stopped environment held, leased by someone else since (a running one's
            // own GPUs carry no lease claim: the caller leaves them out). Moving it to another
            // GPU would mean a new container, so it is refused like a listed GPU. Regression:
            // `up` resumed on another user's leased GPU, saying only "no free GPU was left".
            let lost: Vec<String> = discrete
                .iter()
                .filter(|g| held(g) && leased(g))
                .map(|g| format!("GPU {} is {}", g.index, claims.leased[&g.index]))
                .collect();
            if !lost.is_empty() && !claims.force {
                return Err(PlanError::Leased {
                    message: format!(
                        "the environment's GPU was leased by another user while it was stopped: {}",
                        lost.join("; ")
                    ),
                    hint:
                        "wait for the lease to end or ask its holder (`berth lease ls`); `berth up --force` \
                           takes it anyway, and the holder sees it in `berth lease ls`"
                            .into(),
                });
            }
            let mut order: Vec<&Gpu> =
                discrete.iter().copied().filter(|g| held(g) || !leased(g) || claims.force).collect();
            if order.len() < n {
                let taken: Vec<String> = discrete
                    .iter()
                    .filter(|g| leased(g) && !held(g))
                    .map(|g| format!("GPU {} is {}", g.index, claims.leased[&g.index]))
                    .collect();
                return Err(PlanError::Leased {
                    message: format!(
                        "`gpu.devices` asks for {n} GPU{} but only {} of this host's {} {} not leased by \
                         someone else: {}",
                        if n == 1 { "" } else { "s" },
                        order.len(),
                        discrete.len(),
                        if order.len() == 1 { "is" } else { "are" },
                        taken.join("; ")
                    ),
                    hint: "wait for a lease to end or ask its holder (`berth lease ls`); `berth up --force` \
                           takes leased GPUs anyway, and their holders see it in `berth lease ls`"
                        .into(),
                });
            }
            order.sort_by_key(|g| (!held(g), leased(g), is_busy(g) || used(g), g.index));
            let chosen: Vec<SelectedGpu> =
                order.into_iter().take(n).map(|g| selected(g, is_busy(g))).collect();
            let picked: Vec<u32> = chosen.iter().map(|s| s.index).collect();
            let passed: Vec<String> = discrete
                .iter()
                .filter(|g| !picked.contains(&g.index))
                .filter_map(|g| {
                    claims.why(g.index).or_else(|| {
                        is_busy(g).then(|| format!("GPU {} is used by another container", g.index))
                    })
                })
                .collect();
            if !passed.is_empty() {
                let which: Vec<String> = picked.iter().map(u32::to_string).collect();
                notes.push(format!("chose GPU {}: {}", which.join(", "), passed.join("; ")));
            }
            for s in &chosen {
                if let Some(l) = claims.leased.get(&s.index) {
                    notes.push(format!(
                        "GPU {} is {l}: taken anyway (--force); the holder sees it in `berth lease ls`",
                        s.index
                    ));
                } else if let Some(why) = claims.why(s.index) {
                    notes.push(format!("no free GPU was left: {why}"));
                }
            }
            let shared: Vec<String> =
                chosen.iter().filter(|s| s.shared).map(|s| s.index.to_string()).collect();
            if !shared.is_empty() {
                notes.push(format!(
                    "no free GPU was left: GPU {} is also used by another container",
                    shared.join(", ")
                ));
            }
            chosen
        }
        DeviceSelection::List(refs) => {
            let mut chosen = Vec::new();
            for r in refs {
                let found = gpus.iter().find(|g| match r {
                    GpuRef::Index(i) => g.index == *i,
                    GpuRef::Uuid(u) => g.uuid.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u)),
                });
                let Some(gpu) = found else {
                    let what = match r {
                        GpuRef::Index(i) => format!("GPU {i}"),
                        GpuRef::Uuid(u) => format!("GPU {u}"),
                    };
                    return Err(PlanError::Gpu {
                        message: format!(
                            "`gpu.devices` names {what}, which this host does not have \
                             (it has GPUs {})",
                            describe(gpus)
                        ),
                        hint: "list host indices as `nvidia-smi -L` / `rocm-smi` show them, \
                               or use a count such as `devices = 1`"
                            .into(),
                    });
                };
                chosen.push(selected(gpu, is_busy(gpu)));
            }
            let refused: Vec<String> = chosen
                .iter()
                .filter_map(|s| claims.leased.get(&s.index).map(|l| format!("GPU {} is {l}", s.index)))
                .collect();
            if !refused.is_empty() && !claims.force {
                return Err(PlanError::Leased {
                    message: format!("`gpu.devices` names a GPU another user leased: {}", refused.join("; ")),
                    hint: "wait for the lease to end or ask its holder (`berth lease ls`); a count such as \
                           `devices = 1` picks an unleased GPU; `berth up --force` takes it anyway, and the \
                           holder sees it in `berth lease ls`"
                        .into(),
                });
            }
            for r in &refused {
                notes.push(format!("{r}: taken anyway (--force); the holder sees it in `berth lease ls`"));
            }
            for s in &chosen {
                if let Some(u) = claims.used.get(&s.index) {
                    notes.push(format!(
                        "GPU {} already holds {}: the environment shares it",
                        s.index,
                        u.join(", ")
                    ));
                }
            }
            chosen
        }
    };
    out.sort_by_key(|s| s.index);
    Ok(out)
}

/// The CDI names Podman gets for the chosen GPUs: `nvidia.com/gpu=all`, or each GPU by its UUID
/// where the spec names it (UUIDs keep naming the same card when indices shift), else its index.
///
/// Podman 4's Docker-compatible API drops device requests of every driver without a word, and
/// `HostConfig.Devices` cannot carry a CDI name there (checked on 4.3.1: the container comes up
/// without GPUs, or the create fails with "stat nvidia.com/gpu=0: no such file or directory";
/// containers/podman#25171 made 5.5 read `cdi` requests). So the engine passes these names to
/// Podman's own create, and a name no spec on the host gives is refused here, before anything is
/// created: Podman itself would only fail at start ("unresolvable CDI devices").
fn podman_cdi_names(
    chosen: &[SelectedGpu],
    all: bool,
    engine: &EngineFacts,
) -> Result<Vec<String>, PlanError> {
    let name = |id: &str| format!("{NVIDIA_GPU}={id}");
    // Spec folders berth could not read (a remote engine): Podman's start says what is missing.
    let checked = !engine.cdi_spec_dirs.is_empty();
    let known = |n: &String| !checked || engine.cdi_devices.contains(n);
    let looked = if checked { engine.cdi_spec_dirs.join(", ") } else { SPEC_DIRS.join(", ") };
    let spec_names: Vec<&str> = engine
        .cdi_devices
        .iter()
        .filter_map(|d| d.strip_prefix(NVIDIA_GPU).and_then(|r| r.strip_prefix('=')))
        .collect();
    if checked && spec_names.is_empty() {
        return Err(PlanError::Gpu {
            message: format!(
                "Podman passes NVIDIA GPUs only by their CDI names, and no CDI spec on this host names \
                 {NVIDIA_GPU} devices (looked in {looked}), so Podman cannot give the environment its GPUs"
            ),
            hint: "generate the spec with the NVIDIA Container Toolkit: `sudo nvidia-ctk cdi generate \
                   --output=/etc/cdi/nvidia.yaml`, then run `berth up` again (`berth doctor` lists the \
                   devices Podman knows); or set `gpu.vendor = \"none\"` in berth.toml to run on the CPU"
                .into(),
        });
    }
    let mut names = Vec::new();
    let mut missing = Vec::new();
    if all {
        let n = name("all");
        if known(&n) { names.push(n) } else { missing.push("`all`".to_string()) }
    }
    for s in chosen.iter().filter(|_| !all) {
        let by_uuid = s.uuid.as_deref().map(name).filter(|n| checked && engine.cdi_devices.contains(n));
        let n = by_uuid.unwrap_or_else(|| name(&s.index.to_string()));
        if known(&n) {
            names.push(n);
        } else {
            missing.push(match &s.uuid {
                Some(u) => format!("GPU {} ({u})", s.index),
                None => format!("GPU {}", s.index),
            });
        }
    }
    if !missing.is_empty() {
        return Err(PlanError::Gpu {
            message: format!(
                "the CDI spec on this host names no device for {} (it names {NVIDIA_GPU}={}): Podman could \
                 not give the environment that GPU",
                missing.join(", "),
                spec_names.join(", ")
            ),
            hint: "regenerate it for the GPUs this host has now: `sudo nvidia-ctk cdi generate \
                   --output=/etc/cdi/nvidia.yaml`, then run `berth up` again"
                .into(),
        });
    }
    Ok(names)
}

fn nvidia_request(chosen: &[SelectedGpu], all: bool, engine: &EngineFacts) -> DeviceRequestPlan {
    if engine.has_cdi_vendor("nvidia.com") {
        let name = |id: &str| format!("{NVIDIA_GPU}={id}");
        let ids = if all {
            vec![name("all")]
        } else {
            chosen
                .iter()
                .map(|s| match &s.uuid {
                    Some(u) if engine.cdi_devices.contains(&name(u)) => name(u),
                    _ => name(&s.index.to_string()),
                })
                .collect()
        };
        return DeviceRequestPlan {
            driver: "cdi".into(),
            count: 0,
            device_ids: ids,
            capabilities: Vec::new(),
        };
    }
    let caps = vec![vec!["gpu".to_string()]];
    if all {
        return DeviceRequestPlan {
            driver: String::new(),
            count: -1,
            device_ids: Vec::new(),
            capabilities: caps,
        };
    }
    // UUIDs keep naming the same cards when indices shift (a GPU removed, a reboot reordering).
    let ids = chosen.iter().map(|s| s.uuid.clone().unwrap_or_else(|| s.index.to_string())).collect();
    DeviceRequestPlan { driver: String::new(), count: 0, device_ids: ids, capabilities: caps }
}
