//! What `berth --on NAME <command>` runs on the server: which commands go there (and which
//! of them sync the project first or want a terminal), the laptop's arguments less the ones
//! that only mean something here, and the script that runs the server's berth in the
//! project's folder there.

use crate::ssh::sh_quote;

/// A command that can run on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verb {
    pub name: &'static str,
    /// The project is synced laptop → server first.
    pub sync: bool,
    /// It gets a terminal there when it has one here.
    pub tty: bool,
}

const fn verb(name: &'static str, sync: bool, tty: bool) -> Verb {
    Verb { name, sync, tty }
}

/// The project commands `--on` takes.
pub const VERBS: &[Verb] = &[
    verb("up", true, false),
    verb("shell", true, true),
    verb("exec", true, true),
    verb("run", true, false),
    verb("jobs", false, false),
    verb("logs", false, false),
    verb("kill", false, false),
    verb("status", false, false),
    verb("stop", false, false),
    verb("down", false, false),
    verb("code", true, false),
    verb("ports", false, false),
    verb("gpu-check", true, false),
    verb("freeze", true, false),
    verb("commit", true, false),
];

/// `fetch` also takes `--on`, but runs here (it reads from the server's berth).
pub const FETCH: &str = "fetch";

pub fn find(name: &str) -> Option<Verb> {
    VERBS.iter().copied().find(|v| v.name == name)
}

/// The laptop's arguments (without the program) for the server's berth: `--on NAME`, `--yes`
/// and `-C DIR` (a laptop folder) are dropped; everything from the command on is kept. The
/// flag says whether a `-C` was seen before the command.
pub fn server_args(raw: &[String]) -> (Vec<String>, bool) {
    let mut kept = Vec::new();
    let mut saw_dir = false;
    let mut i = 0;
    while i < raw.len() {
        let a = &raw[i];
        if a == "--on" || a == "-C" {
            saw_dir |= a == "-C";
            i += 2;
            continue;
        }
        if a.starts_with("--on=") || a == "--yes" {
            i += 1;
            continue;
        }
        if a.starts_with("-C") {
            saw_dir = true;
            i += 1;
            continue;
        }
        if !a.starts_with('-') || a == "--" {
            kept.extend(raw[i..].iter().cloned());
            break;
        }
        kept.push(a.clone());
        i += 1;
    }
    (kept, saw_dir)
}

/// Run `berth` (the server's path) with `args` in `dir` there, on a terminal of its own: the
/// sync just made the folder.
pub fn script(berth: &str, dir: &str, args: &[String], server: &str) -> String {
    let q = sh_quote(dir);
    let enter = format!(
        "cd {q} 2>/dev/null || {{ echo \"berth: the project has no folder on this server yet ({}): bring it there with berth --on {} up\" >&2; exit 2; }}",
        dir.replace(['"', '\\', '$', '`'], "_"),
        server.replace(['"', '\\', '$', '`'], "_")
    );
    let words: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
    format!("{enter}\nexec {} {}", sh_quote(berth), words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn laptop_only_options_stay_home() {
        let (args, dir) =
            server_args(&s(&["--on", "srv", "--yes", "-C", "/p", "--json", "up", "--recreate"]));
        assert_eq!(args, s(&["--json", "up", "--recreate"]));
        assert!(dir);
        let (args, dir) = server_args(&s(&["--on=srv", "-C/p", "run", "--", "python3", "-C", "--on", "x"]));
        assert_eq!(args, s(&["run", "--", "python3", "-C", "--on", "x"]));
        assert!(dir);
        let (args, dir) = server_args(&s(&["-q", "--on", "srv", "exec", "--yes"]));
        assert_eq!(args, s(&["-q", "exec", "--yes"]));
        assert!(!dir);
    }

    #[test]
    fn the_script_quotes_every_word() {
        let sc =
            script("/h/b/berth-1", "berth/x-12345678", &s(&["exec", "--", "echo", "$(rm -rf ~)"]), "srv");
        assert!(sc.starts_with("cd berth/x-12345678 2>/dev/null ||"), "{sc}");
        assert!(sc.ends_with("exec /h/b/berth-1 exec -- echo '$(rm -rf ~)'"), "{sc}");
        let sc = script("berth", "a b", &s(&["shell"]), "s$(x)");
        assert!(!sc.contains("$(x)"), "{sc}");
        assert!(sc.starts_with("cd 'a b' 2>/dev/null ||"), "{sc}");
    }

    #[test]
    fn every_listed_verb_is_a_berth_command() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        for v in VERBS {
            // `ports` comes with the daily-work commands; until then it is refused there.
            if v.name == "ports" && cli.find_subcommand("ports").is_none() {
                continue;
            }
            assert!(cli.find_subcommand(v.name).is_some(), "{}", v.name);
        }
    }
}
