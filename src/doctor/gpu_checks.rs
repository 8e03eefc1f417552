//! The GPU side of the host: NVIDIA driver, toolkit or CDI, CDI spec freshness and the
//! `daemon-reload` risk; WSL2's `/dev/dxg`; Docker Desktop, which cannot pass GPUs on Linux.
//! On Podman, which takes NVIDIA GPUs only by CDI names (see `plan::gpu`), the spec files on the
//! host are the whole story: Docker's runtime and hook rows do not apply. AMD's checks are in
//! `amd_checks`.

use super::Check;
use super::amd_checks::{amd_devices, amd_gfx, amd_groups};
use super::engine_checks::is_desktop;
use super::facts::DoctorFacts;
use crate::host::{Gpu, Vendor};

/// Oldest driver for CUDA 12 images (minor-version compatibility floor).
const CUDA12_DRIVER: &str = "525.60.13";

pub fn all(f: &DoctorFacts) -> Vec<Check> {
    let nvidia: Vec<&Gpu> = f.host.gpus_of(Vendor::Nvidia).collect();
    let amd: Vec<&Gpu> = f.host.gpus_of(Vendor::Amd).collect();
    let wsl = f.host.wsl.is_some() || f.wsl_kernel;
    let has_nvidia = !nvidia.is_empty() || f.host.nvidia_driver.is_some();
    let has_amd = !amd.is_empty() || f.host.kfd.is_some();
    if !has_nvidia && !has_amd && !wsl {
        return vec![Check::ok("gpus", "no GPU found: environments run on the CPU")];
    }
    let mut out = Vec::new();
    if is_desktop(f) && !wsl {
        out.push(Check::fail(
            "engine-gpu",
            "Docker Desktop runs the engine in a VM that cannot see this machine's GPUs",
            "install Docker Engine (docs.docker.com/engine/install) and switch to it: `docker context use default`",
        ));
    }
    if wsl {
        out.push(wsl_gpu(f));
        if f.host.wsl.is_some() {
            out.push(toolkit(f, true));
        }
    }
    if has_nvidia && f.engine.facts().is_some_and(|e| e.is_podman()) {
        out.push(nvidia_driver(f, &nvidia));
        out.push(podman_cdi(f, &nvidia));
    } else if has_nvidia {
        out.push(nvidia_driver(f, &nvidia));
        out.push(toolkit(f, false));
        out.extend(cdi_spec(f));
        out.extend(gpu_reload(f));
    }
    if has_amd {
        out.push(amd_devices(f, &amd));
        out.extend(amd_groups(f, &amd));
        out.extend(amd_gfx(f, &amd));
    }
    out
}

fn wsl_gpu(f: &DoctorFacts) -> Check {
    match &f.host.wsl {
        Some(w) if w.lib_dir.is_some() => {
            Check::ok("wsl-gpu", "/dev/dxg and /usr/lib/wsl/lib: the Windows driver provides the GPU")
        }
        Some(_) => Check::fail(
            "wsl-gpu",
            "/dev/dxg exists but /usr/lib/wsl/lib (libcuda, nvidia-smi) is missing",
            "update WSL from Windows (`wsl --update`, then `wsl --shutdown`); never install a Linux NVIDIA driver inside WSL",
        ),
        None => Check::warn(
            "wsl-gpu",
            "WSL without /dev/dxg: no GPU reaches this distro",
            "install the GPU's Windows driver, run `wsl --update`, and check this is WSL 2 (`wsl -l -v`)",
        ),
    }
}

fn nvidia_driver(f: &DoctorFacts, gpus: &[&Gpu]) -> Check {
    let Some(driver) = &f.host.nvidia_driver else {
        let nouveau = gpus.iter().any(|g| g.kernel_driver.as_deref() == Some("nouveau"));
        let held = if nouveau { " (nouveau has them)" } else { "" };
        return Check::fail(
            "nvidia-driver",
            format!("{} NVIDIA GPU(s), but the nvidia driver is not loaded{held}", gpus.len()),
            "install the NVIDIA driver (e.g. `sudo ubuntu-drivers install`) and reboot, or `sudo modprobe nvidia`",
        );
    };
    let module = if driver.open_module { "open" } else { "proprietary" };
    let detail = format!("{} ({module} module), {}", driver.version, describe(gpus));
    if let Some(g) = gpus.iter().find(|g| g.kernel_driver.as_deref() == Some("vfio-pci")) {
        return Check::warn(
            "nvidia-driver",
            format!("{detail}; GPU {} ({}) is bound to vfio-pci (passed to a VM)", g.index, g.pci),
            "containers cannot use it: bind it back to nvidia, or leave it out of `[gpu] devices`",
        );
    }
    if older(&driver.version, CUDA12_DRIVER) {
        return Check::warn(
            "nvidia-driver",
            format!("{detail}; it runs CUDA 11 images at most (CUDA 12 needs {CUDA12_DRIVER} or newer)"),
            "upgrade the driver (a current LTS branch: 535, 570 or 580), or use CUDA 11 base images",
        );
    }
    if let Some(g) =
        gpus.iter().find(|g| g.device_node.is_none() && g.kernel_driver.as_deref() == Some("nvidia"))
    {
        return Check::warn(
            "nvidia-driver",
            format!("{detail}; the device node of GPU {} is missing", g.index),
            "create the nodes: `sudo nvidia-modprobe -u -c=0` (or reboot)",
        );
    }
    Check::ok("nvidia-driver", detail)
}

/// `2 GPUs: NVIDIA RTX A6000 ×2`.
fn describe(gpus: &[&Gpu]) -> String {
    let mut models: Vec<(String, usize)> = Vec::new();
    for g in gpus {
        let m = g.model.clone().unwrap_or_else(|| "unknown model".into());
        match models.iter_mut().find(|(n, _)| *n == m) {
            Some((_, c)) => *c += 1,
            None => models.push((m, 1)),
        }
    }
    let list: Vec<String> =
        models.into_iter().map(|(m, c)| if c > 1 { format!("{m} ×{c}") } else { m }).collect();
    let n = gpus.len();
    format!("{n} GPU{}: {}", if n == 1 { "" } else { "s" }, list.join(", "))
}

/// `a < b` for dotted versions, numerically.
fn older(a: &str, b: &str) -> bool {
    let parse = |v: &str| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    parse(a) < parse(b)
}

fn toolkit(f: &DoctorFacts, wsl: bool) -> Check {
    if wsl && is_desktop(f) {
        return Check::ok("nvidia-toolkit", "Docker Desktop passes the GPU into WSL2 itself");
    }
    let Some(e) = f.engine.facts() else {
        return Check::skip("nvidia-toolkit", "unknown without the engine");
    };
    let cdi = e.cdi_devices.iter().filter(|d| d.starts_with("nvidia.com/gpu=")).count();
    if cdi > 0 {
        return Check::ok(
            "nvidia-toolkit",
            format!("CDI: the engine knows {cdi} NVIDIA device names (nvidia.com/gpu=...)"),
        );
    }
    if e.runtimes.iter().any(|r| r == "nvidia") {
        return Check::ok("nvidia-toolkit", "the nvidia runtime is registered; `--gpus` works");
    }
    if f.nvidia_hook {
        return Check::ok("nvidia-toolkit", "nvidia-container-runtime-hook is installed; `--gpus` works");
    }
    if e.data_root.starts_with("/var/snap/") {
        return Check::fail(
            "nvidia-toolkit",
            "Docker is a snap: it cannot use the NVIDIA Container Toolkit installed on the host",
            "remove the snap (`sudo snap remove docker`), install Docker Engine (docs.docker.com/engine/install), \
             then the toolkit",
        );
    }
    Check::fail(
        "nvidia-toolkit",
        "the engine cannot pass NVIDIA GPUs: no nvidia runtime, no toolkit hook, no CDI devices",
        "install the NVIDIA Container Toolkit (package nvidia-container-toolkit from NVIDIA's repository), then \
         `sudo berth host configure --nvidia-runtime` and `sudo systemctl restart docker`",
    )
}

/// Podman: which `nvidia.com/gpu` names the spec files on the host give (Podman reads them at
/// each start), whether they cover every GPU, and whether they match the loaded driver. GPUs
/// through CDI survive `systemctl daemon-reload`, so that row has nothing to add here.
fn podman_cdi(f: &DoctorFacts, gpus: &[&Gpu]) -> Check {
    let dirs = crate::host::cdi::SPEC_DIRS.join(", ");
    let names: Vec<&String> = f.cdi_specs.iter().flat_map(|s| s.devices.iter()).collect();
    if names.is_empty() {
        return Check::fail(
            "cdi-spec",
            format!(
                "Podman passes NVIDIA GPUs only by their CDI names, and no CDI spec names nvidia.com/gpu \
                 devices (looked in {dirs}): `berth up` refuses GPU environments"
            ),
            "install the NVIDIA Container Toolkit (package nvidia-container-toolkit from NVIDIA's repository), \
             then `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`",
        );
    }
    let paths: Vec<&str> =
        f.cdi_specs.iter().filter(|s| !s.devices.is_empty()).map(|s| s.path.as_str()).collect();
    let regenerate = format!("regenerate it: `sudo nvidia-ctk cdi generate --output={}`", paths[0]);
    let uncovered: Vec<String> = gpus
        .iter()
        .filter(|g| {
            !names.iter().any(|n| **n == g.index.to_string() || g.uuid.as_ref().is_some_and(|u| *n == u))
        })
        .map(|g| g.index.to_string())
        .collect();
    if !uncovered.is_empty() {
        return Check::warn(
            "cdi-spec",
            format!(
                "{} names no device for GPU {} (made before that GPU was added?): environments cannot ask for it",
                paths.join(", "),
                uncovered.join(", ")
            ),
            regenerate,
        );
    }
    if let Some(stale) = stale_cdi_spec(f) {
        return stale;
    }
    let short: Vec<&str> = names.iter().filter(|n| !n.starts_with("GPU-")).map(|n| n.as_str()).collect();
    let uuids = names.len() - short.len();
    let by_uuid = if uuids > 0 { format!(" and {uuids} by UUID") } else { String::new() };
    Check::ok(
        "cdi-spec",
        format!(
            "{} names nvidia.com/gpu={}{by_uuid}: Podman passes the GPUs by these names, and they survive \
             `systemctl daemon-reload`",
            paths.join(", "),
            short.join(", ")
        ),
    )
}

/// A CDI spec generated for another driver than the loaded one: its devices fail to start.
fn stale_cdi_spec(f: &DoctorFacts) -> Option<Check> {
    let driver = f.host.nvidia_driver.as_ref()?;
    let stale = f
        .cdi_specs
        .iter()
        .find(|s| !s.driver_versions.is_empty() && !s.driver_versions.contains(&driver.version))?;
    Some(Check::warn(
        "cdi-spec",
        format!(
            "{} was generated for driver {}, but {} is loaded: containers using its devices fail to start",
            stale.path,
            stale.driver_versions.join(", "),
            driver.version
        ),
        format!(
            "regenerate it: `sudo nvidia-ctk cdi generate --output={}` (toolkit 1.18+ does it at boot: \
             `sudo systemctl enable --now nvidia-cdi-refresh.path`)",
            stale.path
        ),
    ))
}

/// Spec files generated for another driver than the loaded one; specs the engine ignores.
fn cdi_spec(f: &DoctorFacts) -> Option<Check> {
    let spec = f.cdi_specs.first()?;
    let driver = f.host.nvidia_driver.as_ref()?;
    if let Some(stale) = stale_cdi_spec(f) {
        return Some(stale);
    }
    let e = f.engine.facts()?;
    if !e.has_cdi_vendor("nvidia.com") {
        let fix = match e.docker_at_least(25, 0) {
            Some(false) => {
                format!("Docker {} cannot read CDI specs: upgrade to Docker 25 or newer", e.server_version)
            }
            _ => {
                "turn CDI on: `sudo berth host configure --cdi`, then `sudo systemctl restart docker`".into()
            }
        };
        return Some(Check::warn(
            "cdi-spec",
            format!("{} exists, but the engine does not use CDI specs", spec.path),
            fix,
        ));
    }
    Some(Check::ok("cdi-spec", format!("{} matches driver {}", spec.path, driver.version)))
}

/// Under the systemd cgroup driver, `systemctl daemon-reload` rewrites the device rules of
/// containers whose GPUs came through the runtime hook; CDI injects them so they survive.
fn gpu_reload(f: &DoctorFacts) -> Option<Check> {
    let e = f.engine.facts()?;
    f.host.gpus_of(Vendor::Nvidia).next()?;
    if e.has_cdi_vendor("nvidia.com") {
        return Some(Check::ok(
            "gpu-reload",
            "GPUs come through CDI: they survive `systemctl daemon-reload`",
        ));
    }
    if e.cgroup_driver != "systemd" {
        let driver = if e.cgroup_driver.is_empty() { "unknown" } else { e.cgroup_driver.as_str() };
        return Some(Check::ok(
            "gpu-reload",
            format!("{driver} cgroup driver: `systemctl daemon-reload` leaves GPUs alone"),
        ));
    }
    let fresh_spec = f.cdi_specs.iter().any(|s| {
        f.host
            .nvidia_driver
            .as_ref()
            .is_some_and(|d| s.driver_versions.is_empty() || s.driver_versions.contains(&d.version))
    });
    let generate =
        if fresh_spec { "" } else { "`sudo nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml`, " };
    let fix = match e.docker_at_least(25, 0) {
        Some(false) => format!(
            "upgrade to Docker 25+ and use CDI; meanwhile `sudo nvidia-ctk system create-dev-char-symlinks \
             --create-all` keeps GPUs working (Docker {} here)",
            e.server_version
        ),
        _ => {
            let enable = if e.docker_at_least(28, 3) == Some(true) {
                ""
            } else {
                "`sudo berth host configure --cdi`, "
            };
            format!(
                "use CDI: {generate}{enable}`sudo systemctl restart docker`, then `berth up --recreate` in each project"
            )
        }
    };
    Some(Check::warn(
        "gpu-reload",
        "systemd cgroup driver without CDI: after `systemctl daemon-reload` running containers can lose their GPUs \
         (\"Failed to initialize NVML: Unknown Error\")",
        fix,
    ))
}
