//! The command line (clap types only; commands never see them).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "One persistent, reproducible GPU development environment per project, in Docker",
    after_help = "Exit codes: 0 ok, 1 failure, 2 bad input (nothing changed), 3 engine unreachable, \
                  4 refused (nothing changed), 130 interrupted; `exec` and `shell` exit with the command's \
                  own code."
)]
pub struct Cli {
    /// Run as if berth was started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print one JSON document on stdout (status, ls, up).
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
    /// Write the image and a berth.toml pinned to it into one verified archive.
    Pack(PackArgs),
    /// Load a pack (verified first) and write its berth.toml into DIR (-C) or ./<name>.
    Unpack(UnpackArgs),
    /// Copy the image to another server's Docker over ssh, sending only missing layers.
    Ship(ShipArgs),
    /// Tag and push the image to a registry (credentials from docker's config).
    Push(PushArgs),
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

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The archive to write (default: ./<name>.berth.tar.zst).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// A pack written by `berth pack`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace an existing berth.toml in the target folder.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// The server: ssh://[user@]host[:port] (your ssh config, keys and ProxyJump apply).
    #[arg(value_name = "ssh://[user@]host[:port]")]
    pub destination: String,
    /// Also write the pinned berth.toml into this folder there.
    #[arg(long, value_name = "DIR")]
    pub project: Option<String>,
    /// With --project: replace a berth.toml already there.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Where to push: [registry/]repository[:tag] (default: the image's own name, if it
    /// names a registry).
    #[arg(value_name = "REF")]
    pub reference: Option<String>,
}
