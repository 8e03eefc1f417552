//! AMD's side of the host: `/dev/kfd` and the render nodes, the groups that own them and whether
//! the user is in them, and consumer gfx targets ROCm's PyTorch wheels lack.

use super::engine_checks::{can_open, group_name, listed_in};
use super::facts::DoctorFacts;
use super::{Check, Status};
use crate::host::{DeviceNode, Gpu};
use crate::image::compat::gfx_advice;

/// The nodes AMD containers get: `/dev/kfd` and each GPU's render node.
fn amd_nodes<'a>(f: &'a DoctorFacts, gpus: &[&'a Gpu]) -> Vec<&'a DeviceNode> {
    f.host.kfd.iter().chain(gpus.iter().filter_map(|g| g.render_node.as_ref())).collect()
}

pub fn amd_devices(f: &DoctorFacts, gpus: &[&Gpu]) -> Check {
    if f.host.kfd.is_none() {
        return Check::fail(
            "amd-devices",
            format!("{} AMD GPU(s) in the KFD topology, but /dev/kfd is missing", gpus.len()),
            "load the driver (`sudo modprobe amdgpu`) and check `ls -l /dev/kfd`",
        );
    }
    if let Some(g) = gpus.iter().find(|g| g.render_node.is_none()) {
        return Check::fail(
            "amd-devices",
            format!(
                "GPU {} ({}) has no render node under /dev/dri",
                g.index,
                g.gfx_target.as_deref().unwrap_or("?")
            ),
            "let udev create it (`sudo udevadm trigger`), then check `ls -l /dev/dri`",
        );
    }
    // `/dev/kfd, renderD129 and renderD130 (group render, 110)`: nodes grouped by their group.
    let mut by_gid: Vec<(u32, Vec<String>)> = Vec::new();
    for n in amd_nodes(f, gpus) {
        let name = n.path.rsplit('/').next().unwrap_or(&n.path).to_string();
        let name = if n.path == "/dev/kfd" { n.path.clone() } else { name };
        match by_gid.iter_mut().find(|(g, _)| *g == n.gid) {
            Some((_, names)) => names.push(name),
            None => by_gid.push((n.gid, vec![name])),
        }
    }
    let parts: Vec<String> = by_gid
        .iter()
        .map(|(gid, names)| format!("{} (group {}, {gid})", names.join(", "), group_name(&f.groups, *gid)))
        .collect();
    Check::ok("amd-devices", parts.join("; "))
}

pub fn amd_groups(f: &DoctorFacts, gpus: &[&Gpu]) -> Option<Check> {
    f.host.kfd.as_ref()?;
    let u = &f.user;
    let mut missing: Vec<u32> =
        amd_nodes(f, gpus).iter().filter(|n| !can_open(n, u)).map(|n| n.gid).collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        let who = if u.uid == 0 {
            "you are root".to_string()
        } else {
            "you can open /dev/kfd and the render nodes".into()
        };
        return Some(Check::ok("amd-groups", who));
    }
    let names: Vec<String> = missing.iter().map(|g| group_name(&f.groups, *g)).collect();
    let rootless = f.engine.facts().is_some_and(|e| e.rootless);
    let consequence = if rootless {
        "a rootless engine can only pass groups you have, so containers cannot open the GPUs"
    } else {
        "berth's containers still get these groups by number; host tools (rocminfo, rocm-smi) fail"
    };
    let detail = format!("you are not in group {} (gid {}): {consequence}", names.join(", "), join(&missing));
    let pending = missing.iter().all(|g| listed_in(&f.groups, *g, &u.name));
    let fix = if pending {
        format!("you were added already: `newgrp {}` or log in again", names[0])
    } else {
        format!("`sudo usermod -aG {} {}`, then log in again", names.join(","), u.name)
    };
    let status = if rootless { Status::Fail } else { Status::Warn };
    Some(Check { id: "amd-groups", status, detail, fix: Some(fix) })
}

fn join(gids: &[u32]) -> String {
    gids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// The advice `up` gives an environment with every discrete GPU (`devices = "all"`, the
/// default), from the same rule (`image::compat::gfx_advice`); the image is unknown here.
pub fn amd_gfx(f: &DoctorFacts, gpus: &[&Gpu]) -> Option<Check> {
    let listed: Vec<String> = gpus
        .iter()
        .filter_map(|g| {
            let t = g.gfx_target.as_deref()?;
            Some(format!("GPU {} {t}{}", g.index, if g.integrated { " (integrated)" } else { "" }))
        })
        .collect();
    if listed.is_empty() {
        return None;
    }
    let discrete: Vec<&Gpu> = gpus.iter().copied().filter(|g| !g.integrated).collect();
    match gfx_advice(&f.host, &discrete, None, &[]) {
        None => {
            Some(Check::ok("amd-gfx", format!("{}: built into ROCm's PyTorch wheels", listed.join(", "))))
        }
        Some(a) => Some(Check::warn("amd-gfx", a.detail, a.fix)),
    }
}
