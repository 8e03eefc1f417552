//! `berth jobs`: the project's jobs with state, exit code and diagnosis (`--json`: an array).

use super::ExitStatus;
use super::{Context, Project};
use crate::jobs::view::views;
use crate::output::table;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let (project, engine) = Project::existing(ctx).await?;
    let (list, _) = views(&project, &engine).await?;
    if ctx.out.json {
        ctx.out.json(&list)?;
        return Ok(ExitStatus::SUCCESS);
    }
    if list.is_empty() {
        ctx.out.status("no jobs yet: `berth run -- CMD` starts one");
        return Ok(ExitStatus::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|j| {
            vec![
                j.name.clone(),
                serde_json::to_value(j.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                j.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                j.started.clone(),
                j.finished.clone().unwrap_or_else(|| "-".into()),
                j.diagnosis.as_ref().map(|d| d.cause.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    ctx.out.data(table(&["NAME", "STATE", "EXIT", "STARTED", "FINISHED", "DIAGNOSIS"], &rows));
    Ok(ExitStatus::SUCCESS)
}
