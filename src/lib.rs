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
pub mod host;
pub mod jobs;
pub mod output;
pub mod plan;
pub mod spec;
pub mod top;

use clap::Parser;

use commands::{Context, exec, host_configure, init, up};
use output::Printer;

/// Parse the command line, run the command, and return the process exit code.
pub fn run() -> i32 {
    let cli = cli::Cli::parse();
    let out = Printer::new(cli.json, cli.quiet);
    let dir = cli.dir.clone().unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    let ctx = Context { dir, out };
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
    let rt = commands::runtime()?;
    let code = rt.block_on(async {
        match command {
            C::Init(_) => Ok(0),
            C::Up(a) => {
                let opts = up::UpOptions { recreate: a.recreate, force: a.force, no_start: a.no_start };
                up::run(ctx, opts).await.map(|_| 0)
            }
            C::Shell => commands::shell::run(ctx).await,
            C::Exec(a) => {
                exec::run(ctx, exec::ExecOptions { interactive: a.interactive, tty: a.tty, cmd: a.cmd }).await
            }
            C::Stop => commands::stop::run(ctx).await.map(|_| 0),
            C::Status => commands::status::run(ctx).await.map(|_| 0),
            C::Ls(a) => commands::ls::run(ctx, a.all_users).await.map(|_| 0),
            C::Down(a) => commands::down::run(ctx, a.force).await.map(|_| 0),
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
        }
    });
    // Stray tasks (a stdin reader, a resize watcher) must not keep the process alive.
    rt.shutdown_background();
    code
}
