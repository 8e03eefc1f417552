//! Does the image fit the host's GPU stack? Checked before a container is created.
//!
//! NVIDIA: the image's CUDA (its `CUDA_VERSION`, else its tag) against the host driver and the
//! minor-version compatibility floors; too old a driver stops `up` with both versions and the
//! fix, instead of a container that fails later with "CUDA driver version is insufficient".
//! AMD: a card whose gfx target the image's ROCm PyTorch does not ship gets a warning naming
//! the `HSA_OVERRIDE_GFX_VERSION` value to set.

use super::presets::{cuda_of_tag, cuda_runs_on, min_driver, release_driver};
use super::tables::{self, version_key};
use crate::error::{Code, fail};
use crate::host::{Gpu, HostFacts};
use crate::plan::{GpuMode, GpuPlan};

fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter().find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The CUDA version an image is built for.
pub fn image_cuda(image: &str, env: &[String]) -> Option<String> {
    env_value(env, "CUDA_VERSION").map(str::to_string).or_else(|| cuda_of_tag(image))
}

/// The ROCm version an image carries.
pub fn image_rocm(image: &str, env: &[String]) -> Option<String> {
    if let Some(v) = env_value(env, "ROCM_VERSION") {
        return Some(v.to_string());
    }
    let t = image.rsplit_once(':')?.1;
    let i = t.find("rocm")?;
    let v: String = t[i + 4..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    (!v.is_empty()).then_some(v)
}

/// Refuse an NVIDIA environment whose image needs a newer driver than the host has.
pub fn check_driver(image: &str, env: &[String], gpu: &GpuPlan, host: &HostFacts) -> anyhow::Result<()> {
    if gpu.mode != GpuMode::Nvidia {
        return Ok(());
    }
    let (Some(cuda), Some(driver)) = (image_cuda(image, env), host.nvidia_driver.as_ref()) else {
        return Ok(());
    };
    if cuda_runs_on(&cuda, &driver.version) {
        return Ok(());
    }
    let need = min_driver(&cuda).unwrap_or_default();
    let full = release_driver(&cuda)
        .map(|d| format!(" ({d} or newer for every CUDA {cuda} feature)"))
        .unwrap_or_default();
    let older = tables::drivers()
        .cuda
        .iter()
        .filter(|f| version_key(&driver.version) >= version_key(&f.minimum))
        .map(|f| f.version.clone())
        .max_by_key(|v| version_key(v));
    let pick = match older {
        Some(major) => format!(
            ", or use an image built for CUDA {major}.x (e.g. `preset = \"pytorch\"` with `cuda = \"{}\"`)",
            if major == "11" { "11.8" } else { &major }
        ),
        None => String::new(),
    };
    Err(fail(
        Code::Failure,
        format!(
            "the image {image} is built for CUDA {cuda}, which needs NVIDIA driver {need} or newer{full}; \
             this host has driver {}",
            driver.version
        ),
        format!("upgrade the host's NVIDIA driver to {need} or newer{pick}; nothing was created"),
    ))
}

/// What an AMD environment needs for cards whose gfx target its ROCm's PyTorch wheels lack:
/// what was found (`detail`) and the `[env]` lines that fix it (`fix`). `up` and `doctor` both
/// print these two strings, so they always give the same advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GfxAdvice {
    pub detail: String,
    pub fix: String,
}

/// The one rule for `HSA_OVERRIDE_GFX_VERSION`.
///
/// `gpus` are the AMD GPUs the environment gets; `rocm` the image's ROCm (`None`: unknown, so
/// only targets no ROCm release has count); `user_env` the keys berth.toml's `[env]` sets.
/// ROCm numbers devices inside a container by KFD node among the nodes it can open: the CPU
/// nodes, then the GPUs whose render node was passed, in host node order. When every GPU
/// needs the same value the global variable is advised; otherwise one
/// `HSA_OVERRIDE_GFX_VERSION_<node>` per card that needs it, so the others keep their own ISA.
pub fn gfx_advice(
    host: &HostFacts,
    gpus: &[&Gpu],
    rocm: Option<&str>,
    user_env: &[String],
) -> Option<GfxAdvice> {
    let table = tables::gfx();
    let row = rocm.and_then(|r| {
        table
            .targets
            .iter()
            .filter(|(v, _)| version_key(v) <= version_key(r))
            .max_by_key(|(v, _)| version_key(v))
    });
    let built_for = |gfx: &str| match row {
        Some((_, targets)) => targets.iter().any(|t| t == gfx),
        None => table.targets.values().any(|targets| targets.iter().any(|t| t == gfx)),
    };
    let wheels = match row {
        Some((v, _)) => format!("ROCm {v}'s PyTorch wheels are"),
        None => "ROCm's PyTorch wheels (any release) are".to_string(),
    };
    let node_inside = |g: &Gpu| -> Option<u32> {
        let node = g.kfd_node?;
        let cpus = host.kfd_cpu_nodes.iter().filter(|n| **n < node).count();
        let gpus_before = gpus.iter().filter(|o| o.kfd_node.is_some_and(|k| k < node)).count();
        u32::try_from(cpus + gpus_before).ok()
    };
    let named = |g: &Gpu| format!("GPU {} ({})", g.index, g.gfx_target.as_deref().unwrap_or("?"));
    // (GPU, override value) for each card the wheels lack; `None`: no known override.
    let lacking: Vec<(&Gpu, Option<&str>)> = gpus
        .iter()
        .copied()
        .filter(|g| g.gfx_target.as_deref().is_some_and(|t| !built_for(t)))
        .map(|g| (g, g.gfx_target.as_deref().and_then(|t| table.overrides.get(t)).map(String::as_str)))
        .collect();
    let has = |key: &str| user_env.iter().any(|k| k == key);
    let global = "HSA_OVERRIDE_GFX_VERSION";
    let values: Vec<&str> = lacking.iter().filter_map(|(_, v)| *v).collect();
    let all_same = !values.is_empty() && values.len() == gpus.len() && values.iter().all(|v| *v == values[0]);
    if has(global) && !all_same {
        // A global override that also rewrites a card needing none (or another value).
        let wrong: Vec<&Gpu> = gpus
            .iter()
            .copied()
            .filter(|g| !lacking.iter().any(|(l, _)| l.pci == g.pci))
            .filter(|g| node_inside(g).is_none_or(|n| !has(&format!("{global}_{n}"))))
            .collect();
        if !wrong.is_empty() {
            let names: Vec<String> = wrong.iter().map(|g| named(g)).collect();
            let fix = per_node_fix(&lacking, &node_inside);
            return Some(GfxAdvice {
                detail: format!("`{global}` in [env] applies to every GPU, also to {}", names.join(", ")),
                fix: if fix.is_empty() {
                    format!("remove `{global}` from [env] in berth.toml")
                } else {
                    format!("replace `{global}` in [env] in berth.toml with: {fix}")
                },
            });
        }
        return None;
    }
    let open: Vec<&(&Gpu, Option<&str>)> = lacking
        .iter()
        .filter(|(g, _)| !has(global) && node_inside(g).is_none_or(|n| !has(&format!("{global}_{n}"))))
        .collect();
    if open.is_empty() {
        return None;
    }
    let names: Vec<String> = open.iter().map(|(g, _)| named(g)).collect();
    let mut detail = format!(
        "{} {} not among the targets {wheels} built for",
        names.join(", "),
        if open.len() == 1 { "is" } else { "are" }
    );
    let unknown: Vec<String> = open.iter().filter(|(_, v)| v.is_none()).map(|(g, _)| named(g)).collect();
    if !unknown.is_empty() {
        detail.push_str(&format!(
            "; no known override fits {}: expect `hipErrorNoBinaryForGpu`",
            unknown.join(", ")
        ));
    }
    let fix = if all_same && !has(global) {
        format!("add to [env] in berth.toml: {global} = \"{}\" (unofficial, but the usual fix)", values[0])
    } else {
        let lines = per_node_fix(&open.iter().map(|x| **x).collect::<Vec<_>>(), &node_inside);
        if lines.is_empty() {
            "use an image whose ROCm release is built for these targets, or leave these GPUs out with `[gpu] devices`".to_string()
        } else {
            format!(
                "add to [env] in berth.toml: {lines} (numbered as ROCm counts nodes inside the environment; \
                 unofficial, but the usual fix)"
            )
        }
    };
    Some(GfxAdvice { detail, fix })
}

/// `HSA_OVERRIDE_GFX_VERSION_2 = "10.3.0"`, one per card with a known override.
fn per_node_fix(lacking: &[(&Gpu, Option<&str>)], node_inside: &dyn Fn(&Gpu) -> Option<u32>) -> String {
    lacking
        .iter()
        .filter_map(|(g, v)| Some(format!("HSA_OVERRIDE_GFX_VERSION_{} = \"{}\"", node_inside(g)?, (*v)?)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file ROCm installs with its release (`6.3.2-66`), read when the image's env and tags
/// do not say.
pub const ROCM_VERSION_FILE: &str = "/opt/rocm/.info/version";

/// The advice for the GPUs an AMD plan selected, with the ROCm the image carries (see
/// `image_rocm`; the caller falls back to the base's tag and [`ROCM_VERSION_FILE`]).
pub fn amd_warnings(
    gpu: &GpuPlan,
    host: &HostFacts,
    rocm: Option<&str>,
    user_env: &[String],
) -> Option<GfxAdvice> {
    if gpu.mode != GpuMode::Amd {
        return None;
    }
    let gpus: Vec<&Gpu> =
        gpu.selected.iter().filter_map(|s| host.gpus.iter().find(|g| g.pci == s.pci)).collect();
    gfx_advice(host, &gpus, rocm, user_env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostRoot;

    fn host(name: &str) -> HostFacts {
        HostFacts::probe(&HostRoot::at(format!("{}/tests/hosts/{name}", env!("CARGO_MANIFEST_DIR"))))
    }

    fn nvidia_plan() -> GpuPlan {
        GpuPlan {
            mode: GpuMode::Nvidia,
            selected: vec![],
            all: true,
            device_requests: vec![],
            cdi_devices: vec![],
            devices: vec![],
            group_ids: vec![],
            wsl_lib: None,
            notes: vec![],
        }
    }

    #[test]
    fn an_old_driver_is_refused_with_both_versions_and_the_fix() {
        let env = vec!["CUDA_VERSION=12.4.1".to_string()];
        let err =
            check_driver("x/y:1", &env, &nvidia_plan(), &host("nvidia-old-driver")).expect_err("refused");
        let text = format!("{err}");
        assert!(
            text.contains("CUDA 12.4.1") && text.contains("525.60.13") && text.contains("470.256.02"),
            "{text}"
        );
        assert!(check_driver("x/y:1", &env, &nvidia_plan(), &host("nvidia-2")).is_ok());
        assert!(
            check_driver(
                "pytorch/pytorch:2.5.1-cuda11.8-cudnn9-runtime",
                &[],
                &nvidia_plan(),
                &host("nvidia-old-driver")
            )
            .is_ok()
        );
    }

    fn amd<'a>(host: &'a HostFacts, indices: &[u32]) -> Vec<&'a Gpu> {
        host.gpus.iter().filter(|g| indices.contains(&g.index)).collect()
    }

    #[test]
    fn mixed_amd_gpus_get_a_per_device_override_numbered_as_inside_the_container() {
        let h = host("amd-igpu-2");
        // gfx1100 (host index 1, KFD node 2) and gfx1031 (index 2, node 3); the iGPU is not passed.
        let both = amd(&h, &[1, 2]);
        let a = gfx_advice(&h, &both, Some("6.3"), &[]).expect("advice");
        assert!(a.detail.contains("GPU 2 (gfx1031)") && !a.detail.contains("gfx1100"), "{}", a.detail);
        assert!(a.detail.contains("ROCm 6.3"), "{}", a.detail);
        assert!(a.fix.contains("HSA_OVERRIDE_GFX_VERSION_2 = \"10.3.0\""), "{}", a.fix);
        assert!(!a.fix.contains("HSA_OVERRIDE_GFX_VERSION ="), "never the global form: {}", a.fix);
        // Applied: nothing more to say.
        assert_eq!(gfx_advice(&h, &both, Some("6.3"), &["HSA_OVERRIDE_GFX_VERSION_2".into()]), None);
        // The old global advice is flagged: it would also rewrite the gfx1100.
        let g = gfx_advice(&h, &both, Some("6.3"), &["HSA_OVERRIDE_GFX_VERSION".into()]).expect("flagged");
        assert!(g.detail.contains("GPU 1 (gfx1100)"), "{}", g.detail);
        assert!(g.fix.contains("HSA_OVERRIDE_GFX_VERSION_2 = \"10.3.0\""), "{}", g.fix);
        // Only the gfx1031: every GPU needs the same value, so the global form; it is node 1 inside.
        let one = amd(&h, &[2]);
        let a = gfx_advice(&h, &one, None, &[]).expect("advice");
        assert!(a.fix.contains("HSA_OVERRIDE_GFX_VERSION = \"10.3.0\""), "{}", a.fix);
        assert_eq!(gfx_advice(&h, &one, None, &["HSA_OVERRIDE_GFX_VERSION".into()]), None);
        // Only the gfx1100: nothing to advise.
        assert_eq!(gfx_advice(&h, &amd(&h, &[1]), Some("6.3"), &[]), None);
    }

    #[test]
    fn an_image_without_rocm_names_no_rocm_release() {
        let h = host("amd-igpu-2");
        let a = gfx_advice(&h, &amd(&h, &[1, 2]), image_rocm("berth-test/busybox:1", &[]).as_deref(), &[])
            .expect("advice");
        assert!(!a.detail.contains("ROCm 7"), "{}", a.detail);
        assert!(a.detail.contains("any release"), "{}", a.detail);
        // gfx1151 is in ROCm 7.2's wheels but not 6.3's.
        let mut h2 = h.clone();
        h2.gpus.iter_mut().filter(|g| g.index == 2).for_each(|g| g.gfx_target = Some("gfx1151".into()));
        let gpus = amd(&h2, &[1, 2]);
        assert!(gfx_advice(&h2, &gpus, Some("6.3"), &[]).is_some());
        assert_eq!(gfx_advice(&h2, &gpus, Some("7.2.1"), &[]), None);
        assert_eq!(gfx_advice(&h2, &gpus, None, &[]), None);
    }

    #[test]
    fn versions_come_from_env_then_tag() {
        assert_eq!(image_cuda("a:b", &["CUDA_VERSION=12.8.0".into()]).as_deref(), Some("12.8.0"));
        assert_eq!(image_cuda("pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel", &[]).as_deref(), Some("12.4"));
        assert_eq!(
            image_rocm("rocm/pytorch:rocm6.3_ubuntu22.04_py3.10_pytorch_release_2.4.0", &[]).as_deref(),
            Some("6.3")
        );
    }
}
