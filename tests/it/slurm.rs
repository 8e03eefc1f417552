//! The Slurm export runs for real: a one-node Slurm cluster from Debian's slurm-wlm and munge,
//! on 127.0.0.1 with a generated slurm.conf and a fresh munge key in a temp folder, runs the
//! generated script with the `docker` runtime, and the environment's command sees the node
//! count, its node rank and the rendezvous address. Daemons run in the foreground as this
//! test's children and are stopped by pid. Skipped, saying why, only where the packages are
//! missing and cannot be installed (CI installs them).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::TestEnv;

const TOOLS: [&str; 5] = ["slurmctld", "slurmd", "sbatch", "munged", "scontrol"];

fn have_tools() -> bool {
    TOOLS.iter().all(|t| {
        Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
    })
}

/// Daemons this test started, stopped by pid when it ends (even on failure).
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            // SIGTERM lets each daemon clean up; then make sure it is gone.
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn hostname() -> String {
    let out = Command::new("hostname").arg("-s").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn slurm_conf(dir: &Path, host: &str) -> String {
    let d = dir.display();
    format!(
        "ClusterName=berthit\nSlurmctldHost={host}(127.0.0.1)\nSlurmctldPort={ctld}\nSlurmdPort={slurmd}\n\
         SlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={d}/munge.sock\n\
         StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/slurmctld.pid\n\
         SlurmdPidFile={d}/slurmd.pid\nSlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\nMpiDefault=none\n\
         SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nSchedulerType=sched/builtin\n\
         ReturnToService=2\nSlurmdParameters=config_overrides\n\
         NodeName={host} NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN\n\
         PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
        ctld = free_port(),
        slurmd = free_port(),
    )
}

fn spawn(program: &str, args: &[&str], log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    Command::new(program)
        .args(args)
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn wait_until(what: &str, dir: &Path, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() > deadline {
            let logs: String = ["munged.out", "slurmctld.out", "slurmd.out", "slurmctld.log", "slurmd.log"]
                .iter()
                .map(|f| format!("--- {f}\n{}\n", std::fs::read_to_string(dir.join(f)).unwrap_or_default()))
                .collect();
            panic!("{what} did not happen within {limit:?}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts munged, slurmctld and slurmd; returns the daemons and the slurm.conf path.
fn start_cluster(dir: &Path) -> (Daemons, PathBuf) {
    let key = dir.join("munge.key");
    let status = Command::new("dd")
        .args(["if=/dev/urandom", &format!("of={}", key.display()), "bs=1024", "count=1"])
        .stderr(Stdio::null())
        .status()
        .expect("dd");
    assert!(status.success());
    assert!(Command::new("chmod").arg("400").arg(&key).status().expect("chmod").success());
    for sub in ["state", "spool"] {
        std::fs::create_dir_all(dir.join(sub)).expect("slurm dirs");
    }
    let conf = dir.join("slurm.conf");
    let host = hostname();
    std::fs::write(&conf, slurm_conf(dir, &host)).expect("slurm.conf");
    let mut daemons = Daemons(Vec::new());
    let (sock, d) = (dir.join("munge.sock"), dir.display().to_string());
    daemons.0.push(spawn(
        "munged",
        &[
            "-F",
            "--force",
            "--key-file",
            &key.to_string_lossy(),
            "--socket",
            &sock.to_string_lossy(),
            "--pid-file",
            &format!("{d}/munged.pid"),
            "--seed-file",
            &format!("{d}/munge.seed"),
        ],
        &dir.join("munged.out"),
    ));
    wait_until("munged's socket", dir, Duration::from_secs(10), || sock.exists());
    let conf_s = conf.to_string_lossy().into_owned();
    daemons.0.push(spawn("slurmctld", &["-D", "-i", "-f", &conf_s], &dir.join("slurmctld.out")));
    daemons.0.push(spawn("slurmd", &["-D", "-f", &conf_s, "-N", &host], &dir.join("slurmd.out")));
    wait_until("the node to be idle", dir, Duration::from_secs(30), || {
        Command::new("sinfo")
            .args(["-h", "-o", "%t"])
            .env("SLURM_CONF", &conf)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
    });
    (daemons, conf)
}

const COMMAND: &str = r#"echo "nnodes=$PET_NNODES rank=$PET_NODE_RANK master=$PET_MASTER_ADDR:$PET_MASTER_PORT nproc=$PET_NPROC_PER_NODE pwd=$(pwd)"; ls /workspace/berth.toml"#;

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "slurmd must run as root to start jobs as their users")]
fn the_slurm_export_runs_on_a_real_cluster_with_the_docker_runtime() {
    assert!(
        have_tools(),
        "slurm-wlm and munge are not installed: `apt-get install --no-install-recommends slurm-wlm munge` \
         (.ci/run installs them)"
    );
    let env = TestEnv::new();
    let dir = env.project(
        "onslurm",
        "name = \"onslurm\"\n[gpu]\nvendor = \"none\"\n[cache]\npip = false\nhuggingface = false\n",
    );
    env.berth(&dir, &["export", "slurm", "--runtime", "docker", "--", "sh", "-c", COMMAND]).ok();
    let script = dir.join("slurm/onslurm.sbatch");
    assert!(script.is_file());

    let cluster_dir = tempfile::Builder::new().prefix("berth-slurm-").tempdir().expect("tempdir");
    let started = Instant::now();
    let (_daemons, conf) = start_cluster(cluster_dir.path());
    let mut sbatch = Command::new("sbatch")
        .args(["--wait", "--parsable", "slurm/onslurm.sbatch"])
        .current_dir(&dir)
        .env("SLURM_CONF", &conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sbatch");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = sbatch.try_wait().expect("sbatch wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = sbatch.kill();
            panic!("the job did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = sbatch.wait_with_output().expect("sbatch output");
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let log = std::fs::read_to_string(dir.join(format!("onslurm-{job}.out"))).unwrap_or_default();
    assert!(status.success(), "the job failed ({status}): {}\n{log}", String::from_utf8_lossy(&out.stderr));
    let host = hostname();
    assert!(log.contains(&format!("nnodes=1 rank=0 master={host}:29500 nproc=1 pwd=/workspace")), "{log}");
    assert!(log.contains("/workspace/berth.toml"), "the project is mounted: {log}");
    eprintln!("slurm: cluster up and job done in {:?}", started.elapsed());
}
