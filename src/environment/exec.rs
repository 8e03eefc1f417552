//! Running a command in the project's environment (`berth exec`, `shell`, `code`, `run`):
//! brought up first when it is not running, in the folder inside that matches where the user
//! stands.

use std::path::Path;

use super::{Context, Project, session_env, up};
use crate::engine::{self, Engine, exec::ExecRequest};
use crate::error::{Code, fail};
use crate::spec::Spec;

/// The command of `berth VERB [OPTIONS] -- CMD` as clap left it, checked: present, and not an
/// option berth does not have. Everything from the first word clap does not know is the
/// command, so `berth run -d -- jupyter lab` (docker's habit) would run `-d`; no program's name
/// starts with `-`, so such a word is always a mistyped option.
pub fn check_command(verb: &str, cmd: &[String]) -> anyhow::Result<()> {
    let example = format!("berth {verb} -- python train.py");
    let Some(first) = cmd.first() else {
        return Err(fail(
            Code::BadInput,
            "no command given",
            format!("put the command after `--`: {example}"),
        ));
    };
    if first.starts_with('-') {
        let detached = if verb == "run" && matches!(first.as_str(), "-d" | "--detach") {
            " (a job always runs detached: it outlives the terminal, and `berth logs -f` follows it)"
        } else {
            ""
        };
        return Err(fail(
            Code::BadInput,
            format!("`{first}` is not an option of berth {verb}{detached}; nothing was started"),
            format!(
                "options go before `--` and the command after it (`berth {verb} --help` lists them): {example}"
            ),
        ));
    }
    Ok(())
}

/// Run `cmd` in the project's environment (bringing it up first if needed).
pub async fn run_in(ctx: &Context, cmd: Vec<String>, stdin: bool, tty: bool) -> anyhow::Result<i32> {
    let project = Project::load(ctx)?;
    let engine = Engine::connect().await?;
    let mut c = project.container(&engine).await?;
    if !c.as_ref().is_some_and(engine::is_running) {
        up::apply(ctx, &project, &engine, up::UpOptions::default()).await?;
        c = project.container(&engine).await?;
    }
    // The caller's part first (it takes away a socket forwarding-off left behind before the
    // image's shell runs to find the Python environment); in the list the Python environment's
    // variables come first, so a `from-host` variable of the same name wins.
    let session = session_env(&project, &ctx.out);
    let mut env = match &c {
        Some(c) => super::python::session_env(&project, &engine, c, &ctx.out).await,
        None => Vec::new(),
    };
    env.extend(session);
    let req = ExecRequest {
        container: project.container.clone(),
        cmd,
        env,
        user: None,
        workdir: workdir_for(&project.spec, &ctx.dir),
        stdin,
        tty,
    };
    let code = engine.exec(&req).await?;
    Ok(code.clamp(0, 255) as i32)
}

/// The folder inside that matches where the user stands, when it lies in a mounted folder.
pub fn workdir_for(spec: &Spec, here: &Path) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_mistyped_option_is_never_run_as_the_command() {
        assert!(check_command("run", &words(&["jupyter", "lab", "--ip=0.0.0.0"])).is_ok());
        let detach = format!(
            "{:#}",
            check_command("run", &words(&["-d", "--", "jupyter", "lab"])).expect_err("refused")
        );
        assert!(
            detach.contains("`-d` is not an option of berth run (a job always runs detached"),
            "{detach}"
        );
        let user =
            format!("{:#}", check_command("exec", &words(&["-u", "root", "--", "id"])).expect_err("refused"));
        assert!(user.contains("`-u` is not an option of berth exec;"), "{user}");
        assert!(!user.contains("detached"), "{user}");
        assert!(check_command("exec", &[]).is_err());
    }
}
