//! The Python environment's variables for berth's own sessions (`exec`, `run`, `shell`, `code`):
//! found once per container start by running `crate::python`'s snippet inside, recorded in
//! `.berth/python.json`, then passed on every exec as plain variables (no shell per command).

use super::Project;
use crate::engine::{Container, Engine, exec::ExecRequest};
use crate::output::Printer;
use crate::python::{self, Resolved};

/// The record for `c` as it runs now: read, or found (one exec) and written.
pub async fn resolved(project: &Project, engine: &Engine, c: &Container, out: &Printer) -> Option<Resolved> {
    let started = c.started_at.clone().unwrap_or_default();
    let choice = project.spec.python_env.as_deref();
    let record = crate::state::python_record(&project.spec.project_dir);
    if let Ok(text) = std::fs::read(&record)
        && let Ok(r) = serde_json::from_slice::<Resolved>(&text)
        && r.holds(&c.id, &started, choice)
    {
        return Some(r);
    }
    let req =
        ExecRequest { container: c.id.clone(), cmd: python::resolve_argv(choice), ..Default::default() };
    let found = match engine.exec_capture(&req).await {
        Ok(captured) if captured.code == 0 => python::changed_vars(&captured.stdout),
        _ => None,
    };
    let Some((env, vars)) = found else {
        out.warn(format!(
            "could not tell which Python environment {} has (its sh or `env -0` failed): none is activated",
            project.container
        ));
        return None;
    };
    if let Some(named) = choice.filter(|c| *c != "none" && env == "none") {
        out.warn(format!(
            "{}: [python] env = \"{named}\" is neither a venv (pyvenv.cfg) nor a conda environment \
             (conda-meta/) in {}: no Python environment is activated",
            project.spec.file.display(),
            project.container
        ));
    }
    let r = Resolved {
        container_id: c.id.clone(),
        started_at: started,
        choice: choice.map(str::to_string),
        env,
        vars,
    };
    // Best effort: without the record the next exec finds the variables again.
    if let Ok(json) = serde_json::to_vec_pretty(&r) {
        let _ = crate::fsutil::write_atomic(&record, &json, 0o600);
    }
    Some(r)
}

/// The variables every exec of berth's own sessions gets (empty when none is activated).
pub async fn session_env(project: &Project, engine: &Engine, c: &Container, out: &Printer) -> Vec<String> {
    resolved(project, engine, c, out).await.map(|r| r.vars).unwrap_or_default()
}

/// Which `python` each of berth's paths gets in `c`, asked inside: (`exec` and jobs, `shell`).
pub async fn which(
    project: &Project,
    engine: &Engine,
    c: &Container,
    out: &Printer,
) -> anyhow::Result<(String, String)> {
    let env = session_env(project, engine, c, out).await;
    let mut found = Vec::new();
    for cmd in [python::which_argv(), python::shell_which_argv()] {
        let req = ExecRequest { container: c.id.clone(), cmd, env: env.clone(), ..Default::default() };
        let captured = engine.exec_capture(&req).await?;
        found.push(captured.stdout.lines().last().unwrap_or("none").trim().to_string());
    }
    let shell = found.pop().unwrap_or_default();
    Ok((found.pop().unwrap_or_default(), shell))
}
