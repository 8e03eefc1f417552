//! berth: one persistent, reproducible GPU development environment per project, in Docker.
//!
//! spec (berth.toml) + host facts → plan → engine. See STYLE.md in the project notes and the
//! module docs: `spec`, `host`, `plan`, `engine`, `commands`.

pub mod clean;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod daemon_json;
pub mod doctor;
pub mod engine;
pub mod environment;
pub mod error;
pub mod fsutil;
pub mod gpu_probe;
pub mod host;
pub mod idle;
pub mod image;
pub mod jobs;
pub mod lease;
pub mod output;
pub mod plan;
pub mod ports;
pub mod python;
pub mod remote;
pub mod render;
pub mod spec;
pub mod ssh;
pub mod ssh_agent;
pub mod state;
pub mod top;
pub mod transport;

use commands::{Context, ExitStatus, exec, host_configure, init, up};
use output::Printer;

/// Parse the command line, run the command, and return the process exit code.
pub fn run() -> i32 {
    let matches = <cli::Cli as clap::CommandFactory>::command().get_matches();
    let cli = <cli::Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let out = Printer::new(cli.json, cli.quiet);
    let dir = cli.dir.clone().unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    let ctx = Context { dir, dir_given: cli.dir.is_some(), out };
    let done = match cli.on.clone() {
        Some(name) => {
            on_server(&ctx, name, cli.yes, matches.subcommand_name().unwrap_or_default(), cli.command)
        }
        None => dispatch(&ctx, cli.command),
    };
    match done {
        Ok(status) => status.code(),
        Err(err) => {
            let (text, code) = error::render(&err);
            output::print_error(&text);
            code
        }
    }
}

/// `berth --on NAME <command>`: the server's berth runs it (see [`remote`]).
fn on_server(
    ctx: &Context,
    name: String,
    yes: bool,
    verb: &str,
    command: cli::Command,
) -> anyhow::Result<ExitStatus> {
    let raw: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let (args, dir_seen) = remote::forward::server_args(&raw);
    if ctx.dir_given && !dir_seen {
        return Err(error::fail(
            error::Code::BadInput,
            "with --on, -C DIR goes before the command",
            "write it as berth -C DIR --on NAME <command> ...",
        ));
    }
    // `fetch` runs here and reads from the server's berth.
    if let cli::Command::Fetch(a) = command {
        let (mut session, _) = remote::connect(&ctx.dir, &name, &ctx.out)?;
        let opts = commands::fetch::FetchOptions { paths: a.paths, force: a.force };
        return commands::fetch::run_from(ctx, opts, |project, paths, force| {
            remote::fetch(&mut session, &ctx.out, yes, project, paths, force)
        })
        .map(|_| ExitStatus::SUCCESS);
    }
    let request = commands::on::OnRequest { name, yes, verb: verb.to_string(), args };
    commands::on::run(ctx, request)
}

fn dispatch(ctx: &Context, command: cli::Command) -> anyhow::Result<ExitStatus> {
    use cli::Command as C;
    match command {
        C::Init(a) => init::run(ctx, init::InitOptions { force: a.force, name: a.name, base: a.base }),
        // Exports read only the project file: no engine, no runtime.
        C::Export(a) => commands::export::run(ctx, export_request(a)),
        C::Up(a) => {
            let opts =
                up::UpOptions { recreate: a.recreate, force: a.force, no_start: a.no_start, adopt: a.adopt };
            block_on(up::run(ctx, opts))
        }
        C::Shell => block_on(commands::shell::run(ctx)),
        C::Exec(a) => {
            block_on(exec::run(ctx, exec::ExecOptions { interactive: a.interactive, tty: a.tty, cmd: a.cmd }))
        }
        C::Stop(a) => block_on(commands::stop::run(ctx, a.force)),
        C::Status(a) => {
            block_on(commands::status::run(ctx, commands::status::StatusOptions { changes: a.changes }))
        }
        C::Ls(a) => block_on(commands::ls::run(ctx, a.all_users)),
        C::Down(a) => block_on(commands::down::run(ctx, a.force)),
        C::Run(a) => {
            let opts =
                commands::run::RunOptions { name: a.name, gpus: a.gpus, torchrun: a.torchrun, cmd: a.cmd };
            block_on(commands::run::run(ctx, opts))
        }
        C::Jobs => block_on(commands::jobs::run(ctx)),
        C::Logs(a) => block_on(commands::logs::run(ctx, a.name, a.follow)),
        C::Ports(a) => block_on(commands::ports::run(ctx, a.ssh)),
        C::Open(a) => block_on(commands::open::run(ctx, &a.target, a.print)),
        C::Kill(a) => block_on(commands::kill::run(ctx, &a.name, a.grace)),
        C::GpuCheck => block_on(commands::gpu_check::run(ctx)),
        C::Freeze(a) => block_on(commands::freeze::run(ctx, a.write)),
        C::Commit => block_on(commands::commit::run(ctx)),
        C::Build(a) => block_on(commands::build::run(ctx, commands::build::BuildOptions { print: a.print })),
        C::Code(a) => block_on(commands::code::run(ctx, a.print, a.ssh)),
        C::Host(h) => match h.command {
            cli::HostCommand::Configure(a) => {
                let changes = daemon_json::Changes {
                    data_root: a.data_root,
                    registry_mirrors: a.registry_mirrors,
                    nvidia_runtime: a.nvidia_runtime,
                    cdi: a.cdi,
                    live_restore: a.live_restore,
                };
                let idle_timer = a.idle_timer.map(|k| host_configure::IdleTimer {
                    scheduler: match k {
                        cli::IdleTimerArg::Auto => idle::timer::Scheduler::detect(),
                        cli::IdleTimerArg::Systemd => idle::timer::Scheduler::Systemd,
                        cli::IdleTimerArg::Cron => idle::timer::Scheduler::Cron,
                    },
                    dir: a.idle_timer_dir,
                    berth: a.berth_path,
                });
                let opts = host_configure::ConfigureOptions {
                    config: a.config,
                    changes,
                    dry_run: a.dry_run,
                    idle_timer,
                };
                block_on(host_configure::run(ctx, opts))
            }
        },
        C::Doctor => block_on(commands::doctor::run(ctx)),
        C::Clean(a) => {
            let opts = commands::clean::CleanOptions {
                yes: a.yes,
                dry_run: a.dry_run,
                force: a.force,
                all_users: a.all_users,
            };
            block_on(commands::clean::run(ctx, opts))
        }
        C::Top(a) => block_on(commands::top::run(ctx, a.all_users)),
        C::Lease(a) => {
            let action = match a.command {
                Some(cli::LeaseCommand::Ls) => commands::lease::Action::List,
                Some(cli::LeaseCommand::Release(r)) => commands::lease::Action::Release { gpus: r.gpus },
                None => commands::lease::Action::Take {
                    gpus: a.gpus,
                    duration: a.duration,
                    note: a.note,
                    force: a.force,
                },
            };
            block_on(commands::lease::run(ctx, action))
        }
        C::Pack(a) => {
            let opts = commands::pack::PackOptions { output: a.output, force: a.force };
            block_on(commands::pack::run(ctx, opts))
        }
        C::Unpack(a) => {
            let opts = commands::unpack::UnpackOptions {
                file: a.file,
                force: a.force,
                expect: a.expect,
                allow_access: a.allow_access,
            };
            block_on(commands::unpack::run(ctx, opts))
        }
        C::Ship(a) => {
            let opts = commands::ship::ShipOptions {
                destination: a.destination,
                project: a.project,
                force: a.force,
            };
            block_on(commands::ship::run(ctx, opts))
        }
        C::Push(a) => block_on(commands::push::run(ctx, a.reference)),
        C::Idle(a) => {
            let opts = commands::idle::IdleOptions { check: a.check, dry_run: a.dry_run };
            block_on(commands::idle::run(ctx, opts))
        }
        C::SshAgentRelay(a) => block_on(commands::ssh_agent_relay::run(&a.dir, &a.upstream, a.group)),
        C::Completions(a) => commands::completions::run(ctx, &cli::completions(a.shell)),
        C::Man => commands::man::run(ctx),
        C::Remote(r) => match r.command {
            cli::RemoteCommand::Add { name, url, force } => commands::remote::add(ctx, &name, &url, force),
            cli::RemoteCommand::Ls => commands::remote::ls(ctx),
            cli::RemoteCommand::Rm { name } => commands::remote::rm(ctx, &name),
        },
        C::Fetch(a) => {
            commands::fetch::run(ctx, commands::fetch::FetchOptions { paths: a.paths, force: a.force })
        }
        C::ServeOn(a) => serve_on(a),
    }
}

/// `berth serve-on` (hidden): the server's end of one `berth --on` call ([`remote::serve`]).
/// The command runs in this process: one berth started on the server per laptop command.
fn serve_on(a: cli::ServeOnArgs) -> anyhow::Result<ExitStatus> {
    if !remote::serve::greet(&a.want)? {
        return Ok(ExitStatus::from(remote::serve::NOT_THIS_VERSION));
    }
    // A failed sync or fetch was told to the laptop, which says it.
    if a.send {
        return Ok(ExitStatus::from(if remote::serve::send(&a.dir)? { 0 } else { 1 }));
    }
    if a.sync && !remote::serve::receive(&a.dir)? {
        return Ok(ExitStatus::from(1));
    }
    if a.args.is_empty() {
        return Ok(ExitStatus::SUCCESS);
    }
    remote::serve::enter(&a.dir, &a.server)?;
    let words = std::iter::once("berth".to_string()).chain(a.args);
    let cli = <cli::Cli as clap::Parser>::try_parse_from(words).unwrap_or_else(|e| e.exit());
    if cli.on.is_some() || cli.dir.is_some() {
        return Err(error::fail(
            error::Code::BadInput,
            "a command sent from the laptop names a server or a folder of its own",
            "run berth --on NAME <command> from the laptop's project folder",
        ));
    }
    let dir = std::env::current_dir()?;
    let ctx = Context { dir, dir_given: false, out: Printer::new(cli.json, cli.quiet) };
    dispatch(&ctx, cli.command)
}

/// Run an engine command on the current-thread runtime.
fn block_on(command: impl Future<Output = anyhow::Result<ExitStatus>>) -> anyhow::Result<ExitStatus> {
    let rt = commands::runtime()?;
    let done = rt.block_on(command);
    // Stray tasks (a stdin reader, a resize watcher) must not keep the process alive.
    rt.shutdown_background();
    done
}

fn export_request(a: cli::ExportArgs) -> commands::export::ExportRequest {
    use commands::export::{ExportRequest, Format};
    use host::Vendor;
    use render::{k8s::Flavor, slurm::Runtime};
    use spec::VendorChoice;
    let flavor = match a.flavor {
        None | Some(cli::FlavorArg::Job) => Flavor::Job,
        Some(cli::FlavorArg::Jobset) => Flavor::JobSet,
        Some(cli::FlavorArg::Trainjob) => Flavor::TrainJob,
    };
    ExportRequest {
        format: match a.format {
            cli::ExportFormat::Devcontainer => Format::Devcontainer,
            cli::ExportFormat::Compose => Format::Compose,
            cli::ExportFormat::Slurm => Format::Slurm,
            cli::ExportFormat::K8s => Format::K8s(flavor),
        },
        runtime: a.runtime.map(|r| match r {
            cli::RuntimeArg::Pyxis => Runtime::Pyxis,
            cli::RuntimeArg::Apptainer => Runtime::Apptainer,
            cli::RuntimeArg::Docker => Runtime::Docker,
        }),
        flavor_given: a.flavor.is_some(),
        nodes: a.nodes,
        vendor: a.vendor.map(|v| match v {
            cli::VendorArg::Nvidia => VendorChoice::Gpu(Vendor::Nvidia),
            cli::VendorArg::Amd => VendorChoice::Gpu(Vendor::Amd),
            cli::VendorArg::None => VendorChoice::None,
        }),
        gpus_per_node: a.gpus_per_node,
        master_port: a.master_port,
        output: a.output,
        command: a.cmd,
        force: a.force,
    }
}
