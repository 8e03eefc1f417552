//! What `berth status` says about idleness: the stop-after that applies, which signal keeps the
//! environment alive, and when it will be stopped. Fast: it reads the last check's record and
//! the engine's execs (only when there are any); nvidia-smi and the engine's `top` are left to
//! the check, whose GPU and VS Code findings are shown as of its time.

use serde::Serialize;

use super::{HostIdle, Policy, Signal, record, rfc3339};
use crate::engine::{Container, Engine};
use crate::host::HostRoot;

#[derive(Debug, Clone, Serialize)]
pub struct IdleStatus {
    /// Seconds; `None`: never stopped for idleness.
    pub stop_after: Option<u64>,
    /// `4h (berth.toml)`, `never (...)`.
    pub policy: String,
    /// What keeps it alive: now (sessions, jobs), or as the last check saw it (GPU, VS Code).
    pub kept_alive_by: Vec<String>,
    pub idle_since: Option<String>,
    /// When `berth idle --check` will stop it if nothing changes.
    pub stops_at: Option<String>,
    pub last_check: Option<String>,
    /// When the idle check stopped it (while it is still stopped).
    pub stopped_by_check: Option<String>,
    pub note: Option<String>,
}

/// The idle view of `c`, whose running jobs the caller already knows.
pub async fn of(
    engine: &Engine,
    c: &Container,
    idle: &crate::spec::IdleSpec,
    running_jobs: &[String],
) -> IdleStatus {
    let now = super::now();
    let (host, host_note) = match HostIdle::load(&HostRoot::from_env()) {
        Ok(h) => (h, None),
        Err(e) => {
            (HostIdle::default(), Some(format!("{e}; the idle check refuses to run until it is fixed")))
        }
    };
    let policy = Policy::of(Some(idle), &host);
    let rec = record::newest(&c.id);
    let mut st = IdleStatus {
        stop_after: policy.stop_after,
        policy: policy.words(),
        kept_alive_by: Vec::new(),
        idle_since: None,
        stops_at: None,
        last_check: rec.as_ref().map(|r| rfc3339(r.checked)),
        stopped_by_check: rec.as_ref().and_then(|r| r.stopped).filter(|_| !c.is_running()).map(rfc3339),
        note: host_note,
    };
    if !c.is_running() || policy.stop_after.is_none() {
        return st;
    }
    let mut live: Vec<Signal> = running_jobs.iter().map(|name| Signal::Job { name: name.clone() }).collect();
    if !c.exec_ids.is_empty()
        && let Ok(execs) = engine.running_execs(&c.exec_ids).await
    {
        live.extend(
            super::signals::exec_signals(&execs).into_iter().filter(|s| matches!(s, Signal::Session { .. })),
        );
    }
    st.kept_alive_by = live.iter().map(Signal::words).collect();
    if let Some(r) = &rec
        && r.checked <= now
    {
        let at = rfc3339(r.checked);
        for s in &r.signals {
            // Jobs and sessions are read live above; the check adds GPU use and VS Code.
            if !s.starts_with("job ")
                && !s.starts_with("session (exec")
                && !s.starts_with("session (terminal")
            {
                st.kept_alive_by.push(format!("{s}, at the last check ({at})"));
            }
        }
    }
    let Some(stop_after) = policy.stop_after else { return st };
    if !live.is_empty() {
        return st;
    }
    let Some(r) = rec.as_ref().filter(|r| r.stopped.is_none()) else {
        st.note = Some(if rec.is_some() {
            "started again since the idle check stopped it: the next check counts its idle time afresh".into()
        } else {
            "no `berth idle --check` has seen it yet: is the timer installed? (`sudo berth host configure \
             --idle-timer`)"
                .into()
        });
        return st;
    };
    let started = c.started_at.as_deref().and_then(super::parse_rfc3339);
    let since = super::idle_since(Some(r), started, now);
    st.idle_since = Some(rfc3339(since));
    st.stops_at = Some(rfc3339(since.saturating_add(stop_after)));
    st
}
