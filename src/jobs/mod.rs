//! Jobs: detached runs inside an environment whose output and status live on the host.
//!
//! Each job has a folder `<project>/.berth/jobs/<name>/` (inside: `/berth/state/jobs/<name>/`):
//! `meta.json` (written by berth: command, start time, GPUs), `log` (combined output), `pid`
//! (the job's process group inside the container), `exit` (its status, written when it ends) and
//! `oom-before` / `oom-after` (the memory cgroup's OOM-kill count around the run). A job without
//! `exit` whose container stopped after it started is interrupted, never "running forever". A job
//! folder another user could have written is untrusted (see `private`): reported, never believed.

pub mod store;

pub use store::{JobMeta, JobRecord, JobState, jobs_dir, list, running};

pub mod diagnose;
pub mod private;
pub mod view;
pub mod wrapper;
