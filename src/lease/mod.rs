//! GPU leases: a time-boxed claim on host GPUs, visible to every user of the machine, with no
//! central server and no setup step.
//!
//! The shared record is one file per lease in a world-writable folder with the sticky bit
//! (`/var/tmp/berth-leases`, mode 1777, made by whoever leases first; `BERTH_LEASE_DIR` points
//! elsewhere). The kernel's rules for such a folder are the lease rules: anyone may add a file,
//! only its owner (or root) may replace or remove it. So the **holder is the file's owner uid as
//! the filesystem reports it**, never a name written in the file: a lease cannot be forged or
//! released by another user without that user's own uid showing as the holder. Each file is
//! written atomically (complete or absent after a crash) and carries its own expiry: an expired
//! lease is ignored by every reader and removed by its holder's next berth command, so nothing
//! needs to run for a lease to end. Files that cannot be read or parsed are skipped and named.
//!
//! `BERTH_HOST_ROOT` chooses which GPUs exist (the indices a lease may name); the record itself
//! lives outside that root. Pure rules (durations, conflicts, the words for a holder) are here;
//! `store` reads and writes the folder.

pub mod store;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use store::{Store, release_for_environment};

/// Where leases live unless `BERTH_LEASE_DIR` says otherwise.
pub const DEFAULT_DIR: &str = "/var/tmp/berth-leases";
/// The longest lease berth writes: a claim nobody renews must not hold a GPU for a season.
pub const MAX_SECS: u64 = 30 * 86_400;
/// The longest note kept.
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
    let at = crate::jobs::store::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires));
    let shown = at.get(..16).map(|s| s.replace('T', " ")).unwrap_or(at);
    let rel = if expires > now { format!("in {}", format_secs(expires - now)) } else { "expired".into() };
    format!("{shown} UTC ({rel})")
}

/// Now, in Unix seconds. `BERTH_NOW` (Unix seconds) replaces the clock in debug builds only,
/// for tests: a release build never lets a caller move time to see a lease as expired.
pub fn now() -> u64 {
    if cfg!(debug_assertions)
        && let Some(t) = std::env::var("BERTH_NOW").ok().and_then(|v| v.trim().parse().ok())
    {
        return t;
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `8h`, `90m`, `2d`, `1h30m`, `45s` → seconds. Refuses zero and more than [`MAX_SECS`].
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("`{t}` is not a duration: use a number with a unit, such as 30m, 8h, 2d or 1h30m");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        total = n.checked_mul(unit).and_then(|x| total.checked_add(x)).ok_or_else(bad)?;
    }
    if !digits.is_empty() || t.is_empty() {
        return Err(bad());
    }
    if total == 0 {
        return Err(format!("`{t}` is no time at all: a lease needs a duration, such as 8h"));
    }
    if total > MAX_SECS {
        return Err(format!(
            "`{t}` is longer than berth's longest lease ({}): lease again before it ends",
            format_secs(MAX_SECS)
        ));
    }
    Ok(total)
}

/// `3d4h`, `52m`, `40s`: the two largest units.
pub fn format_secs(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
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

/// Other users' leases (not expired at `now`) on any of `gpus`.
pub fn foreign_on<'a>(leases: &'a [Lease], gpus: &[u32], uid: u32, now: u64) -> Vec<&'a Lease> {
    leases
        .iter()
        .filter(|l| l.holder_uid != uid && l.record.expires > now && gpus.iter().any(|g| l.covers(*g)))
        .collect()
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
