//! Total RAM from /proc/meminfo, which sizes `/dev/shm` and memory defaults, and the online
//! CPUs, which bound `resources.cpus`.
//!
//! 0 means unknown (no procfs, unreadable line); callers fall back to fixed defaults then.

use super::HostRoot;

/// `MemTotal` in bytes, 0 when missing.
pub fn total_bytes(root: &HostRoot) -> u64 {
    root.read("/proc/meminfo").and_then(|text| mem_total(&text)).unwrap_or(0)
}

/// Online CPUs: `0-3,8-11` in /sys/devices/system/cpu/online counts 8; 0 when unreadable.
pub fn online_cpus(root: &HostRoot) -> u32 {
    root.read_line("/sys/devices/system/cpu/online").map_or(0, |list| count_cpu_list(&list))
}

fn count_cpu_list(list: &str) -> u32 {
    list.trim()
        .split(',')
        .filter_map(|part| match part.split_once('-') {
            Some((a, b)) => Some(b.trim().parse::<u32>().ok()?.checked_sub(a.trim().parse().ok()?)? + 1),
            None => part.trim().parse::<u32>().ok().map(|_| 1),
        })
        .sum()
}

/// `MemTotal:       24683656 kB` → bytes. The kernel always writes kB (KiB); a bare number is
/// taken as bytes rather than guessed at.
fn mem_total(meminfo: &str) -> Option<u64> {
    let rest = meminfo.lines().find_map(|line| line.strip_prefix("MemTotal:"))?;
    let mut fields = rest.split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(value.saturating_mul(1024)),
        None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(count_cpu_list("0-1\n"), 2);
        assert_eq!(count_cpu_list("0-3,8-11"), 8);
        assert_eq!(count_cpu_list("0,2,4"), 3);
        assert_eq!(count_cpu_list("garbage"), 0);
    }

    #[test]
    fn mem_total_is_kib_times_1024() {
        let text = "MemTotal:       24683656 kB\nMemFree:        21710220 kB\n";
        assert_eq!(mem_total(text), Some(24683656 * 1024));
    }

    #[test]
    fn mem_total_is_found_below_other_lines() {
        assert_eq!(mem_total("MemFree: 1 kB\nMemTotal: 2 kB\n"), Some(2048));
    }

    #[test]
    fn unreadable_mem_total_is_none() {
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total("MemTotal: 2 MB\n"), None);
        assert_eq!(mem_total(""), None);
    }

    #[test]
    fn missing_meminfo_reads_as_zero() {
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(total_bytes(&HostRoot::at(empty.path())), 0);
    }
}
