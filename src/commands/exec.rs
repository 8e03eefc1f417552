//! `berth exec [-i] [-t] -- CMD`: run one command inside, stream its output, return its code.
//!
//! Like `docker exec`: stdin is forwarded with `-i`; a TTY is used with `-t`, or by default
//! only when stdin and stdout are both terminals (then stdin is forwarded too), so captured
//! output never carries `\r`. The environment is brought up first when it is not running.

use std::io::IsTerminal;
use std::path::Path;

use super::{Context, Project, host_env, up};
use crate::engine::{self, Engine, exec::ExecRequest};
use crate::error::{Code, fail};
use crate::spec::Spec;

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub interactive: bool,
    pub tty: bool,
    pub cmd: Vec<String>,
}

/// Returns the command's exit code.
pub async fn run(ctx: &Context, opts: ExecOptions) -> anyhow::Result<i32> {
    if opts.cmd.is_empty() {
        return Err(fail(
            Code::BadInput,
            "no command given",
            "put the command after `--`: berth exec -- python train.py",
        ));
    }
    let auto_tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let tty = opts.tty || auto_tty;
    let stdin = opts.interactive || (auto_tty && !opts.tty);
    run_in(ctx, opts.cmd, stdin, tty).await
}

/// Run `cmd` in the project's environment (bringing it up first if needed).
pub async fn run_in(ctx: &Context, cmd: Vec<String>, stdin: bool, tty: bool) -> anyhow::Result<i32> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let running = matches!(project.container(&engine).await?, Some(c) if engine::is_running(&c));
    if !running {
        up::apply(ctx, &project, &engine, up::UpOptions::default()).await?;
    }
    let req = ExecRequest {
        container: project.container.clone(),
        cmd,
        env: host_env(&project.spec, &ctx.out),
        user: None,
        workdir: workdir_for(&project.spec, &ctx.dir),
        stdin,
        tty,
    };
    let code = engine.exec(&req).await?;
    Ok(code.clamp(0, 255) as i32)
}

/// The folder inside that matches where the user stands, when it lies in a mounted folder.
pub(super) fn workdir_for(spec: &Spec, here: &Path) -> Option<String> {
    let here = here.canonicalize().ok()?;
    let mut mounts: Vec<(&Path, String)> =
        spec.mounts.iter().map(|m| (m.source.as_path(), m.target.clone())).collect();
    if mounts.is_empty() {
        mounts.push((spec.project_dir.as_path(), spec.workdir.clone()));
    }
    mounts
        .into_iter()
        .filter_map(|(src, dst)| {
            let rel = here.strip_prefix(src).ok()?;
            let depth = src.components().count();
            let inside = if rel.as_os_str().is_empty() {
                dst
            } else {
                format!("{}/{}", dst.trim_end_matches('/'), rel.display())
            };
            Some((depth, inside))
        })
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, inside)| inside)
}
