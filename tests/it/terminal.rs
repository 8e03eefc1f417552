//! Interactive use through a real pseudo-terminal (util-linux `script`): Ctrl-C reaches the
//! process inside, the window size is passed on, and the shell's exit code comes back.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

pub fn in_pty(env: &TestEnv, dir: &std::path::Path, inner: &str) -> Command {
    let cmd = env.command(dir, &[]);
    let bin = env!("CARGO_BIN_EXE_berth");
    let mut script = Command::new("script");
    script.args(["-qec", &format!("stty cols 123 rows 45 && {bin} {inner}"), "/dev/null"]).current_dir(dir);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    script
}

#[test]
fn ctrl_c_goes_to_the_process_inside_and_the_exit_code_comes_back() {
    let env = TestEnv::new();
    let dir = env.project("ctrlc", "");
    env.berth(&dir, &["up"]).ok();
    let started = Instant::now();
    let mut child =
        in_pty(&env, &dir, "shell").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("script");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stdin.write_all(b"sleep 60\n").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    stdin.write_all(b"\x03").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"echo after-interrupt; exit 5\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(text.contains("after-interrupt"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "Ctrl-C did not interrupt `sleep 60`");
    assert_eq!(env.inspect(&dir)["State"]["Running"], true, "the environment keeps running");
}

#[test]
fn the_terminal_size_is_passed_on() {
    let env = TestEnv::new();
    let dir = env.project("winsize", "");
    env.berth(&dir, &["up"]).ok();
    // The size is sent right after the exec starts; the command gives it a moment.
    let out =
        in_pty(&env, &dir, "exec -- sh -c 'sleep 0.5; stty size'").stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("45 123"), "{text}");
}
