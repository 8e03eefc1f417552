//! `[gpu]` and `[resources]`: which GPUs and how much memory, shared memory and CPU the
//! environment gets.
//!
//! Invariants: a device count is at least 1 (no GPU is `vendor = "none"`); a device list is
//! non-empty, without duplicates, of host indices or `GPU-` UUIDs; sizes are bytes, at least
//! Docker's minimums (1 MiB of shm, 6 MiB of memory); CPUs are a finite number above 0.

use serde::Deserialize;
use toml::Spanned;

use super::loose::Loose;
use super::{Ctx, one_of};
use crate::host::Vendor;
use crate::spec::size::{format_size, parse_size};
use crate::spec::{DeviceSelection, GpuRef, GpuSpec, Resources, SpecError, VendorChoice};

const MIN_SHM: u64 = 1 << 20;
/// Docker refuses a memory limit below 6 MiB.
const MIN_MEMORY: u64 = 6 << 20;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawGpu {
    vendor: Option<Spanned<String>>,
    devices: Option<Spanned<Loose>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawResources {
    shm: Option<Spanned<Loose>>,
    memory: Option<Spanned<Loose>>,
    cpus: Option<Spanned<Loose>>,
}

pub(super) fn gpu(raw: &RawGpu, cx: &Ctx) -> Result<GpuSpec, SpecError> {
    let vendor = match &raw.vendor {
        None => VendorChoice::Auto,
        Some(v) => match v.get_ref().as_str() {
            "auto" => VendorChoice::Auto,
            "nvidia" => VendorChoice::Gpu(Vendor::Nvidia),
            "amd" => VendorChoice::Gpu(Vendor::Amd),
            "none" => VendorChoice::None,
            other => {
                return Err(one_of(cx, v.span(), "gpu.vendor", other, &["auto", "nvidia", "amd", "none"]));
            }
        },
    };
    let devices = match &raw.devices {
        None => DeviceSelection::All,
        Some(d) => devices(d, cx)?,
    };
    Ok(GpuSpec { vendor, devices })
}

fn devices(raw: &Spanned<Loose>, cx: &Ctx) -> Result<DeviceSelection, SpecError> {
    const KEY: &str = "gpu.devices";
    const HINT: &str = "write `devices = \"all\"`, a count like `devices = 2`, or a list of host \
                        indices or UUIDs like `devices = [0, 1]` or `[\"GPU-8b2c...\"]`";
    let items = match raw.get_ref() {
        Loose::Str(s) if s == "all" => return Ok(DeviceSelection::All),
        Loose::Int(n) => {
            return match u32::try_from(*n) {
                Ok(count) if count >= 1 => Ok(DeviceSelection::Count(count)),
                _ => Err(cx
                    .err(raw.span(), KEY, format!("a count of GPUs must be at least 1, not {n}"))
                    .with_hint("to run without a GPU, set `vendor = \"none\"`")),
            };
        }
        Loose::List(items) => items,
        other => {
            let found = match other {
                Loose::Str(s) => format!("\"{s}\""),
                _ => other.kind().to_string(),
            };
            return Err(cx
                .err(raw.span(), KEY, format!("expected \"all\", a count or a list, found {found}"))
                .with_hint(HINT));
        }
    };
    if items.is_empty() {
        return Err(cx.err(raw.span(), KEY, "the list is empty").with_hint(HINT));
    }
    let mut refs: Vec<GpuRef> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let key = format!("{KEY}[{i}]");
        let gpu = match item.get_ref() {
            Loose::Int(n) => match u32::try_from(*n) {
                Ok(index) => GpuRef::Index(index),
                Err(_) => {
                    return Err(cx
                        .err(item.span(), key, format!("`{n}` is not a GPU index"))
                        .with_hint(HINT));
                }
            },
            Loose::Str(s) if is_gpu_uuid(s) => GpuRef::Uuid(s.clone()),
            Loose::Str(s) => {
                return Err(cx.err(item.span(), key, format!("`{s}` is not a GPU UUID")).with_hint(
                    "UUIDs look like \"GPU-8b2c3d4e-...\" (see `nvidia-smi -L`); indices are integers",
                ));
            }
            other => {
                let msg = format!("expected a GPU index or UUID, found {}", other.kind());
                return Err(cx.err(item.span(), key, msg).with_hint(HINT));
            }
        };
        if refs.contains(&gpu) {
            return Err(cx.err(item.span(), key, "this GPU is listed twice"));
        }
        refs.push(gpu);
    }
    Ok(DeviceSelection::List(refs))
}

fn is_gpu_uuid(s: &str) -> bool {
    s.strip_prefix("GPU-")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
}

pub(super) fn resources(raw: &RawResources, cx: &Ctx) -> Result<Resources, SpecError> {
    let cpus = match &raw.cpus {
        None => None,
        Some(c) => {
            let value = match c.get_ref() {
                Loose::Int(n) => Some(*n as f64),
                Loose::Float(f) => Some(*f),
                _ => None,
            };
            match value {
                Some(v) if v.is_finite() && v > 0.0 => Some(v),
                Some(_) => return Err(cx.err(c.span(), "resources.cpus", "must be more than 0")),
                None => {
                    let msg = format!("expected a number of CPUs, found {}", c.get_ref().kind());
                    return Err(cx
                        .err(c.span(), "resources.cpus", msg)
                        .with_hint("write it like `cpus = 8` or `cpus = 1.5`"));
                }
            }
        }
    };
    Ok(Resources {
        shm: size(raw.shm.as_ref(), "resources.shm", MIN_SHM, cx)?,
        memory: size(raw.memory.as_ref(), "resources.memory", MIN_MEMORY, cx)?,
        cpus,
    })
}

fn size(raw: Option<&Spanned<Loose>>, key: &str, min: u64, cx: &Ctx) -> Result<Option<u64>, SpecError> {
    let Some(raw) = raw else { return Ok(None) };
    let bytes = match raw.get_ref() {
        Loose::Str(s) => parse_size(s).map_err(|m| cx.err(raw.span(), key, m))?,
        Loose::Int(n) => {
            u64::try_from(*n).map_err(|_| cx.err(raw.span(), key, "a size cannot be negative"))?
        }
        other => {
            let msg = format!("expected a size like \"16g\", found {}", other.kind());
            return Err(cx.err(raw.span(), key, msg));
        }
    };
    if bytes < min {
        let msg = format!("{} is too small; the minimum is {}", format_size(bytes), format_size(min));
        return Err(cx.err(raw.span(), key, msg));
    }
    Ok(Some(bytes))
}
