//! Settings that widen what an environment reaches on the host, beyond its own project folder:
//! the one list `unpack` holds back from a pack until the user consents, `up` announces once per
//! new or changed setting, and `status` shows.
//!
//! A kind of access is one [`Hold`] variant: adding one (as `[ssh] agent` was) means one
//! more arm here, in [`widening`] and in [`hold_back`], and nothing anywhere else.

use serde::Serialize;
use toml_edit::{DocumentMut, Item, Table, value};

use crate::spec::{EnvValue, RunOptions, Spec, UserMode};

/// One setting that widens access, with what it does in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Widening {
    /// The setting as `berth.toml` says it (`[run] cap-add = ["SYS_ADMIN"]`); also its identity
    /// for `up`'s announcements. Values are quoted, control characters escaped.
    pub setting: String,
    /// What it gives the environment.
    pub effect: String,
    /// How `unpack` holds it back.
    #[serde(skip)]
    pub hold: Hold,
}

/// Where a widening setting lives in the file, so it can be left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The whole `[run]` table.
    Run,
    /// One `mounts` entry, as written.
    Mount(String),
    /// One `ports` entry, as written.
    Port(String),
    /// `[user] as`.
    User,
    /// A `[cache]` key, on by default: held back by writing it `false`.
    Cache(&'static str),
    /// One `[env]` key.
    HostEnv(String),
    /// `[ssh] agent`, on by default: held back by writing it `false`.
    SshAgent,
}

/// A string as TOML writes it (JSON's escapes are TOML's): quoted, control characters escaped.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| quoted(i)).collect::<Vec<_>>().join(", "))
}

/// Every setting of `spec` that widens access, in file order of kind.
pub fn widening(spec: &Spec) -> Vec<Widening> {
    let mut out = run_widening(&spec.run);
    let mut push = |setting: String, effect: String, hold: Hold| out.push(Widening { setting, effect, hold });
    for m in &spec.mounts {
        // Decided on what the engine mounts, after symlinks: `./data -> /etc` is outside, and
        // pointing the link elsewhere is a changed setting (named again by `up`).
        if !crate::spec::inside(&m.source, &spec.project_dir) {
            let how = if m.read_only { "read-only" } else { "read-write" };
            let real = crate::spec::real_path(&m.source);
            let link =
                if real == m.source { String::new() } else { format!(" (a link to {})", real.display()) };
            push(
                format!("mounts = [{}]{}", quoted(&m.raw), escaped(&link)),
                format!("the host folder {} ({how}) at {}: outside the project", real.display(), m.target),
                Hold::Mount(m.raw.clone()),
            );
        }
    }
    for p in &spec.ports {
        if p.host_ip != "127.0.0.1" && p.host_ip != "::1" && p.host_ip != "localhost" {
            push(
                format!("ports = [{}]", quoted(&p.raw)),
                format!("listens on {} for other machines", p.host_ip),
                Hold::Port(p.raw.clone()),
            );
        }
    }
    if spec.user == UserMode::Root {
        push(
            "[user] as = \"root\"".into(),
            "runs as root: files it writes into mounted host folders belong to root".into(),
            Hold::User,
        );
    }
    for cache in super::portable::caches(spec) {
        push(
            format!("[cache] {} = true", cache.key),
            format!(
                "the host's ~/{}, read-write at {} (shared with every environment)",
                cache.host, cache.inside
            ),
            Hold::Cache(cache.key),
        );
    }
    for v in spec.env.iter().filter(|v| v.value == EnvValue::FromHost) {
        push(
            format!("[env] {} = {{ from-host = true }}", v.key),
            format!("reads ${} from your shell into the environment", v.key),
            Hold::HostEnv(v.key.clone()),
        );
    }
    if spec.ssh.agent {
        push(
            "[ssh] agent = true".into(),
            "`shell`, `exec` and jobs reach your ssh-agent: your keys sign for them while it runs \
             (no key is copied)"
                .into(),
            Hold::SshAgent,
        );
    }
    out
}

/// `[run]`'s settings, each named.
fn run_widening(run: &RunOptions) -> Vec<Widening> {
    let mut out = Vec::new();
    let mut push = |setting: String, effect: String, hold: Hold| out.push(Widening { setting, effect, hold });
    if let Some(ipc) = &run.ipc {
        push(format!("[run] ipc = {}", quoted(ipc)), format!("shares the IPC namespace {ipc}"), Hold::Run);
    }
    if let Some(net) = &run.network {
        push(
            format!("[run] network = {}", quoted(net)),
            format!("joins the network {net} (\"host\": every port and interface of the host)"),
            Hold::Run,
        );
    }
    if !run.cap_add.is_empty() {
        push(
            format!("[run] cap-add = {}", list(&run.cap_add)),
            format!(
                "adds the Linux capabilities {} (some, SYS_ADMIN first, amount to root on the host)",
                run.cap_add.join(", ")
            ),
            Hold::Run,
        );
    }
    if !run.devices.is_empty() {
        push(
            format!("[run] devices = {}", list(&run.devices)),
            format!("opens the host devices {}", run.devices.join(", ")),
            Hold::Run,
        );
    }
    for (name, limit) in &run.ulimits {
        push(
            format!("[run] ulimits.{name} = {limit}"),
            format!("raises the {name} limit past the engine's default"),
            Hold::Run,
        );
    }
    // `[run]` holds nothing but opt-ins that weaken isolation: one berth does not describe yet
    // is still named, and held back with the table.
    if *run != RunOptions::default() && !out.iter().any(|w| w.hold == Hold::Run) {
        out.push(Widening {
            setting: "[run]".into(),
            effect: "options that weaken the container's isolation".into(),
            hold: Hold::Run,
        });
    }
    out
}

/// `text` (a `berth.toml`) without the settings in `held`: `[run]`, outside mounts, open ports,
/// `as`, host-env variables left out, caches and `[ssh] agent` written `false`, with a header that lists them
/// and says how to apply them. The caller checks the result has no widening left.
pub fn hold_back(text: &str, held: &[Widening], consent: &str) -> anyhow::Result<String> {
    let mut doc: DocumentMut = text.parse()?;
    for w in held {
        match &w.hold {
            Hold::Run => {
                doc.remove("run");
            }
            Hold::Mount(raw) => remove_string(&mut doc, "mounts", raw),
            Hold::Port(raw) => remove_string(&mut doc, "ports", raw),
            Hold::User => {
                if let Some(t) = doc.get_mut("user").and_then(Item::as_table_like_mut) {
                    t.remove("as");
                }
            }
            Hold::HostEnv(key) => {
                if let Some(t) = doc.get_mut("env").and_then(Item::as_table_like_mut) {
                    t.remove(key);
                }
            }
            Hold::SshAgent => {
                if !doc.get("ssh").is_some_and(Item::is_table_like) {
                    doc.insert("ssh", Item::Table(Table::new()));
                }
                if let Some(t) = doc.get_mut("ssh").and_then(Item::as_table_like_mut) {
                    t.insert("agent", value(false));
                }
            }
            Hold::Cache(name) => {
                if !doc.get("cache").is_some_and(Item::is_table_like) {
                    doc.insert("cache", Item::Table(Table::new()));
                }
                if let Some(t) = doc.get_mut("cache").and_then(Item::as_table_like_mut) {
                    t.insert(name, value(false));
                }
            }
        }
    }
    let mut header = String::from(
        "# berth unpack held back these settings of the pack: they widen what the environment\n\
         # reaches on this host, and a pack is only as trustworthy as whoever made it.\n",
    );
    for w in held {
        header.push_str(&format!("#   {}\n#       {}\n", escaped(&w.setting), escaped(&w.effect)));
    }
    let consent = escaped(consent);
    header.push_str(&format!(
        "# To apply them: {consent}, or write them into this file yourself.\n\
         # (`berth up` names every such setting once; `berth status` lists them.)\n\n"
    ));
    let mut text = header + &doc.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `text` with control characters escaped, so it stays on its comment line.
fn escaped(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// Remove the string `raw` from the top-level array `key` (dropping the key when it empties).
fn remove_string(doc: &mut DocumentMut, key: &str, raw: &str) {
    let Some(array) = doc.get_mut(key).and_then(Item::as_array_mut) else { return };
    array.retain(|v| v.as_str() != Some(raw));
    if array.is_empty() {
        doc.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;

    const WIDE: &str = r#"name = "x"
mounts = [".:/workspace", "/:/host:rw", "./data:/data"]
ports = ["0.0.0.0:8888:8888", "6006"]
[image]
base = "a:1"
[user]
as = "root"
[env]
PLAIN = "1"
HF_TOKEN = { from-host = true }
[run]
cap-add = ["SYS_ADMIN"]
network = "host"
devices = ["/dev/fuse"]
"#;

    fn parse(text: &str) -> (tempfile::TempDir, Spec) {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = spec::parse_str(text, &dir.path().join("berth.toml")).expect("parses");
        (dir, spec)
    }

    #[test]
    fn every_kind_of_widening_is_listed_and_the_project_is_not() {
        let (_dir, spec) = parse(WIDE);
        let settings: Vec<String> = widening(&spec).into_iter().map(|w| w.setting).collect();
        for want in [
            "[run] network = \"host\"",
            "[run] cap-add = [\"SYS_ADMIN\"]",
            "[run] devices = [\"/dev/fuse\"]",
            "mounts = [\"/:/host:rw\"]",
            "ports = [\"0.0.0.0:8888:8888\"]",
            "[user] as = \"root\"",
            "[cache] pip = true",
            "[cache] huggingface = true",
            "[env] HF_TOKEN = { from-host = true }",
            "[ssh] agent = true",
        ] {
            assert!(settings.iter().any(|s| s == want), "{want} missing from {settings:#?}");
        }
        assert_eq!(settings.len(), 10, "{settings:#?}");
        let (_dir, plain) = parse("[cache]\npip = false\nhuggingface = false\n[ssh]\nagent = false\n");
        assert_eq!(widening(&plain), Vec::new());
    }

    #[test]
    fn holding_back_leaves_a_file_with_no_widening_that_keeps_the_rest() {
        let (dir, spec) = parse(WIDE);
        let held = widening(&spec);
        let text = hold_back(WIDE, &held, "run `berth unpack FILE --allow-access`").expect("hold back");
        let safe = spec::parse_str(&text, &dir.path().join("berth.toml")).expect("still parses");
        assert_eq!(widening(&safe), Vec::new(), "{text}");
        assert_eq!(safe.mounts.len(), 2, "inside mounts stay: {text}");
        assert_eq!(safe.ports.len(), 1, "{text}");
        assert!(safe.env.iter().any(|v| v.key == "PLAIN"), "{text}");
        assert!(
            text.contains("--allow-access") && text.contains("#   [run] cap-add = [\"SYS_ADMIN\"]"),
            "{text}"
        );
    }

    #[test]
    fn a_setting_cannot_escape_its_comment() {
        let sly = Widening {
            setting: "mounts = [\"/a:/b\"]".into(),
            effect: "the host folder /a\n[run]\nnetwork = \"host\"".into(),
            hold: Hold::Mount("/a:/b".into()),
        };
        let text = hold_back("mounts = [\"/a:/b\"]\n", &[sly], "x").expect("hold");
        let header: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
        assert!(header.iter().all(|l| l.starts_with('#')), "{text}");
        assert!(!text.contains("\n[run]"), "{text}");
    }
}
