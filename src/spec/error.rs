//! [`SpecError`]: what is wrong with a project file, and exactly where.
//!
//! Invariants: `line` and `column` are 1-based and point at the offending value (or key, for an
//! unknown key); both are 0 only when there is no position (the file is missing or unreadable).
//! Columns count characters, not bytes, so they match what an editor shows. When the error is
//! about a key, `message` starts with that key in backticks, so the one-line `Display` is enough
//! to find and fix the problem; `hint` says how.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// An error in (or about) a `berth.toml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub file: PathBuf,
    /// 1-based; 0 when the error has no position.
    pub line: usize,
    /// 1-based, in characters; 0 when the error has no position.
    pub column: usize,
    /// Dotted path of the key at fault: `gpu.devices`, `mounts[2]`, `env.HF_TOKEN`.
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `file:0:0:` would read like a position; leave it out when there is none.
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            let (file, line, column) = (self.file.display(), self.line, self.column);
            write!(f, "{file}:{line}:{column}: {}", self.message)
        }
    }
}

impl SpecError {
    /// What to do about it, when berth knows.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// An error about the file as a whole (missing, unreadable): no position, no key.
    pub(crate) fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        SpecError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: None,
            message: message.into(),
            hint: None,
        }
    }

    /// An error at byte range `span` of `text`; `key`, when given, prefixes the message.
    pub(crate) fn at(
        file: &Path,
        text: &str,
        span: Range<usize>,
        key: Option<String>,
        message: impl fmt::Display,
    ) -> Self {
        let (line, column) = line_column(text, span.start);
        let message = match &key {
            Some(key) => format!("`{key}`: {message}"),
            None => message.to_string(),
        };
        SpecError { file: file.to_path_buf(), line, column, key, message, hint: None }
    }

    /// An error about `key` (dotted: `resources.shm`) found after parsing, when the value is
    /// judged against the host: the file is read again for the value's position (none when
    /// the key is not written there, e.g. a default).
    pub fn at_key(file: &Path, key: &str, message: impl fmt::Display) -> Self {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        match value_span(&text, key) {
            Some(span) => SpecError::at(file, &text, span, Some(key.to_string()), message),
            None => SpecError {
                file: file.to_path_buf(),
                line: 0,
                column: 0,
                key: Some(key.to_string()),
                message: format!("`{key}`: {message}"),
                hint: None,
            },
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Converts a syntax or shape error from the TOML deserializer.
    ///
    /// `key_at` finds the dotted key at a byte offset (the deserializer does not expose it);
    pub(crate) fn from_toml(
        file: &Path,
        text: &str,
        err: &toml::de::Error,
        key_at: impl Fn(usize) -> Option<String>,
    ) -> Self {
        let span = err.span().unwrap_or(0..0);
        let raw = err.message();
        if let Some((unknown, valid)) = parse_unknown_field(raw) {
            let key = key_at(span.start).unwrap_or_else(|| unknown.to_string());
            let hint = match suggest(unknown, &valid) {
                Some(near) => format!("did you mean `{near}`?"),
                None if valid.is_empty() => "remove it".to_string(),
                None => format!("valid keys here: {}", quote_list(&valid)),
            };
            return SpecError::at(file, text, span, Some(key), "unknown key").with_hint(hint);
        }
        // serde's vocabulary is Rust's; say it in TOML's.
        let message = raw
            .replace("expected a sequence", "expected an array")
            .replace("expected a map", "expected a table")
            .replace("invalid type: map", "invalid type: table")
            .replace("invalid type: sequence", "invalid type: array")
            .replace("expected i64", "expected an integer");
        SpecError::at(file, text, span.clone(), key_at(span.start), message)
    }
}

/// Byte span of the value at dotted `key` (tables only, no array indices).
fn value_span(text: &str, key: &str) -> Option<Range<usize>> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut parts = key.split('.');
    let first = parts.next()?;
    let mut value = root.get_ref().get(first)?;
    for part in parts {
        let toml::de::DeValue::Table(t) = value.get_ref() else { return None };
        value = t.get(part)?;
    }
    Some(value.span())
}

/// 1-based line and character column of byte `offset` in `text` (clamped to the text).
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" into `x` and `[a, b]`.
fn parse_unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    // What follows alternates outside / inside backticks; the inside parts are the names.
    let valid = rest.split('`').skip(1).step_by(2).collect();
    Some((unknown, valid))
}

/// `a`, `b`, `c` for messages.
pub(crate) fn quote_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    quoted.join(", ")
}

/// The candidate nearest to `word` when it is a plausible typo of it (edit distance 1 or 2,
/// ignoring case, and less than the word's length so short words do not match anything).
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= 2 && *d < word.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters, with adjacent transpositions counting as one edit
/// (`vedor`, `hsm`): the usual typos.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j]; three rows are enough for transpositions.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_characters() {
        let text = "a = 1\nnäme = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // `=` after the two-byte `ä` is the 6th character of line 2.
        let eq = text.find("= 2").expect("present");
        assert_eq!(line_column(text, eq), (2, 6));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn display_names_file_line_column_and_key() {
        let err = SpecError::at(Path::new("/p/berth.toml"), "x\ny = 1", 4..5, None, "bad");
        assert_eq!(err.to_string(), "/p/berth.toml:2:3: bad");
        let err = SpecError::at(Path::new("/b"), "", 0..0, Some("gpu.devices".into()), "bad");
        assert_eq!(err.to_string(), "/b:1:1: `gpu.devices`: bad");
        let err = SpecError::whole_file(Path::new("/b"), "cannot read").with_hint("h");
        assert_eq!((err.to_string().as_str(), err.hint()), ("/b: cannot read", Some("h")));
    }

    #[test]
    fn unknown_field_messages_split_into_name_and_choices() {
        let m = "unknown field `vendr`, expected `vendor` or `devices`";
        assert_eq!(parse_unknown_field(m), Some(("vendr", vec!["vendor", "devices"])));
        let m = "unknown field `x`, expected one of `a`, `b`, `c`";
        assert_eq!(parse_unknown_field(m), Some(("x", vec!["a", "b", "c"])));
        let m = "unknown field `x`, there are no fields";
        assert_eq!(parse_unknown_field(m), Some(("x", vec![])));
        assert_eq!(parse_unknown_field("invalid type"), None);
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["vendor", "devices", "shm", "cap-add"];
        assert_eq!(suggest("vendr", &keys), Some("vendor"));
        assert_eq!(suggest("vedor", &keys), Some("vendor"));
        assert_eq!(suggest("hsm", &keys), Some("shm"));
        assert_eq!(suggest("cap_add", &keys), Some("cap-add"));
        assert_eq!(suggest("Devices", &keys), Some("devices"));
        assert_eq!(suggest("xy", &keys), None);
        assert_eq!(suggest("network", &keys), None);
    }
}
