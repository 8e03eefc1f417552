//! The command line (clap types only; commands never see them).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "One persistent, reproducible GPU development environment per project, in Docker",
    after_help = "Exit codes: 0 ok, 1 failure, 2 bad input (nothing changed), 3 engine unreachable, \
                  4 refused (nothing changed); `exec` and `shell` exit with the command's own code; \
                  `doctor` exits 1 when a check fails."
)]
pub struct Cli {
    /// Run as if berth was started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print one JSON document on stdout (status, ls, up, doctor, host configure, clean, top).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented berth.toml suited to this host.
    Init(InitArgs),
    /// Create or start the environment, or do nothing if it already matches the file.
    Up(UpArgs),
    /// Open an interactive login shell inside the environment.
    Shell,
    /// Run one command inside the environment and return its exit code.
    Exec(ExecArgs),
    /// Stop the environment's container (keeps it).
    Stop,
    /// Show this environment: state, image, GPUs, shm, mounts, ports, drift.
    Status,
    /// List your berth environments on this engine.
    Ls(LsArgs),
    /// Remove the environment's container (refuses while it holds changes that matter).
    Down(DownArgs),
    /// Check this host: engine, socket, disk, cgroups, GPU driver and toolkit or CDI, AMD groups,
    /// WSL2; one fix per problem. Exits 1 when a check fails (✗).
    Doctor,
    /// Host settings of the container engine.
    Host(HostArgs),
    /// Reclaim space from your stopped berth containers and unused berth images.
    Clean(CleanArgs),
    /// Which environment and job uses which GPU, and how much memory.
    Top(TopArgs),
}

#[derive(Debug, Args)]
pub struct HostArgs {
    #[command(subcommand)]
    pub command: HostCommand,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Change daemon.json safely: keeps every other key, backs the file up, writes atomically.
    Configure(ConfigureArgs),
}

#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The engine's configuration file.
    #[arg(long, value_name = "FILE", default_value = "/etc/docker/daemon.json")]
    pub config: PathBuf,
    /// Where the engine keeps images and containers (a restart is needed; existing ones stay behind).
    #[arg(long, value_name = "PATH")]
    pub data_root: Option<String>,
    /// A registry mirror for Docker Hub pulls (repeatable).
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub registry_mirrors: Vec<String>,
    /// Register the NVIDIA container runtime (`nvidia-container-runtime`).
    #[arg(long)]
    pub nvidia_runtime: bool,
    /// Turn on CDI device names (`features.cdi`, Docker 25 and newer).
    #[arg(long)]
    pub cdi: bool,
    /// Keep containers running while the engine restarts.
    #[arg(long)]
    pub live_restore: bool,
    /// Show the change as a diff and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Remove without asking.
    #[arg(short, long)]
    pub yes: bool,
    /// Show what would be removed and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove stopped containers holding changes that matter, and (with --all-users)
    /// other users' items.
    #[arg(long)]
    pub force: bool,
    /// Include every user's environments (removing them needs root and --force).
    #[arg(long)]
    pub all_users: bool,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Name other users' environments and jobs too (default: only yours are named).
    #[arg(long)]
    pub all_users: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Replace an existing berth.toml.
    #[arg(long)]
    pub force: bool,
    /// The environment's name (default: the folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// The base image (default: chosen for this host's GPUs).
    #[arg(long)]
    pub base: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Replace a container that no longer matches berth.toml.
    #[arg(long)]
    pub recreate: bool,
    /// With --recreate: discard changes made inside the old container.
    #[arg(long)]
    pub force: bool,
    /// Create the container but do not start it.
    #[arg(long)]
    pub no_start: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Forward stdin to the command.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a TTY (default: only when stdin and stdout are terminals).
    #[arg(short, long)]
    pub tty: bool,
    /// The command and its arguments (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show every user's environments.
    #[arg(long)]
    pub all_users: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove the container even if files changed inside it would be lost.
    #[arg(long)]
    pub force: bool,
}
