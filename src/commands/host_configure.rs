//! `berth host configure`: the usual daemon.json changes, made safely, and what applying them
//! would interrupt.
//!
//! Order: follow a symbolic link to its file, read and parse (a file that does not parse is
//! refused, never overwritten), merge, ask the engine what applying would interrupt; then, under
//! the file's lock, read and merge again (another run may have written meanwhile), back up and
//! write atomically, the original re-read just before the rename (`daemon_json`); show the diff
//! and say how to apply it: a reload when every change is reloadable, else a restart, naming the
//! running containers it stops (unless live-restore is on) and the berth jobs it interrupts.

use super::ExitStatus;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Context;
use crate::daemon_json::{self, Changes};
use crate::engine::facts::EngineFacts;
use crate::engine::{self, Engine};
use crate::environment::engine_within;
use crate::error::{Code, fail};
use crate::output::count;
use crate::plan::{LABEL_MANAGED, LABEL_NAME, LABEL_PROJECT};

#[derive(Debug, Clone)]
pub struct ConfigureOptions {
    pub config: PathBuf,
    pub changes: Changes,
    pub dry_run: bool,
    /// `--idle-timer`: install what runs `berth idle --check` (see `crate::idle::timer`).
    pub idle_timer: Option<IdleTimer>,
}

#[derive(Debug, Clone)]
pub struct IdleTimer {
    pub scheduler: crate::idle::timer::Scheduler,
    /// Default: the scheduler's own folder.
    pub dir: Option<PathBuf>,
    /// Default: this berth binary.
    pub berth: Option<PathBuf>,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub file: String,
    /// The file written when `file` is a symbolic link (the link itself stays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub dry_run: bool,
    /// One line per setting that changes (empty: the file already says it all).
    pub changes: Vec<String>,
    pub diff: String,
    pub backup: Option<String>,
    pub written: bool,
    pub apply: Apply,
    /// `--idle-timer`'s files, when asked for too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timer: Option<crate::idle::timer::Installed>,
}

/// How to make the engine use the new file, and what that interrupts.
#[derive(Debug, Serialize)]
pub struct Apply {
    pub command: String,
    pub restart: bool,
    /// `None` when the engine could not be asked.
    pub engine: Option<RunningNow>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RunningNow {
    pub live_restore: bool,
    /// Running containers (name), whoever made them.
    pub running: Vec<String>,
    /// Those of them whose restart policy brings them back after a restart.
    pub come_back: Vec<String>,
    /// Running berth jobs as `environment/job`.
    pub jobs: Vec<String>,
}

pub async fn run(ctx: &Context, opts: ConfigureOptions) -> anyhow::Result<ExitStatus> {
    // Checked before daemon.json is touched (a refused timer changes nothing), written after it.
    let mut timer = opts.idle_timer.as_ref().map(|t| install_idle_timer(t, true)).transpose()?;
    if let (Some(t), false, true) = (&opts.idle_timer, opts.dry_run, opts.changes.is_empty()) {
        timer = Some(install_idle_timer(t, false)?);
    }
    if opts.changes.is_empty() {
        if let Some(t) = &timer {
            report_idle_timer(ctx, t)?;
            return Ok(ExitStatus::SUCCESS);
        }
        return Err(fail(
            Code::BadInput,
            "nothing to change",
            "give at least one of --data-root PATH, --registry-mirror URL, --nvidia-runtime, --cdi, --live-restore, \
             --idle-timer",
        ));
    }
    let name = opts.config.display().to_string();
    let path = daemon_json::resolve(&opts.config).map_err(link_error)?;
    let mut merged = merge(&path, &name, &opts.changes, read(&path)?)?;

    let engine = engine_within(10).await.ok();
    let facts = engine.as_ref().map(|(_, f)| f);
    let mut apply = advice(&opts.changes, facts);
    if let Some((engine, facts)) = &engine {
        // Advice only: a listing that fails must not stop the file from being written.
        // A wedged container (typical when daemon.json needs fixing) must not hang the command.
        apply.engine = tokio::time::timeout(std::time::Duration::from_secs(10), running_now(engine, facts))
            .await
            .ok()
            .and_then(Result::ok);
    }

    let mut backup = None;
    let mut written = false;
    if !merged.changes.is_empty() && !opts.dry_run {
        (merged, backup) = write_locked(ctx, &path, &name, &opts.changes)?;
        written = !merged.changes.is_empty();
    }
    let moves_root = merged.changes.iter().any(|c| c.starts_with("data-root"));
    if let (true, Some(new_root)) = (moves_root, merged.new_data_root.as_deref()) {
        let old = facts.map(|f| f.data_root.clone()).filter(|r| !r.is_empty());
        let old = old.or(merged.old_data_root.clone()).unwrap_or_else(|| "/var/lib/docker".into());
        if old != new_root {
            apply.warnings.push(move_warning(&old, new_root));
        }
    }

    let outcome = Outcome {
        file: name,
        target: (path != opts.config).then(|| path.display().to_string()),
        dry_run: opts.dry_run,
        changes: merged.changes,
        diff: merged.diff,
        backup: backup.map(|b| b.display().to_string()),
        written,
        apply,
        idle_timer: match (&opts.idle_timer, opts.dry_run) {
            (Some(t), false) => Some(install_idle_timer(t, false)?),
            _ => timer,
        },
    };
    report(ctx, &outcome)?;
    match &outcome.idle_timer {
        Some(t) if !ctx.out.json => report_idle_timer(ctx, t).map(|()| ExitStatus::SUCCESS),
        _ => Ok(ExitStatus::SUCCESS),
    }
}

fn install_idle_timer(t: &IdleTimer, dry_run: bool) -> anyhow::Result<crate::idle::timer::Installed> {
    let dir = t.dir.clone().unwrap_or_else(|| t.scheduler.default_dir());
    let berth = match &t.berth {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| {
            fail(Code::Failure, format!("cannot tell where berth is: {e}"), "pass --berth-path PATH")
        })?,
    };
    crate::idle::timer::install(t.scheduler, &dir, &berth, dry_run)
}

fn report_idle_timer(ctx: &Context, t: &crate::idle::timer::Installed) -> anyhow::Result<()> {
    if ctx.out.json {
        return ctx.out.json(t);
    }
    for f in &t.files {
        match (f.changed, t.dry_run) {
            (false, _) => ctx.out.status(format!("{} already says this; unchanged", f.path)),
            (true, true) => ctx.out.status(format!("dry run: would write {}:\n{}", f.path, f.contents)),
            (true, false) => ctx.out.status(format!("wrote {}", f.path)),
        }
    }
    ctx.out.status(format!(
        "`berth idle --check` will run as root every {} minutes ({}); to start it: {}",
        crate::idle::timer::EVERY_MINUTES,
        t.scheduler,
        t.activate
    ));
    Ok(())
}

/// How long a second `host configure` waits for the first to finish with the same file; the
/// locked part only reads, merges and writes one small file.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Tries before giving up on a file that something other than berth keeps changing.
const WRITE_TRIES: usize = 3;

/// What merging the changes into one reading of the file gives.
struct Merged {
    /// The text merged from; `None`: the file does not exist.
    original: Option<String>,
    after: String,
    diff: String,
    changes: Vec<String>,
    old_data_root: Option<String>,
    new_data_root: Option<String>,
}

/// Merge `changes` into `original`, the text of `path` (`name` is how the user named it).
fn merge(path: &Path, name: &str, changes: &Changes, original: Option<String>) -> anyhow::Result<Merged> {
    let text = original.as_deref().unwrap_or("");
    let mut map = daemon_json::parse(text).map_err(|e| {
        fail(
            Code::BadInput,
            format!("{name} cannot be changed safely: {e}; berth changed nothing"),
            malformed_hint(path, name),
        )
    })?;
    let indent = daemon_json::indent_of(text);
    let before = daemon_json::render(&map, &indent);
    let old_data_root = map.get("data-root").and_then(|v| v.as_str()).map(str::to_string);
    let changed = daemon_json::apply(&mut map, changes).map_err(|e| {
        fail(Code::BadInput, format!("{name}: {e}; berth changed nothing"), "fix the value and run again")
    })?;
    let after = daemon_json::render(&map, &indent);
    let diff = daemon_json::diff(&before, &after, name, &format!("{name} (new)"));
    let new_data_root = map.get("data-root").and_then(|v| v.as_str()).map(str::to_string);
    Ok(Merged { original, after, diff, changes: changed, old_data_root, new_data_root })
}

/// How to recover a file that does not parse, naming only backups that are there.
fn malformed_hint(path: &Path, name: &str) -> String {
    let fix = format!("fix it by hand first (`python3 -m json.tool {name}` shows where)");
    let backup = match daemon_json::backups(path).as_slice() {
        [] => String::new(),
        [only] => format!(", or put back berth's backup: `sudo cp {} {name}`", only.display()),
        [newest, rest @ ..] => format!(
            ", or put back berth's newest backup: `sudo cp {} {name}` ({} older beside it)",
            newest.display(),
            rest.len()
        ),
    };
    format!("{fix}{backup}; dockerd will not start with this file")
}

/// Under the lock: read the file again, merge, and write, so that a change another run made
/// since the first reading is merged into, never overwritten. Returns the merge that was written
/// (no changes: the file already had them all by then) and the backup.
fn write_locked(
    ctx: &Context,
    path: &Path,
    name: &str,
    changes: &Changes,
) -> anyhow::Result<(Merged, Option<PathBuf>)> {
    let waiting =
        || ctx.out.status(format!("waiting for another `berth host configure` to finish with {name}"));
    let _lock = match daemon_json::lock(path, LOCK_WAIT, waiting) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            return Err(fail(
                Code::Failure,
                format!(
                    "another `berth host configure` is changing {name} and still held its lock after {}s; \
                     berth changed nothing",
                    LOCK_WAIT.as_secs()
                ),
                format!(
                    "run it again once that one has finished (`fuser -v {}` names it; the lock ends with it)",
                    daemon_json::lock_path(path).display()
                ),
            ));
        }
        Err(e) => return Err(write_error(path, &e.into())),
    };
    // Only berth writes under this lock, so these are leftovers of a berth killed mid-write.
    daemon_json::remove_stale_temporaries(path);
    for _ in 0..WRITE_TRIES {
        let merged = merge(path, name, changes, read(path)?)?;
        if merged.changes.is_empty() {
            return Ok((merged, None));
        }
        match daemon_json::write_with_backup(path, merged.original.as_deref(), &merged.after) {
            Ok(backup) => return Ok((merged, backup)),
            Err(e) if e.downcast_ref::<daemon_json::Changed>().is_some() => continue,
            Err(e) => return Err(write_error(path, &e)),
        }
    }
    Err(fail(
        Code::Failure,
        format!("{name} kept changing while berth was writing it; berth changed nothing"),
        "another program is editing it (an editor, nvidia-ctk, configuration management): run again once it is done",
    ))
}

/// A `--config` that is a symbolic link berth cannot follow to a file.
fn link_error(err: daemon_json::LinkError) -> anyhow::Error {
    use daemon_json::LinkError;
    let hint = match &err {
        LinkError::Dangling { link, target } => format!(
            "berth writes the file a link points to and keeps the link: create {} (an empty file will do), \
             or replace the link {} with a file",
            target.display(),
            link.display()
        ),
        LinkError::Loop { link } => format!("point {} at the real file", link.display()),
        LinkError::Io { .. } => "run it as root: `sudo berth host configure ...`".to_string(),
    };
    let code = if matches!(err, LinkError::Io { .. }) { Code::Failure } else { Code::BadInput };
    fail(code, format!("{err}; berth changed nothing"), hint)
}

/// The file's text; `None` when it does not exist yet (berth then creates it).
fn read(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(
            Code::Failure,
            format!("cannot read {}: {e}", path.display()),
            "run it as root: `sudo berth host configure ...`",
        )),
    }
}

fn write_error(path: &Path, err: &anyhow::Error) -> anyhow::Error {
    let dir = path.parent().map(|d| d.display().to_string()).unwrap_or_default();
    let kind = err.chain().find_map(|c| c.downcast_ref::<std::io::Error>()).map(std::io::Error::kind);
    let hint = match kind {
        Some(std::io::ErrorKind::PermissionDenied) => "run it as root: `sudo berth host configure ...` \
            (rootless Docker: --config ~/.config/docker/daemon.json)"
            .to_string(),
        Some(std::io::ErrorKind::NotFound) => {
            format!("the folder {dir} does not exist: is the engine installed here? (`sudo mkdir -p {dir}`)")
        }
        Some(std::io::ErrorKind::StorageFull | std::io::ErrorKind::FileTooLarge) => {
            format!("free some space where {dir} lies (`df -h {dir}`) and run it again")
        }
        Some(std::io::ErrorKind::ReadOnlyFilesystem) => format!("{dir} is on a read-only filesystem"),
        _ => "check the folder's permissions and free space".to_string(),
    };
    fail(
        Code::Failure,
        format!(
            "cannot write {}: {}; it was left as it was, and no backup was kept",
            path.display(),
            err.root_cause()
        ),
        hint,
    )
}

/// The command that applies the changes, and warnings about them.
fn advice(changes: &Changes, facts: Option<&EngineFacts>) -> Apply {
    let rootless = facts.is_some_and(|f| f.rootless);
    let verb = if changes.need_restart() { "restart" } else { "reload" };
    let command = if rootless {
        format!("systemctl --user {verb} docker")
    } else {
        format!("sudo systemctl {verb} docker")
    };
    let mut warnings = Vec::new();
    if changes.cdi {
        match facts.and_then(|f| f.docker_at_least(25, 0)) {
            Some(false) => warnings.push(format!(
                "Docker {} ignores features.cdi: CDI needs Docker 25 or newer (28.3 turns it on by default)",
                facts.map(|f| f.server_version.as_str()).unwrap_or_default()
            )),
            _ if facts.and_then(|f| f.docker_at_least(28, 3)) == Some(true) => warnings
                .push("Docker 28.3 and newer have CDI on already; the setting only makes it explicit".into()),
            _ => {}
        }
    }
    if changes.nvidia_runtime && !on_path("nvidia-container-runtime") {
        warnings.push(
            "nvidia-container-runtime is not installed here: install the NVIDIA Container Toolkit, or \
             containers asking for the nvidia runtime will fail to start"
                .into(),
        );
    }
    Apply { command, restart: changes.need_restart(), engine: None, warnings }
}

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .any(|d| d.join(program).is_file())
}

/// Running containers, which of them come back after a restart, and running berth jobs.
async fn running_now(engine: &Engine, facts: &EngineFacts) -> anyhow::Result<RunningNow> {
    let mut now =
        RunningNow { live_restore: facts.live_restore, running: vec![], come_back: vec![], jobs: vec![] };
    for summary in engine.all_containers(false).await? {
        if summary.state != "running" || summary.id.is_empty() {
            continue;
        }
        let Some(c) = engine.inspect(&summary.id).await? else { continue };
        let name = if c.name.is_empty() { summary.id.clone() } else { c.name.clone() };
        if matches!(c.restart_policy.as_deref(), Some("always" | "unless-stopped")) {
            now.come_back.push(name.clone());
        }
        if engine::label(&c, LABEL_MANAGED) == Some("true")
            && let Some(project) = engine::label(&c, LABEL_PROJECT)
        {
            let env = engine::label(&c, LABEL_NAME).unwrap_or(&name).to_string();
            let started = c.started_at.clone();
            for job in crate::jobs::running(Path::new(project), true, started.as_deref()) {
                now.jobs.push(format!("{env}/{job}"));
            }
        }
        now.running.push(name);
    }
    now.running.sort();
    now.come_back.sort();
    now.jobs.sort();
    Ok(now)
}

fn move_warning(old: &str, new: &str) -> String {
    format!(
        "moving data-root: the images, containers and volumes in {old} stay there and the engine starts \
         empty in {new}. To take them along: `sudo systemctl stop docker docker.socket && sudo rsync -aHAX \
         {old}/ {new}/ && sudo systemctl start docker`, and delete {old} only once everything works"
    )
}

fn report(ctx: &Context, o: &Outcome) -> anyhow::Result<()> {
    if ctx.out.json {
        return ctx.out.json(o);
    }
    let out = &ctx.out;
    if o.changes.is_empty() {
        out.status(format!("{} already has these settings; nothing to do", o.file));
        return Ok(());
    }
    out.data(&o.diff);
    if o.dry_run {
        out.status(format!("dry run: {} was not changed", o.file));
    } else {
        let file = match &o.target {
            Some(target) => {
                out.status(format!("{} is a link to {target}: writing that file, the link stays", o.file));
                target
            }
            None => &o.file,
        };
        match &o.backup {
            Some(b) => out.status(format!("backed up {file} to {b}")),
            None => out.status(format!("{file} did not exist; created it")),
        }
        out.status(format!("wrote {file} ({})", o.changes.join("; ")));
    }
    let a = &o.apply;
    let when = if o.dry_run { "after writing it, apply with" } else { "to apply" };
    out.status(format!("{when}: {}", a.command));
    match (&a.engine, a.restart) {
        (None, _) => out.status("could not reach the engine to list what applying would interrupt"),
        (Some(_), false) => out.status("a reload keeps every container running"),
        (Some(now), true) => restart_consequences(ctx, now),
    }
    for w in &a.warnings {
        out.warn(w);
    }
    Ok(())
}

fn restart_consequences(ctx: &Context, now: &RunningNow) {
    let out = &ctx.out;
    if now.running.is_empty() {
        out.status("a restart interrupts nothing: no container is running");
    } else if now.live_restore {
        out.status(format!(
            "live-restore is on: {} keep running through the restart",
            count(now.running.len(), "running container")
        ));
    } else {
        let stay: Vec<&String> = now.running.iter().filter(|n| !now.come_back.contains(n)).collect();
        out.warn(format!(
            "a restart stops {} (live-restore is off): {}",
            count(now.running.len(), "running container"),
            now.running.join(", ")
        ));
        if !now.come_back.is_empty() {
            out.status(format!("their restart policy starts these again: {}", now.come_back.join(", ")));
        }
        if !stay.is_empty() {
            let names: Vec<&str> = stay.iter().map(|s| s.as_str()).collect();
            out.status(format!("these stay stopped until started by hand: {}", names.join(", ")));
        }
    }
    if !now.jobs.is_empty() {
        out.warn(format!(
            "running berth jobs are interrupted by a restart, even with live-restore: {}",
            now.jobs.join(", ")
        ));
    }
}
