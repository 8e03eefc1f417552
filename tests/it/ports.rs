//! `ports = ["8888"]` without a host port: a host port on 127.0.0.1 that differs between
//! environments (of one user and of two), is held by stopped containers too, and stays the same
//! across `stop` + `up`, `up --recreate` and `down` + `up`; `berth ports` prints the URL a real
//! server answers at, directly and through the `ssh -L` line `--ssh` prints; `berth open`
//! finds a Jupyter-style URL with its token in a job's log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const BARE: &str = "ports = [\"8888\"]\n";

/// `berth ports --json` of a project: (host ip, host port, url) of container port 8888.
fn port_8888(env: &TestEnv, dir: &Path) -> (String, u16, String) {
    let out = env.berth(dir, &["ports", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let p = v["ports"].as_array().unwrap().iter().find(|p| p["container_port"] == 8888).expect("8888");
    (
        p["host_ip"].as_str().unwrap().to_string(),
        p["host_port"].as_u64().unwrap() as u16,
        p["url"].as_str().unwrap().to_string(),
    )
}

/// What the engine itself says the container publishes 8888 on.
fn engine_binding(env: &TestEnv, dir: &Path) -> (String, u16) {
    let c = env.inspect(dir);
    let b = &c["HostConfig"]["PortBindings"]["8888/tcp"][0];
    (b["HostIp"].as_str().unwrap().to_string(), b["HostPort"].as_str().unwrap().parse().unwrap())
}

/// The port must not move through stop + up, a recreate and down + up.
fn assert_kept(env: &TestEnv, dir: &Path, port: u16) {
    env.berth(dir, &["stop"]).ok();
    assert_eq!(port_8888(env, dir).1, port, "a stopped environment lists its port");
    env.berth(dir, &["up"]).ok();
    assert_eq!(engine_binding(env, dir), ("127.0.0.1".into(), port), "after stop + up");
    let before = env.containers_of(dir);
    // A change the container cannot follow, so `--recreate` really makes a new one.
    let toml = std::fs::read_to_string(dir.join("berth.toml")).unwrap();
    std::fs::write(dir.join("berth.toml"), format!("{toml}\n[env]\nRECREATED = \"1\"\n")).unwrap();
    env.berth(dir, &["up", "--recreate"]).ok();
    assert_ne!(env.containers_of(dir), before, "recreated");
    assert_eq!(engine_binding(env, dir), ("127.0.0.1".into(), port), "after up --recreate");
    env.berth(dir, &["down"]).ok();
    env.berth(dir, &["up"]).ok();
    assert_eq!(engine_binding(env, dir), ("127.0.0.1".into(), port), "after down + up");
}

#[test]
fn two_projects_of_one_user_get_different_loopback_ports_that_stay() {
    let env = TestEnv::new();
    let a = env.project("ports-a", BARE);
    let b = env.project("ports-b", BARE);
    env.berth(&a, &["up"]).ok();
    env.berth(&b, &["up"]).ok();
    let (ip_a, port_a, url_a) = port_8888(&env, &a);
    let (ip_b, port_b, _) = port_8888(&env, &b);
    assert_eq!((ip_a.as_str(), ip_b.as_str()), ("127.0.0.1", "127.0.0.1"));
    assert_ne!(port_a, port_b);
    assert_eq!(url_a, format!("http://127.0.0.1:{port_a}/"));
    assert_eq!(engine_binding(&env, &a), ("127.0.0.1".into(), port_a));
    assert_kept(&env, &a, port_a);
    assert_kept(&env, &b, port_b);
    // The human listing says the same.
    let table = env.berth(&a, &["ports"]).ok();
    assert!(
        table.stdout.contains(&format!("8888/tcp   127.0.0.1:{port_a}  http://127.0.0.1:{port_a}/")),
        "{}",
        table.stdout
    );
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "switching to another uid needs root")]
fn two_users_asking_for_the_same_port_never_share_one() {
    let mut env = TestEnv::new();
    env.as_user = Some((4242, 4242, "alice".into()));
    chown_tree(env.root.path(), 4242, 4242);
    let alices = env.project("ports-alice", BARE);
    env.berth(&alices, &["up"]).ok();
    env.as_user = None;
    let roots = env.project("ports-root", BARE);
    chown_tree(&roots, 0, 0);
    env.berth(&roots, &["up"]).ok();
    let (ip_r, port_r, _) = port_8888(&env, &roots);
    env.as_user = Some((4242, 4242, "alice".into()));
    let (ip_a, port_a, _) = port_8888(&env, &alices);
    assert_eq!((ip_a.as_str(), ip_r.as_str()), ("127.0.0.1", "127.0.0.1"));
    assert_ne!(port_a, port_r);
    assert_kept(&env, &alices, port_a);
    env.as_user = None;
    assert_kept(&env, &roots, port_r);
}

#[test]
fn a_port_held_by_a_stopped_container_or_a_host_program_is_not_taken() {
    let env = TestEnv::new();
    let dir = env.project("ports-held", BARE);
    env.berth(&dir, &["up"]).ok();
    let (_, first, _) = port_8888(&env, &dir);
    env.berth(&dir, &["down"]).ok();
    // Someone else's stopped container was created with that port: it takes it back at start.
    let name = format!("berth-it-holder-{}", std::process::id());
    docker_ok(&["create", "--name", &name, "-p", &format!("127.0.0.1:{first}:80"), IMAGE, "true"]);
    let held = std::panic::catch_unwind(|| {
        env.berth(&dir, &["up"]).ok();
        let (_, second, _) = port_8888(&env, &dir);
        assert_ne!(second, first, "the stopped container's port");
        // And a program listening on the host.
        env.berth(&dir, &["down"]).ok();
        docker_ok(&["rm", "-f", &name]);
        let listener = std::net::TcpListener::bind(("127.0.0.1", second)).unwrap();
        let up = env.berth(&dir, &["up"]).ok();
        let (_, third, _) = port_8888(&env, &dir);
        // The record's port is bound: back to the preferred one, free again.
        assert_eq!(third, first, "{first} {second} {third}");
        // And the user hears that the URL (and a laptop's forward) changed.
        assert!(
            up.stderr.contains(&format!("host port {second}, which 8888/tcp had, is taken"))
                && up.stderr.contains(&format!("8888/tcp is now at 127.0.0.1:{third}")),
            "{}",
            up.stderr
        );
        drop(listener);
    });
    docker(&["rm", "-f", &name]);
    if let Err(e) = held {
        std::panic::resume_unwind(e);
    }
}

/// GET `url` (plain HTTP/1.0), retrying until it answers or 30 s pass; the status line.
fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = TcpStream::connect(authority).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        });
        match answer {
            Ok(body) if body.starts_with("HTTP/") => return body,
            _ if Instant::now() > deadline => panic!("nothing answered at {url}: {answer:?}"),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// sshd on 127.0.0.1 with its own host key, key-only, stopped by pid when dropped.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::Builder::new().prefix("berth-it-sshd-").tempdir().unwrap();
        let d = dir.path();
        for (key, comment) in [("host_key", "host"), ("id", "client")] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(d.join(key))
                .status()
                .unwrap();
            assert!(ok.success());
        }
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nAuthorizedKeysFile {0}/authorized_keys\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 AllowTcpForwarding local\nStrictModes no\nUsePAM no\nUseDNS no\nPidFile none\n",
                d.display()
            );
            std::fs::write(d.join("sshd_config"), config).unwrap();
            // -D: stays in the foreground, so it is our child and stops by its pid.
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
                .spawn()
                .unwrap();
            for _ in 0..100 {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let known = format!(
                        "[127.0.0.1]:{port} {}",
                        std::fs::read_to_string(d.join("host_key.pub"))
                            .unwrap()
                            .split_whitespace()
                            .take(2)
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                    std::fs::write(d.join("known_hosts"), known).unwrap();
                    return Sshd { dir, port, child };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start: {}", std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_server_started_with_run_answers_at_the_url_ports_prints_and_through_the_ssh_line() {
    ensure_python_image();
    let env = TestEnv::new();
    let dir = env.project("ports-http", &format!("{BARE}[image]\nbase = \"{PYTHON_IMAGE}\"\n"));
    env.berth(&dir, &["up"]).ok();
    env.berth(&dir, &["run", "--name", "web", "--", "python3", "-u", "-m", "http.server", "8888"]).ok();
    let (_, host_port, url) = port_8888(&env, &dir);
    let answer = http_get(&url);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains("berth.toml"), "the server lists the project folder: {answer}");
    // `open` finds the address http.server printed (http://0.0.0.0:8888/) and maps it.
    let opened = env.berth(&dir, &["open", "web", "--print"]).ok();
    assert_eq!(opened.stdout, format!("{url}\n"));
    assert_eq!(env.berth(&dir, &["open", "8888", "--print"]).ok().stdout, format!("{url}\n"));

    let sshd = Sshd::start();
    let dest = format!("ssh://root@127.0.0.1:{}", sshd.port);
    let line = env.berth(&dir, &["ports", "--ssh", &dest]).ok();
    let want =
        format!("ssh -N -p {} -L 127.0.0.1:{host_port}:127.0.0.1:{host_port} root@127.0.0.1\n", sshd.port);
    assert_eq!(line.stdout, want);
    let json: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["ports", "--ssh", &dest, "--json"]).ok().stdout).unwrap();
    let mut argv: Vec<String> =
        json["ssh"]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    assert_eq!(format!("{}\n", json["ssh"]["command"].as_str().unwrap()), want);
    // This machine is both server and laptop, and the server's docker-proxy holds the host port
    // here: the laptop side of the forward moves to a free port, everything else is berth's line.
    let laptop = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let forward = argv.iter_mut().find(|a| a.starts_with("127.0.0.1:")).unwrap();
    *forward = forward.replacen(&format!("127.0.0.1:{host_port}:"), &format!("127.0.0.1:{laptop}:"), 1);
    let mut ssh = Command::new(&argv[0])
        .args([
            "-i",
            sshd.path("id").to_str().unwrap(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            &format!("UserKnownHostsFile={}", sshd.path("known_hosts").display()),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
        ])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let through = std::panic::catch_unwind(|| http_get(&format!("http://127.0.0.1:{laptop}/")));
    let _ = ssh.kill();
    let _ = ssh.wait();
    let through = through.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(through.starts_with("HTTP/1.0 200") && through.contains("berth.toml"), "{through}");
}

#[test]
fn open_finds_a_jupyter_style_url_with_its_token_and_keeps_the_token_out_of_berths_files() {
    let env = TestEnv::new();
    let dir = env.project("ports-lab", BARE);
    env.berth(&dir, &["up"]).ok();
    let (_, host_port, _) = port_8888(&env, &dir);
    // Made up inside the job, as Jupyter's is: the whole token is not in the command line.
    let (head, tail) = ("a1b2c3d4e5f60718293a4b5c", "6d7e8f90a1b2c3d4e5f60718");
    let token = format!("{head}{tail}");
    // What `jupyter lab --ip=0.0.0.0` prints (on stderr), after a moment.
    let script = format!(
        "token={head}; token=${{token}}{tail}; sleep 1; echo '[I 2026-11-30 22:00:01.000 ServerApp] Jupyter Server 2.14.2 is running at:' >&2; \
         echo '[I 2026-11-30 22:00:01.000 ServerApp] http://0f3c2d1e:8888/lab?token='$token >&2; \
         echo '[I 2026-11-30 22:00:01.000 ServerApp]     http://127.0.0.1:8888/lab?token='$token >&2; sleep 300"
    );
    env.berth(&dir, &["run", "--name", "lab", "--", "sh", "-c", &script]).ok();
    // Waits for the address to appear.
    let opened = env.berth(&dir, &["open", "lab", "--print"]).ok();
    assert_eq!(opened.stdout, format!("http://127.0.0.1:{host_port}/lab?token={token}\n"));
    let json: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["open", "lab", "--print", "--json"]).ok().stdout).unwrap();
    assert_eq!(json["container_port"], 8888);
    assert_eq!(json["host_port"], host_port);
    assert_eq!(json["job"], "lab");
    assert_eq!(json["opened"], false);

    // The token is in the job's own log and nowhere else berth wrote.
    let inspect = docker_ok(&["inspect", &env.containers_of(&dir)[0]]);
    assert!(!inspect.contains(&token), "the token reached the container's config or labels");
    let mut holders = Vec::new();
    for entry in walk(&dir) {
        if std::fs::read(&entry).is_ok_and(|b| String::from_utf8_lossy(&b).contains(&token)) {
            holders.push(entry.strip_prefix(&dir).unwrap().display().to_string());
        }
    }
    assert_eq!(holders, [".berth/jobs/lab/log"]);

    // A server on a port berth.toml does not publish: what to add.
    env.berth(&dir, &["run", "--name", "other", "--", "sh", "-c", "echo http://127.0.0.1:9999/; sleep 300"])
        .ok();
    let refused = env.berth(&dir, &["open", "other", "--print"]).code(2);
    assert!(
        refused.stderr.contains("job other serves on container port 9999, which is not published"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("add \"9999\" to `ports`"), "{}", refused.stderr);
    let quiet = env.berth(&dir, &["run", "--name", "silent", "--", "true"]).ok();
    drop(quiet);
    let none = env.berth(&dir, &["open", "silent", "--print"]).code(1);
    assert!(none.stderr.contains("holds no http:// address"), "{}", none.stderr);
    let unpublished = env.berth(&dir, &["open", "7000", "--print"]).code(2);
    assert!(
        unpublished.stderr.contains("container port 7000 is not published (published now: 8888/tcp)"),
        "{}",
        unpublished.stderr
    );
    env.berth(&dir, &["kill", "lab"]).ok();
    env.berth(&dir, &["kill", "other"]).ok();
    assert!(!opened.stderr.contains("listens on the container's"), "nothing listened: {}", opened.stderr);

    // Jupyter's default: listening on the container's loopback, which no published port reaches.
    let local = "echo http://127.0.0.1:8888/lab?token=x; exec httpd -f -p 127.0.0.1:8888";
    env.berth(&dir, &["run", "--name", "local", "--", "sh", "-c", local]).ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let warned = env.berth(&dir, &["open", "local", "--print"]).ok();
        if warned.stderr.contains("job local listens on the container's 127.0.0.1:8888 only") {
            assert!(warned.stderr.contains("--ip=0.0.0.0"), "{}", warned.stderr);
            break;
        }
        assert!(Instant::now() < deadline, "no warning: {}", warned.stderr);
        std::thread::sleep(Duration::from_millis(250));
    }
    env.berth(&dir, &["kill", "local"]).ok();
}

#[test]
fn a_ports_record_rewritten_inside_the_container_cannot_open_a_privileged_host_port() {
    let env = TestEnv::new();
    let dir = env.project("ports-tamper", BARE);
    env.berth(&dir, &["up"]).ok();
    let (_, first, _) = port_8888(&env, &dir);
    // `.berth` is mounted read-write inside: whatever runs there can rewrite the record.
    let forged = r#"echo '{"127.0.0.1:8888/tcp": 81}' > /berth/state/ports.json"#;
    env.berth(&dir, &["exec", "--", "sh", "-c", forged]).ok();
    env.berth(&dir, &["down"]).ok();
    env.berth(&dir, &["up"]).ok();
    let (ip, port, _) = port_8888(&env, &dir);
    assert_eq!((ip.as_str(), port), ("127.0.0.1", first), "the forged port 81 was taken");
    env.berth(&dir, &["down"]).ok();
}

#[test]
fn open_never_prints_or_hands_on_the_terminal_escapes_a_job_log_holds() {
    let env = TestEnv::new();
    let dir = env.project("ports-escape", BARE);
    env.berth(&dir, &["up"]).ok();
    let (_, host_port, _) = port_8888(&env, &dir);
    // A clear-screen and a window title glued to the token, then a right-to-left override.
    let script = r#"printf 'http://127.0.0.1:8888/lab?token=abc\033[2J\033]0;owned\007\n'; sleep 300"#;
    env.berth(&dir, &["run", "--name", "esc", "--", "sh", "-c", script]).ok();
    let opened = env.berth(&dir, &["open", "esc", "--print"]).ok();
    assert_eq!(opened.stdout, format!("http://127.0.0.1:{host_port}/lab?token=abc\n"));
    env.berth(&dir, &["kill", "esc"]).ok();
    let rtl = r"printf 'http://127.0.0.1:8888/\342\200\256gpj.exe\n'; sleep 300";
    env.berth(&dir, &["run", "--name", "rtl", "--", "sh", "-c", rtl]).ok();
    let opened = env.berth(&dir, &["open", "rtl", "--print", "--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&opened.stdout).unwrap();
    assert_eq!(json["url"], format!("http://127.0.0.1:{host_port}/"));
    env.berth(&dir, &["kill", "rtl"]).ok();
    env.berth(&dir, &["down"]).ok();
}

#[test]
fn open_hands_the_browser_a_private_page_never_the_token_in_its_arguments() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let dir = env.project("ports-launch", BARE);
    env.berth(&dir, &["up"]).ok();
    let (_, host_port, _) = port_8888(&env, &dir);
    let token = "f00dfeedf00dfeedf00dfeedf00dfeed";
    let line = format!("echo http://127.0.0.1:8888/lab?token={token}; sleep 300");
    env.berth(&dir, &["run", "--name", "lab", "--", "sh", "-c", &line]).ok();
    // A desktop session: an `xdg-open` that records what it was given, a private runtime folder.
    let bin = env.root.path().join("bin");
    let runtime = env.root.path().join("runtime");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let args = env.root.path().join("xdg-open-args");
    std::fs::write(bin.join("xdg-open"), format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", args.display()))
        .unwrap();
    std::fs::set_permissions(bin.join("xdg-open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let desktop = |runtime: &Path| {
        let mut cmd = env.command(&dir, &["open", "lab", "--json"]);
        cmd.env("DISPLAY", ":99")
            .env_remove("SSH_CONNECTION")
            .env("XDG_RUNTIME_DIR", runtime)
            .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()));
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let json = desktop(&runtime);
    let url = format!("http://127.0.0.1:{host_port}/lab?token={token}");
    assert_eq!((json["url"].as_str(), json["opened"].as_bool()), (Some(url.as_str()), Some(true)));
    let given = std::fs::read_to_string(&args).unwrap();
    let page = runtime.join("berth-open.html");
    assert_eq!(given, format!("file://{}\n", page.display()), "the browser's argument");
    assert!(!given.contains(token));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(&format!("url={url}\"")), "{html}");
    assert_eq!(std::fs::metadata(&page).unwrap().permissions().mode() & 0o777, 0o600);
    // A runtime folder others may enter: berth prints the URL and opens nothing.
    std::fs::remove_file(&args).unwrap();
    let open_dir = env.root.path().join("open-runtime");
    std::fs::create_dir_all(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let json = desktop(&open_dir);
    assert_eq!(json["opened"], false);
    assert!(!args.exists() && !open_dir.join("berth-open.html").exists());
    env.berth(&dir, &["kill", "lab"]).ok();
    env.berth(&dir, &["down"]).ok();
}

#[test]
fn ports_refuses_a_destination_ssh_would_read_as_an_option() {
    let env = TestEnv::new();
    let dir = env.project("ports-dest", BARE);
    let bad = env.berth(&dir, &["ports", "--ssh=-oProxyCommand=touch /tmp/x"]).code(2);
    assert!(bad.stderr.contains("starts with `-`"), "{}", bad.stderr);
    let missing = env.berth(&dir, &["ports"]).code(2);
    assert!(missing.stderr.contains("does not exist"), "{}", missing.stderr);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}
