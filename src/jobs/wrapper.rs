//! The POSIX shell wrapper every job runs in (inside the container, started detached).
//!
//! It needs nothing beyond `sh` (busybox is enough): records its command's process group,
//! sends all output to the host-side log, records the memory cgroup's OOM-kill count before and
//! after (cgroup v2 `memory.events`, v1 `memory.oom_control`), and writes the exit status
//! atomically (`exit.tmp` renamed to `exit`) so a reader never sees half a number.

use crate::plan::sh_quote;

/// The job folder inside the container.
pub fn inside_dir(name: &str) -> String {
    format!("{}/jobs/{name}", crate::plan::STATE_DIR)
}

/// Whether one of the container's command lines (as the engine's `top` shows them, newlines as
/// spaces) is the wrapper of job `name`: it starts `/bin/sh -c d=<its folder>` and lives as long
/// as the job does.
pub fn runs_in(cmdlines: &[String], name: &str) -> bool {
    let marker = format!("d={}", sh_quote(&inside_dir(name)));
    cmdlines.iter().any(|line| {
        line.split_whitespace().take(4).collect::<Vec<_>>().windows(2).any(|w| w == ["-c", marker.as_str()])
    })
}

/// The names of the jobs whose wrappers are among the command lines (see [`runs_in`]).
pub fn names_in(cmdlines: &[String]) -> Vec<String> {
    let prefix = format!("d={}/jobs/", crate::plan::STATE_DIR);
    let mut names: Vec<String> = cmdlines
        .iter()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().take(4).collect();
            let at = words.windows(2).position(|w| w[0] == "-c" && w[1].starts_with(&prefix))?;
            let name = &words[at + 1][prefix.len()..];
            runs_in(std::slice::from_ref(line), name).then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `sh -c SCRIPT sh CMD...`: argv for the detached exec.
pub fn argv(name: &str, workdir: Option<&str>, cmd: &[String]) -> Vec<String> {
    let dir = sh_quote(&inside_dir(name));
    let cd = workdir.map(|w| format!("cd {} || exit 126\n", sh_quote(w))).unwrap_or_default();
    let script = format!(
        r#"d={dir}
oom() {{
  f=/sys/fs/cgroup/memory.events
  [ -r "$f" ] || f=/sys/fs/cgroup/memory/memory.oom_control
  if [ -r "$f" ]; then
    while read -r k v; do [ "$k" = oom_kill ] && {{ echo "$v"; return; }}; done < "$f"
  fi
  echo 0
}}
oom > "$d/oom-before"
{cd}if command -v setsid >/dev/null 2>&1; then
  setsid "$@" > "$d/log" 2>&1 < /dev/null &
else
  "$@" > "$d/log" 2>&1 < /dev/null &
fi
pid=$!
echo "$pid" > "$d/pid"
wait "$pid"
code=$?
oom > "$d/oom-after"
echo "$code" > "$d/exit.tmp" && mv "$d/exit.tmp" "$d/exit"
"#
    );
    let mut argv = vec!["/bin/sh".to_string(), "-c".to_string(), script, "sh".to_string()];
    argv.extend(cmd.iter().cloned());
    argv
}

/// `sh -c` that signals a job's process group (or the process, without setsid).
pub fn signal_argv(name: &str, signal: &str) -> Vec<String> {
    let dir = sh_quote(&inside_dir(name));
    let script = format!(
        r#"pid=$(cat {dir}/pid 2>/dev/null) || exit 3
[ -n "$pid" ] || exit 3
kill -{signal} -- "-$pid" 2>/dev/null || kill -{signal} "$pid" 2>/dev/null || exit 1"#
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// `sh -c` that signals the job `name` whose folder is gone (deleted while it ran, so no pid file
/// is left): its wrapper is found by its command line (see [`runs_in`]), and each process the
/// wrapper started is signalled with its process group. Exits 3 when no such wrapper runs.
pub fn signal_orphan_argv(name: &str, signal: &str) -> Vec<String> {
    let marker = sh_quote(&format!("d={}", sh_quote(&inside_dir(name))));
    let script = format!(
        r#"found=
for w in /proc/[0-9]*; do
  [ "$(tr '\000' '\n' < "$w/cmdline" 2>/dev/null | sed -n 3p)" = {marker} ] || continue
  wp=${{w#/proc/}}
  for c in /proc/[0-9]*; do
    [ "$(sed -n 's/^PPid:[[:space:]]*//p' "$c/status" 2>/dev/null)" = "$wp" ] || continue
    cp=${{c#/proc/}}
    kill -{signal} -- "-$cp" 2>/dev/null || kill -{signal} "$cp" 2>/dev/null
  done
  found=1
done
[ -n "$found" ] || exit 3"#
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_follows_the_script_as_positional_arguments() {
        let a = argv("train", Some("/workspace"), &["python".into(), "train.py".into(), "--lr=1e-3".into()]);
        assert_eq!(&a[..2], ["/bin/sh", "-c"]);
        assert!(a[2].contains("d=/berth/state/jobs/train"));
        assert!(a[2].contains("cd /workspace || exit 126"));
        assert_eq!(&a[3..], ["sh", "python", "train.py", "--lr=1e-3"]);
    }

    #[test]
    fn a_wrapper_is_found_by_its_job_name_only() {
        let line = argv("train", None, &["sleep".into(), "30".into()]).join(" ").replace('\n', " ");
        let top = vec!["/sbin/docker-init -- sleep infinity".to_string(), line, "sleep 30".to_string()];
        assert!(runs_in(&top, "train"));
        assert!(!runs_in(&top, "trai"));
        assert!(!runs_in(&top, "train2"));
        assert!(!runs_in(&["sleep d=/berth/state/jobs/train".to_string()], "train"));
        assert_eq!(names_in(&top), ["train"]);
    }
}
