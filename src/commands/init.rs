//! `berth init`: write a commented `berth.toml` suited to this host (GPU vendor, base image).
//!
//! The base image follows the host's GPU stack: a PyTorch CUDA image whose CUDA the NVIDIA
//! driver can run (driver floors from NVIDIA's compatibility table), a ROCm PyTorch image on
//! AMD, a slim Python image without a GPU. It never overwrites a file without `--force`.

use super::Context;
use crate::error::{Code, fail};
use crate::host::{HostFacts, HostRoot, Vendor};
use crate::spec::FILE_NAME;

#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub force: bool,
    pub name: Option<String>,
    pub base: Option<String>,
}

/// `(minimum driver, image)`, newest first: the newest image the driver can run wins.
const NVIDIA_IMAGES: &[(&str, &str)] = &[
    ("550.54.14", "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"),
    ("525.60.13", "pytorch/pytorch:2.2.2-cuda12.1-cudnn8-runtime"),
    ("450.80.02", "pytorch/pytorch:2.2.2-cuda11.8-cudnn8-runtime"),
];
const AMD_IMAGE: &str = "rocm/pytorch:rocm7.0.2_ubuntu24.04_py3.12_pytorch_release_2.8.0";
const CPU_IMAGE: &str = "python:3.12-slim";

pub fn run(ctx: &Context, opts: InitOptions) -> anyhow::Result<()> {
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
    Ok(())
}

fn choose_base(host: &HostFacts) -> (String, String) {
    let nvidia = host.gpus_of(Vendor::Nvidia).count();
    let amd = host.gpus_of(Vendor::Amd).filter(|g| !g.integrated).count();
    if nvidia > 0 || host.wsl.is_some() {
        let driver = host.nvidia_driver.as_ref().map(|d| d.version.clone());
        let image = driver
            .as_deref()
            .and_then(|v| NVIDIA_IMAGES.iter().find(|(min, _)| version_at_least(v, min)))
            .map_or(NVIDIA_IMAGES[0].1, |(_, img)| img);
        let what = if nvidia > 0 { format!("{nvidia} NVIDIA GPU(s)") } else { "a GPU through WSL2".into() };
        return (what, image.to_string());
    }
    if amd > 0 {
        return (format!("{amd} AMD GPU(s)"), AMD_IMAGE.to_string());
    }
    ("no GPU found".into(), CPU_IMAGE.to_string())
}

/// Compare dotted driver versions numerically (`550.144.03` >= `550.54.14`).
pub fn version_at_least(have: &str, want: &str) -> bool {
    let parse = |s: &str| s.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    parse(have) >= parse(want)
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
    fn driver_versions_compare_numerically() {
        assert!(version_at_least("550.144.03", "550.54.14"));
        assert!(!version_at_least("470.256.02", "525.60.13"));
        assert!(version_at_least("570.124.06", "550.54.14"));
    }

    #[test]
    fn base_follows_the_host() {
        let dir = |n: &str| HostRoot::at(format!("{}/tests/hosts/{n}", env!("CARGO_MANIFEST_DIR")));
        let base = |n: &str| choose_base(&HostFacts::probe(&dir(n))).1;
        assert_eq!(base("nvidia-2"), NVIDIA_IMAGES[0].1);
        assert_eq!(base("nvidia-old-driver"), NVIDIA_IMAGES[2].1);
        assert_eq!(base("amd-igpu-2"), AMD_IMAGE);
        assert_eq!(base("none"), CPU_IMAGE);
    }
}
