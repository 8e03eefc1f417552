//! The environment as berth manages it: resolving the project (its spec, user and container),
//! planning it against the engine, bringing it up, the guard before anything is removed, and
//! the access announcement. Commands call these steps; they never call each other.
//!
//! Invariant: every change to a container goes through here and `crate::engine`, and only to
//! containers this project's labels say are its own ([`Project::container`]).

pub mod announce;
pub mod build;
pub mod commit;
pub mod exec;
pub mod gpu_use;
pub mod guard;
pub mod python;
pub mod up;

use std::path::PathBuf;

use crate::engine::{self, Container, Engine, Listed};
use crate::error::{Code, fail};
use crate::host::{HostFacts, HostRoot, HostUser};
use crate::output::Printer;
use crate::plan::{self, LABEL_MANAGED, LABEL_PROJECT};
use crate::spec::{self, Spec};

/// Global options, resolved.
#[derive(Debug, Clone)]
pub struct Context {
    /// `-C DIR`, or the current folder.
    pub dir: PathBuf,
    /// Whether `-C DIR` was given (`unpack` writes into it then, instead of `./<name>`).
    pub dir_given: bool,
    pub out: Printer,
}

/// A loaded project: its spec, the user berth acts for and the container name.
#[derive(Debug, Clone)]
pub struct Project {
    pub spec: Spec,
    pub user: HostUser,
    pub container: String,
    /// `berth.toml` is missing: the project was found through its container's labels and its
    /// spec holds only the name (see [`Project::existing`]).
    pub from_labels: bool,
}

impl Project {
    pub fn load(ctx: &Context) -> anyhow::Result<Project> {
        Project::load_with(ctx, spec::load)
    }

    /// For commands that act on an existing environment: files the spec names (datasets,
    /// requirements) need not exist right now.
    pub fn load_existing(ctx: &Context) -> anyhow::Result<Project> {
        Project::load_with(ctx, spec::load_existing)
    }

    fn load_with(
        ctx: &Context,
        load: fn(&std::path::Path) -> Result<Spec, spec::SpecError>,
    ) -> anyhow::Result<Project> {
        let file = spec::find(&ctx.dir)?;
        // One project, one identity: reached through a symlink or not, the path is the same.
        let file = file.canonicalize().unwrap_or(file);
        let spec = load(&file)?;
        let user = HostUser::current();
        // Folders an older berth left open to other users are closed on the next command.
        crate::jobs::private::tighten(
            &spec.project_dir,
            crate::jobs::private::Sharing::of(&spec.user, &user),
            user.uid,
        );
        let container = plan::container_name(&user.name, &spec.name, &spec.project_dir);
        Ok(Project { spec, user, container, from_labels: false })
    }

    /// For commands that act on an existing environment, with the engine: like
    /// [`Project::load_existing`], and when the folder's `berth.toml` is gone (deleted) or
    /// cannot be read (a half-made edit), the environment its container's labels place in this
    /// folder, so it and its jobs can still be seen, stopped and removed.
    pub async fn existing(ctx: &Context) -> anyhow::Result<(Project, Engine)> {
        let loaded = Project::load_existing(ctx);
        let broken = match &loaded {
            Ok(_) => None,
            Err(e) => spec::find(&ctx.dir).ok().map(|file| (file, format!("{e:#}"))),
        };
        if let Ok(project) = loaded {
            return Ok((project, Engine::connect().await?));
        }
        let engine = Engine::connect().await?;
        let user = HostUser::current();
        // A file that cannot be read names the project folder; else it is this folder.
        let start = match &broken {
            Some((file, _)) => file.parent().map(|p| p.to_path_buf()).unwrap_or(ctx.dir.clone()),
            None => ctx.dir.clone(),
        };
        let dir = std::path::absolute(&start).unwrap_or(start);
        let dir = dir.canonicalize().unwrap_or(dir);
        let here = dir.display().to_string();
        let found = engine
            .list_berth(Some(user.uid))
            .await?
            .into_iter()
            .find(|c| c.label(LABEL_PROJECT) == Some(here.as_str()));
        let name = found.and_then(|mut c| c.labels.remove(plan::LABEL_NAME));
        let Some(name) = name else {
            return Err(loaded.err().unwrap_or_else(|| anyhow::anyhow!("no berth.toml")));
        };
        let file = dir.join(spec::FILE_NAME);
        let spec = spec::parse_str(&format!("name = \"{name}\"\n"), &file)?;
        let container = plan::container_name(&user.name, &spec.name, &spec.project_dir);
        match broken {
            Some((_, error)) => ctx.out.warn(format!(
                "{error}\nthe file cannot be read: acting on the environment {container} that its labels \
                 place in {here}; fix the file to change or re-create it"
            )),
            None => ctx.out.warn(format!(
                "{} is missing: acting on the environment {container} that its labels place in {here}; \
                 restore the file (e.g. `git checkout {}`) to change or re-create it, or `berth down` removes it",
                file.display(),
                spec::FILE_NAME
            )),
        }
        Ok((Project { spec, user, container, from_labels: true }, engine))
    }

    /// This environment's container, or else the one made before its folder moved: where its
    /// jobs run.
    pub async fn environment(&self, engine: &Engine) -> anyhow::Result<Option<Container>> {
        match self.container(engine).await? {
            Some(c) => Ok(Some(c)),
            None => self.moved(engine).await,
        }
    }

    /// This environment's container, or else the one made before its folder moved (said so).
    pub async fn container_or_moved(
        &self,
        ctx: &Context,
        engine: &Engine,
    ) -> anyhow::Result<Option<Container>> {
        if let Some(c) = self.container(engine).await? {
            return Ok(Some(c));
        }
        let Some(c) = self.moved(engine).await? else { return Ok(None) };
        ctx.out.warn(format!(
            "{} was made when this project was at {} (moved or renamed since): acting on it",
            c.shown_name(),
            engine::label(&c, LABEL_PROJECT).unwrap_or_default()
        ));
        Ok(Some(c))
    }

    /// The container made for this project's files before its folder was moved or renamed (its
    /// mounts still point at them), when none exists for the folder as it is now: the one
    /// `.berth/container` records, or else the only container of this owner with this `name`;
    /// either way only while its own project folder holds no `berth.toml` (a copy of a project
    /// that is still there gets its own environment).
    pub async fn moved(&self, engine: &Engine) -> anyhow::Result<Option<Container>> {
        let here = self.spec.project_dir.display().to_string();
        let ours = |c: &Container| {
            engine::label(c, LABEL_MANAGED) == Some("true")
                && engine::label(c, plan::LABEL_HASH).is_some_and(|h| !h.is_empty())
                && engine::label(c, plan::LABEL_OWNER_UID) == Some(self.user.uid.to_string().as_str())
                && engine::label(c, LABEL_PROJECT).is_some_and(|p| p != here)
                // A copy of a project that is still there is a project of its own.
                && !engine::label(c, LABEL_PROJECT)
                    .is_some_and(|p| std::path::Path::new(p).join(spec::FILE_NAME).is_file())
        };
        if let Ok(id) = std::fs::read_to_string(container_record(&self.spec.project_dir))
            && let Some(c) = engine.inspect(id.trim()).await?
            && ours(&c)
        {
            return Ok(Some(c));
        }
        let gone: Vec<Listed> = engine
            .list_berth(Some(self.user.uid))
            .await?
            .into_iter()
            .filter(|c| {
                let label = |k: &str| c.label(k).unwrap_or_default().to_string();
                label(plan::LABEL_NAME) == self.spec.name
                    && label(LABEL_PROJECT) != here
                    && !std::path::Path::new(&label(LABEL_PROJECT)).join(spec::FILE_NAME).is_file()
            })
            .collect();
        match gone.as_slice() {
            [one] => Ok(engine.inspect(&one.id).await?.filter(|c| ours(c))),
            _ => Ok(None),
        }
    }

    /// The image of this environment: what `up` runs and `pack`, `ship` and `push` move (the
    /// built tag, a committed image, or the base; see `image::resolve`).
    pub fn image(&self) -> anyhow::Result<String> {
        Ok(crate::image::resolve(&self.spec, &self.host_facts())?.image)
    }

    /// The host's facts (`BERTH_HOST_ROOT` may point them at a recorded host).
    pub fn host_facts(&self) -> HostFacts {
        HostFacts::probe(&HostRoot::from_env())
    }

    /// This environment's container, if it exists; an error if a container holds its name but
    /// is not berth's, or belongs to another project.
    pub async fn container(&self, engine: &Engine) -> anyhow::Result<Option<Container>> {
        let Some(c) = engine.inspect(&self.container).await? else { return Ok(None) };
        self.check_ours(&c)?;
        Ok(Some(c))
    }

    fn check_ours(&self, c: &Container) -> anyhow::Result<()> {
        // A plan hash, not just `managed`: images berth built carry `managed`, and the engine
        // copies image labels onto any container made from them.
        let managed = engine::label(c, LABEL_MANAGED) == Some("true")
            && engine::label(c, crate::plan::LABEL_HASH).is_some_and(|h| !h.is_empty());
        let project = engine::label(c, LABEL_PROJECT);
        let here = self.spec.project_dir.display().to_string();
        if !managed {
            return Err(fail(
                Code::Refused,
                format!(
                    "a container named {} already exists, and berth did not create it; berth leaves it alone",
                    self.container
                ),
                format!(
                    "rename or remove it yourself if it is not needed (`docker rename {0} {0}.old`), \
                     or change `name` in {1}",
                    self.container,
                    self.spec.file.display()
                ),
            ));
        }
        if project != Some(here.as_str()) {
            return Err(fail(
                Code::Refused,
                format!(
                    "the container {} belongs to the project at {}, not {}",
                    self.container,
                    project.unwrap_or("an unknown folder"),
                    here
                ),
                "run berth from that project's folder, or change `name` here",
            ));
        }
        Ok(())
    }

    /// A short id for messages.
    pub fn short_id(c: &Container) -> String {
        c.short_id()
    }
}

/// `<project>/.berth/container`: the id of the container `up` made for the project's files, so
/// that it is found again after the folder moves.
pub fn container_record(project_dir: &std::path::Path) -> PathBuf {
    crate::state::container_record(project_dir)
}

/// Values of `{ from-host = true }` variables, read now from berth's own environment.
pub fn host_env(spec: &Spec, out: &Printer) -> Vec<String> {
    spec.env
        .iter()
        .filter(|v| v.value == spec::EnvValue::FromHost)
        .filter_map(|v| match std::env::var(&v.key) {
            Ok(val) => Some(format!("{}={val}", v.key)),
            Err(_) => {
                out.warn(format!("{} is not set here, so it is not passed into the environment", v.key));
                None
            }
        })
        .collect()
}

/// What a session (`shell`, `exec`, a job) gets from the caller at its start: the
/// `{ from-host = true }` values, git's identity and the forwarded ssh-agent (`crate::ssh_agent`).
pub fn session_env(project: &Project, out: &Printer) -> Vec<String> {
    let mut env = host_env(&project.spec, out);
    env.extend(crate::ssh_agent::session_env(&project.spec, &project.user, out));
    env
}

/// The engine and its facts within `secs`: diagnosis and advice must not hang on an engine that
/// accepts connections but never answers. Two requests: `/_ping` (about 1 ms) and `/info` (13 ms
/// on Docker; 0.2–2 s on Podman 4.3, which runs `conmon --version` and `runc --version`, asks the
/// package manager about them and waits for its store while a load or commit holds it).
pub async fn engine_within(secs: u64) -> anyhow::Result<(Engine, crate::engine::facts::EngineFacts)> {
    let limit = std::time::Duration::from_secs(secs);
    let started = std::time::Instant::now();
    let engine = match tokio::time::timeout(limit, Engine::connect()).await {
        Ok(engine) => engine?,
        Err(_) => return Err(engine_timeout(secs, None)),
    };
    match tokio::time::timeout(limit.saturating_sub(started.elapsed()), engine.facts()).await {
        Ok(facts) => Ok((engine, facts?)),
        Err(_) => Err(engine_timeout(secs, Some(&engine))),
    }
}

fn engine_timeout(secs: u64, connected: Option<&Engine>) -> anyhow::Error {
    match connected {
        Some(engine) if engine.is_podman() => fail(
            Code::NoEngine,
            format!("Podman at {} answered, but not its /info within {secs} s", engine.endpoint),
            "Podman answers slowly while its store is busy (a large image load, save or commit): try again \
             when that is done, and check that it is healthy with `podman info`",
        ),
        Some(engine) => fail(
            Code::NoEngine,
            format!(
                "the container engine at {} answered, but not its /info within {secs} s",
                engine.endpoint
            ),
            "check that it is healthy: `docker info`, `sudo systemctl status docker`",
        ),
        None => fail(
            Code::NoEngine,
            format!("the container engine did not answer within {secs} s"),
            "check that it is healthy: `docker info`, `sudo systemctl status docker`",
        ),
    }
}
