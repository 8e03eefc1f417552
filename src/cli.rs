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
    /// host configure, clean, top, idle, lease ls, ports, open).
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
    Status(StatusArgs),
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
    /// Stop environments idle past their `[idle] stop-after` (kept, never removed; `up` resumes).
    Idle(IdleArgs),
    /// Lease host GPUs for a while, visible to every user of this machine (`lease ls`, `lease release`).
    Lease(LeaseArgs),
    /// Published ports: container port → host address:port and URL; `--ssh` prints the laptop's
    /// `ssh -L` line for all of them.
    Ports(PortsArgs),
    /// Print (and open, on a desktop) the URL of a job's server (Jupyter's, with its token) or of
    /// a published container port.
    Open(OpenArgs),
    /// (internal) Forward an environment's ssh-agent socket to the caller's agent; started by
    /// `shell`, `exec` and `run`.
    #[command(name = "ssh-agent-relay", hide = true)]
    SshAgentRelay(SshAgentRelayArgs),
    /// Print a shell completion script for bash, zsh or fish.
    Completions(CompletionsArgs),
    /// Print berth's manual page (roff): `berth man | man -l -`.
    Man,
    /// Named servers for `berth --on NAME <command>`.
    Remote(RemoteArgs),
    /// Copy files or folders from the server's project folder to this one (with --on NAME); a
    /// newer local file is kept unless --force.
    Fetch(FetchArgs),
    /// (internal) The server's side of `berth --on`: answers as this version only, takes the
    /// project's sync (--sync) or sends the files `fetch` asks for (--send), then runs the
    /// command after `--` in the project's folder, in this same process.
    #[command(name = "serve-on", hide = true)]
    ServeOn(ServeOnArgs),
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Check every running environment (yours; root: everyone's) and stop the idle ones.
    #[arg(long)]
    pub check: bool,
    /// Say what would be stopped; stop and record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PortsArgs {
    /// Print the one `ssh -N -L …` command a laptop runs to reach every port at the same port
    /// on its own 127.0.0.1; DEST is how the laptop reaches this server (`user@server`, or
    /// `ssh://user@server:2222`).
    #[arg(long, value_name = "DEST")]
    pub ssh: Option<String>,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// A job's name (its log holds the address), or a container port (digits).
    #[arg(value_name = "NAME|PORT")]
    pub target: String,
    /// Only print the URL, even on a desktop.
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args)]
pub struct SshAgentRelayArgs {
    /// An agent's socket on the host (repeated: the first that answers serves a connection).
    #[arg(long, value_name = "SOCK", required = true)]
    pub upstream: Vec<PathBuf>,
    /// A group that may connect too (an image user's).
    #[arg(long, value_name = "GID")]
    pub group: Option<u32>,
    /// The folder of the environment's socket (`.berth/ssh-agent`).
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
pub struct FetchArgs {
    /// Paths inside the project (files or folders), e.g. work_dirs/ or a checkpoint.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Replace local files even when they are newer than the server's.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ServeOnArgs {
    /// The laptop berth's version: a berth of another version does nothing (exit 98).
    pub want: String,
    /// The project folder on this machine (made, 0700, by a sync).
    pub dir: PathBuf,
    /// What the laptop calls this server, for messages.
    #[arg(long, default_value = "NAME")]
    pub server: String,
    /// Receive the project's files on stdin first.
    #[arg(long, conflicts_with = "send")]
    pub sync: bool,
    /// Send the files asked on stdin (`fetch`), and nothing else.
    #[arg(long)]
    pub send: bool,
    /// The berth command line to run (without `berth`).
    #[arg(last = true)]
    pub args: Vec<String>,
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
    /// Install a systemd timer (or, without systemd, a cron.d entry) that runs `berth idle --check`
    /// as root every 5 minutes.
    #[arg(long, value_name = "KIND", num_args = 0..=1, default_missing_value = "auto")]
    pub idle_timer: Option<IdleTimerArg>,
    /// Where the timer's files go (default /etc/systemd/system, or /etc/cron.d).
    #[arg(long, value_name = "DIR", requires = "idle_timer")]
    pub idle_timer_dir: Option<PathBuf>,
    /// The berth binary the timer runs (default: this one); root runs it, so only root may be able
    /// to change it.
    #[arg(long, value_name = "PATH", requires = "idle_timer")]
    pub berth_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IdleTimerArg {
    /// systemd when it runs this host, else cron.
    Auto,
    Systemd,
    Cron,
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
pub struct StatusArgs {
    /// Also count Python packages installed or removed by hand inside the container (reads
    /// its whole writable layer, so it is not done on every call; `berth freeze` lists them).
    #[arg(long)]
    pub changes: bool,
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
    /// The archive to write (default: .berth/packs/<name>.berth.tar.zst in the project).
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

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LeaseArgs {
    #[command(subcommand)]
    pub command: Option<LeaseCommand>,
    /// Host GPU indices, as `berth top` shows them: `0,2`.
    #[arg(long, value_name = "SEL")]
    pub gpus: Option<String>,
    /// How long: `30m`, `8h`, `2d`, `1h30m` (at most 30 days). Leasing your own GPUs again sets a new end.
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    /// A word for the others: what it is for, how to reach you.
    #[arg(long)]
    pub note: Option<String>,
    /// Take GPUs another user leased anyway (recorded in your lease, so they see it in `lease ls`).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Every user's leases that have not ended: holder, GPUs, end, note.
    Ls,
    /// End your own leases early.
    Release(LeaseReleaseArgs),
}

#[derive(Debug, Args)]
pub struct LeaseReleaseArgs {
    /// Only these GPUs (host indices, `0,2`).
    #[arg(long, value_name = "SEL", conflicts_with = "all", required_unless_present = "all")]
    pub gpus: Option<String>,
    /// Every lease you hold.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: ShellArg,
}

/// The completion script for `shell`, generated from these definitions (clap_complete), without
/// the hidden internal commands (`ssh-agent-relay`, `serve-on`): clap_complete
/// offers every subcommand, so `berth s<TAB>` would suggest them.
pub fn completions(shell: ShellArg) -> Vec<u8> {
    use clap_complete::Shell;
    let shell = match shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut visible_command(), "berth", &mut out);
    out
}

/// `berth`'s command line as a user sees it: the same name, version, options and commands, less
/// the hidden ones (clap can add subcommands to a command, not take them away).
fn visible_command() -> clap::Command {
    use clap::CommandFactory;
    let full = Cli::command();
    let mut cmd = clap::Command::new("berth")
        .bin_name("berth")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(full.is_subcommand_required_set());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    for arg in full.get_arguments() {
        cmd = cmd.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmd = cmd.subcommand(sub.clone());
    }
    cmd
}

/// berth(1) in roff, generated from these definitions (clap_mangen): the synopsis, every
/// option and one section per command.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    // One section per command, with its own options, so `man berth` documents all of them.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_command_section(&mut out, &[], sub)?;
    }
    man.render_extra_section(&mut out)?;
    man.render_version_section(&mut out)?;
    // roff is ASCII: other characters (✗, →) as groff's `\[uXXXX]` escapes, so the page renders
    // without preconv and without warnings.
    let text = String::from_utf8_lossy(&out);
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            ascii.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    Ok(ascii.into_bytes())
}

fn render_command_section(out: &mut Vec<u8>, parents: &[&str], cmd: &clap::Command) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut path: Vec<&str> = parents.to_vec();
    path.push(cmd.get_name());
    let full = format!("berth {}", path.join(" "));
    let sub = clap_mangen::Man::new(cmd.clone().bin_name(&full).display_name(&full));
    let mut body = Vec::new();
    sub.render_synopsis_section(&mut body)?;
    sub.render_description_section(&mut body)?;
    sub.render_options_section(&mut body)?;
    // Each part renders its own `.SH`; under a command they become subsections.
    let body = String::from_utf8_lossy(&body).replace(".SH ", ".SS ");
    writeln!(out, ".SH \"COMMAND: BERTH {}\"", path.join(" ").to_uppercase())?;
    out.write_all(body.as_bytes())?;
    for nested in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_command_section(out, &path, nested)?;
    }
    Ok(())
}
