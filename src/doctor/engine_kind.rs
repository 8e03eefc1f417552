//! The checks that depend on which engine answered: Podman's init, and for rootless engines
//! (Docker or Podman) the user namespace, `as = "host"`, file ownership in mounts and GPUs.
//! Docker's `daemon.json` check runs only for Docker (see `engine_checks::all`).

use super::Check;
use super::facts::DoctorFacts;
use crate::engine::kind::{EngineKind, PODMAN_INIT};
use crate::host::{HostRoot, HostUser, Vendor};

/// What these checks read from the engine's host.
#[derive(Debug, Clone, Default)]
pub struct KindFacts {
    /// Podman's init: `init_path` from containers.conf, else catatonit's usual path.
    pub podman_init: String,
    pub podman_init_present: bool,
    /// The user has a range in /etc/subuid (rootless engines map other uids into it).
    pub subuid: bool,
    /// `no-cgroups = true` in the NVIDIA Container Toolkit's config (rootless Docker needs it).
    pub nvidia_no_cgroups: bool,
}

const CONTAINERS_CONF: [&str; 2] =
    ["/etc/containers/containers.conf", "/usr/share/containers/containers.conf"];
const NVIDIA_CONFIG: &str = "/etc/nvidia-container-runtime/config.toml";

pub fn gather(root: &HostRoot, user: &HostUser) -> KindFacts {
    let mut confs: Vec<String> = vec![format!("{}/.config/containers/containers.conf", user.home.display())];
    confs.extend(CONTAINERS_CONF.iter().map(|s| s.to_string()));
    let podman_init = confs
        .iter()
        .find_map(|c| root.read(c).and_then(|t| setting(&t, "init_path")))
        .unwrap_or_else(|| PODMAN_INIT.to_string());
    let subuid = root.read("/etc/subuid").is_some_and(|t| {
        t.lines().any(|l| {
            let owner = l.split(':').next().unwrap_or("");
            owner == user.name || owner == user.uid.to_string()
        })
    });
    let nvidia_no_cgroups =
        root.read(NVIDIA_CONFIG).and_then(|t| setting(&t, "no-cgroups")).is_some_and(|v| v == "true");
    KindFacts { podman_init_present: root.exists(&podman_init), podman_init, subuid, nvidia_no_cgroups }
}

/// `key = "value"` or `key = value` on an uncommented line of a TOML file.
fn setting(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

pub fn checks(f: &DoctorFacts) -> Vec<Check> {
    let Some(e) = f.engine.facts() else { return Vec::new() };
    let kind = EngineKind::of(e);
    let mut out = Vec::new();
    if kind.is_podman() && !f.remote {
        out.push(podman_init(&f.kind));
    }
    if kind.is_rootless() {
        out.push(rootless(f, kind));
        if f.host.gpus_of(Vendor::Nvidia).next().is_some() && kind == EngineKind::RootlessDocker {
            out.push(rootless_nvidia(&f.kind));
        }
    }
    out
}

fn podman_init(k: &KindFacts) -> Check {
    if k.podman_init_present {
        return Check::ok("podman-init", format!("{} runs as each environment's PID 1", k.podman_init));
    }
    Check::fail(
        "podman-init",
        format!(
            "{} is missing: `berth up` fails (\"container-init binary not found\"), since berth runs \
             every environment under the engine's init",
            k.podman_init
        ),
        "install catatonit (`sudo apt-get install catatonit` on Debian and Ubuntu, `sudo dnf install \
         catatonit` on Fedora), or set `init_path` in containers.conf to an installed init",
    )
}

fn rootless(f: &DoctorFacts, kind: EngineKind) -> Check {
    let name = &f.user.name;
    if !f.kind.subuid {
        return Check::fail(
            "rootless",
            format!(
                "{}: {name} has no range in /etc/subuid, so images that hold other users' files cannot be unpacked",
                kind.describe()
            ),
            format!(
                "`sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}`, then restart the engine"
            ),
        );
    }
    Check::ok(
        "rootless",
        format!(
            "{}: the container's root is {name} on this host, so `as = \"host\"` runs as root inside and \
             files in mounts stay {name}'s; other users inside map to {name}'s /etc/subuid range (files \
             they write in mounts show numeric owners here); ports below 1024 need \
             net.ipv4.ip_unprivileged_port_start",
            kind.describe()
        ),
    )
}

fn rootless_nvidia(k: &KindFacts) -> Check {
    if k.nvidia_no_cgroups {
        return Check::ok("rootless-gpu", format!("{NVIDIA_CONFIG} has no-cgroups = true"));
    }
    Check::fail(
        "rootless-gpu",
        "rootless Docker cannot set up GPU cgroups: the NVIDIA Container Toolkit needs `no-cgroups = true`",
        format!(
            "`sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place` (edits {NVIDIA_CONFIG})"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::facts::EngineFacts;

    use crate::doctor::facts::EngineState;
    use crate::doctor::{Status, collect, diagnose};

    fn on(tree: &str, edit: impl FnOnce(&mut EngineFacts, &mut KindFacts)) -> Vec<Check> {
        let root = HostRoot::at(format!("{}/tests/hosts/{tree}", env!("CARGO_MANIFEST_DIR")));
        let mut f = collect::recorded(&root);
        if let EngineState::Reachable(e) = &mut f.engine {
            edit(e, &mut f.kind);
        }
        diagnose(&f)
    }

    fn row<'a>(checks: &'a [Check], id: &str) -> Option<&'a Check> {
        checks.iter().find(|c| c.id == id)
    }

    #[test]
    fn podman_without_catatonit_fails_doctor_and_gets_no_daemon_json_warning() {
        // Issue 15: doctor was all green on Podman but for a daemon.json warning, and `up` failed
        // with "container-init binary not found".
        let checks = on("none", |e, k| {
            e.product = "Podman".into();
            k.podman_init = PODMAN_INIT.into();
            k.podman_init_present = false;
        });
        assert!(row(&checks, "daemon-json").is_none(), "{checks:?}");
        let init = row(&checks, "podman-init").expect("podman-init row");
        assert_eq!(init.status, Status::Fail);
        assert!(init.fix.as_deref().unwrap_or("").contains("apt-get install catatonit"), "{init:?}");
        assert!(row(&checks, "rootless").is_none());
    }

    #[test]
    fn docker_rows_stay_docker_rows() {
        let checks = on("none", |_, _| {});
        assert!(row(&checks, "daemon-json").is_some());
        assert!(row(&checks, "podman-init").is_none() && row(&checks, "rootless").is_none());
    }

    #[test]
    fn rootless_engines_explain_as_host_and_need_subuid_and_no_cgroups_for_nvidia() {
        let checks = on("nvidia-2", |e, k| {
            e.rootless = true;
            k.subuid = true;
        });
        let rootless = row(&checks, "rootless").expect("rootless row");
        assert_eq!(rootless.status, Status::Ok);
        assert!(rootless.detail.starts_with("rootless Docker") && rootless.detail.contains("as = \"host\""));
        assert_eq!(row(&checks, "rootless-gpu").map(|c| c.status), Some(Status::Fail));
        let checks = on("nvidia-2", |e, k| {
            e.product = "Podman".into();
            e.rootless = true;
            k.subuid = false;
            k.podman_init_present = true;
        });
        assert_eq!(row(&checks, "rootless").map(|c| c.status), Some(Status::Fail));
        assert!(row(&checks, "rootless-gpu").is_none(), "rootless Podman reaches GPUs through CDI");
    }

    #[test]
    fn containers_conf_settings_are_read() {
        let text = "[engine]\n# init_path = \"/x\"\ninit_path = \"/opt/catatonit\"\n";
        assert_eq!(setting(text, "init_path").as_deref(), Some("/opt/catatonit"));
        assert_eq!(setting("no-cgroups = true\n", "no-cgroups").as_deref(), Some("true"));
        assert_eq!(setting("#no-cgroups = true\n", "no-cgroups"), None);
    }
}
