//! Which host port a `ports` entry without one gets (`ports = ["8888"]`).
//!
//! Pure: the caller says which ports are held (by any container on the engine, whoever made it,
//! and by programs bound on the host). The first free one wins of: the port the environment had
//! before (the container being recreated, then `.berth/ports.json` from the last create), then a
//! port derived from who asks (owner uid, project folder, address, container port and protocol)
//! in [`RANGE`], then the next ones up, wrapping within the range. So one environment keeps its
//! port across stop, `up` and `up --recreate`, and two environments asking for the same
//! container port start from different ports and never take one another's.

use std::ops::RangeInclusive;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Where berth's chosen ports live: below Linux's ephemeral range (32768-60999, where outgoing
/// connections take their ports) and Kubernetes' NodePorts (30000-32767), above the well-known
/// services a server tends to run.
pub const RANGE: RangeInclusive<u16> = 20000..=29999;

/// What an entry is keyed by in records: `127.0.0.1:8888/tcp` (`[::1]:8888/tcp` for IPv6).
pub fn key(host_ip: &str, container_port: u16, protocol: &str) -> String {
    if host_ip.contains(':') {
        format!("[{host_ip}]:{container_port}/{protocol}")
    } else {
        format!("{host_ip}:{container_port}/{protocol}")
    }
}

/// The port this environment asks for first: the same on every run for the same owner, folder
/// and entry; spread evenly over [`RANGE`] between different ones.
pub fn preferred(owner_uid: u32, project_dir: &Path, key: &str) -> u16 {
    let mut h = Sha256::new();
    h.update(owner_uid.to_string().as_bytes());
    h.update([0]);
    h.update(project_dir.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    let span = u64::from(*RANGE.end() - *RANGE.start()) + 1;
    *RANGE.start() + (n % span) as u16
}

/// The first port for which `free` holds: each of `earlier` (what the environment had), then
/// `preferred` and the ports after it, wrapping within [`RANGE`]. `None` when all are held.
pub fn choose(earlier: &[u16], preferred: u16, mut free: impl FnMut(u16) -> bool) -> Option<u16> {
    if let Some(p) = earlier.iter().copied().find(|p| free(*p)) {
        return Some(p);
    }
    let (start, span) = (*RANGE.start() as u32, (*RANGE.end() - *RANGE.start()) as u32 + 1);
    let first = (preferred.clamp(*RANGE.start(), *RANGE.end()) as u32) - start;
    (0..span).map(|i| (start + (first + i) % span) as u16).find(|p| free(*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_is_stable_and_differs_between_owners_folders_and_ports() {
        let dir = Path::new("/home/ada/proj");
        let k = key("127.0.0.1", 8888, "tcp");
        let p = preferred(1000, dir, &k);
        assert_eq!(p, preferred(1000, dir, &k));
        assert!(RANGE.contains(&p));
        assert_ne!(p, preferred(1001, dir, &k));
        assert_ne!(p, preferred(1000, Path::new("/home/ada/proj2"), &k));
        assert_ne!(p, preferred(1000, dir, &key("127.0.0.1", 6006, "tcp")));
        // Spread: 200 folders asking for 8888 land on many different ports.
        let ports: std::collections::BTreeSet<u16> =
            (0..200).map(|i| preferred(1000, Path::new(&format!("/p/{i}")), &k)).collect();
        assert!(ports.len() > 190, "{}", ports.len());
    }

    #[test]
    fn keys_bracket_ipv6() {
        assert_eq!(key("127.0.0.1", 8888, "tcp"), "127.0.0.1:8888/tcp");
        assert_eq!(key("::1", 53, "udp"), "[::1]:53/udp");
    }

    #[test]
    fn choose_keeps_what_it_had_then_probes_upwards_and_wraps() {
        assert_eq!(choose(&[21000], 25000, |_| true), Some(21000));
        // What it had is taken now: the preferred one.
        assert_eq!(choose(&[21000], 25000, |p| p != 21000), Some(25000));
        assert_eq!(choose(&[], 25000, |p| p > 25002), Some(25003));
        assert_eq!(choose(&[], *RANGE.end(), |p| p != *RANGE.end()), Some(*RANGE.start()));
        assert_eq!(choose(&[], 25000, |_| false), None);
        // A port outside the range that the environment had is kept (a port it was given).
        assert_eq!(choose(&[40000], 25000, |_| true), Some(40000));
    }
}
