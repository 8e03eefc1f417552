//! exec and shell: exit codes come back, stdin and TTY follow PRODUCT.md's rules.

use std::io::Write;
use std::process::Stdio;

use crate::support::*;

#[test]
fn exec_returns_the_commands_exit_code_and_streams_both_outputs() {
    let env = TestEnv::new();
    let dir = env.project("codes", "");
    let r = env.berth(&dir, &["exec", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]).code(7);
    assert_eq!(r.stdout, "out\n");
    assert!(r.stderr.contains("err\n"), "{}", r.stderr);
    assert!(!r.stdout.contains('\r'), "captured output must not carry \\r");
    env.berth(&dir, &["exec", "--", "true"]).ok();
    let missing = env.berth(&dir, &["exec", "--", "no-such-command"]);
    assert!(missing.code == 126 || missing.code == 127, "{missing:?}");
}

#[test]
fn exec_forwards_stdin_only_with_i() {
    let env = TestEnv::new();
    let dir = env.project("stdin", "");
    env.berth(&dir, &["up"]).ok();
    let mut child = env
        .command(&dir, &["exec", "-i", "--", "sh", "-c", "wc -c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello world\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "12");
    // Without -i the command sees no input at all (and does not hang).
    let r = env.berth(&dir, &["exec", "--", "sh", "-c", "wc -c"]).ok();
    assert_eq!(r.stdout.trim(), "0");
}

#[test]
fn exec_t_gives_a_terminal() {
    let env = TestEnv::new();
    let dir = env.project("tty", "");
    let r = env.berth(&dir, &["exec", "-t", "--", "sh", "-c", "test -t 1 && echo tty"]).ok();
    assert_eq!(r.stdout, "tty\r\n");
    let r = env.berth(&dir, &["exec", "--", "sh", "-c", "test -t 1 && echo tty || echo pipe"]).ok();
    assert_eq!(r.stdout, "pipe\n");
}

#[test]
fn exec_starts_in_the_folder_matching_where_the_user_stands() {
    let env = TestEnv::new();
    let dir = env.project("cwd", "");
    std::fs::create_dir_all(dir.join("src/models")).unwrap();
    let r = env.berth(&dir.join("src/models"), &["exec", "--", "pwd"]).ok();
    assert_eq!(r.stdout, "/workspace/src/models\n");
    let r = env.berth(&dir, &["exec", "--", "pwd"]).ok();
    assert_eq!(r.stdout, "/workspace\n");
}

#[test]
fn shell_reads_commands_and_leaving_keeps_the_environment() {
    let env = TestEnv::new();
    let dir = env.project("shell", "");
    let mut child =
        env.command(&dir, &["shell"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"pwd\nexit 3\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/workspace\n");
    assert_eq!(env.inspect(&dir)["State"]["Running"], true, "leaving the shell never stops the environment");
}

#[test]
fn from_host_env_is_passed_at_exec_and_never_stored() {
    let mut env = TestEnv::new();
    env.env.push(("BERTH_TEST_SECRET".into(), "s3cr3t-value".into()));
    let dir = env.project("secret", "[env]\nPLAIN = \"visible\"\nBERTH_TEST_SECRET = { from-host = true }\n");
    let r = env.berth(&dir, &["exec", "--", "sh", "-c", "echo $PLAIN $BERTH_TEST_SECRET"]).ok();
    assert_eq!(r.stdout, "visible s3cr3t-value\n");
    let inspect = env.inspect(&dir).to_string();
    assert!(!inspect.contains("s3cr3t-value"), "a secret reached the container's config or labels");
}

/// `berth exec -- yes | head -1` ends when `head` does (it used to run on, unread, forever).
#[test]
fn exec_ends_when_its_reader_goes_away() {
    let env = TestEnv::new();
    let dir = env.project("reader", "");
    env.berth(&dir, &["up"]).ok();
    let mut child = env
        .command(&dir, &["exec", "--", "sh", "-c", "while :; do echo y; done"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first)
        .unwrap();
    assert_eq!(first, "y\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth exec went on writing to a closed pipe");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(141), "as a shell reports a command ended by SIGPIPE");
}
