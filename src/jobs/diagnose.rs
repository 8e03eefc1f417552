//! Why a job (or a container) ended: a short cause and one fix.
//!
//! Reads the exit status, whether the memory cgroup's OOM-kill counter rose (an exec'd process
//! killed by the OOM killer exits 137 but the engine's `State.OOMKilled` stays false — see
//! research/verified.md), the limits in force and the log's last lines, where PyTorch, NCCL and
//! the NVIDIA stack leave their well-known messages.

use serde::Serialize;

use crate::spec::size::format_size;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// Short machine-readable kind (`oom`, `shm`, `gpu-memory`, `segfault`, ...).
    pub kind: String,
    pub cause: String,
    pub fix: String,
}

/// What is known about an ended run.
#[derive(Debug, Clone, Default)]
pub struct Ending<'a> {
    pub exit_code: Option<i64>,
    pub oom: bool,
    pub interrupted: bool,
    pub memory_limit: Option<u64>,
    pub shm_bytes: Option<u64>,
    /// The last lines of the log.
    pub log_tail: &'a str,
}

fn d(kind: &str, cause: impl Into<String>, fix: impl Into<String>) -> Option<Diagnosis> {
    Some(Diagnosis { kind: kind.into(), cause: cause.into(), fix: fix.into() })
}

/// The diagnosis, or `None` for a clean exit (or one with nothing to say beyond its code).
pub fn diagnose(e: &Ending<'_>) -> Option<Diagnosis> {
    if e.interrupted {
        return d(
            "interrupted",
            "the environment stopped (or restarted) while the job ran",
            "start it again with `berth run`; `berth stop`, a host reboot or a Docker restart end running jobs",
        );
    }
    let code = e.exit_code?;
    if code == 137 && e.oom {
        let limit = e.memory_limit.map_or("no limit was set, so the host itself ran out".to_string(), |m| {
            format!("the limit was {}", format_size(m))
        });
        return d(
            "oom",
            format!("out of memory: killed by the kernel's OOM killer ({limit})"),
            "raise `resources.memory` in berth.toml (then `berth up --recreate`), or lower the batch size",
        );
    }
    if let Some(found) = from_log(e) {
        return Some(found);
    }
    match code {
        0 => None,
        137 => d(
            "killed",
            "killed (SIGKILL) from outside: `berth kill`, `docker kill`, or a stop that timed out",
            "if nobody killed it, look for a host-wide OOM kill in `dmesg`",
        ),
        139 => d(
            "segfault",
            "segmentation fault: a native crash (a C/CUDA extension, or a driver/library mismatch)",
            "rerun with `python -X faulthandler` to see where, and check the image matches the host driver",
        ),
        134 => d(
            "abort",
            "aborted (SIGABRT): a failed assertion or an uncaught C++ exception",
            "read the log's last lines; on AMD, `hipErrorNoBinaryForGpu` means the image lacks this card's gfx target",
        ),
        135 => d(
            "shm",
            format!("bus error (SIGBUS), typically a full /dev/shm{}", shm_words(e.shm_bytes)),
            "raise `resources.shm` in berth.toml (then `berth up --recreate`)",
        ),
        143 => d(
            "terminated",
            "terminated (SIGTERM), e.g. by `berth kill` or `berth stop`",
            "start it again if that was not meant",
        ),
        126 => d(
            "not-executable",
            "the command could not be executed (not executable, or a folder)",
            "check the path, and `chmod +x` scripts",
        ),
        127 => d("not-found", "command not found", "check the spelling, or install it in the image"),
        _ => None,
    }
}

fn shm_words(shm: Option<u64>) -> String {
    shm.map(|s| format!(" (it is {})", format_size(s))).unwrap_or_default()
}

fn from_log(e: &Ending<'_>) -> Option<Diagnosis> {
    let log = e.log_tail;
    let has = |needle: &str| log.contains(needle);
    let lower = log.to_ascii_lowercase();
    if lower.contains("bus error")
        && (has("DataLoader") || lower.contains("shared memory") || has("shm") || has("worker"))
        || has("unable to write to file </torch_")
        || has("Error while creating shared memory segment")
    {
        return d(
            "shm",
            format!(
                "shared memory (/dev/shm) is too small for the DataLoader workers or NCCL{}",
                shm_words(e.shm_bytes)
            ),
            "raise `resources.shm` in berth.toml (then `berth up --recreate`), or use fewer DataLoader workers",
        );
    }
    if has("CUDA out of memory") || has("HIP out of memory") || has("OutOfMemoryError") {
        return d(
            "gpu-memory",
            "the GPU ran out of memory",
            "lower the batch size, or use mixed precision / gradient checkpointing",
        );
    }
    if has("Failed to initialize NVML: Unknown Error") {
        return d(
            "lost-gpu",
            "the container lost access to its GPU (NVML: Unknown Error, typically after `systemctl daemon-reload` on the host)",
            "restart the environment: `berth stop && berth up` (`berth doctor` says how to prevent it)",
        );
    }
    if has("No space left on device") {
        return d(
            "disk",
            "the disk is full (No space left on device)",
            "free space (`docker system df`, `berth clean`), or write outputs to a mounted folder with room",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: Ending<'_>) -> Option<String> {
        diagnose(&e).map(|d| d.kind)
    }

    #[test]
    fn exit_codes_and_logs_map_to_causes() {
        let base = Ending::default();
        assert_eq!(kind(Ending { exit_code: Some(0), ..base.clone() }), None);
        assert_eq!(kind(Ending { exit_code: Some(137), oom: true, ..base.clone() }).as_deref(), Some("oom"));
        assert_eq!(kind(Ending { exit_code: Some(137), ..base.clone() }).as_deref(), Some("killed"));
        assert_eq!(kind(Ending { exit_code: Some(139), ..base.clone() }).as_deref(), Some("segfault"));
        assert_eq!(kind(Ending { exit_code: Some(134), ..base.clone() }).as_deref(), Some("abort"));
        assert_eq!(kind(Ending { exit_code: Some(143), ..base.clone() }).as_deref(), Some("terminated"));
        assert_eq!(kind(Ending { exit_code: Some(126), ..base.clone() }).as_deref(), Some("not-executable"));
        assert_eq!(kind(Ending { exit_code: Some(127), ..base.clone() }).as_deref(), Some("not-found"));
        assert_eq!(kind(Ending { exit_code: Some(2), ..base.clone() }), None);
        assert_eq!(kind(Ending { interrupted: true, ..base.clone() }).as_deref(), Some("interrupted"));
        let bus = "RuntimeError: DataLoader worker (pid 7579) is killed by signal: Bus error. It is possible \
                   that dataloader's workers are out of shared memory.";
        assert_eq!(
            kind(Ending { exit_code: Some(1), log_tail: bus, ..base.clone() }).as_deref(),
            Some("shm")
        );
        let torch = "RuntimeError: unable to write to file </torch_31911_952036340_6686>: No space left on device (28)";
        assert_eq!(
            kind(Ending { exit_code: Some(1), log_tail: torch, ..base.clone() }).as_deref(),
            Some("shm")
        );
        let cuda = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB";
        assert_eq!(
            kind(Ending { exit_code: Some(1), log_tail: cuda, ..base.clone() }).as_deref(),
            Some("gpu-memory")
        );
        let nvml = "Failed to initialize NVML: Unknown Error";
        assert_eq!(
            kind(Ending { exit_code: Some(1), log_tail: nvml, ..base.clone() }).as_deref(),
            Some("lost-gpu")
        );
        let disk = "OSError: [Errno 28] No space left on device: '/workspace/ckpt.pt'";
        assert_eq!(kind(Ending { exit_code: Some(1), log_tail: disk, ..base }).as_deref(), Some("disk"));
    }

    #[test]
    fn the_oom_diagnosis_names_the_limit_and_the_shm_one_the_size() {
        let oom = diagnose(&Ending {
            exit_code: Some(137),
            oom: true,
            memory_limit: Some(64 << 20),
            ..Default::default()
        })
        .expect("diagnosis");
        assert!(oom.cause.contains("the limit was 64 MiB"), "{}", oom.cause);
        assert!(oom.fix.contains("resources.memory"));
        let shm = diagnose(&Ending {
            exit_code: Some(1),
            shm_bytes: Some(64 << 20),
            log_tail: "ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient shared memory (shm).",
            ..Default::default()
        })
        .expect("diagnosis");
        assert!(shm.cause.contains("it is 64 MiB"), "{}", shm.cause);
        assert!(shm.fix.contains("resources.shm"));
    }
}
