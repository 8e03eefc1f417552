//! GPU leases: a time-boxed claim on host GPUs, visible to every user of the machine, with no
//! central server and no setup step.
//!
//! The shared record is one file per lease, `berth-lease-<id>.json`, in `/var/tmp`: a folder
//! every Linux system has, world-writable with the sticky bit and owned by root
//! (`BERTH_LEASE_DIR` points elsewhere; berth makes that one mode 1777). The kernel's rules for
//! such a folder are the lease rules: anyone may add a file, only its owner (or root) may
//! replace or remove it. So the **holder is the file's owner uid as the filesystem reports it**,
//! never a name written in the file: a lease cannot be forged or released by another user
//! without that user's own uid showing as the holder. Because root owns the folder, no user can
//! remove or rename another's lease, or put a link or a closed folder where the leases live (a
//! folder of berth's own, made by whoever leased first, would give them all of that). Each
//! file is written atomically (complete or absent after a crash) and carries its own expiry,
//! never more than [`MAX_SECS`] after the file was written: an expired lease is ignored by every
//! reader and removed by its holder's next berth command, so nothing needs to run for a lease to
//! end. Files that cannot be read or parsed are skipped and named. Two users leasing one GPU at
//! the same moment do not both get it ([`Store::create_alone`]).
//!
//! `BERTH_HOST_ROOT` chooses which GPUs exist (the indices a lease may name); the record itself
//! lives outside that root. Pure rules (durations, conflicts, the words for a holder) are here;
//! `store` reads and writes the folder.

pub mod store;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::spec::duration::format_rough;

pub use store::{Store, release_for_environment};

/// Where leases live unless `BERTH_LEASE_DIR` says otherwise.
pub const DEFAULT_DIR: &str = "/var/tmp";
/// The longest lease berth writes: a claim nobody renews must not hold a GPU for a season.
pub const MAX_SECS: u64 = 30 * 86_400;
/// The longest note kept (a longer one written by hand is cut there when read).
pub const MAX_NOTE: usize = 200;

/// What a lease file holds. Nothing in it says who the holder is: that is the file's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Host GPU indices, as `berth top` and `nvidia-smi` number them.
    pub gpus: Vec<u32>,
    /// Their UUIDs when known, in the same order (indices can shift after a reboot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uuids: Vec<String>,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds; the lease ends on its own then.
    pub expires: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The berth environment (container name) the lease is for, when one was named or made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Other users' leases this one was taken over (`--force`): `(holder uid, lease id)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub over: Vec<Over>,
}

/// A lease taken anyway, recorded in the taker's own file so the holder sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Over {
    pub holder_uid: u32,
    pub holder: String,
    pub id: String,
    pub expires: u64,
}

/// One lease as read back: the record plus who holds it (from the file's owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The file's name without `.json`.
    pub id: String,
    pub holder_uid: u32,
    /// The holder's user name (the user database's name for the uid, else `uid N`).
    pub holder: String,
    #[serde(flatten)]
    pub record: Record,
    /// `expires` in RFC 3339 (UTC).
    pub expires_at: String,
}

impl Lease {
    pub fn covers(&self, gpu: u32) -> bool {
        self.record.gpus.contains(&gpu)
    }

    /// `alice until 2026-11-30 23:15 UTC (in 52m)`: who holds it and until when.
    pub fn holder_words(&self, now: u64) -> String {
        format!("{} until {}", self.holder, until(self.record.expires, now))
    }
}

/// `2026-11-30 23:15 UTC (in 52m)`.
pub fn until(expires: u64, now: u64) -> String {
    let at = crate::clock::rfc3339(expires);
    let shown = at.get(..16).map(|s| s.replace('T', " ")).unwrap_or(at);
    let rel = if expires > now { format!("in {}", format_rough(expires - now)) } else { "expired".into() };
    format!("{shown} UTC ({rel})")
}

pub use crate::clock::now;

/// `--for 8h` (`berth.toml`'s duration syntax: `30m`, `8h`, `2d`, `1h30m`) → seconds. Refuses
/// zero and more than [`MAX_SECS`].
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let total = crate::spec::duration::parse_duration(text)?;
    let t = text.trim();
    if total == 0 {
        return Err(format!("`{t}` is no time at all: a lease needs a duration, such as 8h"));
    }
    if total > MAX_SECS {
        return Err(format!(
            "`{t}` is longer than berth's longest lease ({}): lease again before it ends",
            format_rough(MAX_SECS)
        ));
    }
    Ok(total)
}

/// `0,2` / `0, 2` / `1` → indices, each one a GPU in `known` (host indices).
pub fn parse_gpus(text: &str, known: &[u32]) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let n: u32 = part.parse().map_err(|_| {
            format!("`{part}` is not a GPU number: give host indices as `berth top` shows them, e.g. 0,2")
        })?;
        if !known.contains(&n) {
            let have = known.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            if have.is_empty() {
                return Err(format!("this host has no GPU {n} (it has no GPU berth can see)"));
            }
            return Err(format!("this host has no GPU {n} (it has GPUs {have})"));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Other users' leases not expired at `now` that still hold against `uid`: not those `uid`
/// already took over (`--force`, recorded in a lease of theirs that has not ended), so that a
/// GPU taken once is not refused again to the job or the `up` that follows.
pub fn others(leases: &[Lease], uid: u32, now: u64) -> impl Iterator<Item = &Lease> {
    let taken: Vec<&str> = leases
        .iter()
        .filter(|l| l.holder_uid == uid && l.record.expires > now)
        .flat_map(|l| l.record.over.iter().map(|o| o.id.as_str()))
        .collect();
    leases
        .iter()
        .filter(move |l| l.holder_uid != uid && l.record.expires > now && !taken.contains(&l.id.as_str()))
}

/// [`others`] on any of `gpus`.
pub fn foreign_on<'a>(leases: &'a [Lease], gpus: &[u32], uid: u32, now: u64) -> Vec<&'a Lease> {
    others(leases, uid, now).filter(|l| gpus.iter().any(|g| l.covers(*g))).collect()
}

/// `GPU 1 is leased by alice until … (note: "…")`, one line per lease and GPU asked for.
pub fn describe_conflicts(conflicts: &[&Lease], gpus: &[u32], now: u64) -> String {
    let mut lines = Vec::new();
    for l in conflicts {
        let on: Vec<String> = l.record.gpus.iter().filter(|g| gpus.contains(g)).map(u32::to_string).collect();
        let note = l.record.note.as_ref().map(|n| format!(" (note: {n})")).unwrap_or_default();
        lines.push(format!(
            "GPU {} {} leased by {}{note}",
            on.join(", "),
            if on.len() == 1 { "is" } else { "are" },
            l.holder_words(now)
        ));
    }
    lines.join("; ")
}

/// Refuse (exit 4) when another user holds a lease on any of `gpus` (host indices) now: for a
/// job about to start on them (`berth run`). `what` says what would use them.
pub fn refuse_foreign(gpus: &[u32], uid: u32, what: &str, hint: &str) -> anyhow::Result<()> {
    let now = now();
    let listing = Store::list_if_any(now)?;
    let conflicts = foreign_on(&listing.leases, gpus, uid, now);
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(crate::error::fail(
        crate::error::Code::Refused,
        format!("{what}: {}", describe_conflicts(&conflicts, gpus, now)),
        hint,
    ))
}
