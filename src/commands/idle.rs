//! `berth idle --check`: stop the environments that have had no session, job or GPU use for
//! their `[idle] stop-after` (stopped, never removed). Meant to run every few minutes from the
//! timer `berth host configure --idle-timer` installs; run by root it acts for every user.
//! `--dry-run` says what it would stop and writes nothing; `--json` prints the report.

use super::Context;
use super::ExitStatus;
use crate::environment::engine_within;
use crate::error::{Code, fail};
use crate::host::HostRoot;
use crate::idle::{Verdict, check, rfc3339};
use crate::spec::duration::format_duration;

#[derive(Debug, Clone, Copy)]
pub struct IdleOptions {
    pub check: bool,
    pub dry_run: bool,
}

pub async fn run(ctx: &Context, opts: IdleOptions) -> anyhow::Result<ExitStatus> {
    if !opts.check && !opts.dry_run {
        return Err(fail(
            Code::BadInput,
            "say what to do: `berth idle --check` stops idle environments",
            "`berth idle --check --dry-run` shows what it would stop; `berth status` shows one environment's idle time",
        ));
    }
    let (engine, _) = engine_within(30).await?;
    let report = check::run(&engine, &HostRoot::from_env(), opts.dry_run).await?;
    if ctx.out.json {
        ctx.out.json(&report)?;
        return Ok(ExitStatus::SUCCESS);
    }
    if report.environments.is_empty() {
        ctx.out.status(format!("no running berth environments ({})", report.scope));
    }
    for e in &report.environments {
        let who = if e.owner.is_empty() {
            e.environment.clone()
        } else {
            format!("{} ({})", e.environment, e.owner)
        };
        let line = match (&e.verdict, e.action.as_str()) {
            (Verdict::NoPolicy, _) => format!("{who}: not stopped when idle: stop-after {}", e.policy),
            (Verdict::Busy { signals }, _) => format!("{who}: in use: {}", signals.join(", ")),
            (Verdict::Idle { idle_since, stops_at }, _) => format!(
                "{who}: idle for {}; stopped at {} unless used (stop-after {})",
                format_duration(report.now.saturating_sub(*idle_since)),
                rfc3339(*stops_at),
                e.policy
            ),
            (Verdict::Stop { idle_since }, "stopped") => format!(
                "stopped {who}: idle since {} (stop-after {}); kept with its files, `berth up` starts it again",
                rfc3339(*idle_since),
                e.policy
            ),
            (Verdict::Stop { idle_since }, "would-stop") => {
                format!("would stop {who}: idle since {} (stop-after {})", rfc3339(*idle_since), e.policy)
            }
            (Verdict::Stop { .. }, _) => format!("{who}: idle, but not stopped now"),
        };
        let line = if e.released_leases.is_empty() {
            line
        } else {
            format!("{line}; released its GPU leases: {}", e.released_leases.join(", "))
        };
        let line = match &e.note {
            Some(n) => format!("{line} ({n})"),
            None => line,
        };
        ctx.out.status(crate::output::escape(&line));
    }
    if report.dry_run {
        ctx.out.status("dry run: nothing was stopped or recorded");
    }
    Ok(ExitStatus::SUCCESS)
}
