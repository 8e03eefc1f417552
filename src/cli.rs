//! The command line (clap types only; commands never see them).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "One persistent, reproducible GPU development environment per project, in Docker",
    after_help = "Exit codes: 0 ok, 1 failure, 2 bad input (nothing changed), 3 engine unreachable, \
                  4 refused (nothing changed), 130 interrupted; `exec` and `shell` exit with the \
                  command's own code; `doctor` exits 1 when a check fails."
)]
pub struct Cli {
    /// Run as if berth was started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print one JSON document on stdout (status, ls, up, build, jobs, freeze, gpu-check, export, doctor,
    /// host configure, clean, top).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Run the command on the server NAME (`berth remote add`): berth runs there, in the
    /// project's folder there, after syncing the project; written before the command.
    #[arg(long, value_name = "NAME")]
    pub on: Option<String>,
    /// With --on: copy this berth to the server, without asking, when it has none of this version.
    #[arg(long, requires = "on")]
    pub yes: bool,
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
    Stop(StopArgs),
    /// Show this environment: state, image, GPUs, shm, mounts, ports, drift.
    Status,
    /// List your berth environments on this engine.
    Ls(LsArgs),
    /// Remove the environment's container (refuses while it holds changes that matter).
    Down(DownArgs),
    /// Open VS Code attached to the running environment (or print the command that does).
    Code(CodeArgs),
    /// Write the environment for VS Code, Compose, Slurm or Kubernetes.
    Export(ExportArgs),
    /// Start a job inside the environment that survives disconnects; its log stays on the host.
    Run(RunArgs),
    /// List this project's jobs with state, exit code and diagnosis.
    Jobs,
    /// Show a job's log (the latest job by default); -f follows it to the end.
    Logs(LogsArgs),
    /// Stop a job (SIGTERM, then SIGKILL after a grace period).
    Kill(KillArgs),
    /// Prove the GPU works inside the environment (driver, torch, a tiny computation, shm).
    GpuCheck,
    /// Build the environment's image from berth.toml (or your Dockerfile).
    Build(BuildArgs),
    /// Python packages in the container that differ from the requirements.
    Freeze(FreezeArgs),
    /// Snapshot the container into an image the environment then starts from.
    Commit,
    /// Check this host: engine, socket, disk, cgroups, GPU driver and toolkit or CDI, AMD groups,
    /// WSL2; one fix per problem. Exits 1 when a check fails (✗).
    Doctor,
    /// Host settings of the container engine.
    Host(HostArgs),
    /// Reclaim space from your stopped berth containers and unused berth images.
    Clean(CleanArgs),
    /// Which environment and job uses which GPU, and how much memory.
    Top(TopArgs),
    /// Write the image and a berth.toml pinned to it into one verified archive.
    Pack(PackArgs),
    /// Load a pack (verified first) and write its berth.toml into DIR (-C) or ./<name>.
    Unpack(UnpackArgs),
    /// Copy the image to another server's Docker over ssh, sending only missing layers.
    Ship(ShipArgs),
    /// Tag and push the image to a registry (credentials from docker's config).
    Push(PushArgs),
    /// Copy files or folders from the server's project folder to this one (with --on NAME); a
    /// newer local file is kept unless --force.
    Fetch(FetchArgs),
    /// (internal) The server's side of the project sync: reads a manifest and files on stdin.
    #[command(hide = true)]
    SyncReceive(SyncDirArgs),
    /// (internal) The server's side of `fetch`: sends the asked files on stdout.
    #[command(hide = true)]
    SyncSend(SyncDirArgs),
    /// Named servers for `berth --on NAME <command>`.
    Remote(RemoteArgs),
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Paths inside the project (files or folders), e.g. work_dirs/ or a checkpoint.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Replace local files even when they are newer than the server's.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SyncDirArgs {
    /// The project folder on this machine (made, 0700, if missing).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RemoteArgs {
    #[command(subcommand)]
    pub command: RemoteCommand,
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Name a server: NAME and ssh://user@host[:port][/path] (projects go to ~/berth there,
    /// or under /path).
    Add {
        name: String,
        #[arg(value_name = "ssh://user@host[:port][/path]")]
        url: String,
        /// Replace a server already called NAME.
        #[arg(long)]
        force: bool,
    },
    /// List the named servers.
    Ls,
    /// Forget a named server (nothing on the server is touched).
    Rm { name: String },
}

#[derive(Debug, Args)]
pub struct FreezeArgs {
    /// Write what is installed as a pinned requirements file.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Print the Dockerfile instead of building.
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job's name (default: the command's name and a number).
    #[arg(long)]
    pub name: Option<String>,
    /// GPUs the job sees, among the environment's, as the container numbers them: `0,1` or `all`.
    #[arg(long, value_name = "SEL")]
    pub gpus: Option<String>,
    /// Launch through `torchrun --standalone` with one process per visible GPU.
    #[arg(long)]
    pub torchrun: bool,
    /// The command and its arguments (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job (default: the latest).
    pub name: Option<String>,
    /// Follow the log until the job ends, then exit with its exit code.
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The job to stop.
    pub name: String,
    /// Seconds between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 10)]
    pub grace: u64,
}

#[derive(Debug, Args)]
pub struct CodeArgs {
    /// Print the command instead of starting VS Code.
    #[arg(long)]
    pub print: bool,
    /// Reach the engine's machine over SSH as DEST (`user@host`), from where VS Code runs.
    #[arg(long, value_name = "DEST")]
    pub ssh: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Devcontainer,
    Compose,
    Slurm,
    K8s,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VendorArg {
    Nvidia,
    Amd,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeArg {
    Pyxis,
    Apptainer,
    Docker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlavorArg {
    Job,
    Jobset,
    Trainjob,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to write.
    #[arg(value_enum)]
    pub format: ExportFormat,
    /// Nodes (compose: services rehearsing them on this server; slurm, k8s: cluster nodes).
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// Slurm: how each node runs the image.
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeArg>,
    /// Kubernetes: plain Indexed Job (default), JobSet, or Kubeflow Trainer v2.3 TrainJob.
    #[arg(long, value_enum)]
    pub flavor: Option<FlavorArg>,
    /// The GPU vendor, when berth.toml says `auto` (default: nvidia).
    #[arg(long, value_enum)]
    pub vendor: Option<VendorArg>,
    /// GPUs each node gets (default: `gpu.devices`, or 8 for "all").
    #[arg(long, value_name = "N")]
    pub gpus_per_node: Option<u32>,
    /// torchrun's rendezvous port.
    #[arg(long, default_value_t = 29500)]
    pub master_port: u16,
    /// Where to write (default: under the project folder); `-` for standard output.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<std::path::PathBuf>,
    /// Replace a file at the target that berth did not write.
    #[arg(long)]
    pub force: bool,
    /// The command each node runs (after `--`); default: the keep-alive.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
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
    /// Take over the environment made before this folder was moved or renamed: recreate it here
    /// (changes inside it are kept through `berth commit`; refused while jobs run).
    #[arg(long)]
    pub adopt: bool,
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
pub struct StopArgs {
    /// Stop it even while jobs run (they are killed).
    #[arg(long)]
    pub force: bool,
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
    /// Refuse the pack unless its image has this id (`sha256:...`, as `berth pack` printed it).
    #[arg(long, value_name = "IMAGE_ID")]
    pub expect: Option<String>,
    /// Apply the pack's settings that widen access on this host ([run], mounts outside the
    /// project, root, host caches, host variables); without it they are written commented out.
    #[arg(long)]
    pub allow_access: bool,
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
