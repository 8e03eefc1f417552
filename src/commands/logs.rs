//! `berth logs [N] [-f]`: show a job's log (the latest job by default), read from the host.
//!
//! With `-f` it follows the log until the job ends and then exits with the job's exit code
//! (or 1 when the job was interrupted), printing the diagnosis when there is one.

use super::ExitStatus;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use super::{Context, Project};
use crate::jobs::view::{ContainerState, JobView, find, view};
use crate::jobs::{self, JobState};

/// Returns the exit code berth should end with.
pub async fn run(ctx: &Context, name: Option<String>, follow: bool) -> anyhow::Result<ExitStatus> {
    let (project, engine) = Project::existing(ctx).await?;
    let job = find(&project, name.as_deref())?;
    let path = job.log_path();
    let mut offset = 0u64;
    let mut state =
        ContainerState::read(&engine, &project, project.environment(&engine).await?.as_ref()).await;
    let mut last_check = Instant::now();
    loop {
        offset = copy_new(&path, offset, ctx)?;
        let record = jobs::list(&project.spec.project_dir).into_iter().find(|j| j.meta.name == job.meta.name);
        let Some(record) = record else { return Ok(ExitStatus::SUCCESS) };
        let v = view(&record, &state);
        if !follow || v.state != JobState::Running {
            // The last bytes may have landed between the copy and the state check.
            copy_new(&path, offset, ctx)?;
            return Ok(ExitStatus::from(finish(ctx, &v, follow)));
        }
        if last_check.elapsed() > Duration::from_secs(1) {
            state =
                ContainerState::read(&engine, &project, project.environment(&engine).await?.as_ref()).await;
            last_check = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn finish(ctx: &Context, v: &JobView, follow: bool) -> i32 {
    if let Some(d) = &v.diagnosis {
        ctx.out.warn(format!("job {}: {} — {}", v.name, d.cause, d.fix));
    }
    if !follow {
        return 0;
    }
    match (v.state, v.exit_code) {
        (JobState::Exited, Some(code)) => code.clamp(0, 255) as i32,
        _ => 1,
    }
}

/// Print what was appended to the log since `offset`; returns the new offset.
fn copy_new(path: &std::path::Path, offset: u64, ctx: &Context) -> anyhow::Result<u64> {
    let Ok(mut f) = std::fs::File::open(path) else { return Ok(offset) };
    f.seek(SeekFrom::Start(offset))?;
    // Bounded chunks, passed on as bytes: logs can be large, and a chunk may end inside a
    // multi-byte character that the next one completes.
    let mut buf = vec![0u8; 1 << 16];
    let mut offset = offset;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(offset);
        }
        ctx.out.data_bytes(&buf[..n]);
        offset += n as u64;
    }
}
