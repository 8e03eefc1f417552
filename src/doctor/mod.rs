//! `berth doctor`'s checks: pure functions from [`DoctorFacts`] to rows of ✓ / ! / ✗, each
//! problem with one line saying how to fix it.
//!
//! Facts are gathered first (`collect`: the real host and engine, or a recorded host tree), so
//! every branch is tested on recorded hosts. A check never suggests making the engine socket
//! world-writable; it flags it.

mod amd_checks;
pub mod collect;
mod engine_checks;
pub mod engine_kind;
pub mod facts;
mod gpu_checks;

#[cfg(test)]
mod tests;

pub use facts::DoctorFacts;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not applicable here (a remote engine's disk, ...).
    Skip,
    Warn,
    Fail,
}

impl Status {
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Skip => "-",
            Status::Warn => "!",
            Status::Fail => "✗",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable name scripts can match (`engine`, `socket`, `nvidia-toolkit`, ...).
    pub id: &'static str,
    pub status: Status,
    /// What was found, in one line.
    pub detail: String,
    /// How to fix it; present for every warning and failure.
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(id: &'static str, detail: impl Into<String>) -> Check {
        Check { id, status: Status::Ok, detail: detail.into(), fix: None }
    }

    pub fn skip(id: &'static str, detail: impl Into<String>) -> Check {
        Check { id, status: Status::Skip, detail: detail.into(), fix: None }
    }

    pub fn warn(id: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { id, status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    pub fn fail(id: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { id, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// The whole report, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `/` for the real host, else the recorded tree's folder.
    pub host: String,
    pub ok: bool,
    pub failures: usize,
    pub warnings: usize,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(host: String, checks: Vec<Check>) -> Report {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        let (failures, warnings) = (count(Status::Fail), count(Status::Warn));
        Report { host, ok: failures == 0, failures, warnings, checks }
    }
}

/// Every check, in the order a user fixes things: engine first, then disk and cgroups, GPUs last.
pub fn diagnose(f: &DoctorFacts) -> Vec<Check> {
    let mut checks = engine_checks::all(f);
    checks.extend(gpu_checks::all(f));
    checks
}

/// The table: symbol, check, what was found; a `fix:` line under each problem.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!("{}  {:width$}  {}\n", c.status.symbol(), c.id, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("   {:width$}  fix: {fix}\n", ""));
        }
    }
    out
}

/// `1.5 GiB`, `68 GiB`: one decimal below 10.
pub fn gib(bytes: u64) -> String {
    let g = bytes as f64 / (1u64 << 30) as f64;
    if g < 10.0 { format!("{g:.1} GiB") } else { format!("{g:.0} GiB") }
}
