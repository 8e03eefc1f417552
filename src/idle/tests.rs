#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::policy::HostIdle;
use super::signals::{exec_signals, gpu_signals, vscode_signal};
use super::*;
use crate::engine::exec::RunningExec;
use crate::spec::{IdleSpec, StopAfter};

const H: u64 = 3_600;

fn policy(secs: u64) -> Policy {
    Policy { stop_after: Some(secs), source: "berth.toml".into(), gpu_utilization: 5 }
}

fn record(first_seen: u64, last_busy: Option<u64>) -> Record {
    Record {
        container: "abc".into(),
        environment: "e".into(),
        first_seen,
        last_busy,
        checked: first_seen,
        signals: vec![],
        stop_after: Some(4 * H),
        stops_at: None,
        stopped: None,
    }
}

#[test]
fn an_environment_is_stopped_only_after_a_check_saw_it_idle_for_the_whole_stop_after() {
    let p = policy(4 * H);
    let t0 = 1_800_000_000;
    // The first check ever vouches for nothing before itself, however old the container is.
    assert_eq!(
        decide(&p, None, &[], Some(t0 - 10 * H), t0),
        Verdict::Idle { idle_since: t0, stops_at: t0 + 4 * H }
    );
    let seen = record(t0, None);
    assert_eq!(
        decide(&p, Some(&seen), &[], Some(t0 - H), t0 + 4 * H - 1),
        Verdict::Idle { idle_since: t0, stops_at: t0 + 4 * H }
    );
    assert_eq!(decide(&p, Some(&seen), &[], Some(t0 - H), t0 + 4 * H), Verdict::Stop { idle_since: t0 });
    // Busy an hour later: the count starts again from then.
    let busy = record(t0, Some(t0 + H));
    assert!(
        matches!(decide(&p, Some(&busy), &[], None, t0 + 4 * H), Verdict::Idle { idle_since, .. } if idle_since == t0 + H)
    );
    // Started again (`berth up`) after the last sighting: counted from the start.
    assert!(
        matches!(decide(&p, Some(&seen), &[], Some(t0 + 3 * H), t0 + 5 * H), Verdict::Idle { idle_since, .. } if idle_since == t0 + 3 * H)
    );
    // A record from the future (a clock set back, a hand-edited file) never makes it older.
    assert_eq!(idle_since(Some(&record(t0 + 99 * H, None)), None, t0), t0);
}

#[test]
fn any_signal_keeps_it_alive_and_no_policy_never_stops() {
    let seen = record(0, None);
    for s in [
        Signal::Session { what: "terminal: /bin/sh -l".into() },
        Signal::Job { name: "train".into() },
        Signal::GpuMemory { gpu: 1, mib: 2048 },
        Signal::GpuUnknown { why: "nvidia-smi failed".into() },
    ] {
        assert!(matches!(decide(&policy(600), Some(&seen), &[s], None, 100 * H), Verdict::Busy { .. }));
    }
    let none = Policy { stop_after: None, source: "none".into(), gpu_utilization: 5 };
    assert_eq!(decide(&none, Some(&seen), &[], None, 100 * H), Verdict::NoPolicy);
}

#[test]
fn the_project_file_wins_over_the_host_default_up_to_the_host_cap() {
    let host = HostIdle::parse("stop-after = \"8h\"\nmax-stop-after = \"24h\"\ngpu-utilization = 10")
        .expect("valid");
    let asks = |s: Option<StopAfter>| Policy::of(Some(&IdleSpec { stop_after: s }), &host);
    assert_eq!(asks(None).stop_after, Some(8 * H));
    assert_eq!(asks(None).source, "/etc/berth/idle.toml");
    assert_eq!(asks(Some(StopAfter::Seconds(H))).stop_after, Some(H));
    assert_eq!(asks(Some(StopAfter::Seconds(48 * H))).stop_after, Some(24 * H));
    assert!(asks(Some(StopAfter::Seconds(48 * H))).source.contains("max-stop-after"));
    assert_eq!(asks(Some(StopAfter::Never)).stop_after, Some(24 * H));
    assert_eq!(asks(None).gpu_utilization, 10);
    // Without a cap, "never" opts out; without a host file, nothing is ever stopped unasked.
    let open = HostIdle::parse("stop-after = \"8h\"").expect("valid");
    assert_eq!(Policy::of(Some(&IdleSpec { stop_after: Some(StopAfter::Never) }), &open).stop_after, None);
    assert_eq!(Policy::of(Some(&IdleSpec::default()), &HostIdle::default()).stop_after, None);
    assert_eq!(
        Policy::of(None, &HostIdle::default()).words(),
        "never (no [idle] stop-after here or in /etc/berth/idle.toml)"
    );
}

#[test]
fn a_bad_host_file_is_an_error_never_a_guess() {
    assert!(HostIdle::parse("stop-after = \"8\"").expect_err("refused").contains("stop-after"));
    assert!(HostIdle::parse("stopafter = \"8h\"").is_err());
    assert!(HostIdle::parse("gpu-utilization = 101").expect_err("refused").contains("percentage"));
    let root = crate::host::HostRoot::at(tempfile::tempdir().expect("tempdir").path().to_path_buf());
    assert_eq!(HostIdle::load(&root), Ok(HostIdle::default()));
}

#[test]
fn job_wrappers_are_jobs_and_every_other_exec_is_a_session() {
    let wrapper =
        crate::jobs::wrapper::argv("train-1", Some("/workspace"), &["python".into(), "t.py".into()]);
    let execs = [
        RunningExec { command: wrapper.join(" "), tty: false },
        RunningExec { command: "/bin/bash -l".into(), tty: true },
        RunningExec { command: "sh -c echo ${VSCODE_AGENT_FOLDER}".into(), tty: false },
    ];
    let got = exec_signals(&execs);
    assert_eq!(got[0], Signal::Job { name: "train-1".into() });
    assert_eq!(got[1], Signal::Session { what: "terminal: /bin/bash -l".into() });
    assert!(matches!(&got[2], Signal::Session { what } if what.starts_with("exec: sh -c")));
    let server =
        "/home/u/.vscode-server/bin/abc/node /home/u/.vscode-server/bin/abc/out/server-main.js".to_string();
    assert!(vscode_signal(&[server]).is_some());
    assert!(vscode_signal(&["sleep infinity".into()]).is_none());
}

#[test]
fn gpu_memory_and_busy_gpus_are_the_containers_whose_processes_use_them() {
    let gpus = crate::top::parse_nvidia_gpus(
        "0, GPU-a, A, 1, 2, 97\n1, GPU-b, B, 1, 2, 3\n2, GPU-c, C, 1, 2, [N/A]\n",
    );
    assert_eq!(gpus[2].utilization_percent, None);
    let utils: Vec<(u32, Option<u32>)> = gpus.iter().map(|g| (g.index, g.utilization_percent)).collect();
    let apps =
        [(100, Some(1000), 0), (101, Some(24), 0), (200, Some(512), 1), (300, None, 2), (400, Some(9), 1)];
    let of = |pid: u32| match pid {
        100 | 101 => Some("c1".to_string()),
        200 | 300 => Some("c2".to_string()),
        _ => None, // a host process
    };
    let got = gpu_signals(&utils, &apps, of, 5);
    assert_eq!(
        got["c1"],
        vec![Signal::GpuMemory { gpu: 0, mib: 1024 }, Signal::GpuUtilization { gpu: 0, percent: 97 }]
    );
    // GPU 1 is at 3%, under the threshold; a process with [N/A] memory still holds a context.
    assert_eq!(got["c2"], vec![Signal::GpuMemory { gpu: 1, mib: 512 }, Signal::GpuMemory { gpu: 2, mib: 0 }]);
    assert_eq!(got.len(), 2);
}

#[test]
fn engine_times_read_as_seconds_since_the_epoch() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2026-11-30T22:10:05.123456789Z"), Some(1_796_076_605));
    assert_eq!(rfc3339(1_796_076_605), "2026-11-30T22:10:05Z");
    assert_eq!(parse_rfc3339("garbage"), None);
}

#[test]
fn the_timer_runs_the_check_as_root_every_five_minutes() {
    let berth = std::path::Path::new("/usr/local/bin/berth");
    let systemd = timer::files(timer::Scheduler::Systemd, berth);
    let service = &systemd.iter().find(|(n, _)| *n == "berth-idle.service").expect("installed").1;
    assert!(service.contains("\nType=oneshot\n"), "{service}");
    assert!(service.contains("\nExecStart=/usr/local/bin/berth idle --check\n"), "{service}");
    assert!(!service.contains("User="), "the system timer acts for every user: root");
    let t = &systemd.iter().find(|(n, _)| *n == "berth-idle.timer").expect("installed").1;
    assert!(t.contains("\nOnUnitActiveSec=5min\n") && t.contains("\nWantedBy=timers.target\n"), "{t}");
    let cron = timer::files(timer::Scheduler::Cron, berth);
    assert_eq!(cron[0].0, "berth-idle");
    assert!(
        cron[0].1.ends_with("\n*/5 * * * * root /usr/local/bin/berth idle --check --quiet\n"),
        "{}",
        cron[0].1
    );
}

/// Regression: root's check read each environment's berth.toml as its owner left it: a FIFO
/// hung the check for every user, a link to /dev/zero read without end.
#[test]
fn a_project_file_that_is_no_plain_file_of_its_owner_is_not_read() {
    use super::check::read_project_file;
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let me = std::fs::metadata(tmp.path()).unwrap().uid();
    let fifo = tmp.path().join("fifo.toml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let zero = tmp.path().join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let fine = tmp.path().join("berth.toml");
    std::fs::write(&fine, "[idle]\nstop-after = \"4h\"\n").unwrap();
    let linked = tmp.path().join("linked.toml");
    std::os::unix::fs::symlink(&fine, &linked).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let got = [&fifo, &zero, &fine, &linked].map(|f| read_project_file(f, Some(me)));
        tx.send(got).unwrap();
    });
    let [fifo, zero, fine, linked] =
        rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the read hung");
    assert_eq!(fifo, Err("is not a plain file".to_string()));
    assert_eq!(zero, Err("is not a plain file".to_string()));
    assert!(fine.unwrap().contains("4h"));
    assert!(linked.is_ok(), "a berth.toml that is a link to the owner's file is read");
    let other = read_project_file(&tmp.path().join("berth.toml"), Some(me + 1));
    assert_eq!(other, Err("does not belong to the environment's owner".to_string()));
}
