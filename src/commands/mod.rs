//! One file per command: resolve the project, plan, apply, print.
//!
//! Commands receive a [`Context`] (resolved global options), never clap types. Shared steps
//! (finding the project, reading facts, checking a container is berth's) live here.

pub mod down;
pub mod exec;
pub mod init;
pub mod ls;
pub mod pack;
pub mod push;
pub mod shell;
pub mod ship;
pub mod status;
pub mod stop;
pub mod unpack;
pub mod up;

use std::path::PathBuf;

use anyhow::Context as _;
use bollard::models::ContainerInspectResponse;

use crate::engine::{self, Engine};
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
}

impl Project {
    pub fn load(ctx: &Context) -> anyhow::Result<Project> {
        let file = spec::find(&ctx.dir)?;
        let spec = spec::load(&file)?;
        let user = HostUser::current();
        let container = plan::container_name(&user.name, &spec.name, &spec.project_dir);
        Ok(Project { spec, user, container })
    }

    /// The image of this environment: what `up` runs and `pack`, `ship` and `push` move.
    /// Today the `[image] base` reference; the one place to change when berth builds images.
    pub fn image(&self) -> String {
        self.spec.image.base.clone()
    }

    /// The host's facts (`BERTH_HOST_ROOT` may point them at a recorded host).
    pub fn host_facts(&self) -> HostFacts {
        HostFacts::probe(&HostRoot::from_env())
    }

    /// This environment's container, if it exists; an error if a container holds its name but
    /// is not berth's, or belongs to another project.
    pub async fn container(&self, engine: &Engine) -> anyhow::Result<Option<ContainerInspectResponse>> {
        let Some(c) = engine.inspect(&self.container).await? else { return Ok(None) };
        self.check_ours(&c)?;
        Ok(Some(c))
    }

    fn check_ours(&self, c: &ContainerInspectResponse) -> anyhow::Result<()> {
        let managed = engine::label(c, LABEL_MANAGED) == Some("true");
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
    pub fn short_id(c: &ContainerInspectResponse) -> String {
        c.id.as_deref().unwrap_or("").chars().take(12).collect()
    }
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

/// Build the current-thread runtime every command runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}
