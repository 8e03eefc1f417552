//! Resource limits the engine can apply.
//!
//! A container cannot get a hard limit above the engine process's own where the host forbids
//! raising it (a rootless engine always; root without CAP_SYS_RESOURCE, as in some VMs). Two
//! cases matter:
//! - Podman fills in `nofile` (1048576) and `nproc` (4194304) itself when a create leaves them
//!   out, and the start then fails where the host caps them lower ("error setting rlimit type 7:
//!   operation not permitted"). berth asks for them itself, at most the engine's hard limits.
//! - Where the engine cannot raise limits, berth's own GPU defaults (`memlock` unlimited, a
//!   64 MiB stack) are capped at the engine's hard limits ("error setting rlimit type 8"
//!   otherwise). What berth.toml's `[run] ulimits` ask for is never changed.

use std::collections::BTreeMap;

use crate::engine::facts::EngineFacts;
use crate::engine::kind::EngineKind;

/// What Podman asks for when a create names no `nofile` / `nproc` limit (rootful defaults).
const PODMAN_DEFAULTS: [(&str, u64); 2] = [("nofile", 1_048_576), ("nproc", 4_194_304)];

/// Fit berth's default limits (`-1`: unlimited) to the engine; the spec's own come after.
pub fn fit_engine(ulimits: &mut BTreeMap<String, i64>, engine: &EngineFacts) {
    let Some(process) = &engine.process else { return };
    let kind = EngineKind::of(engine);
    if kind.is_rootless() || !process.raises_limits {
        for (name, value) in ulimits.iter_mut() {
            if let Some(hard) = process.limits.get(name)
                && (*value < 0 || *value as u64 > hard)
            {
                *value = clamp(hard);
            }
        }
    }
    if kind.is_podman() {
        for (name, podman) in PODMAN_DEFAULTS {
            let limit = process.limits.get(name).map_or(podman, |hard| hard.min(podman));
            ulimits.entry(name.to_string()).or_insert(clamp(limit));
        }
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kind::{EngineProcess, HardLimits};

    fn engine(
        name: &str,
        uid: u32,
        nofile: Option<u64>,
        nproc: Option<u64>,
        memlock: Option<u64>,
    ) -> EngineFacts {
        EngineFacts {
            process: Some(EngineProcess {
                name: name.into(),
                uid,
                limits: HardLimits { nofile, nproc, memlock, stack: None },
                // Root with CAP_SYS_RESOURCE, as on most hosts.
                raises_limits: uid == 0,
            }),
            ..Default::default()
        }
    }

    fn gpu_defaults() -> BTreeMap<String, i64> {
        BTreeMap::from([("memlock".to_string(), -1), ("stack".to_string(), 67_108_864)])
    }

    #[test]
    fn podman_with_a_hard_nofile_limit_of_20000_is_asked_for_no_more() {
        // The VM of issue 15: rootful Podman failed at start with "error setting rlimit type 7".
        let mut u = BTreeMap::new();
        fit_engine(&mut u, &engine("podman", 0, Some(20_000), Some(32_768), None));
        assert_eq!(u, BTreeMap::from([("nofile".to_string(), 20_000), ("nproc".to_string(), 32_768)]));
        // Where the host allows more, Podman's own defaults, unchanged.
        let mut u = BTreeMap::new();
        fit_engine(&mut u, &engine("podman", 0, Some(1_048_576), None, None));
        assert_eq!(u["nofile"], 1_048_576);
        assert_eq!(u["nproc"], 4_194_304);
    }

    #[test]
    fn rootful_docker_plans_stay_as_they_were() {
        let mut u = gpu_defaults();
        fit_engine(&mut u, &engine("dockerd", 0, Some(20_000), Some(100), Some(1 << 20)));
        assert_eq!(u, gpu_defaults());
        // No process seen (a remote engine): nothing changes either.
        let mut u = gpu_defaults();
        fit_engine(&mut u, &EngineFacts { product: "Podman".into(), ..Default::default() });
        assert_eq!(u, gpu_defaults());
    }

    #[test]
    fn root_without_cap_sys_resource_gets_gpu_defaults_capped_too() {
        // The VM of issue 15: Docker and rootful Podman failed at start with "error setting rlimit
        // type 8" for an unlimited memlock above their hard 8 MiB.
        let mut facts = engine("dockerd", 0, Some(20_000), None, Some(8 << 20));
        if let Some(p) = facts.process.as_mut() {
            p.raises_limits = false;
        }
        let mut u = gpu_defaults();
        fit_engine(&mut u, &facts);
        assert_eq!(u["memlock"], 8 << 20);
        assert_eq!(u["stack"], 67_108_864);
    }

    #[test]
    fn rootless_engines_get_gpu_defaults_capped_at_their_hard_limits() {
        let mut u = gpu_defaults();
        fit_engine(&mut u, &engine("dockerd", 1000, None, None, Some(8 << 20)));
        assert_eq!(u["memlock"], 8 << 20);
        assert_eq!(u["stack"], 67_108_864, "an unlimited hard stack keeps the default");
        let mut u = gpu_defaults();
        fit_engine(&mut u, &engine("podman", 1000, Some(20_000), None, None));
        assert_eq!(u["memlock"], -1, "an unlimited hard memlock keeps unlimited");
        assert_eq!(u["nofile"], 20_000);
        assert_eq!(u["nproc"], 4_194_304);
    }
}
