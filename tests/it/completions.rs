//! `berth completions bash|zsh|fish` and `berth man`: the generated files load in the real
//! shells and render with man/groff without a warning.

use std::process::Command;

use crate::support::*;

fn generated(env: &TestEnv, args: &[&str]) -> std::path::PathBuf {
    let dir = env.root.path().to_path_buf();
    let r = env.berth(&dir, args).ok();
    assert!(!r.stdout.is_empty());
    let file = dir.join(args.join("-"));
    std::fs::write(&file, r.stdout).unwrap();
    file
}

fn has(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn bash_completion_loads_and_completes_commands() {
    let env = TestEnv::new();
    let file = generated(&env, &["completions", "bash"]);
    let script = format!(
        ". {}\ncomplete -p berth\nCOMP_WORDS=(berth ex); COMP_CWORD=1; COMP_LINE='berth ex'; COMP_POINT=8\n\
         _berth berth ex berth\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("complete -o bashdefault -o default -o nosort -F _berth berth"), "{text}");
    assert!(text.lines().any(|l| l == "exec") && text.lines().any(|l| l == "export"), "{text}");
}

#[test]
fn completions_never_offer_the_hidden_internal_commands() {
    let env = TestEnv::new();
    let file = generated(&env, &["completions", "bash"]);
    let script = format!(
        ". {}\nCOMP_WORDS=(berth s); COMP_CWORD=1; COMP_LINE='berth s'; COMP_POINT=7\n\
         _berth berth s berth\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let offered: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(offered, ["shell", "stop", "status", "ship"], "berth s<TAB>");
    for shell in ["bash", "zsh", "fish"] {
        let text = env.berth(env.root.path(), &["completions", shell]).ok().stdout;
        for hidden in ["ssh-agent-relay", "serve-on"] {
            assert!(!text.contains(hidden), "{shell} completes {hidden}");
        }
        assert!(text.contains("version") && text.contains("json"), "{shell}: the options stay");
    }
}

#[test]
fn zsh_and_fish_completions_load_where_the_shells_are_installed() {
    let env = TestEnv::new();
    for (shell, check) in [
        (
            "zsh",
            "autoload -Uz compinit && compinit -u && source {} && [ \"$_comps[berth]\" = _berth ] && echo loaded",
        ),
        ("fish", "source {} && complete -C 'berth ex' && echo loaded"),
    ] {
        let file = generated(&env, &["completions", shell]);
        if !has(shell) {
            eprintln!("{shell} is not installed: only generated");
            continue;
        }
        let out = Command::new(shell)
            .args(["-c", &check.replace("{}", &file.display().to_string())])
            .env("HOME", &env.home)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("loaded"),
            "{shell}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if shell == "fish" {
            assert!(text.contains("exec"), "{text}");
        }
    }
}

#[test]
fn the_man_page_renders_without_warnings() {
    let env = TestEnv::new();
    let file = generated(&env, &["man"]);
    let out = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "groff failed");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warned");
    let out = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for section in [
        "SYNOPSIS",
        "COMMAND: BERTH SHELL",
        "COMMAND: BERTH EXPORT",
        "COMMAND: BERTH HOST CONFIGURE",
        "--recreate",
    ] {
        assert!(text.contains(section), "the man page lacks {section}:\n{text}");
    }
}
