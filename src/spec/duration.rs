//! Durations as people write them in `berth.toml` and `/etc/berth/idle.toml` (`"4h"`, `"90m"`,
//! `"1h30m"`, `"2d"`) and as berth prints them.
//!
//! Invariants: units are `s`, `m`, `h`, `d` (lowercase, each at most once, largest first); the
//! value is whole seconds and never overflows; `parse_duration(&format_duration(n)) == Ok(n)`.

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses `"4h"`, `"90m"`, `"1h30m"`, `"2d"`, `"45s"`. The error is a sentence fragment without
/// the value's location; callers add that.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a duration; write it like \"4h\", \"90m\" or \"1h30m\"");
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_unit = usize::MAX;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let at = UNITS.iter().position(|(u, _)| *u == c).ok_or_else(bad)?;
        // Largest unit first, each once: "1h30m", never "30m1h" or "1h1h".
        if number.is_empty() || (last_unit != usize::MAX && at <= last_unit) {
            return Err(bad());
        }
        last_unit = at;
        let n: u64 = number.parse().map_err(|_| format!("`{s}` is too long"))?;
        let add = n.checked_mul(UNITS[at].1).ok_or_else(|| format!("`{s}` is too long"))?;
        total = total.checked_add(add).ok_or_else(|| format!("`{s}` is too long"))?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!("`{s}` has no unit; write it like \"{number}m\" or \"{number}h\""));
    }
    Ok(total)
}

/// `14400` → `"4h"`, `5400` → `"1h30m"`, `0` → `"0s"`.
pub fn format_duration(mut secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// `3d4h`, `52m`, `40s`: the two largest units, rounded down, for "ends in ..." (never exact).
pub fn format_rough(secs: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("4h"), Ok(14_400));
        assert_eq!(parse_duration("90m"), Ok(5_400));
        assert_eq!(parse_duration("1h30m"), Ok(5_400));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration(" 45s "), Ok(45));
        for bad in ["", "4", "h", "4x", "30m1h", "1h1h", "-4h", "4 h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for n in [0, 1, 59, 60, 61, 3_600, 5_400, 14_400, 86_400, 90_061, u64::MAX / 2] {
            assert_eq!(parse_duration(&format_duration(n)), Ok(n), "{n}");
        }
        assert_eq!(format_duration(5_400), "1h30m");
    }

    #[test]
    fn rough_durations_keep_the_two_largest_units() {
        assert_eq!(format_rough(3 * 86_400 + 4 * 3600 + 5), "3d4h");
        assert_eq!(format_rough(52 * 60 + 3), "52m");
        assert_eq!(format_rough(3600 + 120), "1h2m");
        assert_eq!(format_rough(40), "40s");
    }
}
