//! Property tests for the `berth.toml` parser: whatever the text, it never panics, and every
//! error it returns points at a line and column inside the text (the promise every refusal
//! keeps: "file:line:column, the key, and how to fix it").

use std::path::Path;

use proptest::prelude::*;

use super::parse_with_home;

/// Values of every TOML shape, including ones no key accepts.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("\"\"".to_string()),
        Just("\"all\"".to_string()),
        Just("\"host\"".to_string()),
        Just("\"16g\"".to_string()),
        Just("\"100t\"".to_string()),
        Just("\".:/workspace\"".to_string()),
        Just("\"/:/host:rw\"".to_string()),
        Just("\"../x:/x:ro\"".to_string()),
        Just("\"127.0.0.1:8888:8888\"".to_string()),
        Just("\"https://u:p@host/simple\"".to_string()),
        Just("{ from-host = true }".to_string()),
        Just("{ pvc = \"x\" }".to_string()),
        Just("'''multi\nline'''".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[^\"\\\\\n]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "\\PC{0,6}",
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z-]{1,8}", inner), 0..3).prop_map(|kv| {
                let fields: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", fields.join(", "))
            }),
        ]
    })
}

const KEYS: &[&str] = &[
    "name",
    "workdir",
    "mounts",
    "ports",
    "base",
    "preset",
    "torch",
    "cuda",
    "rocm",
    "python",
    "apt",
    "pip",
    "requirements",
    "pip-index-url",
    "pip-extra-index-urls",
    "apt-mirror",
    "conda-environment",
    "dockerfile",
    "vendor",
    "devices",
    "shm",
    "memory",
    "cpus",
    "huggingface",
    "as",
    "ipc",
    "network",
    "cap-add",
    "ulimits",
    "HF_TOKEN",
    "\"/data\"",
    "nmae",
];

const TABLES: &[&str] = &[
    "[image]",
    "[gpu]",
    "[resources]",
    "[cache]",
    "[env]",
    "[user]",
    "[run]",
    "[cluster]",
    "[imgae]",
    "[[run]]",
];

/// One line of a project file: a table header, a key with a value, or noise.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (prop::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => prop::sample::select(TABLES).prop_map(str::to_string),
        1 => "\\PC{0,16}",
    ]
}

/// Parses `text` as the project file of an empty folder; panics when an error has no position
/// inside the text.
fn check(text: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let file = dir.join("berth.toml");
    if let Err(e) = parse_with_home(text, &file, Some(dir.to_path_buf())) {
        let lines = text.split('\n').count().max(1);
        assert!(
            e.line >= 1 && e.line <= lines && e.column >= 1,
            "error without a position inside the text: {e:?}\n--- text ---\n{text}"
        );
        assert!(!e.message.trim().is_empty(), "error without a message for {text:?}");
        assert_eq!(e.file, file);
    }
}

fn good_fixtures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/good");
    let mut texts: Vec<String> = std::fs::read_dir(dir)
        .expect("fixture folder")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .map(|e| std::fs::read_to_string(e.path()).expect("fixture"))
        .collect();
    texts.sort();
    texts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_file_of_berth_like_lines_parses_or_fails_at_a_position(lines in prop::collection::vec(line(), 0..14)) {
        check(&lines.join("\n"));
    }

    #[test]
    fn an_edited_good_file_parses_or_fails_at_a_position(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, "\\PC{0,3}|[\\[\\]\"'=,{}\n#]"), 1..5),
    ) {
        let fixtures = good_fixtures();
        let mut text: Vec<char> = pick.get(&fixtures).chars().collect();
        for (at, remove, insert) in edits {
            let start = at.index(text.len() + 1);
            let end = (start + remove).min(text.len());
            text.splice(start..end, insert.chars());
        }
        check(&text.into_iter().collect::<String>());
    }
}
