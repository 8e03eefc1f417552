//! [`EngineFacts`]: what the container engine says about itself (`docker info` / `version`).
//!
//! Recorded host trees keep these as `engine.json` beside `meta.txt`, so plans for recorded
//! hosts see a recorded engine too (CDI devices, runtimes) instead of the test machine's.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", default)]
pub struct EngineFacts {
    /// `Docker` or `Podman`.
    pub product: String,
    /// Server version, `20.10.24+dfsg1`, `28.3.0`, `5.4.1`.
    pub server_version: String,
    /// Negotiated API version.
    pub api_version: String,
    /// Registered OCI runtimes (`runc`, `nvidia`, ...).
    pub runtimes: Vec<String>,
    pub default_runtime: String,
    /// CDI spec folders the engine reads (empty: CDI off or unsupported, or, for Podman, folders
    /// berth could not read: a remote engine).
    pub cdi_spec_dirs: Vec<String>,
    /// Fully qualified CDI device names the engine knows (`nvidia.com/gpu=0`): Docker lists them
    /// in `/info`; for Podman, which does not, berth reads the spec files in `cdi_spec_dirs`.
    pub cdi_devices: Vec<String>,
    pub cgroup_driver: String,
    pub cgroup_version: String,
    pub data_root: String,
    pub rootless: bool,
    pub security_options: Vec<String>,
    /// Whether containers keep running while the daemon restarts (`live-restore`).
    pub live_restore: bool,
    /// `Debian GNU/Linux 12 (bookworm)`, `Docker Desktop`, ...: tells Docker Desktop apart.
    pub operating_system: String,
    /// The engine host's kernel (`...-microsoft-standard-WSL2`, `...-linuxkit`).
    pub kernel_version: String,
    /// The engine's own process, for a local engine (`kind::probe`): what it is and the hard
    /// limits it can hand to containers. Not part of `/info`; absent in recorded engines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<super::kind::EngineProcess>,
}

impl EngineFacts {
    pub fn is_podman(&self) -> bool {
        self.product.eq_ignore_ascii_case("podman")
            || self.process.as_ref().is_some_and(|p| p.name == "podman")
    }

    /// Whether the engine resolves CDI device names for `vendor` (`nvidia.com`, `amd.com`).
    pub fn has_cdi_vendor(&self, vendor: &str) -> bool {
        self.cdi_devices.iter().any(|d| d.starts_with(&format!("{vendor}/")))
    }

    /// `(major, minor)` of the server version (`20.10.24+dfsg1` → `(20, 10)`).
    pub fn version(&self) -> Option<(u32, u32)> {
        let mut parts = self.server_version.split(|c: char| !c.is_ascii_digit());
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    }

    /// Whether this is Docker at `major.minor` or newer (`None`: Podman, or no version).
    pub fn docker_at_least(&self, major: u32, minor: u32) -> Option<bool> {
        (!self.is_podman()).then_some(())?;
        self.version().map(|v| v >= (major, minor))
    }

    /// Read a recorded `engine.json`.
    pub fn from_json(text: &str) -> Result<EngineFacts, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Facts from the engine's `/info` answer; `podman`: the engine said so in `/_ping`'s headers
/// (`Libpod-Api-Version`), which spares the `/version` request that costs Podman up to a second.
pub fn from_engine(info: &bollard::models::SystemInfo, podman: bool, api_version: &str) -> EngineFacts {
    let mut runtimes: Vec<String> = info.runtimes.iter().flatten().map(|(k, _)| k.clone()).collect();
    runtimes.sort();
    let mut cdi_devices: Vec<String> =
        info.discovered_devices.iter().flatten().filter_map(|d| d.id.clone()).collect();
    cdi_devices.sort();
    let security_options = info.security_options.clone().unwrap_or_default();
    EngineFacts {
        product: if podman { "Podman".into() } else { "Docker".into() },
        server_version: info.server_version.clone().unwrap_or_default(),
        api_version: api_version.to_string(),
        runtimes,
        default_runtime: info.default_runtime.clone().unwrap_or_default(),
        cdi_spec_dirs: info.cdi_spec_dirs.clone().unwrap_or_default(),
        cdi_devices,
        cgroup_driver: info.cgroup_driver.map(|d| d.to_string()).unwrap_or_default(),
        cgroup_version: info.cgroup_version.map(|v| v.to_string()).unwrap_or_default(),
        data_root: info.docker_root_dir.clone().unwrap_or_default(),
        rootless: security_options.iter().any(|o| o.contains("rootless")),
        security_options,
        live_restore: info.live_restore_enabled.unwrap_or(false),
        operating_system: info.operating_system.clone().unwrap_or_default(),
        kernel_version: info.kernel_version.clone().unwrap_or_default(),
        process: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        let f = |v: &str| EngineFacts {
            product: "Docker".into(),
            server_version: v.into(),
            ..Default::default()
        };
        assert_eq!(f("20.10.24+dfsg1").version(), Some((20, 10)));
        assert_eq!(f("28.3.0").docker_at_least(28, 3), Some(true));
        assert_eq!(f("27.5.1").docker_at_least(28, 3), Some(false));
        assert_eq!(f("").docker_at_least(25, 0), None);
        let podman =
            EngineFacts { product: "Podman".into(), server_version: "5.4.1".into(), ..Default::default() };
        assert_eq!(podman.docker_at_least(25, 0), None);
    }
}
