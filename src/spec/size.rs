//! Byte sizes as people write them in `berth.toml` (`"16g"`, `"512m"`, `"1.5g"`, `"2GiB"`) and
//! as berth prints them (`"16 GiB"`).
//!
//! Invariants: every unit is binary (`k` = 1024, like Docker's `--shm-size` and `--memory`), so
//! `"16g"` and `"16GiB"` mean the same number; units are case-insensitive; fractions are rounded
//! down to whole bytes; a value that does not fit in a `u64` is an error, never a wrap.
//! `parse_size(&format_size(n))` gives `n` back whenever `format_size` printed it exactly.

/// Units from largest to smallest, with every spelling accepted for each (lowercased).
const UNITS: [(&str, u64, &[&str]); 7] = [
    ("EiB", 1 << 60, &["e", "eb", "eib"]),
    ("PiB", 1 << 50, &["p", "pb", "pib"]),
    ("TiB", 1 << 40, &["t", "tb", "tib"]),
    ("GiB", 1 << 30, &["g", "gb", "gib"]),
    ("MiB", 1 << 20, &["m", "mb", "mib"]),
    ("KiB", 1 << 10, &["k", "kb", "kib"]),
    ("B", 1, &["", "b"]),
];

/// Parses `"16g"`, `"512M"`, `"1.5GiB"`, `"64 MiB"`, `"1024k"` or plain bytes (`"1048576"`).
///
/// The error is a sentence fragment without the value's location; callers add that.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let digits_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let unit = unit.trim_start().to_ascii_lowercase();
    let bad = || format!("`{s}` is not a size; write it like \"16g\", \"512m\" or \"1.5GiB\"");

    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(bad());
    }
    let multiplier = UNITS
        .iter()
        .find(|(_, _, spellings)| spellings.contains(&unit.as_str()))
        .map(|(_, m, _)| *m)
        .ok_or_else(bad)?;

    let too_big = || format!("`{s}` is too large");
    let whole: u64 = whole.parse().map_err(|_| too_big())?;
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_big)?;
    if !fraction.is_empty() {
        // Exact decimal arithmetic: fraction_digits / 10^len * multiplier, rounded down. Digits
        // beyond 18 cannot change a whole byte of anything below 16 EiB, so they are dropped.
        let kept = &fraction[..fraction.len().min(18)];
        let numerator: u128 = kept.parse().map_err(|_| bad())?;
        let denominator = 10u128.pow(u32::try_from(kept.len()).map_err(|_| bad())?);
        let extra = numerator * u128::from(multiplier) / denominator;
        let extra = u64::try_from(extra).map_err(|_| too_big())?;
        bytes = bytes.checked_add(extra).ok_or_else(too_big)?;
    }
    Ok(bytes)
}

/// Formats bytes for people: `"16 GiB"`, `"512 MiB"`, `"1.5 GiB"`, `"100 B"`.
///
/// Uses the largest unit the value reaches and at most one decimal, dropping `.0`.
pub fn format_size(bytes: u64) -> String {
    for (name, unit, _) in UNITS {
        if bytes >= unit && unit > 1 {
            if bytes.is_multiple_of(unit) {
                return format!("{} {name}", bytes / unit);
            }
            // f64 is exact enough for one decimal of a value below 1024 units.
            #[allow(clippy::cast_precision_loss)]
            let value = bytes as f64 / unit as f64;
            let text = format!("{value:.1}");
            let text = text.strip_suffix(".0").unwrap_or(&text);
            return format!("{text} {name}");
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_style_and_iec_units() {
        let cases = [
            ("16g", 16 << 30),
            ("512m", 512 << 20),
            ("1.5g", 3 << 29),
            ("64M", 64 << 20),
            ("2GiB", 2 << 30),
            ("2gb", 2 << 30),
            ("1024k", 1 << 20),
            ("1048576", 1 << 20),
            ("100b", 100),
            ("64 MiB", 64 << 20),
            (" 1T ", 1 << 40),
            ("0.5k", 512),
            ("1.0001k", 1024),
            ("0", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        for text in ["", "g", "16x", "-1g", "1.g", ".5g", "1..5g", "1.2.3g", "16 g b", "sixteen", "16gig"] {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains("is not a size"), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_overflow_instead_of_wrapping() {
        assert!(parse_size("16e").expect_err("16 EiB").contains("too large"));
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("15.9999999e").is_ok());
    }

    #[test]
    fn formats_with_the_largest_unit() {
        assert_eq!(format_size(16 << 30), "16 GiB");
        assert_eq!(format_size(512 << 20), "512 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(u64::MAX), "16 EiB");
    }

    #[test]
    fn exact_formats_parse_back() {
        for bytes in [1 << 20, 16 << 30, 3 << 29, 6 << 20, 1536, 7] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
    }
}
