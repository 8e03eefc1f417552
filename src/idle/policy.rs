//! How long an environment may stay idle: its `[idle] stop-after`, else the host's default, and
//! never longer than the host's cap.
//!
//! The host file, `/etc/berth/idle.toml` (below `BERTH_HOST_ROOT` when set), belongs to the
//! administrator:
//!
//! ```toml
//! stop-after = "8h"          # environments whose berth.toml says nothing
//! max-stop-after = "24h"     # the longest any berth.toml may ask for; caps "never" too
//! gpu-utilization = 5        # percent: a GPU busier than this counts as in use (default 5)
//! ```
//!
//! Precedence: a user's `stop-after` wins over the host default (shorter or longer), but never
//! beyond `max-stop-after`; `"never"` opts out unless a cap is set. No file and no `[idle]`:
//! never stopped.

use serde::{Deserialize, Serialize};

use crate::host::HostRoot;
use crate::spec::duration::{format_duration, parse_duration};
use crate::spec::{IdleSpec, StopAfter};

/// Where the administrator's file lives (below the host root).
pub const HOST_FILE: &str = "/etc/berth/idle.toml";

/// The utilisation above which a GPU counts as in use, unless the host file says otherwise.
pub const DEFAULT_GPU_UTILIZATION: u32 = 5;

/// The administrator's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdle {
    pub stop_after: Option<u64>,
    pub max_stop_after: Option<u64>,
    pub gpu_utilization: u32,
}

impl Default for HostIdle {
    fn default() -> HostIdle {
        HostIdle { stop_after: None, max_stop_after: None, gpu_utilization: DEFAULT_GPU_UTILIZATION }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHost {
    stop_after: Option<String>,
    max_stop_after: Option<String>,
    gpu_utilization: Option<u32>,
}

impl HostIdle {
    /// The host file; none is the default. A file that does not parse is an error naming it:
    /// guessing an administrator's limit would stop environments they meant to keep, or the reverse.
    pub fn load(root: &HostRoot) -> Result<HostIdle, String> {
        let path = root.path(HOST_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => HostIdle::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HostIdle::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub fn parse(text: &str) -> Result<HostIdle, String> {
        let raw: RawHost = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let duration = |key: &str, v: Option<String>| -> Result<Option<u64>, String> {
            v.map(|v| parse_duration(&v).map_err(|m| format!("`{key}`: {m}"))).transpose()
        };
        let gpu_utilization = raw.gpu_utilization.unwrap_or(DEFAULT_GPU_UTILIZATION);
        if gpu_utilization > 100 {
            return Err(format!("`gpu-utilization`: {gpu_utilization} is not a percentage (0 to 100)"));
        }
        Ok(HostIdle {
            stop_after: duration("stop-after", raw.stop_after)?,
            max_stop_after: duration("max-stop-after", raw.max_stop_after)?,
            gpu_utilization,
        })
    }
}

/// The stop-after that applies to one environment, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Seconds; `None`: never stopped for idleness.
    pub stop_after: Option<u64>,
    /// `berth.toml`, `berth.toml (capped by /etc/berth/idle.toml)`, `/etc/berth/idle.toml`, `none`.
    pub source: String,
    pub gpu_utilization: u32,
}

impl Policy {
    pub fn of(spec: Option<&IdleSpec>, host: &HostIdle) -> Policy {
        let asked = spec.and_then(|s| s.stop_after);
        let (wanted, mut source) = match asked {
            Some(StopAfter::Seconds(s)) => (Some(s), "berth.toml".to_string()),
            Some(StopAfter::Never) => (None, "berth.toml (never)".to_string()),
            None if host.stop_after.is_some() => (host.stop_after, HOST_FILE.to_string()),
            None => (None, "none".to_string()),
        };
        let stop_after = match (wanted, host.max_stop_after) {
            (Some(w), Some(max)) if w > max => {
                source = format!("{HOST_FILE} max-stop-after (berth.toml asks {})", format_duration(w));
                Some(max)
            }
            (None, Some(max)) if asked.is_some() => {
                source = format!("{HOST_FILE} max-stop-after (berth.toml asks never)");
                Some(max)
            }
            (w, _) => w,
        };
        Policy { stop_after, source, gpu_utilization: host.gpu_utilization }
    }

    /// `4h (berth.toml)` or `never`.
    pub fn words(&self) -> String {
        match self.stop_after {
            Some(s) => format!("{} ({})", format_duration(s), self.source),
            None if self.source == "none" => {
                "never (no [idle] stop-after here or in /etc/berth/idle.toml)".into()
            }
            None => format!("never ({})", self.source),
        }
    }
}
