//! The host user berth acts for: uid, gid, name, home and supplementary groups.
//!
//! The name comes from the user database first (what `id -un` says, through NSS), then `$USER`, then
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
        let entry = ids::passwd(uid);
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

/// The user database's name for `uid` (NSS), if it has one.
pub fn name_of(uid: u32) -> Option<String> {
    ids::passwd(uid).map(|e| e.0)
}

/// A name safe to use as a user name inside a container and in a container name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The only unsafe code in berth: the libc calls that say who the user is.
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

    /// `(name, home)` from the system's user database (files, LDAP, SSSD: whatever NSS says).
    pub fn passwd(uid: u32) -> Option<(String, String)> {
        // SAFETY: libc::passwd is plain data (integers and pointers); all-zero is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; getpwuid_r writes strings into `buf`,
        // which outlives the reads below, and sets `result` to `&mut pwd` or null.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        // SAFETY: non-null, NUL-terminated strings inside `buf`.
        let (name, dir) =
            unsafe { (std::ffi::CStr::from_ptr(pwd.pw_name), std::ffi::CStr::from_ptr(pwd.pw_dir)) };
        let name = name.to_str().ok()?.to_string();
        super::valid_name(&name).then(|| (name, dir.to_string_lossy().into_owned()))
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
