//! NVIDIA CDI spec files, and which driver they were generated for.
//!
//! A spec lists the driver's library files by full name (`libcuda.so.550.144.03`); after a
//! driver upgrade those files are gone, and containers asking for the CDI devices fail. A line
//! scan for the versioned names is enough: no YAML parser is needed to read one suffix.

use super::facts::CdiSpec;
use crate::host::HostRoot;

/// Where nvidia-ctk writes specs (static, then generated); the engine may add folders.
pub const SPEC_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// Libraries whose suffix is the driver version (the kernel module's, when they match).
const VERSIONED: [&str; 2] = ["libcuda.so.", "libnvidia-ml.so."];

/// NVIDIA spec files (`nvidia*.yaml|yml|json`) in the usual folders and `extra`.
pub fn find_specs(root: &HostRoot, extra: &[String]) -> Vec<CdiSpec> {
    let mut dirs: Vec<String> = SPEC_DIRS.iter().map(|d| d.to_string()).collect();
    for d in extra {
        if !dirs.contains(d) {
            dirs.push(d.clone());
        }
    }
    let mut specs = Vec::new();
    for dir in dirs {
        for name in root.list(&dir) {
            let spec_file = [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e));
            if !(name.starts_with("nvidia") && spec_file) {
                continue;
            }
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if let Some(text) = root.read(&path) {
                specs.push(CdiSpec { path, driver_versions: driver_versions(&text) });
            }
        }
    }
    specs
}

/// Distinct driver versions named by versioned library files, in order of appearance.
pub fn driver_versions(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for lib in VERSIONED {
        let mut rest = text;
        while let Some(i) = rest.find(lib) {
            rest = &rest[i + lib.len()..];
            let version: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let version = version.trim_end_matches('.').to_string();
            if is_driver_version(&version) && !found.contains(&version) {
                found.push(version);
            }
        }
    }
    found
}

/// `550.144.03`, `570.86`: two or three numeric parts, major ≥ 100 (NVIDIA driver branches),
/// so `libcuda.so.1` and WSL's `libcuda.so.1.1` are not mistaken for versions.
fn is_driver_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0].parse::<u32>().is_ok_and(|m| m >= 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_versioned_library_names_only() {
        let spec = "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ncontainerEdits:\n  mounts:\n\
                    - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.535.183.01\n\
                    - hostPath: /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.535.183.01\n\
                    - hostPath: /usr/lib/x86_64-linux-gnu/libnvidia-egl-wayland.so.1.1.13\n\
                    - hostPath: /usr/lib/wsl/drivers/nv.inf_amd64/libcuda.so.1.1\n\
                    - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.1\n";
        assert_eq!(driver_versions(spec), ["535.183.01"]);
        assert!(driver_versions("kind: nvidia.com/gpu\n").is_empty());
    }
}
