//! Sizes and counts judged together and against the host: `/dev/shm` beside `run.ipc = "host"`,
//! shm above the memory limit, shm or memory above the host's RAM, CPUs above the host's.
//!
//! One rule for `up`, `status` and every export: each problem names its key, and callers turn
//! it into a [`SpecError`] with the value's line and column. Errors are values no container
//! can have (the engine would refuse them, or the environment could never use them); warnings
//! are limits that can never be reached.

use crate::host::HostFacts;
use crate::spec::size::format_size;
use crate::spec::{Spec, SpecError};

/// `run.ipc = "host"`: the container uses the host's `/dev/shm`, so no size applies.
pub fn uses_host_shm(ipc: Option<&str>) -> bool {
    ipc == Some("host")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key in berth.toml.
    pub key: &'static str,
    pub message: String,
    pub hint: String,
    /// An error (nothing is created) rather than a warning.
    pub error: bool,
}

impl Problem {
    fn error(key: &'static str, message: String, hint: impl Into<String>) -> Problem {
        Problem { key, message, hint: hint.into(), error: true }
    }

    /// The problem at its place in `spec`'s file.
    pub fn at(&self, spec: &Spec) -> SpecError {
        SpecError::at_key(&spec.file, self.key, &self.message).with_hint(self.hint.clone())
    }
}

/// Problems visible in the file alone (exports check these).
pub fn spec_problems(spec: &Spec) -> Vec<Problem> {
    let mut out = Vec::new();
    let r = &spec.resources;
    if let Some(shm) = r.shm {
        if uses_host_shm(spec.run.ipc.as_deref()) {
            out.push(Problem::error(
                "resources.shm",
                format!(
                    "{} cannot apply: `run.ipc = \"host\"` gives the environment the host's /dev/shm",
                    format_size(shm)
                ),
                "remove one of them: `resources.shm` for a private /dev/shm of that size, or \
                 `run.ipc = \"host\"` to share the host's",
            ));
        } else if let Some(mem) = r.memory.filter(|m| shm > *m) {
            out.push(Problem::error(
                "resources.shm",
                format!(
                    "{} is more than `resources.memory` ({}); shared-memory pages count against \
                     the memory limit, so the environment would be killed before /dev/shm fills",
                    format_size(shm),
                    format_size(mem)
                ),
                format!("set `shm` to at most {} (half of memory is usual)", format_size(mem)),
            ));
        }
    }
    out
}

/// Everything [`spec_problems`] finds, plus sizes and counts this host cannot give.
pub fn host_problems(spec: &Spec, host: &HostFacts) -> Vec<Problem> {
    let mut out = spec_problems(spec);
    let r = &spec.resources;
    let ram = host.mem_total;
    if ram > 0 {
        if let Some(shm) = r.shm.filter(|s| *s > ram && !uses_host_shm(spec.run.ipc.as_deref())) {
            out.push(Problem::error(
                "resources.shm",
                format!(
                    "{} is more than this host's RAM ({}): /dev/shm lives in RAM",
                    format_size(shm),
                    format_size(ram)
                ),
                format!("set `shm` below {} (e.g. \"{}\")", format_size(ram), format_size(ram / 4)),
            ));
        }
        if let Some(mem) = r.memory.filter(|m| *m > ram) {
            out.push(Problem {
                key: "resources.memory",
                message: format!(
                    "{} is more than this host's RAM ({}): the limit can never be reached",
                    format_size(mem),
                    format_size(ram)
                ),
                hint: format!("set `memory` to at most {}, or remove it for no limit", format_size(ram)),
                error: false,
            });
        }
    }
    if host.cpus > 0
        && let Some(cpus) = r.cpus.filter(|c| *c > f64::from(host.cpus))
    {
        out.push(Problem::error(
            "resources.cpus",
            format!("{cpus} is more than this host's {} CPUs", host.cpus),
            format!("set `cpus` to at most {}, or remove it for no limit", host.cpus),
        ));
    }
    out
}
