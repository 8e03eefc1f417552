//! `berth doctor`: check the host and the engine, print ✓ / ! / ✗ with one fix per problem, and
//! exit 1 when anything failed (warnings alone exit 0).
//!
//! `BERTH_HOST_ROOT` points it at a recorded host tree instead (see `doctor::collect`).

use super::Context;
use super::ExitStatus;
use crate::doctor::{self, Report, Status};
use crate::host::HostRoot;

/// The exit code: 0 when nothing failed, 1 otherwise.
pub async fn run(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let root = HostRoot::from_env();
    let facts = doctor::collect::collect(&root).await;
    let report = Report::new(root.dir().display().to_string(), doctor::diagnose(&facts));
    let code = if report.ok { 0 } else { 1 };
    if ctx.out.json {
        ctx.out.json(&report)?;
        return Ok(ExitStatus::from(code));
    }
    if root.is_recorded() {
        ctx.out.status(format!("recorded host {}", root.dir().display()));
    }
    ctx.out.data(doctor::render(&report.checks));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let summary = match (report.failures, report.warnings) {
        (0, 0) => "all checks passed".to_string(),
        (0, w) => format!("no problems, {}", plural(w, "warning")),
        (f, w) => format!("{}, {}", plural(f, "problem"), plural(w, "warning")),
    };
    let skipped = report.checks.iter().filter(|c| c.status == Status::Skip).count();
    let skipped = if skipped > 0 { format!(" ({skipped} not applicable here)") } else { String::new() };
    ctx.out.status(format!("{summary}{skipped}"));
    Ok(ExitStatus::from(code))
}
