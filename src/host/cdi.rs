//! CDI spec files (Container Device Interface): which devices they name, and for NVIDIA's,
//! which driver they were generated for.
//!
//! Podman 4 resolves CDI names (`nvidia.com/gpu=0`) from these files alone and lists none of
//! them in its API, so berth reads them to know, before anything is created, whether a name it
//! would ask for exists. Like the CDI library, only `*.yaml` and `*.json` files directly in the
//! spec folders count. YAML is read by indentation, in the block style `nvidia-ctk cdi generate`
//! writes (top-level `kind:`, a `devices:` list whose items have a `name:`); JSON is parsed.
//! After a driver upgrade a spec still names the old driver's libraries
//! (`libcuda.so.550.144.03`), and containers asking for its devices fail to start.

use serde::Serialize;

use super::HostRoot;

/// Where the CDI library looks by default (static, then generated specs): Podman 4 always,
/// Docker 25+ when CDI is on.
pub const SPEC_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// The kind NVIDIA's toolkit gives its GPUs.
pub const NVIDIA_GPU: &str = "nvidia.com/gpu";

/// Libraries whose suffix is the driver version (the kernel module's, when they match).
const VERSIONED: [&str; 2] = ["libcuda.so.", "libnvidia-ml.so."];

/// One spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CdiSpec {
    pub path: String,
    /// `nvidia.com/gpu`; empty when the file could not be read as a spec.
    pub kind: String,
    /// Device names in the file's order (`0`, `GPU-…`, `all`).
    pub devices: Vec<String>,
    /// Driver versions its library paths carry (`libcuda.so.550.144.03` → `550.144.03`).
    pub driver_versions: Vec<String>,
}

impl CdiSpec {
    /// Fully qualified names: `nvidia.com/gpu=0`.
    pub fn qualified(&self) -> impl Iterator<Item = String> + '_ {
        self.devices.iter().map(|d| format!("{}={d}", self.kind))
    }

    /// A spec of NVIDIA's GPUs (by its kind, or by its file name when the kind was unreadable).
    pub fn is_nvidia_gpu(&self) -> bool {
        self.kind == NVIDIA_GPU
            || (self.kind.is_empty() && self.path.rsplit('/').next().is_some_and(|n| n.starts_with("nvidia")))
    }
}

/// Every spec file in the usual folders and `extra`, folder by folder, names sorted.
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
            if !(name.ends_with(".yaml") || name.ends_with(".json")) {
                continue;
            }
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if let Some(text) = root.read(&path) {
                let (kind, devices) = parse(&text);
                specs.push(CdiSpec { path, kind, devices, driver_versions: driver_versions(&text) });
            }
        }
    }
    specs
}

/// The fully qualified device names the spec files in `dirs` give, sorted, without repeats.
pub fn device_names(root: &HostRoot, dirs: &[String]) -> Vec<String> {
    let mut names: Vec<String> = find_specs(root, dirs)
        .iter()
        .filter(|s| !s.kind.is_empty())
        .filter(|s| dirs.iter().any(|d| s.path.starts_with(&format!("{}/", d.trim_end_matches('/')))))
        .flat_map(|s| s.qualified().collect::<Vec<_>>())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A spec's kind and device names (empty when they cannot be read).
pub fn parse(text: &str) -> (String, Vec<String>) {
    if text.trim_start().starts_with('{') {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
            return (String::new(), Vec::new());
        };
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
        let devices = v
            .get("devices")
            .and_then(|d| d.as_array())
            .map(|a| a.iter().filter_map(|d| d.get("name")?.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        return (kind, devices);
    }
    let mut kind = String::new();
    let mut devices = Vec::new();
    let mut in_devices = false;
    // Column of the list's dashes, and of the first key of the item being read.
    let mut dash_col: Option<usize> = None;
    let mut key_col: Option<usize> = None;
    for raw in text.lines() {
        let line = raw.split(" #").next().unwrap_or_default().trim_end();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') || body == "---" || body == "..." {
            continue;
        }
        let col = line.len() - body.len();
        if col == 0 && !body.starts_with('-') {
            let (key, value) = body.split_once(':').unwrap_or((body, ""));
            in_devices = key.trim() == "devices";
            dash_col = None;
            key_col = None;
            if key.trim() == "kind" {
                kind = unquote(value);
            }
            continue;
        }
        if !in_devices {
            continue;
        }
        if let Some(after) = body.strip_prefix('-').filter(|a| a.is_empty() || a.starts_with(' ')) {
            if dash_col.is_none() {
                dash_col = Some(col);
            }
            if dash_col == Some(col) {
                let rest = after.trim_start();
                key_col = Some(col + 1 + (after.len() - rest.len()));
                if let Some(name) = key_value(rest, "name") {
                    devices.push(name);
                }
                continue;
            }
        }
        if key_col == Some(col)
            && let Some(name) = key_value(body, "name")
        {
            devices.push(name);
        }
    }
    (kind, devices)
}

/// The value of `key: value` on this line, unquoted.
fn key_value(body: &str, key: &str) -> Option<String> {
    let (k, v) = body.split_once(':')?;
    (k.trim() == key && !v.trim().is_empty()).then(|| unquote(v))
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let quoted = v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    if quoted { v[1..v.len() - 1].to_string() } else { v.to_string() }
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

    #[test]
    fn nvidia_ctks_own_output_gives_its_kind_and_device_names() {
        // As `nvidia-ctk cdi generate` writes it (keys sorted: `kind` comes after `devices`).
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/hosts/nvidia-8/var/run/cdi/nvidia.yaml"
        ))
        .expect("recorded spec");
        let (kind, devices) = parse(&text);
        assert_eq!(kind, NVIDIA_GPU);
        assert_eq!(devices, ["0", "GPU-9531985d-5d9d-49f8-9818-e811892f902b"]);
    }

    #[test]
    fn names_are_read_from_items_only_whatever_the_indentation() {
        let text = "---\nkind: 'nvidia.com/gpu'   # GPUs\ncontainerEdits:\n  env:\n  - name: NOT_A_DEVICE\n\
                    devices:\n  - name: \"0\"\n    containerEdits:\n      env: [\"A=1\"]\n      deviceNodes:\n\
                    \x20     - path: /dev/nvidia0\n        name: not-this-either\n  -   containerEdits: {}\n\
                    \x20     name: all\n# the end\n";
        assert_eq!(parse(text), (NVIDIA_GPU.to_string(), vec!["0".to_string(), "all".to_string()]));
    }

    #[test]
    fn json_specs_are_parsed_and_garbage_gives_nothing() {
        let json =
            r#"{"cdiVersion":"0.6.0","kind":"vendor.com/device","devices":[{"name":"a"},{"name":"b"}]}"#;
        assert_eq!(parse(json), ("vendor.com/device".to_string(), vec!["a".to_string(), "b".to_string()]));
        assert_eq!(parse("{not json"), (String::new(), Vec::new()));
        assert_eq!(parse("just: text\n"), (String::new(), Vec::new()));
    }

    #[test]
    fn only_yaml_and_json_files_in_the_spec_folders_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cdi = dir.path().join("etc/cdi");
        std::fs::create_dir_all(&cdi).expect("mkdir");
        std::fs::write(
            cdi.join("nvidia.yaml"),
            "kind: nvidia.com/gpu\ndevices:\n- name: \"1\"\n- name: all\n",
        )
        .expect("write");
        std::fs::write(cdi.join("other.yml"), "kind: nvidia.com/gpu\ndevices:\n- name: \"7\"\n")
            .expect("write");
        std::fs::write(cdi.join("x.json"), r#"{"kind":"example.com/x","devices":[{"name":"d"}]}"#)
            .expect("write");
        let root = HostRoot::at(dir.path());
        let dirs: Vec<String> = SPEC_DIRS.iter().map(|d| d.to_string()).collect();
        assert_eq!(device_names(&root, &dirs), ["example.com/x=d", "nvidia.com/gpu=1", "nvidia.com/gpu=all"]);
        let specs = find_specs(&root, &[]);
        assert_eq!(specs.len(), 2, "{specs:?}");
        assert!(specs.iter().any(|s| s.path == "/etc/cdi/nvidia.yaml" && s.is_nvidia_gpu()));
    }
}
