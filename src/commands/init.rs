//! `berth init`: write a commented `berth.toml` suited to this host (GPU vendor, base image).
//!
//! The base image follows the host's GPU stack: a PyTorch CUDA image whose CUDA the NVIDIA
//! driver can run (driver floors from NVIDIA's compatibility table), a ROCm PyTorch image on
//! AMD, a slim Python image without a GPU. It never overwrites a file without `--force`.

use super::Context;
use super::ExitStatus;
use crate::error::{Code, fail};
use crate::host::{HostFacts, HostRoot, Vendor};
use crate::image::presets;
use crate::spec::{FILE_NAME, Pins, Preset};

#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub force: bool,
    pub name: Option<String>,
    pub base: Option<String>,
}

pub fn run(ctx: &Context, opts: InitOptions) -> anyhow::Result<ExitStatus> {
    let path = ctx.dir.join(FILE_NAME);
    if path.exists() && !opts.force {
        return Err(fail(
            Code::Refused,
            format!("{} already exists", path.display()),
            "edit it, or pass --force to replace it with a fresh one",
        ));
    }
    let host = HostFacts::probe(&HostRoot::from_env());
    let (what, base) = choose_base(&host);
    let base = opts.base.clone().unwrap_or(base);
    let folder = ctx.dir.canonicalize().unwrap_or(ctx.dir.clone());
    let default_name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let text = render(opts.name.as_deref().filter(|n| *n != default_name), &base, &what);
    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)?;
    ctx.out.status(format!("wrote {} ({what}; base {base})", path.display()));
    ctx.out.status("next: `berth up` creates the environment, `berth shell` opens a shell in it");
    Ok(ExitStatus::SUCCESS)
}

/// What the host has, and the base image for it: the image a `preset` would choose here
/// (`pytorch` for NVIDIA or WSL2, `rocm` for AMD, `python` without a GPU), so the tags and the
/// driver floors come from data/images.toml and data/cuda-drivers.toml, as for every preset.
fn choose_base(host: &HostFacts) -> (String, String) {
    let nvidia = host.gpus_of(Vendor::Nvidia).count();
    let amd = host.gpus_of(Vendor::Amd).filter(|g| !g.integrated).count();
    let (what, preset) = if nvidia > 0 || host.wsl.is_some() {
        let what = if nvidia > 0 { format!("{nvidia} NVIDIA GPU(s)") } else { "a GPU through WSL2".into() };
        (what, Preset::Pytorch)
    } else if amd > 0 {
        (format!("{amd} AMD GPU(s)"), Preset::Rocm)
    } else {
        ("no GPU found".into(), Preset::Python)
    };
    let pins = Pins::default();
    // A driver older than every tag needs: still the newest image, which `up` then explains.
    let image = presets::resolve(preset, &pins, host)
        .or_else(|_| presets::resolve(preset, &pins, &HostFacts { nvidia_driver: None, ..host.clone() }))
        .unwrap_or_default();
    (what, image)
}

fn render(name: Option<&str>, base: &str, what: &str) -> String {
    let name_line = match name {
        Some(n) => format!("name = \"{n}\"\n"),
        None => "# name = \"...\"                      # default: this folder's name\n".to_string(),
    };
    format!(
        r#"# berth.toml: one persistent GPU development environment for this project.
# Written by `berth init` for this host ({what}). Every key is optional.

{name_line}workdir = "/workspace"
mounts = [
  ".:/workspace",                     # the code (mounts inside the project are read-write)
  # "/data/set:/data/set:ro",         # datasets (mounts from outside the project are read-only
  #                                   #  unless they end in :rw)
]
# ports = ["8888"]                    # a free host port on 127.0.0.1 ("127.0.0.1:8888:8888" pins one)

[image]
base = "{base}"

[gpu]
vendor = "auto"                       # auto | nvidia | amd | none
devices = "all"                       # "all" | a count | a list of host indices or UUIDs

[resources]
# shm = "16g"                         # default: half of host RAM, at most 16 GiB
# memory = "64g"
# cpus = 8

[cache]
pip = true                            # host caches, shared across projects
huggingface = true

[env]
PYTHONUNBUFFERED = "1"
# HF_TOKEN = {{ from-host = true }}     # passed at each start, never stored

[user]
as = "host"                           # host | root | a user of the image

# [run]                               # opt-ins that weaken isolation
# ipc = "host"
# cap-add = ["SYS_PTRACE"]
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_follows_the_host() {
        let dir = |n: &str| HostRoot::at(format!("{}/tests/hosts/{n}", env!("CARGO_MANIFEST_DIR")));
        let base = |n: &str| choose_base(&HostFacts::probe(&dir(n))).1;
        // The `pytorch`, `rocm` and `python` presets' choices on these hosts (data/images.toml).
        assert_eq!(base("nvidia-2"), "pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime");
        assert_eq!(base("nvidia-old-driver"), "pytorch/pytorch:2.5.1-cuda11.8-cudnn9-runtime");
        assert_eq!(base("amd-igpu-2"), "rocm/pytorch:rocm7.2.2_ubuntu22.04_py3.10_pytorch_release_2.10.0");
        assert_eq!(base("none"), "python:3.12-slim");
        for host in ["nvidia-2", "amd-igpu-2"] {
            let facts = HostFacts::probe(&dir(host));
            let preset = if host == "nvidia-2" { Preset::Pytorch } else { Preset::Rocm };
            assert_eq!(base(host), presets::resolve(preset, &Pins::default(), &facts).expect("resolves"));
        }
    }
}
