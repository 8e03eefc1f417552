//! berth: one persistent, reproducible GPU development environment per project, in Docker.
//!
//! spec (berth.toml) + host facts → plan → engine. See STYLE.md in the project notes and the
//! module docs: `spec`, `host`, `plan`, `engine`, `commands`.

pub mod cli;
pub mod commands;
pub mod engine;
pub mod error;
pub mod host;
pub mod jobs;
pub mod output;
pub mod plan;
pub mod spec;
pub mod ssh;
pub mod transport;

use clap::Parser;

use commands::{Context, exec, init, up};
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
            C::Pack(a) => {
                let opts = commands::pack::PackOptions { output: a.output, force: a.force };
                commands::pack::run(ctx, opts).await.map(|_| 0)
            }
            C::Unpack(a) => {
                let opts = commands::unpack::UnpackOptions { file: a.file, force: a.force };
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
