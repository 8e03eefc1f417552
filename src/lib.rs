//! berth: one persistent, reproducible GPU development environment per project, in Docker.
//!
//! spec (berth.toml) + host facts → plan → engine. See STYLE.md in the project notes and the
//! module docs: `spec`, `host`, `plan`, `engine`, `commands`.

pub mod clean;
pub mod cli;
pub mod commands;
pub mod daemon_json;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod gpu_probe;
pub mod host;
pub mod image;
pub mod jobs;
pub mod output;
pub mod plan;
pub mod render;
pub mod spec;
pub mod ssh;
pub mod state;
pub mod top;
pub mod transport;

use clap::Parser;

use commands::{Context, exec, host_configure, init, up};
use output::Printer;

/// Parse the command line, run the command, and return the process exit code.
pub fn run() -> i32 {
    let cli = cli::Cli::parse();
    let out = Printer::new(cli.json, cli.quiet);
    let dir = cli.dir.clone().unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    let ctx = Context { dir, dir_given: cli.dir.is_some(), out };
    match dispatch(&ctx, cli.command) {
        Ok(code) => code,
        Err(err) => {
            let (text, code) = error::render(&err);
            output::print_error(&text);
            code
        }
    }
}

fn dispatch(ctx: &Context, command: cli::Command) -> anyhow::Result<i32> {
    use cli::Command as C;
    if let C::Init(a) = command {
        init::run(ctx, init::InitOptions { force: a.force, name: a.name, base: a.base })?;
        return Ok(0);
    }
    // Exports read only the project file: no engine, no runtime.
    let command = match command {
        C::Export(a) => return commands::export::run(ctx, export_request(a)).map(|_| 0),
        other => other,
    };
    let rt = commands::runtime()?;
    let code = rt.block_on(async {
        match command {
            C::Init(_) => Ok(0),
            C::Up(a) => {
                let opts = up::UpOptions {
                    recreate: a.recreate,
                    force: a.force,
                    no_start: a.no_start,
                    adopt: a.adopt,
                };
                up::run(ctx, opts).await.map(|_| 0)
            }
            C::Shell => commands::shell::run(ctx).await,
            C::Exec(a) => {
                exec::run(ctx, exec::ExecOptions { interactive: a.interactive, tty: a.tty, cmd: a.cmd }).await
            }
            C::Stop(a) => commands::stop::run(ctx, a.force).await.map(|_| 0),
            C::Status => commands::status::run(ctx).await.map(|_| 0),
            C::Ls(a) => commands::ls::run(ctx, a.all_users).await.map(|_| 0),
            C::Down(a) => commands::down::run(ctx, a.force).await.map(|_| 0),
            C::Run(a) => {
                let opts = commands::run::RunOptions {
                    name: a.name,
                    gpus: a.gpus,
                    torchrun: a.torchrun,
                    cmd: a.cmd,
                };
                commands::run::run(ctx, opts).await.map(|_| 0)
            }
            C::Jobs => commands::jobs::run(ctx).await.map(|_| 0),
            C::Logs(a) => commands::logs::run(ctx, a.name, a.follow).await,
            C::Kill(a) => commands::kill::run(ctx, &a.name, a.grace).await.map(|_| 0),
            C::GpuCheck => commands::gpu_check::run(ctx).await,
            C::Freeze(a) => commands::freeze::run(ctx, a.write).await.map(|_| 0),
            C::Commit => commands::commit::run(ctx).await.map(|_| 0),
            C::Build(a) => {
                commands::build::run(ctx, commands::build::BuildOptions { print: a.print }).await.map(|_| 0)
            }
            C::Code(a) => commands::code::run(ctx, a.print, a.ssh).await.map(|_| 0),
            C::Export(_) => Ok(0),
            C::Host(h) => match h.command {
                cli::HostCommand::Configure(a) => {
                    let changes = daemon_json::Changes {
                        data_root: a.data_root,
                        registry_mirrors: a.registry_mirrors,
                        nvidia_runtime: a.nvidia_runtime,
                        cdi: a.cdi,
                        live_restore: a.live_restore,
                    };
                    let opts =
                        host_configure::ConfigureOptions { config: a.config, changes, dry_run: a.dry_run };
                    host_configure::run(ctx, opts).await.map(|_| 0)
                }
            },
            C::Doctor => commands::doctor::run(ctx).await,
            C::Clean(a) => {
                let opts = commands::clean::CleanOptions {
                    yes: a.yes,
                    dry_run: a.dry_run,
                    force: a.force,
                    all_users: a.all_users,
                };
                commands::clean::run(ctx, opts).await
            }
            C::Top(a) => commands::top::run(ctx, a.all_users).await.map(|_| 0),
            C::Pack(a) => {
                let opts = commands::pack::PackOptions { output: a.output, force: a.force };
                commands::pack::run(ctx, opts).await.map(|_| 0)
            }
            C::Unpack(a) => {
                let opts = commands::unpack::UnpackOptions {
                    file: a.file,
                    force: a.force,
                    expect: a.expect,
                    allow_access: a.allow_access,
                };
                commands::unpack::run(ctx, opts).await.map(|_| 0)
            }
            C::Ship(a) => {
                let opts = commands::ship::ShipOptions {
                    destination: a.destination,
                    project: a.project,
                    force: a.force,
                };
                commands::ship::run(ctx, opts).await.map(|_| 0)
            }
            C::Push(a) => commands::push::run(ctx, a.reference).await.map(|_| 0),
        }
    });
    // Stray tasks (a stdin reader, a resize watcher) must not keep the process alive.
    rt.shutdown_background();
    code
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
