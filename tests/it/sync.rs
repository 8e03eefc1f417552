//! The project sync of `berth --on`, end to end without ssh: the library's laptop side
//! (`remote::sync::push` / `fetch`) talks to the real binary's server side (`berth serve-on
//! VERSION DIR --sync`, `… --send`) over the child's stdin and stdout, as it does through ssh.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use berth::remote::call;
use berth::remote::sync::{self, FetchReport, SyncError, SyncReport};

/// The server's side: `mode` is `--sync` or `--send`.
fn server(mode: &str, dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve-on", env!("CARGO_PKG_VERSION")])
        .arg(dir)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A push through `to` (the server's stdin, or a copy of it) as `berth --on` makes it: the
/// manifest first, then the server's greeting, then the rest.
fn push_through(laptop: &Path, to: impl Write, child: &mut Child) -> Result<SyncReport, SyncError> {
    let mut from = BufReader::new(child.stdout.take().unwrap());
    let push = sync::push_start(laptop, to)?;
    call::expect_greeting(&mut from).expect("the server's berth greets");
    push.finish(&mut from)
}

fn push(laptop: &Path, dir: &Path) -> SyncReport {
    let mut child = server("--sync", dir);
    let stdin = child.stdin.take().unwrap();
    let report = push_through(laptop, stdin, &mut child);
    let out = child.wait_with_output().unwrap();
    let report = report.unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    report
}

fn fetch(laptop: &Path, dir: &Path, paths: &[&str], force: bool) -> Result<FetchReport, SyncError> {
    let mut child = server("--send", dir);
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let mut from = BufReader::new(child.stdout.take().unwrap());
    let report = sync::fetch_start(laptop, &paths, child.stdin.take().unwrap()).and_then(|f| {
        call::expect_greeting(&mut from).expect("the server's berth greets");
        f.finish(force, &mut from)
    });
    let _ = child.wait_with_output().unwrap();
    report
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A laptop project: code, a config, ignored outputs, berth's own folder.
fn laptop() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "berth.toml", b"name = \"syncdemo\"\n");
    write(p, "train.py", b"print('epoch 1')\n");
    write(p, "configs/base.yaml", b"lr: 0.1\n");
    write(p, "data/weights.bin", &super::fixtures::noise(256 << 10, 7));
    write(p, ".gitignore", b"__pycache__/\n*.log\n");
    write(p, ".dockerignore", b"scratch\n");
    write(p, ".berthignore", b"big_dataset/\n");
    write(p, "pkg/__pycache__/m.cpython-311.pyc", b"x");
    write(p, "run.log", b"x");
    write(p, "scratch/notes.txt", b"x");
    write(p, "big_dataset/part0", b"x");
    write(p, ".berth/jobs/1/log", b"secret job log");
    d
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn only_what_changed_is_sent_and_ignored_files_and_berths_folder_never() {
    let l = laptop();
    let server_home = tempfile::tempdir().unwrap();
    let dir = server_home.path().join("berth/syncdemo-1a2b3c4d");

    let first = push(l.path(), &dir);
    assert_eq!(first.files_sent, 7, "{first:?}");
    let sent = files_under(&dir);
    let sent: Vec<&str> = sent.iter().map(String::as_str).filter(|f| !f.starts_with(".berth/")).collect();
    assert_eq!(
        sent,
        [
            ".berthignore",
            ".dockerignore",
            ".gitignore",
            "berth.toml",
            "configs/base.yaml",
            "data/weights.bin",
            "train.py"
        ]
    );
    assert!(!dir.join(".berth/jobs").exists(), "the laptop's .berth never travels");
    assert_eq!(first.bytes_sent, files_size(l.path(), &sent));

    let second = push(l.path(), &dir);
    assert_eq!((second.files_sent, second.bytes_sent, second.unchanged), (0, 0, 7));

    // One edited file: its bytes, the manifest and a little framing.
    let edited = b"print('epoch 2, edited on the laptop')\n";
    write(l.path(), "train.py", edited);
    let third = push(l.path(), &dir);
    assert_eq!((third.files_sent, third.bytes_sent, third.unchanged), (1, edited.len() as u64, 6));
    let framing = third.stream_bytes - third.bytes_sent;
    eprintln!(
        "one-file edit: {} content bytes, {} bytes on the stream (manifest and framing {framing}); first sync: {} bytes",
        third.bytes_sent, third.stream_bytes, first.stream_bytes
    );
    assert!(framing < 1024, "manifest and framing of 7 files: {framing} bytes");
    assert_eq!(std::fs::read(dir.join("train.py")).unwrap(), edited);
}

fn files_size(root: &Path, files: &[&str]) -> u64 {
    files.iter().map(|f| std::fs::metadata(root.join(f)).unwrap().len()).sum()
}

#[test]
fn files_made_or_edited_on_the_server_are_kept_and_reported() {
    let l = laptop();
    let server_home = tempfile::tempdir().unwrap();
    let dir = server_home.path().join("proj");
    push(l.path(), &dir);
    // On the server: a checkpoint the laptop also has a file for, and an edited config.
    write(&dir, "work_dirs/epoch_1.pth", b"server weights");
    write(&dir, "configs/base.yaml", b"lr: 0.01 # tuned on the server\n");
    write(l.path(), "work_dirs/epoch_1.pth", b"laptop file of the same name");
    write(l.path(), "configs/base.yaml", b"lr: 0.2\n");
    std::fs::remove_file(l.path().join("data/weights.bin")).unwrap();
    let report = push(l.path(), &dir);
    assert_eq!(std::fs::read(dir.join("work_dirs/epoch_1.pth")).unwrap(), b"server weights");
    assert_eq!(std::fs::read(dir.join("configs/base.yaml")).unwrap(), b"lr: 0.01 # tuned on the server\n");
    let skipped: Vec<(&str, &str)> =
        report.files_skipped.iter().map(|s| (s.path.as_str(), s.reason.as_str())).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.iter().any(|(p, r)| *p == "configs/base.yaml" && r.contains("changed on the server")));
    assert!(skipped.iter().any(|(p, r)| *p == "work_dirs/epoch_1.pth" && r.contains("made on the server")));
    // Deleted on the laptop: never deleted on the server, and said.
    assert!(dir.join("data/weights.bin").exists());
    assert_eq!(report.kept_on_server, ["data/weights.bin"]);
    // The JSON a script reads names them too.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["files_skipped"].as_array().unwrap().len(), 2);
}

#[test]
fn an_interrupted_stream_leaves_no_partial_file_and_the_next_sync_completes() {
    let l = laptop();
    write(l.path(), "data/weights.bin", &super::fixtures::noise(8 << 20, 3));
    let server_home = tempfile::tempdir().unwrap();
    let dir = server_home.path().join("proj");
    // The laptop's stream as push writes it, cut in the middle of the big file.
    let mut whole = Vec::new();
    {
        // Let a real server plan the transfer, capturing what the laptop sends.
        let mut child = server("--sync", &dir);
        let tee = Tee { inner: child.stdin.take().unwrap(), copy: &mut whole };
        push_through(l.path(), tee, &mut child).unwrap();
        assert!(child.wait().unwrap().success());
    }
    let other = server_home.path().join("other");
    let mut child = server("--sync", &other);
    let mut stdin = child.stdin.take().unwrap();
    let cut = whole.len() - (4 << 20);
    stdin.write_all(&whole[..cut]).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ended early"), "{stderr}");
    let left = files_under(&other);
    assert!(!left.iter().any(|f| f.contains("weights") || f.ends_with(".berth-sync")), "{left:?}");
    // The next sync finishes the job.
    let report = push(l.path(), &other);
    assert_eq!(
        std::fs::read(other.join("data/weights.bin")).unwrap(),
        std::fs::read(l.path().join("data/weights.bin")).unwrap()
    );
    assert!(report.files_skipped.is_empty(), "{report:?}");
}

struct Tee<'a, W> {
    inner: W,
    copy: &'a mut Vec<u8>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn fetch_brings_results_back_but_keeps_a_newer_local_file_without_force() {
    let l = laptop();
    let server_home = tempfile::tempdir().unwrap();
    let dir = server_home.path().join("proj");
    push(l.path(), &dir);
    write(&dir, "work_dirs/run1/epoch_1.pth", b"weights 1");
    write(&dir, "work_dirs/run1/log.txt", b"loss 0.5\n");
    let got = fetch(l.path(), &dir, &["work_dirs"], false).unwrap();
    assert_eq!((got.files_fetched, got.bytes_received), (2, 18));
    assert_eq!(std::fs::read(l.path().join("work_dirs/run1/epoch_1.pth")).unwrap(), b"weights 1");

    // The laptop's copy of the log is newer: kept without --force, replaced with it.
    write(l.path(), "work_dirs/run1/log.txt", b"my notes\n");
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(l.path().join("work_dirs/run1/log.txt"))
        .unwrap()
        .set_modified(future)
        .unwrap();
    let kept = fetch(l.path(), &dir, &["work_dirs/run1/log.txt"], false).unwrap();
    assert_eq!(kept.files_fetched, 0);
    assert!(kept.files_skipped[0].reason.contains("newer on the laptop"), "{kept:?}");
    assert_eq!(std::fs::read(l.path().join("work_dirs/run1/log.txt")).unwrap(), b"my notes\n");
    let forced = fetch(l.path(), &dir, &["work_dirs/run1/log.txt"], true).unwrap();
    assert_eq!(forced.files_fetched, 1);
    assert_eq!(std::fs::read(l.path().join("work_dirs/run1/log.txt")).unwrap(), b"loss 0.5\n");

    // An older local file is replaced; a path outside the project is refused before any transfer.
    let err = fetch(l.path(), &dir, &["../../etc"], false).unwrap_err();
    assert!(matches!(err, SyncError::BadPath { .. }), "{err}");
    let err = fetch(l.path(), &dir, &["no/such/file"], false).unwrap_err();
    assert!(err.to_string().contains("no/such/file"), "{err}");
}

#[test]
fn fetch_without_a_server_says_how_to_name_one() {
    let l = laptop();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .current_dir(l.path())
        .args(["fetch", "work_dirs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("berth --on NAME fetch"), "{stderr}");
}
