//! Whole-file tests: defaults, the scalar keys validated in `parse.rs`, serde's errors turned
//! into positioned ones, and the fixture folders `tests/specs/bad/` and `tests/specs/good/`.

use std::path::{Path, PathBuf};

use super::{load, parse_str, parse_with_home};
use crate::spec::{
    CacheSpec, DeviceSelection, GpuRef, GpuSpec, ImageSpec, Resources, RunOptions, Spec, SpecError, UserMode,
    VendorChoice,
};

/// Parses `text` as the `berth.toml` of a fresh, empty project folder whose HOME is the folder
/// itself (so `~/x` counts as inside it). Returns the folder's path and the spec.
pub(super) fn parse_in(text: &str) -> (PathBuf, Spec) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let spec = parse_with_home(text, &dir.join("berth.toml"), Some(dir.clone()))
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e} ({:?})", e.hint()));
    (dir, spec)
}

pub(super) fn err(text: &str) -> SpecError {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    match parse_with_home(text, &dir.join("berth.toml"), Some(dir.clone())) {
        Ok(spec) => panic!("{text:?} should be refused, got {spec:?}"),
        Err(e) => e,
    }
}

#[test]
fn an_empty_file_is_a_complete_default_project() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("my project!");
    let file = dir.join("berth.toml");
    let spec = parse_str("", &file).expect("empty file");
    let want = Spec {
        file,
        project_dir: dir,
        name: "my-project-".into(),
        workdir: "/workspace".into(),
        image: ImageSpec { base: "python:3.12-slim".into(), ..Default::default() },
        gpu: GpuSpec { vendor: VendorChoice::Auto, devices: DeviceSelection::All },
        resources: Resources::default(),
        mounts: vec![],
        cache: CacheSpec { pip: true, huggingface: true },
        env: vec![],
        user: UserMode::Host,
        ports: vec![],
        run: RunOptions::default(),
        cluster: vec![],
        idle: Default::default(),
        ssh: crate::spec::SshSpec { agent: true },
        python_env: None,
    };
    assert_eq!(spec, want);
}

#[test]
fn the_ssh_agent_is_forwarded_unless_the_file_says_no() {
    assert!(parse_in("").1.ssh.agent);
    assert!(parse_in("[ssh]\nagent = true").1.ssh.agent);
    assert!(!parse_in("[ssh]\nagent = false").1.ssh.agent);
}

#[test]
fn default_names_are_made_valid() {
    use super::basics::default_name;
    assert_eq!(default_name(Path::new("/src/sdcnet")), "sdcnet");
    assert_eq!(default_name(Path::new("/src/.hidden dir")), "hidden-dir");
    assert_eq!(default_name(Path::new("/src/项目x")), "x");
    assert_eq!(default_name(Path::new("/")), "project");
    assert_eq!(default_name(&Path::new("/").join("a".repeat(99))).len(), 63);
}

#[test]
fn scalar_keys_are_read() {
    let text = "name = 'sdc.net_2'\nworkdir = '/w'\n[image]\nbase = 'nvcr.io/nvidia/pytorch:24.08-py3'\n\
                [user]\nas = 'root'\n[cache]\npip = false\n[resources]\nshm = '16g'\nmemory = 1073741824\ncpus = 1.5";
    let (_, spec) = parse_in(text);
    assert_eq!((spec.name.as_str(), spec.workdir.as_str()), ("sdc.net_2", "/w"));
    assert_eq!(spec.image.base, "nvcr.io/nvidia/pytorch:24.08-py3");
    assert_eq!(spec.user, UserMode::Root);
    assert_eq!(spec.cache, CacheSpec { pip: false, huggingface: true });
    assert_eq!(spec.resources, Resources { shm: Some(16 << 30), memory: Some(1 << 30), cpus: Some(1.5) });
    assert_eq!(parse_in("[user]\nas = 'dev_1'").1.user, UserMode::Named("dev_1".into()));
    assert_eq!(parse_in("[resources]\ncpus = 8").1.resources.cpus, Some(8.0));
}

#[test]
fn image_references_are_checked_for_plausibility() {
    for good in [
        "python",
        "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel",
        "localhost:5000/team/img:v1",
        "Registry.Example.com/a/b",
        "ubuntu@sha256:abc123",
    ] {
        assert_eq!(super::basics::image_ref_problem(good), None, "{good}");
    }
    for bad in ["", "py thon", "PyTorch/pytorch", "img:", "img:-x", "a//b", "img@sha256", "-x"] {
        assert!(super::basics::image_ref_problem(bad).is_some(), "{bad}");
    }
}

#[test]
fn gpu_devices_take_all_a_count_or_a_list() {
    let devices = |text: &str| parse_in(&format!("[gpu]\ndevices = {text}")).1.gpu.devices;
    assert_eq!(devices("'all'"), DeviceSelection::All);
    assert_eq!(devices("2"), DeviceSelection::Count(2));
    let uuid = "GPU-8b2c3d4e-0000-1111-2222-333344445555";
    assert_eq!(
        devices(&format!("[1, 0, '{uuid}']")),
        DeviceSelection::List(vec![GpuRef::Index(1), GpuRef::Index(0), GpuRef::Uuid(uuid.into())])
    );
    let cases = [
        ("0", (2, 11), "at least 1"),
        ("-1", (2, 11), "at least 1"),
        ("'some'", (2, 11), "found \"some\""),
        ("true", (2, 11), "found a boolean"),
        ("[]", (2, 11), "empty"),
        ("[0, 0]", (2, 15), "listed twice"),
        ("[0, -1]", (2, 15), "not a GPU index"),
        ("[0, 'GPU-xyz']", (2, 15), "not a GPU UUID"),
        ("[0, 'gpu0']", (2, 15), "not a GPU UUID"),
        ("[[0]]", (2, 12), "found an array"),
    ];
    for (value, at, want) in cases {
        let e = err(&format!("[gpu]\ndevices = {value}"));
        assert_eq!((e.line, e.column), at, "{value}: {e}");
        assert!(e.message.contains(want), "{value}: {e}");
        assert!(e.message.starts_with("`gpu.devices"), "{e}");
    }
}

#[test]
fn vendor_sizes_and_cpus_mistakes() {
    let e = err("[gpu]\nvendor = 'NVIDIA'");
    assert_eq!(e.hint(), Some("did you mean \"nvidia\"?"));
    let e = err("[resources]\nshm = '512k'");
    assert_eq!((e.line, e.column), (2, 7));
    assert!(e.message.contains("512 KiB is too small; the minimum is 1 MiB"), "{e}");
    assert!(err("[resources]\nmemory = '4m'").message.contains("minimum is 6 MiB"));
    assert!(err("[resources]\nmemory = -5").message.contains("negative"));
    assert!(err("[resources]\nshm = '16 gigs'").message.contains("not a size"));
    assert!(err("[resources]\nshm = true").message.contains("expected a size"));
    assert!(err("[resources]\ncpus = 0").message.contains("more than 0"));
    assert!(err("[resources]\ncpus = nan").message.contains("more than 0"));
    assert!(err("[resources]\ncpus = '8'").message.contains("found a string"));
    assert!(err("name = '-x'").message.contains("not a valid name"));
    assert!(err(&format!("name = '{}'", "a".repeat(64))).message.contains("not a valid name"));
    assert!(err("workdir = 'work'").message.contains("not an absolute path"));
    for dir in ["/", "/berth", "/berth/state/x", "/w/../proc", "/sys", "/dev/shm"] {
        let e = err(&format!("workdir = '{dir}'"));
        assert!(e.message.contains("cannot be the work folder"), "{dir}: {e}");
        assert_eq!((e.line, e.column), (1, 11), "{dir}");
    }
    assert_eq!(parse_in("workdir = '/berthing'").1.workdir, "/berthing");
    assert!(err("[user]\nas = 'Bob'").message.contains("not \"host\""));
}

#[test]
fn serde_errors_name_the_key_and_suggest() {
    let e = err("[gpu]\nvendr = 'amd'");
    assert_eq!((e.line, e.column, e.key.as_deref()), (2, 1, Some("gpu.vendr")));
    assert_eq!(e.message, "`gpu.vendr`: unknown key");
    assert_eq!(e.hint(), Some("did you mean `vendor`?"));

    let e = err("colour = 1");
    assert!(e.hint().unwrap_or_default().starts_with("valid keys here: `name`"), "{e:?}");
    assert!(e.hint().unwrap_or_default().contains("`cluster`"), "{e:?}");
    let e = err("[image]\nnope = 'x'");
    assert!(e.hint().unwrap_or_default().contains("`apt`"), "{e:?}");

    let e = err("[image]\nbsae = 'x'");
    assert_eq!(e.hint(), Some("did you mean `base`?"));
    let e = err("[image]\nnope = 'x'");
    assert!(e.hint().unwrap_or_default().starts_with("valid keys here: `base`, `preset`"), "{e:?}");
    let e = err("[cache]\npipp = true");
    assert_eq!(e.hint(), Some("did you mean `pip`?"));

    let e = err("[gpu]\nvendor = 3");
    assert_eq!((e.line, e.column, e.key.as_deref()), (2, 10, Some("gpu.vendor")));
    assert!(e.message.starts_with("`gpu.vendor`: invalid type: integer `3`"), "{e}");
    let e = err("mounts = ['.:/w', 3]");
    assert_eq!(e.key.as_deref(), Some("mounts[1]"));
    let e = err("mounts = '.:/w'");
    assert!(e.message.contains("expected an array"), "{e}");
    let e = err("gpu = 3");
    assert!(e.message.contains("expected a table"), "{e}");

    let e = err("name = \"x\"\nname = \"y\"");
    assert_eq!((e.line, e.column, e.key.as_deref()), (2, 1, None));
}

#[test]
fn later_features_are_refused_by_name() {}

#[test]
fn load_reads_the_file_and_names_it_when_it_cannot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("berth.toml");
    let e = load(&file).expect_err("missing");
    assert_eq!((e.file.as_path(), e.line, e.column), (file.as_path(), 0, 0));
    assert!(e.to_string().starts_with(&format!("{}: cannot read", file.display())), "{e}");
    std::fs::write(&file, "name = 'x'\n").expect("write");
    assert_eq!(load(&file).expect("loads").name, "x");
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn fixtures_are_numbered_once_and_every_bad_one_has_its_expect_file() {
    for kind in ["bad", "good"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs").join(kind);
        let mut numbers = std::collections::BTreeMap::<String, Vec<String>>::new();
        for entry in std::fs::read_dir(&dir).expect("fixture folder") {
            let path = entry.expect("entry").path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let (number, _) = name.split_once('-').unwrap_or_else(|| panic!("{kind}/{name}: no NN- prefix"));
            assert!(
                (2..=3).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()),
                "{kind}/{name}: no NN- prefix"
            );
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => numbers.entry(number.to_string()).or_default().push(name.clone()),
                Some("expect") if kind == "bad" => {
                    assert!(path.with_extension("toml").is_file(), "{kind}/{name}: no .toml beside it")
                }
                _ => panic!("{kind}/{name}: a fixture is NN-what.toml (and, when bad, NN-what.expect)"),
            }
            if kind == "bad" && name.ends_with(".toml") {
                assert!(path.with_extension("expect").is_file(), "{kind}/{name}: no .expect beside it");
            }
        }
        let twice: Vec<_> = numbers.values().filter(|names| names.len() > 1).collect();
        assert!(twice.is_empty(), "fixture numbers used twice in tests/specs/{kind}: {twice:?}");
    }
}

#[test]
fn every_bad_fixture_fails_where_its_expect_file_says() {
    let files = fixtures("bad");
    assert!(files.len() >= 24, "only {} bad fixtures", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("fixture");
        let expect = std::fs::read_to_string(file.with_extension("expect")).expect(".expect file");
        let mut lines = expect.lines();
        let at = lines.next().expect("LINE:COLUMN line").trim();
        let want = lines.next().expect("message line").trim();
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match parse_str(&text, file) {
            Ok(_) => failures.push(format!("{name}: parsed without error")),
            Err(e) => {
                let got = format!("{}:{}", e.line, e.column);
                if got != at || !e.message.contains(want) || e.file != *file {
                    failures.push(format!("{name}: want {at} `{want}`, got {got} `{}`", e.message));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_good_fixture_parses() {
    let files = fixtures("good");
    assert!(files.len() >= 3, "only {} good fixtures", files.len());
    for file in &files {
        if let Err(e) = load(file) {
            panic!("{e} ({:?})", e.hint());
        }
    }
}

#[test]
fn the_product_example_means_what_it_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/good");
    let spec = load(&dir.join("01-product-example.toml")).expect("valid");
    assert_eq!((spec.name.as_str(), spec.project_dir.as_path()), ("sdcnet", dir.as_path()));
    let mounts: Vec<(&Path, &str, bool)> =
        spec.mounts.iter().map(|m| (m.source.as_path(), m.target.as_str(), m.read_only)).collect();
    let (data, work) = (dir.join("datasets/IDRID"), dir.join("work_dirs"));
    let want = [
        (dir.as_path(), "/workspace", false),
        (data.as_path(), "/data/IDRID", true),
        (work.as_path(), "/workspace/work_dirs", false),
    ];
    assert_eq!(mounts, want);
    assert_eq!(spec.ports[0].host_port, None);
    assert_eq!(spec.ports[1].host_port, Some(6006));
    assert_eq!(spec.resources.shm, Some(16 << 30));
    assert_eq!(spec.env.len(), 2);
}
#[test]
fn the_error_reported_is_the_first_in_the_file() {
    // `gpu` is validated before `mounts`, but the mount comes first in the file.
    let e = err("mounts = ['./a:/a', './b:/a:ro']\n[gpu]\nvendor = 'x'");
    assert_eq!((e.line, e.key.as_deref()), (1, Some("mounts[1]")));
    let e = err("[gpu]\nvendor = 'x'\n[image]\napt = []");
    assert_eq!((e.line, e.key.as_deref()), (2, Some("gpu.vendor")));
}

#[test]
fn the_image_table_is_read_and_checked() {
    let (dir, spec) = parse_in(
        "[image]\npreset = 'pytorch'\ntorch = '2.5.1'\napt = ['git', 'libgl1']\npip = ['transformers', 'numpy>=1.26']\npip-index-url = 'https://mirror.example/simple'",
    );
    assert_eq!(spec.image.preset, Some(crate::spec::Preset::Pytorch));
    assert_eq!(spec.image.pins.torch.as_deref(), Some("2.5.1"));
    assert_eq!(spec.image.apt, vec!["git", "libgl1"]);
    assert_eq!(spec.image.pip.len(), 2);
    assert!(spec.image.needs_build());
    let _ = dir;
    let e = err("[image]\nbase = 'x:1'\npreset = 'pytorch'");
    assert_eq!(e.key.as_deref(), Some("image.preset"));
    let e = err("[image]\ntorch = '2.5.1'");
    assert!(e.message.contains("only applies to a `preset`"), "{e}");
    let e = err("[image]\npreset = 'pytroch'");
    assert_eq!(e.hint(), Some("did you mean \"pytorch\"?"));
    let e = err("[image]\nrequirements = 'nope.txt'");
    assert!(e.message.contains("does not exist"), "{e}");
}

#[test]
fn credentials_in_package_index_urls_are_refused_without_repeating_them() {
    let cases = [
        ("pip-index-url = 'https://alice:s3cret@pypi.corp/simple'", "https://alice:***@pypi.corp/simple"),
        ("pip-index-url = 'https://ghp_t0ken@pypi.corp/simple'", "https://***@pypi.corp/simple"),
        (
            "pip-extra-index-urls = ['https://x.org/s', 'http://:s3cret@h:8080/s?q=a@b']",
            "http://***@h:8080/s?q=a@b",
        ),
        ("apt-mirror = 'https://u:s3cret@deb.corp/debian'", "https://u:***@deb.corp/debian"),
    ];
    for (line, shown) in cases {
        let e = err(&format!("[image]\n{line}"));
        assert!(e.message.contains(&format!("`{shown}` holds credentials")), "{line}: {e}");
        assert!(!e.to_string().contains("s3cret") && !e.to_string().contains("t0ken"), "{e}");
        assert_eq!(e.line, 2, "{line}");
    }
    let e = err("[image]\npip-index-url = 'https://a:s3cret@pypi.corp/simple'");
    assert!(e.hint().is_some_and(|h| h.contains("PIP_INDEX_URL = { from-host = true }")), "{e:?}");
    // An `@` after the host (a path or a query) is not a user part.
    let (_, spec) = parse_in("[image]\npip-index-url = 'https://pypi.corp/simple/@scope?x=a@b'");
    assert_eq!(spec.image.pip_index_url.as_deref(), Some("https://pypi.corp/simple/@scope?x=a@b"));
}

/// A token in a pip requirement's URL lands in the build's `RUN pip install` line, which the
/// image's history keeps, as surely as one in `pip-index-url`.
#[test]
fn a_token_in_a_pip_requirement_url_is_refused_like_one_in_the_index_url() {
    for (req, shown) in [
        (
            "mylib @ https://deploy:s3cret@gitlab.corp/mylib-1.0.whl",
            "https://deploy:***@gitlab.corp/mylib-1.0.whl",
        ),
        ("git+https://ghp_s3cret@github.com/org/repo.git", "git+https://***@github.com/org/repo.git"),
    ] {
        let e = err(&format!("[image]\npip = ['numpy', '{req}']"));
        assert!(e.message.contains(&format!("`{shown}` holds credentials")), "{req}: {e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("image.pip[1]")), "{e:?}");
    }
    let (_, spec) = parse_in("[image]\npip = ['mylib @ https://files.corp/mylib-1.0.whl']");
    assert_eq!(spec.image.pip, vec!["mylib @ https://files.corp/mylib-1.0.whl".to_string()]);
}

#[test]
fn build_inputs_outside_the_project_are_refused_even_through_a_symlink() {
    for (line, want) in [
        ("requirements = '/etc/shadow'", "/etc/shadow is outside the project folder"),
        ("conda-environment = '../env.yml'", "is outside the project folder"),
        ("dockerfile = '/etc/hostname'", "/etc/hostname is outside the project folder"),
    ] {
        let e = err(&format!("[image]\n{line}"));
        assert!(e.message.contains(want), "{line}: {e}");
        assert_eq!(e.line, 2);
        assert!(e.hint().is_some_and(|h| h.contains("copy the file")), "{e:?}");
    }
    let project = tempfile::tempdir().expect("tempdir");
    let dir = project.path();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("requirements.txt")).expect("symlink");
    std::fs::write(dir.join("real.txt"), "numpy\n").expect("write");
    std::os::unix::fs::symlink("real.txt", dir.join("inside.txt")).expect("symlink");
    let e = parse_with_home("[image]\nrequirements = 'requirements.txt'", &dir.join("berth.toml"), None)
        .expect_err("a link out of the project");
    assert!(e.message.contains("it leads to /etc/hostname"), "{e}");
    let spec = parse_with_home("[image]\nrequirements = 'inside.txt'", &dir.join("berth.toml"), None)
        .expect("a link that stays inside is fine");
    assert!(spec.image.requirements.is_some());
}
