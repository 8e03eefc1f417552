//! Merging keeps every other key, in place; bad files and bad values are refused.

use super::*;

const SAMPLE: &str = r#"{
    "log-driver": "json-file",
    "log-opts": { "max-size": "10m", "max-file": "3" },
    "registry-mirrors": ["https://mirror.one"],
    "features": { "buildkit": true },
    "storage-driver": "overlay2"
}
"#;

fn all() -> Changes {
    Changes {
        data_root: Some("/data/docker/".into()),
        registry_mirrors: vec!["https://mirror.one/".into(), "http://10.0.0.5:5000".into()],
        nvidia_runtime: true,
        cdi: true,
        live_restore: true,
    }
}

#[test]
fn merging_keeps_unrelated_keys_in_their_order() {
    let mut map = parse(SAMPLE).expect("parses");
    let done = apply(&mut map, &all()).expect("applies");
    assert_eq!(
        done,
        [
            "data-root: (default /var/lib/docker) -> /data/docker",
            "registry-mirrors: added http://10.0.0.5:5000",
            "runtimes: registered nvidia (nvidia-container-runtime)",
            "features.cdi: true",
            "live-restore: true",
        ]
    );
    let text = render(&map, &indent_of(SAMPLE));
    insta::assert_snapshot!(text, @r#"
    {
        "log-driver": "json-file",
        "log-opts": {
            "max-size": "10m",
            "max-file": "3"
        },
        "registry-mirrors": [
            "https://mirror.one",
            "http://10.0.0.5:5000"
        ],
        "features": {
            "buildkit": true,
            "cdi": true
        },
        "storage-driver": "overlay2",
        "data-root": "/data/docker",
        "runtimes": {
            "nvidia": {
                "args": [],
                "path": "nvidia-container-runtime"
            }
        },
        "live-restore": true
    }
    "#);
    // Applying again changes nothing.
    assert_eq!(apply(&mut map, &all()).expect("applies"), Vec::<String>::new());
}

#[test]
fn an_existing_nvidia_runtime_is_left_as_it_is() {
    let mut map = parse(r#"{"runtimes": {"nvidia": {"path": "/usr/local/bin/nvidia-container-runtime"}}}"#)
        .expect("parses");
    let changes = Changes { nvidia_runtime: true, ..Changes::default() };
    assert!(apply(&mut map, &changes).expect("applies").is_empty());
    assert_eq!(map.to_map()["runtimes"]["nvidia"]["path"], "/usr/local/bin/nvidia-container-runtime");
}

#[test]
fn files_that_do_not_parse_say_where() {
    let err = parse("{\n  \"data-root\": \"/x\",\n}\n").expect_err("trailing comma");
    assert_eq!(err, ConfigError::Syntax { line: 3, column: 1, message: "trailing comma".into() });
    assert_eq!(err.to_string(), "it does not parse as JSON (line 3, column 1: trailing comma)");
    assert_eq!(parse("[1]"), Err(ConfigError::NotAnObject));
    assert_eq!(parse("  \n"), Ok(Object::default()));
}

#[test]
fn wrong_types_in_keys_berth_touches_are_refused() {
    let mut map = parse(r#"{"registry-mirrors": "https://m"}"#).expect("parses");
    let err = apply(&mut map, &Changes { live_restore: true, ..Changes::default() }).expect_err("refused");
    assert_eq!(err.to_string(), "`registry-mirrors` is a string, but dockerd expects a list of URLs");
    let mut map = parse(r#"{"features": {"cdi": "yes"}}"#).expect("parses");
    assert!(apply(&mut map, &Changes { cdi: true, ..Changes::default() }).is_err());
}

#[test]
fn bad_values_are_refused() {
    let mut map = Object::default();
    for (changes, needle) in [
        (Changes { data_root: Some("docker".into()), ..Changes::default() }, "absolute"),
        (Changes { data_root: Some("/".into()), ..Changes::default() }, "absolute"),
        (Changes { registry_mirrors: vec!["mirror.example.com".into()], ..Changes::default() }, "https://"),
        (
            Changes { registry_mirrors: vec!["https://m.example.com/v2/".into()], ..Changes::default() },
            "path",
        ),
        (Changes { registry_mirrors: vec!["https://".into()], ..Changes::default() }, "no host"),
    ] {
        let err = apply(&mut map, &changes).expect_err("refused");
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert!(map.is_empty(), "a refused change leaves nothing behind");
}

#[test]
fn indentation_follows_the_file() {
    assert_eq!(indent_of(SAMPLE), "    ");
    assert_eq!(indent_of("{\n\t\"a\": 1\n}"), "\t");
    assert_eq!(indent_of("{\"a\": 1}"), "  ");
}

#[test]
fn only_data_root_and_cdi_need_a_restart() {
    assert!(!Changes { live_restore: true, nvidia_runtime: true, ..Changes::default() }.need_restart());
    assert!(!Changes { registry_mirrors: vec!["https://m".into()], ..Changes::default() }.need_restart());
    assert!(Changes { cdi: true, ..Changes::default() }.need_restart());
    assert!(Changes { data_root: Some("/d".into()), ..Changes::default() }.need_restart());
}
