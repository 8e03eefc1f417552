//! A small, deterministic YAML emitter for the files berth writes (compose, Kubernetes).
//!
//! Block style with two-space indents, keys in the order given, comments where asked. Strings
//! are written plain only when every YAML reader agrees they are strings: anything a YAML 1.1
//! reader (PyYAML, docker-compose 1.x, Kubernetes' sigs.k8s.io/yaml) could take for a boolean,
//! null, number or base-60 integer (`yes`, `on`, `~`, `0755`, `1e3`, `22:22`), or that holds an
//! indicator, is double-quoted with JSON escapes, which YAML's double-quoted style accepts.

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Str(String),
    Int(i64),
    Bool(bool),
    Seq(Vec<Yaml>),
    Map(Map),
}

/// A mapping in insertion order, with optional comment lines between entries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map(Vec<Entry>);

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Pair(String, Yaml),
    Comment(String),
}

impl Map {
    pub fn new() -> Map {
        Map(Vec::new())
    }

    /// Adds `key: value`.
    pub fn set(mut self, key: &str, value: impl Into<Yaml>) -> Map {
        self.0.push(Entry::Pair(key.to_string(), value.into()));
        self
    }

    /// Adds `key: value` when there is a value.
    pub fn set_opt(self, key: &str, value: Option<impl Into<Yaml>>) -> Map {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Adds `key: [...]` unless the list is empty.
    pub fn set_seq(self, key: &str, items: Vec<Yaml>) -> Map {
        if items.is_empty() { self } else { self.set(key, Yaml::Seq(items)) }
    }

    /// Adds `key: {...}` unless the map is empty.
    pub fn set_map(self, key: &str, map: Map) -> Map {
        if map.is_empty() { self } else { self.set(key, map) }
    }

    /// Adds a `# text` line before the next entry.
    pub fn comment(mut self, text: &str) -> Map {
        for line in text.lines() {
            self.0.push(Entry::Comment(line.to_string()));
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        !self.0.iter().any(|e| matches!(e, Entry::Pair(..)))
    }
}

impl From<Map> for Yaml {
    fn from(m: Map) -> Yaml {
        Yaml::Map(m)
    }
}
impl From<&str> for Yaml {
    fn from(s: &str) -> Yaml {
        Yaml::Str(s.to_string())
    }
}
impl From<String> for Yaml {
    fn from(s: String) -> Yaml {
        Yaml::Str(s)
    }
}
impl From<&String> for Yaml {
    fn from(s: &String) -> Yaml {
        Yaml::Str(s.clone())
    }
}
impl From<i64> for Yaml {
    fn from(n: i64) -> Yaml {
        Yaml::Int(n)
    }
}
impl From<u32> for Yaml {
    fn from(n: u32) -> Yaml {
        Yaml::Int(i64::from(n))
    }
}
impl From<u16> for Yaml {
    fn from(n: u16) -> Yaml {
        Yaml::Int(i64::from(n))
    }
}
impl From<bool> for Yaml {
    fn from(b: bool) -> Yaml {
        Yaml::Bool(b)
    }
}
impl From<Vec<Yaml>> for Yaml {
    fn from(items: Vec<Yaml>) -> Yaml {
        Yaml::Seq(items)
    }
}

/// A list of strings.
pub fn strs<S: AsRef<str>>(items: &[S]) -> Yaml {
    Yaml::Seq(items.iter().map(|s| Yaml::Str(s.as_ref().to_string())).collect())
}

/// One document (a top-level map), ending in a newline.
pub fn document(map: &Map) -> String {
    let mut out = String::new();
    write_map(map, 0, &mut out);
    out
}

fn write_map(map: &Map, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for entry in &map.0 {
        match entry {
            Entry::Comment(text) => push_comment(out, &pad, text),
            Entry::Pair(key, value) => {
                out.push_str(&pad);
                out.push_str(&scalar(key));
                out.push(':');
                write_value_after_key(value, indent, out);
            }
        }
    }
}

fn push_comment(out: &mut String, pad: &str, text: &str) {
    out.push_str(pad);
    out.push('#');
    if !text.is_empty() {
        out.push(' ');
        out.push_str(text);
    }
    out.push('\n');
}

fn write_value_after_key(value: &Yaml, indent: usize, out: &mut String) {
    match value {
        Yaml::Map(m) if m.is_empty() => out.push_str(" {}\n"),
        Yaml::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Yaml::Map(m) => {
            out.push('\n');
            write_map(m, indent + 2, out);
        }
        Yaml::Seq(items) => {
            out.push('\n');
            write_seq(items, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn write_seq(items: &[Yaml], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        out.push_str(&pad);
        out.push('-');
        match item {
            Yaml::Map(m) if m.is_empty() => out.push_str(" {}\n"),
            Yaml::Seq(s) if s.is_empty() => out.push_str(" []\n"),
            // `- key: value` with the rest of the map aligned under the first key.
            Yaml::Map(m) if matches!(m.0.first(), Some(Entry::Pair(..))) => {
                let mut inner = String::new();
                write_map(m, indent + 2, &mut inner);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
            Yaml::Map(m) => {
                out.push('\n');
                write_map(m, indent + 2, out);
            }
            Yaml::Seq(s) => {
                out.push('\n');
                write_seq(s, indent + 2, out);
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

fn inline(value: &Yaml) -> String {
    match value {
        Yaml::Str(s) => scalar(s),
        Yaml::Int(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        // Containers are written in block style by the callers above.
        Yaml::Seq(_) | Yaml::Map(_) => String::new(),
    }
}

/// A string as a YAML scalar: plain when unambiguous, else double-quoted.
pub fn scalar(s: &str) -> String {
    if is_plain_safe(s) { s.to_string() } else { quote(s) }
}

/// Double-quoted, with JSON's escapes (a subset of YAML's).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

fn is_plain_safe(s: &str) -> bool {
    const RESERVED: [&str; 22] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~", "=", "<<", ".inf", ".nan", "-.inf",
        "+.inf", "nan", "inf", "none", "ok", "nil", "-",
    ];
    let Some(first) = s.chars().next() else { return false };
    // Numbers of any YAML version, octal, base-60, dates: all begin with a digit, sign or dot.
    if first.is_ascii_digit() || "+-.".contains(first) {
        return false;
    }
    if RESERVED.contains(&s.to_ascii_lowercase().as_str()) || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    s.chars().all(|c| c.is_ascii_alphanumeric() || "_./:@=+-%$()<> ,".contains(c))
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.contains(", ")
        && !s.starts_with('<')
        && !s.contains("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_scalars_are_quoted() {
        for s in
            ["yes", "On", "~", "null", "0755", "1e3", "22:22", "8888", "-x", ".5", "", "a: b", "a #b", "x:"]
        {
            assert!(scalar(s).starts_with('"'), "{s} -> {}", scalar(s));
        }
        for s in ["pytorch/pytorch:2.5.1-cuda12.4", "nvidia.com/gpu", "sleep", "/dev/shm", "node-0.x", "a b"]
        {
            assert_eq!(scalar(s), s);
        }
        assert_eq!(scalar("it's \"x\"\n"), r#""it's \"x\"\n""#);
    }

    #[test]
    fn documents_are_block_style_with_compact_sequences_of_maps() {
        let doc = Map::new()
            .comment("header")
            .set("name", "x")
            .set("count", 2u32)
            .set("empty", Map::new())
            .set("list", strs(&["a", "yes"]))
            .set(
                "items",
                Yaml::Seq(vec![
                    Map::new().set("name", "a").set("sub", Map::new().set("k", true)).into(),
                    Map::new().comment("why").set("name", "b").into(),
                ]),
            );
        let want = "# header\nname: x\ncount: 2\nempty: {}\nlist:\n  - a\n  - \"yes\"\nitems:\n  - name: a\n    sub:\n      k: true\n  -\n    # why\n    name: b\n";
        assert_eq!(document(&doc), want);
    }
}
