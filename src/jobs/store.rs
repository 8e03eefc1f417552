//! Reading and writing job folders (see the module doc of `jobs`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What berth records when it starts a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMeta {
    pub name: String,
    pub cmd: Vec<String>,
    /// RFC 3339, UTC.
    pub started: String,
    /// The GPUs the job sees, as the container numbers them (empty: all of the environment's).
    #[serde(default)]
    pub gpus: Vec<String>,
    /// The container the job runs in.
    pub container_id: String,
    /// That container's start time (engine clock) when the job began: a different one later
    /// means the container restarted under the job. Comparing the engine's clock with the
    /// host's would misjudge a VM whose clock drifts.
    #[serde(default)]
    pub container_started: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Exited,
    /// The container stopped (or restarted) while the job ran.
    Interrupted,
    /// No exit status, yet no process of it is left in the running container: its wrapper could
    /// not write the status, or never started (`jobs::view::view` finds this, and why).
    Lost,
    /// Its folder could have been written by another user: nothing in it is believed.
    Untrusted,
}

/// A job as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub meta: JobMeta,
    pub dir: PathBuf,
    pub exit_code: Option<i64>,
    /// RFC 3339 from the `exit` file's modification time.
    pub finished: Option<String>,
    /// The OOM-kill counter rose while the job ran.
    pub oom: bool,
    /// Why the folder cannot be believed (`private::untrusted`); then only the name is known.
    pub untrusted: Option<String>,
}

impl JobRecord {
    /// The job's state, given whether its container is running and when it (re)started.
    pub fn state(&self, container_running: bool, container_started: Option<&str>) -> JobState {
        if self.untrusted.is_some() {
            return JobState::Untrusted;
        }
        if self.exit_code.is_some() {
            return JobState::Exited;
        }
        if !container_running {
            return JobState::Interrupted;
        }
        let restarted = match (&self.meta.container_started, container_started) {
            // Exact (nanoseconds): a stop and start within the same second is still a restart.
            (Some(then), Some(now)) => then != now,
            // Jobs recorded without it: fall back to comparing times, to the second.
            _ => container_started
                .filter(|s| s.len() >= 19)
                .is_some_and(|s| format!("{}Z", &s[..19]).as_str() > self.meta.started.as_str()),
        };
        if restarted { JobState::Interrupted } else { JobState::Running }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }
}

/// `<project>/.berth/jobs`.
pub fn jobs_dir(project_dir: &Path) -> PathBuf {
    crate::state::jobs(project_dir)
}

/// Every job of a project, oldest first.
pub fn list(project_dir: &Path) -> Vec<JobRecord> {
    let Ok(entries) = std::fs::read_dir(jobs_dir(project_dir)) else { return Vec::new() };
    let mut jobs: Vec<JobRecord> = entries.filter_map(|e| e.ok()).filter_map(|e| read(&e.path())).collect();
    jobs.sort_by(|a, b| a.meta.started.cmp(&b.meta.started).then(a.meta.name.cmp(&b.meta.name)));
    jobs
}

/// Names of the jobs that are still running, given the container's state.
pub fn running(project_dir: &Path, container_running: bool, container_started: Option<&str>) -> Vec<String> {
    list(project_dir)
        .into_iter()
        .filter(|j| j.state(container_running, container_started) == JobState::Running)
        .map(|j| j.meta.name)
        .collect()
}

fn read(dir: &Path) -> Option<JobRecord> {
    if let Some(why) = super::private::untrusted(dir) {
        let name = dir.file_name()?.to_string_lossy().into_owned();
        let meta = JobMeta {
            name,
            cmd: Vec::new(),
            started: String::new(),
            gpus: Vec::new(),
            container_id: String::new(),
            container_started: None,
        };
        let dir = dir.to_path_buf();
        return Some(JobRecord {
            meta,
            dir,
            exit_code: None,
            finished: None,
            oom: false,
            untrusted: Some(why),
        });
    }
    let meta: JobMeta = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).ok()?).ok()?;
    let exit_path = dir.join("exit");
    let exit_code = std::fs::read_to_string(&exit_path).ok().and_then(|s| s.trim().parse().ok());
    let finished = exit_code.and_then(|_| std::fs::metadata(&exit_path).ok()?.modified().ok()).map(rfc3339);
    let count =
        |f: &str| std::fs::read_to_string(dir.join(f)).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let oom = matches!((count("oom-before"), count("oom-after")), (Some(a), Some(b)) if b > a);
    Some(JobRecord { meta, dir: dir.to_path_buf(), exit_code, finished, oom, untrusted: None })
}

/// Format a time as RFC 3339 in UTC (seconds precision), without a date crate.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_as_rfc3339() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_job_without_exit_is_interrupted_once_its_container_stopped_or_restarted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = dir.path().join(".berth/jobs/train");
        std::fs::create_dir_all(&job).expect("mkdir");
        let meta = JobMeta {
            name: "train".into(),
            cmd: vec!["python".into()],
            started: "2026-11-23T10:00:00Z".into(),
            gpus: vec![],
            container_id: "abc".into(),
            container_started: None,
        };
        std::fs::write(job.join("meta.json"), serde_json::to_string(&meta).expect("json")).expect("write");
        let rec = &list(dir.path())[0];
        assert_eq!(rec.state(true, Some("2026-11-23T09:00:00Z")), JobState::Running);
        assert_eq!(rec.state(false, Some("2026-11-23T09:00:00Z")), JobState::Interrupted);
        assert_eq!(rec.state(true, Some("2026-11-23T11:00:00Z")), JobState::Interrupted);
        assert_eq!(running(dir.path(), true, None), vec!["train".to_string()]);
        let mut pinned = rec.clone();
        pinned.meta.container_started = Some("2026-11-23T09:59:00Z".into());
        // The engine's own start time decides, whatever the host clock says.
        assert_eq!(pinned.state(true, Some("2026-11-23T09:59:00Z")), JobState::Running);
        assert_eq!(pinned.state(true, Some("2026-11-23T10:30:00Z")), JobState::Interrupted);
        std::fs::write(job.join("exit"), "137\n").expect("write");
        std::fs::write(job.join("oom-before"), "0\n").expect("write");
        std::fs::write(job.join("oom-after"), "1\n").expect("write");
        let rec = &list(dir.path())[0];
        assert_eq!((rec.exit_code, rec.oom), (Some(137), true));
        assert_eq!(rec.state(false, None), JobState::Exited);
    }
}
