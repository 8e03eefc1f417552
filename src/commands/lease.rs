//! `berth lease --gpus 0,2 --for 8h [--note T] [--force]`, `berth lease ls`, `berth lease release
//! [--gpus SEL | --all]`: time-boxed claims on host GPUs, shared through the lease folder
//! (`crate::lease`: no server, the holder is the lease file's owner).
//!
//! Run in a project folder, a lease is for that project's environment (its container name is
//! recorded), so stopping the environment for idleness can release it.

use super::ExitStatus;
use serde::Serialize;

use super::Context;
use crate::environment::Project;
use crate::error::{Code, fail};
use crate::host::{HostFacts, HostRoot};
use crate::lease::{self, Lease, Over, Record, Store};

pub enum Action {
    Take { gpus: Option<String>, duration: Option<String>, note: Option<String>, force: bool },
    List,
    Release { gpus: Option<String> },
}

pub async fn run(ctx: &Context, action: Action) -> anyhow::Result<ExitStatus> {
    match action {
        Action::Take { gpus, duration, note, force } => take(ctx, gpus, duration, note, force)?,
        Action::List => list(ctx)?,
        Action::Release { gpus } => release(ctx, gpus.as_deref())?,
    }
    Ok(ExitStatus::SUCCESS)
}

/// Host GPU indices this host has (`BERTH_HOST_ROOT` honoured), with their UUIDs.
fn host_gpus() -> Vec<(u32, Option<String>)> {
    let host = HostFacts::probe(&HostRoot::from_env());
    let mut gpus: Vec<(u32, Option<String>)> = host.gpus.iter().map(|g| (g.index, g.uuid.clone())).collect();
    gpus.sort();
    gpus.dedup_by_key(|g| g.0);
    gpus
}

fn bad(message: String, hint: &str) -> anyhow::Error {
    fail(Code::BadInput, message, hint)
}

fn take(
    ctx: &Context,
    gpus: Option<String>,
    duration: Option<String>,
    note: Option<String>,
    force: bool,
) -> anyhow::Result<()> {
    let usage = "berth lease --gpus 0,2 --for 8h [--note TEXT]; `berth lease ls` lists leases";
    let (Some(gpus), Some(duration)) = (gpus, duration) else {
        return Err(bad("`berth lease` needs the GPUs (--gpus) and how long (--for)".into(), usage));
    };
    let known = host_gpus();
    let indices: Vec<u32> = known.iter().map(|g| g.0).collect();
    let chosen = lease::parse_gpus(&gpus, &indices).map_err(|m| bad(format!("--gpus {gpus}: {m}"), usage))?;
    let secs = lease::parse_duration(&duration).map_err(|m| bad(format!("--for {duration}: {m}"), usage))?;
    let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if let Some(n) = &note
        && (n.chars().count() > lease::MAX_NOTE || n.chars().any(char::is_control))
    {
        return Err(bad(
            format!("--note: at most {} characters on one line", lease::MAX_NOTE),
            "say what it is for and how to reach you, briefly",
        ));
    }
    let store = Store::open()?;
    let now = lease::now();
    let listing = store.list(now)?;
    let conflicts = lease::foreign_on(&listing.leases, &chosen, store.uid(), now);
    if !conflicts.is_empty() && !force {
        let holders: Vec<String> = conflicts.iter().map(|l| l.holder.clone()).collect();
        return Err(fail(
            Code::Refused,
            lease::describe_conflicts(&conflicts, &chosen, now),
            format!(
                "ask {} or wait for the end; `--force` takes it anyway (recorded in your lease: they see it in \
                 `berth lease ls`)",
                holders.join(", ")
            ),
        ));
    }
    let over: Vec<Over> = conflicts
        .iter()
        .map(|l| Over {
            holder_uid: l.holder_uid,
            holder: l.holder.clone(),
            id: l.id.clone(),
            expires: l.record.expires,
        })
        .collect();
    let environment = Project::load(ctx).ok().map(|p| p.container);
    let uuids: Vec<String> = chosen
        .iter()
        .map(|i| known.iter().find(|g| g.0 == *i).and_then(|g| g.1.clone()).unwrap_or_default())
        .collect();
    let record = Record {
        gpus: chosen.clone(),
        uuids: if uuids.iter().all(|u| !u.is_empty()) { uuids } else { Vec::new() },
        created: now,
        expires: now + secs,
        note,
        environment,
        over,
    };
    // The caller's own leases on these GPUs are replaced: leasing again extends or shortens.
    let mine: Vec<&Lease> = listing
        .leases
        .iter()
        .filter(|l| l.holder_uid == store.uid() && chosen.iter().any(|g| l.covers(*g)))
        .collect();
    // Another user may be leasing the same GPUs this very moment: of the two, at most one stands.
    let seen: Vec<String> = if force { conflicts.iter().map(|l| l.id.clone()).collect() } else { Vec::new() };
    let made = match store.create_alone(record, &seen, now)? {
        Ok(made) => made,
        Err(raced) => {
            let raced: Vec<&Lease> = raced.iter().collect();
            return Err(fail(
                Code::Refused,
                format!(
                    "another user leased at the same moment, so your lease was not kept: {}",
                    lease::describe_conflicts(&raced, &chosen, now)
                ),
                "`berth lease ls` shows who holds what now; lease again, or take it anyway with `--force`",
            ));
        }
    };
    for old in mine {
        let rest: Vec<u32> = old.record.gpus.iter().copied().filter(|g| !chosen.contains(g)).collect();
        if rest.is_empty() {
            store.remove(old)?;
        } else {
            let mut r = old.record.clone();
            if !r.uuids.is_empty() {
                r.uuids = r
                    .gpus
                    .iter()
                    .zip(&r.uuids)
                    .filter(|(g, _)| rest.contains(g))
                    .map(|(_, u)| u.clone())
                    .collect();
            }
            r.gpus = rest;
            store.replace(old, r)?;
        }
    }
    for l in &conflicts {
        ctx.out.warn(format!(
            "took GPU {} over {}'s lease (until {}): they see it in `berth lease ls`",
            join(&l.record.gpus.iter().copied().filter(|g| chosen.contains(g)).collect::<Vec<_>>()),
            l.holder,
            lease::until(l.record.expires, now)
        ));
    }
    if ctx.out.json {
        return ctx.out.json(&made);
    }
    let env = made.record.environment.as_ref().map(|e| format!(" for {e}")).unwrap_or_default();
    ctx.out.status(format!(
        "leased GPU {}{env} until {}",
        join(&made.record.gpus),
        lease::until(made.record.expires, now)
    ));
    Ok(())
}

#[derive(Serialize)]
struct LsJson<'a> {
    leases: &'a [Lease],
    /// Lease files that could not be read, and why.
    skipped: &'a [String],
    folder: String,
}

fn list(ctx: &Context) -> anyhow::Result<()> {
    let store = Store::open()?;
    let now = lease::now();
    let listing = store.list(now)?;
    for s in &listing.skipped {
        ctx.out.warn(format!("skipped {s}"));
    }
    if let Some(n) = &listing.owner_note {
        ctx.out.warn(n);
    }
    if ctx.out.json {
        return ctx.out.json(&LsJson {
            leases: &listing.leases,
            skipped: &listing.skipped,
            folder: store.dir().display().to_string(),
        });
    }
    if listing.leases.is_empty() {
        ctx.out.status("no GPU is leased; `berth lease --gpus 0 --for 8h` claims one");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listing
        .leases
        .iter()
        .map(|l| {
            let mut note = l.record.note.clone().unwrap_or_default();
            for o in &l.record.over {
                let taken = format!("taken over {}'s lease (--force)", o.holder);
                note = if note.is_empty() { taken } else { format!("{taken}; {note}") };
            }
            vec![
                l.holder.clone(),
                join(&l.record.gpus),
                lease::until(l.record.expires, now),
                l.record.environment.clone().unwrap_or_else(|| "-".into()),
                note,
            ]
        })
        .collect();
    ctx.out.data(crate::output::table(&["HOLDER", "GPUS", "ENDS", "ENVIRONMENT", "NOTE"], &rows));
    Ok(())
}

fn release(ctx: &Context, gpus: Option<&str>) -> anyhow::Result<()> {
    let store = Store::open()?;
    let now = lease::now();
    let listing = store.list(now)?;
    let selection = match gpus {
        Some(sel) => {
            let indices: Vec<u32> = host_gpus().iter().map(|g| g.0).collect();
            // A GPU gone from the host can still be released from a lease naming it.
            let mut known = indices;
            known.extend(listing.leases.iter().flat_map(|l| l.record.gpus.iter().copied()));
            Some(
                lease::parse_gpus(sel, &known)
                    .map_err(|m| bad(format!("--gpus {sel}: {m}"), "berth lease release --gpus 0,2"))?,
            )
        }
        None => None,
    };
    let mine: Vec<&Lease> = listing
        .leases
        .iter()
        .filter(|l| l.holder_uid == store.uid())
        .filter(|l| selection.as_ref().is_none_or(|s| s.iter().any(|g| l.covers(*g))))
        .collect();
    if mine.is_empty() {
        if let Some(sel) = &selection {
            let others = lease::foreign_on(&listing.leases, sel, store.uid(), now);
            if !others.is_empty() {
                let holders: Vec<String> = others.iter().map(|l| l.holder.clone()).collect();
                return Err(fail(
                    Code::Refused,
                    format!(
                        "you hold no lease on GPU {}: {}",
                        join(sel),
                        lease::describe_conflicts(&others, sel, now)
                    ),
                    format!("only {} can release it; it ends on its own at its end time", holders.join(", ")),
                ));
            }
        }
        ctx.out.status("you hold no lease to release here; `berth lease ls` lists every lease");
        return if ctx.out.json { ctx.out.json(&Vec::<Lease>::new()) } else { Ok(()) };
    }
    let mut released = Vec::new();
    for l in mine {
        match &selection {
            Some(sel) if l.record.gpus.iter().any(|g| !sel.contains(g)) => {
                let mut r = l.record.clone();
                if !r.uuids.is_empty() {
                    r.uuids = r
                        .gpus
                        .iter()
                        .zip(&r.uuids)
                        .filter(|(g, _)| !sel.contains(g))
                        .map(|(_, u)| u.clone())
                        .collect();
                }
                r.gpus.retain(|g| !sel.contains(g));
                store.replace(l, r)?;
                let mut gone = l.clone();
                gone.record.gpus.retain(|g| sel.contains(g));
                released.push(gone);
            }
            _ => {
                store.remove(l)?;
                released.push(l.clone());
            }
        }
    }
    if ctx.out.json {
        return ctx.out.json(&released);
    }
    let gpus: Vec<u32> = released.iter().flat_map(|l| l.record.gpus.iter().copied()).collect();
    ctx.out.status(format!("released GPU {}", join(&gpus)));
    Ok(())
}

fn join(gpus: &[u32]) -> String {
    gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}
