//! Fixtures for moving images: small images of our own (removed on drop), a second engine
//! behind an SSH server on loopback (started once per test binary, stopped by pid by a
//! watchdog when the binary exits, whatever happened), and a registry on loopback.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::*;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or test run) uses.
pub fn unique(stem: &str) -> String {
    format!("{stem}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// Bytes that do not compress (a xorshift stream), so sizes on the wire mean something.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An image of our own: `FROM base` plus one layer holding `/payload` (N bytes of noise);
/// removed from the local engine when dropped (drop containers using it first).
pub struct TestImage {
    pub tag: String,
    pub id: String,
}

impl TestImage {
    pub fn build(stem: &str, base: &str, payload: usize) -> TestImage {
        let tag = format!("berth-it/{}:1", unique(stem));
        let ctx = tempfile::tempdir().expect("build context");
        // Seeded by the unique tag: two tests' images of one size must not be one image (the
        // legacy builder's cache would hand both the same id, and removing one tag would leave it).
        let seed = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            tag.hash(&mut h);
            h.finish()
        };
        std::fs::write(ctx.path().join("payload"), noise(payload, seed)).expect("payload");
        std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {base}\nCOPY payload /payload\n"))
            .expect("Dockerfile");
        let out = Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(ctx.path())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("docker build");
        assert!(out.status.success(), "docker build failed: {}", String::from_utf8_lossy(&out.stderr));
        let id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", &tag]);
        TestImage { tag, id }
    }

    /// Remove it from the engine (the test then brings it back).
    pub fn remove(&self) {
        docker_ok(&["rmi", &self.tag]);
        assert!(!docker(&["image", "inspect", &self.id]).status.success(), "{} is still there", self.id);
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.tag]);
    }
}

/// The project file of an environment running `image`.
pub fn project_toml(image: &str) -> String {
    format!("[image]\nbase = \"{image}\"\n")
}

/// A second Docker engine behind sshd on 127.0.0.1 (`tests/support/remote-engine.sh`).
pub struct RemoteEngine {
    pub dir: PathBuf,
    pub port: u16,
}

static REMOTE: OnceLock<RemoteEngine> = OnceLock::new();

impl RemoteEngine {
    /// The one remote of this test binary, started on first use with the test image loaded.
    pub fn get() -> &'static RemoteEngine {
        REMOTE.get_or_init(|| {
            ensure_image();
            let dir = tempfile::Builder::new().prefix("berth-remote-").tempdir().expect("tempdir").keep();
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/remote-engine.sh");
            let out = Command::new("bash")
                .arg(script)
                .arg(&dir)
                .arg(std::process::id().to_string())
                .output()
                .expect("run remote-engine.sh");
            assert!(
                out.status.success(),
                "could not start the remote engine: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let port =
                std::fs::read_to_string(dir.join("port")).expect("port").trim().parse().expect("a port");
            let remote = RemoteEngine { dir, port };
            remote.copy_from_local(IMAGE);
            remote
        })
    }

    /// `ssh://…` for berth.
    pub fn url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }

    /// `BERTH_SSH` for berth: the system ssh with the fixture's config.
    pub fn ssh_env(&self) -> (String, String) {
        ("BERTH_SSH".into(), format!("ssh -F {}", self.dir.join("ssh_config").display()))
    }

    /// The docker CLI against the remote engine (directly, not through ssh).
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.dir.join("docker.sock").display()))
            .output()
            .expect("docker")
    }

    /// The remote engine's id for `reference`, if it has it.
    pub fn image_id(&self, reference: &str) -> Option<String> {
        let out = self.docker(&["image", "inspect", "--format", "{{.Id}}", reference]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `docker save IMAGE | docker load` from the local engine into this one.
    pub fn copy_from_local(&self, image: &str) {
        let mut save =
            Command::new("docker").args(["save", image]).stdout(Stdio::piped()).spawn().expect("save");
        let stdout = save.stdout.take().expect("pipe");
        let load = Command::new("docker")
            .arg("load")
            .env("DOCKER_HOST", format!("unix://{}", self.dir.join("docker.sock").display()))
            .stdin(stdout)
            .output()
            .expect("load");
        assert!(save.wait().expect("save").success() && load.status.success(), "copying {image} failed");
    }
}

/// A Docker registry (Debian's `docker-registry`) on 127.0.0.1 with one htpasswd user,
/// stopped by pid when dropped.
pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

pub const REGISTRY_USER: &str = "berth";
pub const REGISTRY_PASSWORD: &str = "berth-test-pw";
/// bcrypt (cost 4) of REGISTRY_PASSWORD: the registry reads only bcrypt.
const REGISTRY_HTPASSWD: &str = "berth:$2b$04$mQvrx95HyFuKndLHBoWHj.ymgmo6f9SKVvau8VCsZwaQp3rNpD.Cu";

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir().expect("tempdir");
        let port = free_port();
        std::fs::write(dir.path().join("htpasswd"), format!("{REGISTRY_HTPASSWD}\n")).expect("htpasswd");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n\
             http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: berth-test\n    path: {root}/htpasswd\n",
            root = dir.path().display()
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let registry = Registry { port, child, _dir: dir };
        for _ in 0..100 {
            if registry.get("/v2/", None).is_some() {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the registry did not start on 127.0.0.1:{port}");
    }

    /// A GET with optional basic auth: the status line and headers, or `None` if unreachable.
    pub fn get(&self, path: &str, auth: Option<(&str, &str)>) -> Option<String> {
        use base64::Engine as _;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nAccept: \
             application/vnd.docker.distribution.manifest.v2+json\r\n",
            self.port
        );
        if let Some((u, p)) = auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            request.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut stream, &mut reply).ok()?;
        Some(reply.split("\r\n\r\n").next().unwrap_or_default().to_string())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
