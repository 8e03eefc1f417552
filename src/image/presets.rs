//! Presets → real image tags that match the host's GPU stack, and the companion packages that
//! match the image's torch (`torchvision`, `torchaudio`).
//!
//! A preset picks, among the known tags (data/images.toml) that satisfy the user's pins, the
//! newest one whose CUDA the host's NVIDIA driver can run (minor-version compatibility floors
//! from data/cuda-drivers.toml). Without a known driver (a CPU-only build machine) the newest
//! matching tag wins.

use super::tables::{self, ImageRow, matches_pin, version_key};
use crate::error::{Code, fail};
use crate::host::HostFacts;
use crate::spec::{Pins, Preset};

/// The base image tag for a preset on this host.
pub fn resolve(preset: Preset, pins: &Pins, host: &HostFacts) -> anyhow::Result<String> {
    let t = tables::images();
    if preset == Preset::Python {
        let v = pins.python.clone().unwrap_or_else(|| t.python.default.clone());
        if !t.python.versions.iter().any(|k| matches_pin(k, &v)) {
            return Err(no_match(
                preset,
                pins,
                &format!("known Python versions: {}", t.python.versions.join(", ")),
            ));
        }
        return Ok(format!("python:{v}-slim"));
    }
    let rows: &[ImageRow] = match preset {
        Preset::Pytorch => &t.pytorch,
        Preset::Ngc => &t.ngc,
        Preset::Rocm => &t.rocm,
        Preset::Cuda => &t.cuda,
        Preset::Python => &[],
    };
    let pinned = |field: &Option<String>, pin: &Option<String>| match (field, pin) {
        (_, None) => true,
        (Some(v), Some(p)) => matches_pin(v, p),
        (None, Some(_)) => false,
    };
    let mut candidates: Vec<&ImageRow> = rows
        .iter()
        .filter(|r| pinned(&r.torch, &pins.torch) && pinned(&r.cuda, &pins.cuda))
        .filter(|r| pinned(&r.rocm, &pins.rocm) && pinned(&r.python, &pins.python))
        .collect();
    if candidates.is_empty() {
        let known: Vec<&str> = rows.iter().map(|r| r.tag.as_str()).collect();
        return Err(no_match(preset, pins, &format!("known tags: {}", known.join(", "))));
    }
    let driver = host.nvidia_driver.as_ref().map(|d| d.version.clone());
    if let Some(driver) = &driver {
        let runnable: Vec<&ImageRow> = candidates
            .iter()
            .copied()
            .filter(|r| r.cuda.as_deref().is_none_or(|c| cuda_runs_on(c, driver)))
            .collect();
        if runnable.is_empty() {
            return Err(fail(
                Code::BadInput,
                format!(
                    "no `{}` image matching the pins runs on this host's NVIDIA driver {driver}",
                    preset.name()
                ),
                "upgrade the driver, or pin an older `cuda` (see `berth doctor`)",
            ));
        }
        candidates = runnable;
    }
    candidates.sort_by_key(|r| {
        (
            version_key(r.torch.as_deref().unwrap_or("0")),
            version_key(r.cuda.as_deref().or(r.rocm.as_deref()).unwrap_or("0")),
        )
    });
    Ok(candidates.last().map(|r| r.tag.clone()).unwrap_or_default())
}

fn no_match(preset: Preset, pins: &Pins, known: &str) -> anyhow::Error {
    let mut p = Vec::new();
    for (k, v) in
        [("torch", &pins.torch), ("cuda", &pins.cuda), ("rocm", &pins.rocm), ("python", &pins.python)]
    {
        if let Some(v) = v {
            p.push(format!("{k} = \"{v}\""));
        }
    }
    fail(
        Code::BadInput,
        format!(
            "no `{}` image matches {}",
            preset.name(),
            if p.is_empty() { "".into() } else { p.join(", ") }
        ),
        format!("loosen the pins; {known}"),
    )
}

/// The minimum Linux driver for a CUDA version (minor-version compatibility floor).
pub fn min_driver(cuda: &str) -> Option<String> {
    let major = cuda.split('.').next()?;
    tables::drivers().cuda.iter().find(|f| f.version == major).map(|f| f.minimum.clone())
}

/// The driver bundled with that CUDA release (the fully supported floor), when known.
pub fn release_driver(cuda: &str) -> Option<String> {
    tables::drivers().release.iter().find(|r| matches_pin(cuda, &r.cuda)).map(|r| r.driver.clone())
}

/// Whether an image built for `cuda` runs on `driver`.
pub fn cuda_runs_on(cuda: &str, driver: &str) -> bool {
    min_driver(cuda).is_none_or(|min| version_key(driver) >= version_key(&min))
}

/// The torch version an image carries, from its tag (`pytorch/pytorch:2.5.1-…`,
/// `rocm/pytorch:…_pytorch_release_2.8.0`); NGC builds are pre-releases and say nothing.
pub fn torch_of_tag(tag: &str) -> Option<String> {
    let (repo, t) = tag.rsplit_once(':')?;
    if repo.ends_with("pytorch/pytorch") {
        return t.split('-').next().filter(|v| version_key(v).len() == 3).map(str::to_string);
    }
    if repo.ends_with("rocm/pytorch") {
        // `…_pytorch_release_2.8.0`, `…_pytorch_2.1.2`, `…_pytorch_release_2.5.1_preview`.
        let v = t.split('_').rev().find(|p| version_key(p).len() == 3 && p.contains('.'))?;
        return Some(v.to_string());
    }
    None
}

/// The CUDA version in a tag (`…-cuda12.4-…`, `nvidia/cuda:12.4.1-…`).
pub fn cuda_of_tag(tag: &str) -> Option<String> {
    let (repo, t) = tag.rsplit_once(':')?;
    if repo.ends_with("nvidia/cuda") {
        return t.split('-').next().map(str::to_string);
    }
    let i = t.find("cuda")?;
    let v: String = t[i + 4..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostRoot;

    fn host(name: &str) -> HostFacts {
        HostFacts::probe(&HostRoot::at(format!("{}/tests/hosts/{name}", env!("CARGO_MANIFEST_DIR"))))
    }

    fn pins(torch: Option<&str>, cuda: Option<&str>) -> Pins {
        Pins { torch: torch.map(Into::into), cuda: cuda.map(Into::into), ..Default::default() }
    }

    #[test]
    fn presets_resolve_to_real_tags_for_the_host() {
        let cases: &[(Preset, Pins, &str, &str)] = &[
            (
                Preset::Pytorch,
                pins(Some("2.5.1"), Some("12.4")),
                "nvidia-2",
                "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
            ),
            (
                Preset::Pytorch,
                pins(Some("2.5"), None),
                "nvidia-2",
                "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
            ),
            (Preset::Pytorch, pins(None, None), "nvidia-2", "pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime"),
            // Driver 470 runs CUDA 11.x only.
            (
                Preset::Pytorch,
                pins(None, None),
                "nvidia-old-driver",
                "pytorch/pytorch:2.5.1-cuda11.8-cudnn9-runtime",
            ),
            (Preset::Ngc, pins(None, Some("12.8")), "nvidia-8", "nvcr.io/nvidia/pytorch:25.02-py3"),
            (Preset::Ngc, pins(None, None), "nvidia-8", "nvcr.io/nvidia/pytorch:25.06-py3"),
            (
                Preset::Cuda,
                pins(None, Some("12.4")),
                "nvidia-2",
                "nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04",
            ),
            (
                Preset::Rocm,
                Pins { rocm: Some("7.0".into()), ..Default::default() },
                "amd-igpu-2",
                "rocm/pytorch:rocm7.0.2_ubuntu24.04_py3.12_pytorch_release_2.8.0",
            ),
            // The seeds' image: `preset = "rocm"` with `torch = "2.5.1"`.
            (
                Preset::Rocm,
                Pins { torch: Some("2.5.1".into()), ..Default::default() },
                "amd-igpu-2",
                "rocm/pytorch:rocm6.3.2_ubuntu22.04_py3.10_pytorch_release_2.5.1_preview",
            ),
            (Preset::Python, Pins::default(), "none", "python:3.12-slim"),
            (
                Preset::Python,
                Pins { python: Some("3.11".into()), ..Default::default() },
                "none",
                "python:3.11-slim",
            ),
        ];
        for (preset, p, h, want) in cases {
            let got = resolve(*preset, p, &host(h)).expect("resolves");
            assert_eq!(&got, want, "{preset:?} {p:?} on {h}");
        }
        assert!(resolve(Preset::Pytorch, &pins(Some("1.13"), None), &host("none")).is_err());
        assert!(resolve(Preset::Ngc, &pins(None, Some("12")), &host("nvidia-old-driver")).is_err());
    }

    #[test]
    fn tags_tell_torch_and_cuda() {
        assert_eq!(torch_of_tag("pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel").as_deref(), Some("2.5.1"));
        assert_eq!(
            torch_of_tag("rocm/pytorch:rocm7.0.2_ubuntu24.04_py3.12_pytorch_release_2.8.0").as_deref(),
            Some("2.8.0")
        );
        assert_eq!(
            torch_of_tag("rocm/pytorch:rocm6.3.2_ubuntu22.04_py3.10_pytorch_release_2.5.1_preview")
                .as_deref(),
            Some("2.5.1")
        );
        assert_eq!(torch_of_tag("nvcr.io/nvidia/pytorch:25.02-py3"), None);
        assert_eq!(cuda_of_tag("pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel").as_deref(), Some("12.4"));
        assert_eq!(cuda_of_tag("nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04").as_deref(), Some("12.4.1"));
        assert!(cuda_runs_on("12.4", "550.144.03"));
        assert!(!cuda_runs_on("12.4", "470.256.02"));
        assert!(cuda_runs_on("11.8", "470.256.02"));
        assert_eq!(min_driver("12.4.1").as_deref(), Some("525.60.13"));
        assert_eq!(release_driver("12.4.1").as_deref(), Some("550.54.14"));
    }
}
