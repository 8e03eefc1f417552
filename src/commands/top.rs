//! `berth top`: per GPU, the processes on it, their memory and user, the environment and job
//! each belongs to, and the GPU's leases (marked when used without one, or leased and idle).
//! The reading is `environment::gpu_use`; what could not be seen is said on stderr and, per
//! process, in `--json`.

use super::Context;
use super::ExitStatus;
use crate::doctor::facts::parse_id;
use crate::environment::gpu_use;
use crate::host::{HostFacts, HostRoot, HostUser};
use crate::top::{self, Viewer};

pub async fn run(ctx: &Context, all_users: bool) -> anyhow::Result<ExitStatus> {
    let root = HostRoot::from_env();
    let host = HostFacts::probe(&root);
    let viewer_uid = if root.is_recorded() {
        std::fs::read_to_string(root.dir().join("id.txt")).ok().and_then(|t| parse_id(&t)).map(|u| u.uid)
    } else {
        None
    };
    let viewer = Viewer { uid: viewer_uid.unwrap_or_else(|| HostUser::current().uid), all_users };
    let mut usage = gpu_use::collect(&root, &host, viewer).await;
    for line in &usage.unseen {
        ctx.out.warn(line);
    }
    if usage.gpus.is_empty() {
        if ctx.out.json {
            ctx.out.json(&usage.gpus)?;
            return Ok(ExitStatus::SUCCESS);
        }
        ctx.out.status("no GPUs to show on this host");
        return Ok(ExitStatus::SUCCESS);
    }
    let now = crate::lease::now();
    match crate::lease::Store::list_if_any(now) {
        Ok(listing) => top::mark_leases(&mut usage.gpus, &listing.leases, now),
        Err(e) => ctx.out.warn(format!("cannot read the GPU leases ({e:#}); they are not shown")),
    }
    if ctx.out.json {
        ctx.out.json(&usage.gpus)?;
        return Ok(ExitStatus::SUCCESS);
    }
    ctx.out.data(top::render(&usage.gpus));
    Ok(ExitStatus::SUCCESS)
}
