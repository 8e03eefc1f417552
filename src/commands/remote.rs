//! `berth remote add NAME ssh://user@host[:port][/path]`, `remote ls`, `remote rm NAME`: the
//! named servers `berth --on NAME …` reaches (see [`crate::remote`]).

use super::ExitStatus;
use serde::Serialize;

use super::Context;
use crate::error::{Code, fail};
use crate::remote::config::{self, Remotes};

#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    url: String,
    destination: String,
    port: Option<u16>,
    /// Where projects live there (relative paths are under the ssh user's home).
    base: String,
}

pub fn add(ctx: &Context, name: &str, url: &str, force: bool) -> anyhow::Result<ExitStatus> {
    config::check_name(name)?;
    let parsed = config::parse_url(url)?;
    let mut remotes = Remotes::load()?;
    if let Some(old) = remotes.entries.get(name)
        && !force
    {
        return Err(fail(
            Code::Refused,
            format!("a server is already called `{name}` ({}); nothing changed", old.to_url()),
            format!("pick another name, `berth remote rm {name}` first, or add --force to replace it"),
        ));
    }
    remotes.entries.insert(name.to_string(), parsed.clone());
    remotes.save()?;
    ctx.out.status(format!(
        "added {name}: {} (projects in {} there); use it with `berth --on {name} up`",
        parsed.to_url(),
        parsed.base.as_deref().unwrap_or("~/berth")
    ));
    Ok(ExitStatus::SUCCESS)
}

pub fn ls(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let remotes = Remotes::load()?;
    let listed: Vec<Listed> = remotes
        .entries
        .iter()
        .map(|(name, u)| Listed {
            name: name.clone(),
            url: u.to_url(),
            destination: u.destination(),
            port: u.port,
            base: u.base.clone().unwrap_or_else(|| "~/berth".into()),
        })
        .collect();
    if ctx.out.json {
        ctx.out.json(&listed)?;
        return Ok(ExitStatus::SUCCESS);
    }
    if listed.is_empty() {
        ctx.out.status("no servers yet: berth remote add NAME ssh://user@host");
        return Ok(ExitStatus::SUCCESS);
    }
    let rows: Vec<Vec<String>> =
        listed.iter().map(|l| vec![l.name.clone(), l.url.clone(), l.base.clone()]).collect();
    ctx.out.data(crate::output::table(&["NAME", "ADDRESS", "PROJECTS IN"], &rows));
    Ok(ExitStatus::SUCCESS)
}

pub fn rm(ctx: &Context, name: &str) -> anyhow::Result<ExitStatus> {
    let mut remotes = Remotes::load()?;
    if remotes.entries.remove(name).is_none() {
        remotes.get(name)?;
    }
    remotes.save()?;
    ctx.out.status(format!(
        "removed {name} (the projects and environments on that server are left as they are)"
    ));
    Ok(ExitStatus::SUCCESS)
}
