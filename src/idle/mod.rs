//! Idle environments: which signal keeps an environment alive, how long it has been idle, and
//! whether `berth idle --check` stops it (stopped, never removed: `berth up` starts it again with
//! its writable layer intact).
//!
//! An environment is busy while it has an interactive session (`berth shell`, `berth exec`, a
//! VS Code attach: a running exec that is not a job wrapper, or a VS Code server process), a
//! running job (its wrapper exec), or GPU use (memory held by its processes, or a GPU it uses above
//! the host's utilisation threshold). Idleness is counted from the later of the last time a check
//! saw it busy, the first time a check saw it at all, and the container's start: a check never
//! stops an environment on evidence it did not gather itself (see [`decide`]). Pure: the clock,
//! the record and the signals come in as values.

pub mod check;
pub mod policy;
pub mod record;
pub mod signals;
pub mod timer;
pub mod view;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use crate::clock::{now, rfc3339};
pub use policy::{HostIdle, Policy};
pub use record::Record;

/// One reason an environment counts as in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Signal {
    /// An interactive session: `berth shell`/`exec`, `docker exec`, VS Code.
    Session { what: String },
    /// A `berth run` job whose wrapper still runs.
    Job { name: String },
    /// GPU memory held by the environment's processes.
    GpuMemory { gpu: u32, mib: u64 },
    /// A GPU the environment's processes use, busier than the threshold.
    GpuUtilization { gpu: u32, percent: u32 },
    /// GPU use could not be read (nvidia-smi failed): counted as in use, never stopped blind.
    GpuUnknown { why: String },
}

impl Signal {
    /// How `status` and `idle --check` say it.
    pub fn words(&self) -> String {
        match self {
            Signal::Session { what } => format!("session ({what})"),
            Signal::Job { name } => format!("job {name}"),
            Signal::GpuMemory { gpu, mib } => format!("GPU memory ({mib} MiB on GPU {gpu})"),
            Signal::GpuUtilization { gpu, percent } => format!("GPU utilisation ({percent}% on GPU {gpu})"),
            Signal::GpuUnknown { why } => format!("GPU use unknown ({why})"),
        }
    }
}

/// What one check decides for one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// No stop-after applies (neither berth.toml nor the host sets one, or `"never"`).
    NoPolicy,
    /// In use now.
    Busy { signals: Vec<String> },
    /// Idle since `idle_since`, not for long enough yet.
    Idle { idle_since: u64, stops_at: u64 },
    /// Idle for `stop_after` or longer: stop it.
    Stop { idle_since: u64 },
}

/// Whether an environment with `signals` now, the previous `record` (if any) and a container
/// started at `started` (seconds since the epoch) is stopped at `now`.
pub fn decide(
    policy: &Policy,
    record: Option<&Record>,
    signals: &[Signal],
    started: Option<u64>,
    now: u64,
) -> Verdict {
    let Some(stop_after) = policy.stop_after else { return Verdict::NoPolicy };
    if !signals.is_empty() {
        return Verdict::Busy { signals: signals.iter().map(Signal::words).collect() };
    }
    let idle_since = idle_since(record, started, now);
    let stops_at = idle_since.saturating_add(stop_after);
    if now >= stops_at { Verdict::Stop { idle_since } } else { Verdict::Idle { idle_since, stops_at } }
}

/// From when idleness counts: the latest of the last busy sighting, the first sighting (no
/// check vouches for the time before it) and the container's start. With no record, now.
pub fn idle_since(record: Option<&Record>, started: Option<u64>, now: u64) -> u64 {
    let Some(r) = record else { return now };
    let seen = r.last_busy.unwrap_or(0).max(r.first_seen);
    seen.max(started.unwrap_or(0)).min(now)
}

/// Seconds since the epoch of an engine timestamp (`2026-11-30T22:10:05.123456789Z`).
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let (date, time) = text.trim().split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+']).next()?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let min: i64 = t.next()?.parse().ok()?;
    let s: i64 = t.next()?.split('.').next()?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3_600 + min * 60 + s).ok()
}
