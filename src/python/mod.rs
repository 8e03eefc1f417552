//! The right Python everywhere: which Python environment (a venv, or a conda/mamba environment)
//! berth activates in `shell`, `exec`, jobs, VS Code and the exports. One mechanism: the POSIX
//! sh snippet `activate.sh` picks the environment (berth.toml's `[python] env`, else the first
//! venv or conda environment the image has, by the order written at its top) and exports its
//! variables. Where it runs:
//!
//! - berth's own sessions (`exec`, `run`, `shell`, `code`): once per container start, berth
//!   runs the snippet in the container and records the variables it changed
//!   (`.berth/python.json`); every later exec gets them as plain exec variables, so a command
//!   costs what `docker exec` costs (no shell wrapped around it). `shell` runs the snippet
//!   again after the login profile, which on Debian resets PATH.
//! - the exports (devcontainer, compose, Slurm, Kubernetes): the command is wrapped in the
//!   snippet, evaluated when the job starts, so the files are the same on every machine.

use serde::{Deserialize, Serialize};

use crate::plan::sh_quote;

/// The activation snippet (sourced; leaves `BERTH_PYTHON_ENV` naming what it activated, or
/// `none`).
pub const ACTIVATE: &str = include_str!("activate.sh");

/// The variable naming the environment (input: berth.toml's choice; output: what was activated).
pub const ENV_VAR: &str = "BERTH_PYTHON_ENV";

/// Separates the two environment dumps of [`resolve_argv`]'s output.
const MARK: &str = "\0berth-python-activated\0";

/// Variables a shell changes by itself, never recorded.
const SHELL_OWN: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_", "IFS", "PS1", "PS2", "PS4", "OPTIND", "PPID"];

/// The snippet preceded by berth.toml's choice, when it makes one; of its comment only the
/// first line is kept (it names the README section), since every export carries it.
pub fn script(choice: Option<&str>) -> String {
    let mut lines = ACTIVATE.lines();
    let mut text = lines.next().map(|l| format!("{l}\n")).unwrap_or_default();
    for line in lines.filter(|l| !l.starts_with('#')) {
        text.push_str(line);
        text.push('\n');
    }
    match choice {
        Some(env) => format!("{ENV_VAR}={}\n{text}", sh_quote(env)),
        None => text,
    }
}

/// `sh -c` that activates, then runs `cmd` (the exports' wrapper): `sh -c SCRIPT berth-python
/// CMD...`.
pub fn wrap(choice: Option<&str>, cmd: &[String]) -> Vec<String> {
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        format!("{}exec \"$@\"\n", script(choice)),
        "berth-python".to_string(),
    ];
    argv.extend(cmd.iter().cloned());
    argv
}

/// `sh -c` that activates and says which python each name now runs (devcontainer's
/// `postAttachCommand`, `doctor`): `berth: python is /opt/venv/bin/python (BERTH_PYTHON_ENV=...)`.
pub fn report_argv(choice: Option<&str>) -> Vec<String> {
    let report = "for _n in python python3; do\n  \
                  printf 'berth: %s is %s\\n' \"$_n\" \"$(command -v \"$_n\" || echo 'not found')\"\n\
                  done\nprintf 'berth: %s=%s\\n' BERTH_PYTHON_ENV \"$BERTH_PYTHON_ENV\"\n";
    vec!["sh".into(), "-c".into(), format!("{}{report}", script(choice))]
}

/// The interactive shell, launched so that the environment is active after the login profile
/// (Debian's `/etc/profile` resets PATH): bash reads an rc file that does what a login shell
/// reads (`/etc/profile`, then `~/.bash_profile`, `~/.bash_login` or `~/.profile`), then the
/// snippet; without bash, `sh` does the same before `exec sh -i`. The environment is the one
/// `BERTH_PYTHON_ENV` names (berth passes the recorded variables with it), else the snippet's
/// own choice. Without a terminal (`echo cmds | berth shell`) the same start-up reads the
/// commands from stdin without prompts or banners (`bash -s`, `sh -s`).
pub fn shell_argv() -> Vec<String> {
    shell_argv_for(true)
}

/// [`shell_argv`] reading commands from stdin when `interactive` is false.
pub fn shell_argv_for(interactive: bool) -> Vec<String> {
    let login = "[ -r /etc/profile ] && . /etc/profile\n";
    let rc = format!(
        "{login}if [ -r ~/.bash_profile ]; then . ~/.bash_profile\nelif [ -r ~/.bash_login ]; then . ~/.bash_login\n\
         elif [ -r ~/.profile ]; then . ~/.profile\nfi\n{}",
        script(None)
    );
    let sh_rc = format!("{login}[ -r ~/.profile ] && . ~/.profile\n{}", script(None));
    let launch = if interactive {
        "if command -v bash >/dev/null 2>&1; then\n  \
         exec bash -c 'exec bash --rcfile <(printf \"%s\\n\" \"$1\") -i' bash \"$1\"\n\
         fi\neval \"$2\"\nexec sh -i\n"
    } else {
        "if command -v bash >/dev/null 2>&1; then\n  \
         exec bash -c 'eval \"$1\"; exec bash -s' bash \"$1\"\n\
         fi\neval \"$2\"\nexec sh -s\n"
    };
    vec!["/bin/sh".into(), "-c".into(), launch.into(), "berth-shell".into(), rc, sh_rc]
}

/// `sh -c` printing the `python` (else `python3`) a plain command finds: what `exec` and a job's
/// wrapper (itself `sh -c`) run.
pub fn which_argv() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), WHICH.into()]
}

/// `sh -c` printing the `python` (else `python3`) `berth shell` finds: the same start-up as
/// [`shell_argv`] (login profile, then the snippet), without the prompt.
pub fn shell_which_argv() -> Vec<String> {
    let mut argv = shell_argv();
    argv[2] = "if command -v bash >/dev/null 2>&1; then exec bash -c \"$1\"; fi\neval \"$2\"\n".into();
    argv[4].push_str(WHICH);
    argv[5].push_str(WHICH);
    argv
}

const WHICH: &str = "command -v python || command -v python3 || echo none\n";

/// What berth's own sessions pass on every exec: the variables the snippet changed, found once
/// per container start, with the choice they were found for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub container_id: String,
    pub started_at: String,
    /// berth.toml's `[python] env` when this was found.
    pub choice: Option<String>,
    /// The environment activated (`BERTH_PYTHON_ENV` after the snippet), `none` for none.
    pub env: String,
    /// `KEY=VALUE`, sorted.
    pub vars: Vec<String>,
}

impl Resolved {
    /// Whether this record holds for the container as it runs now and berth.toml's choice.
    pub fn holds(&self, container_id: &str, started_at: &str, choice: Option<&str>) -> bool {
        self.container_id == container_id && self.started_at == started_at && self.choice.as_deref() == choice
    }
}

/// `sh -c` printing the environment before and after the snippet (`env -0`, NUL-separated).
pub fn resolve_argv(choice: Option<&str>) -> Vec<String> {
    let mark = MARK.replace('\0', "\\0");
    let script = format!("env -0 || exit 3\nprintf '{mark}'\n{}env -0\n", script(choice));
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// The variables [`resolve_argv`]'s output shows the snippet set or changed, sorted, and the
/// environment it activated; `None` when the output is not two dumps.
pub fn changed_vars(output: &str) -> Option<(String, Vec<String>)> {
    let (before, after) = output.split_once(MARK)?;
    let parse = |s: &str| -> std::collections::BTreeMap<String, String> {
        s.split('\0')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| !k.is_empty() && !SHELL_OWN.contains(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (before, after) = (parse(before), parse(after));
    let env = after.get(ENV_VAR)?.clone();
    let vars =
        after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, v)| format!("{k}={v}")).collect();
    Some((env, vars))
}

/// The first line of the attached-container configuration berth writes for VS Code: a file
/// without it is the user's, and stays as it is.
pub const VSCODE_MARK: &str = "// written by `berth code`: the Python environment of this container";

/// VS Code's configuration for a container it attaches to (Dev Containers' "named container
/// configuration"): the recorded variables as `remoteEnv`, the interpreter, and the same
/// `postAttachCommand` as the devcontainer export.
pub fn vscode_attached_config(r: &Resolved) -> String {
    let env: serde_json::Map<String, serde_json::Value> = r
        .vars
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
        .collect();
    let mut config = serde_json::json!({
        "remoteEnv": env,
        "postAttachCommand": report_argv(None),
    });
    if r.env != "none" {
        config["settings"] =
            serde_json::json!({ "python.defaultInterpreterPath": format!("{}/bin/python", r.env) });
    }
    format!("{VSCODE_MARK}\n{}\n", serde_json::to_string_pretty(&config).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_snippet_changed_is_recorded() {
        let out = format!(
            "PATH=/usr/bin\0HOME=/root\0PWD=/\0{MARK}PATH=/opt/venv/bin:/usr/bin\0HOME=/root\0PWD=/x\0\
             VIRTUAL_ENV=/opt/venv\0BERTH_PYTHON_ENV=/opt/venv\0"
        );
        let (env, vars) = changed_vars(&out).expect("two dumps");
        assert_eq!(env, "/opt/venv");
        assert_eq!(
            vars,
            ["BERTH_PYTHON_ENV=/opt/venv", "PATH=/opt/venv/bin:/usr/bin", "VIRTUAL_ENV=/opt/venv"]
        );
        assert!(changed_vars("PATH=/usr/bin\0").is_none());
    }

    #[test]
    fn the_choice_comes_first_and_is_quoted() {
        let s = script(Some("/opt/conda/envs/my env"));
        assert!(s.starts_with("BERTH_PYTHON_ENV='/opt/conda/envs/my env'\n"));
        let w = wrap(None, &["python".into(), "train.py".into()]);
        assert_eq!(&w[3..], ["berth-python", "python", "train.py"]);
        assert!(w[2].ends_with("exec \"$@\"\n"));
    }

    #[test]
    fn a_record_holds_only_for_the_same_start_and_choice() {
        let r = Resolved {
            container_id: "c".into(),
            started_at: "t".into(),
            choice: None,
            env: "none".into(),
            vars: vec![],
        };
        assert!(r.holds("c", "t", None));
        assert!(!r.holds("c", "t2", None));
        assert!(!r.holds("c", "t", Some("/opt/venv")));
    }
}
