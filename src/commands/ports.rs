//! `berth ports [--ssh DEST]`: each published container port → host address:port and URL;
//! with `--ssh`, the one `ssh -N -L …` line the laptop runs to reach them all at the same
//! ports on its own 127.0.0.1 (so the URLs printed here work there too).
//!
//! `--json`: `{"container", "running", "ports": [{"container_port", "protocol", "host_ip",
//! "host_port", "url"}], "ssh": {"argv", "command"} | null}`.

use super::ExitStatus;
use serde::Serialize;

use super::{Context, Project};
use crate::error::{Code, fail};
use crate::output;
use crate::ports::{self, Destination, Published};

#[derive(Debug, Serialize)]
struct Listing {
    container: String,
    running: bool,
    ports: Vec<Published>,
    ssh: Option<Forward>,
}

#[derive(Debug, Serialize)]
struct Forward {
    argv: Vec<String>,
    /// `argv` quoted for a POSIX shell.
    command: String,
}

pub async fn run(ctx: &Context, ssh: Option<String>) -> anyhow::Result<ExitStatus> {
    let dest = ssh.as_deref().map(Destination::parse).transpose()?;
    let (project, engine) = Project::existing(ctx).await?;
    let (c, list) = ports::of_environment(&project, &engine).await?;
    let forward = match &dest {
        None => None,
        Some(dest) => {
            let argv = ports::ssh_forward(&list, dest).ok_or_else(|| {
                fail(
                    Code::BadInput,
                    format!("{} publishes no TCP port to forward", c.shown_name()),
                    "list the container ports in `ports` in berth.toml (`ports = [\"8888\"]`), then run \
                     `berth up --recreate`",
                )
            })?;
            Some(Forward { command: ports::command_line(&argv), argv })
        }
    };
    let listing =
        Listing { container: c.shown_name().to_string(), running: c.is_running(), ports: list, ssh: forward };
    if ctx.out.json {
        ctx.out.json(&listing)?;
        return Ok(ExitStatus::SUCCESS);
    }
    if !listing.running {
        ctx.out.status(format!(
            "{} is not running: `berth up` starts it (its host ports stay the same)",
            listing.container
        ));
    }
    if let Some(f) = &listing.ssh {
        ctx.out.data(format!("{}\n", f.command));
        ctx.out.status(
            "run that on your laptop and keep it open; the URLs `berth ports` prints then work there unchanged",
        );
        return Ok(ExitStatus::SUCCESS);
    }
    if listing.ports.is_empty() {
        ctx.out.status(
            "berth.toml publishes no ports: list them as `ports = [\"8888\"]` (berth picks a free host port \
             on 127.0.0.1 that this environment keeps), then run `berth up --recreate`",
        );
        return Ok(ExitStatus::SUCCESS);
    }
    let rows: Vec<Vec<String>> = listing
        .ports
        .iter()
        .map(|p| {
            vec![
                format!("{}/{}", p.container_port, p.protocol),
                if p.host_ip.contains(':') {
                    format!("[{}]:{}", p.host_ip, p.host_port)
                } else {
                    format!("{}:{}", p.host_ip, p.host_port)
                },
                p.url.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    ctx.out.data(output::table(&["CONTAINER", "HOST", "URL"], &rows));
    Ok(ExitStatus::SUCCESS)
}
