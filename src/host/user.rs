//! The host user berth acts for: uid, gid, name, home and supplementary groups.
//!
//! The name comes from the passwd database first (what `id -un` says), then `$USER`, then
//! `u<uid>`, so a uid without a passwd entry still gets a stable, readable owner name.

use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostUser {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub home: PathBuf,
    /// Supplementary groups of this process (what the kernel checks now).
    pub groups: Vec<u32>,
}

impl HostUser {
    /// The user running this process.
    pub fn current() -> HostUser {
        let uid = ids::uid();
        let gid = ids::gid();
        let entry = passwd_entry(uid);
        let name = entry
            .as_ref()
            .map(|e| e.0.clone())
            .or_else(|| std::env::var("USER").ok().filter(|u| valid_name(u)))
            .unwrap_or_else(|| format!("u{uid}"));
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| entry.map(|e| PathBuf::from(e.1)))
            .unwrap_or_else(|| PathBuf::from("/"));
        HostUser { uid, gid, name, home, groups: ids::groups() }
    }

    /// A fixed user, for plans rendered in tests and exports.
    pub fn fixed(uid: u32, gid: u32, name: &str) -> HostUser {
        HostUser {
            uid,
            gid,
            name: name.to_string(),
            home: PathBuf::from(format!("/home/{name}")),
            groups: vec![gid],
        }
    }
}

/// A name safe to use as a user name inside a container and in a container name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `(name, home)` of `uid` from /etc/passwd.
fn passwd_entry(uid: u32) -> Option<(String, String)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) && valid_name(f[0]))
            .then(|| (f[0].to_string(), f[5].to_string()))
    })
}

/// The only unsafe code in berth: three libc calls that cannot fail.
#[allow(unsafe_code)]
mod ids {
    pub fn uid() -> u32 {
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() }
    }

    pub fn gid() -> u32 {
        // SAFETY: getgid has no preconditions and cannot fail.
        unsafe { libc::getgid() }
    }

    pub fn groups() -> Vec<u32> {
        let mut buf = vec![0 as libc::gid_t; 256];
        // SAFETY: the buffer holds `buf.len()` gids; getgroups writes at most that many.
        let n = unsafe { libc::getgroups(buf.len() as libc::c_int, buf.as_mut_ptr()) };
        if n < 0 {
            return Vec::new();
        }
        buf.truncate(n as usize);
        buf.sort_unstable();
        buf.dedup();
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_users_are_rejected() {
        assert!(valid_name("alice"));
        assert!(valid_name("a.b-c_1"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a/b"));
    }
}
