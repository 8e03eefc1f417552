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
use crate::host::HostFacts;
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

/// Warnings for AMD GPUs whose gfx target the image's ROCm PyTorch does not include.
pub fn amd_warnings(
    image: &str,
    env: &[String],
    gpu: &GpuPlan,
    host: &HostFacts,
    user_env: &[String],
) -> Vec<String> {
    if gpu.mode != GpuMode::Amd || user_env.iter().any(|k| k.starts_with("HSA_OVERRIDE_GFX_VERSION")) {
        return Vec::new();
    }
    let table = tables::gfx();
    let rocm = image_rocm(image, env);
    // The newest table row not newer than the image's ROCm (or the newest row at all).
    let row = table
        .targets
        .iter()
        .filter(|(v, _)| rocm.as_deref().is_none_or(|r| version_key(v) <= version_key(r)))
        .max_by_key(|(v, _)| version_key(v));
    let Some((rocm_v, targets)) = row else { return Vec::new() };
    let mut out = Vec::new();
    for sel in &gpu.selected {
        let Some(g) = host.gpus.iter().find(|g| g.pci == sel.pci) else { continue };
        let Some(gfx) = &g.gfx_target else { continue };
        if targets.contains(gfx) {
            continue;
        }
        match table.overrides.get(gfx) {
            Some(v) => out.push(format!(
                "GPU {} ({gfx}) is not among the targets ROCm {rocm_v}'s PyTorch is built for: add \
                 `HSA_OVERRIDE_GFX_VERSION = \"{v}\"` to [env] in berth.toml (unofficial, but the usual fix)",
                sel.index
            )),
            None => out.push(format!(
                "GPU {} ({gfx}) is not among the targets ROCm {rocm_v}'s PyTorch is built for, and no known \
                 override fits it; expect `hipErrorNoBinaryForGpu`",
                sel.index
            )),
        }
    }
    out
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
