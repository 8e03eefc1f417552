//! Issue 11, on a shared machine: what one user controls (a folder name, a berth.toml) cannot
//! forge another user's terminal, bake a secret into an image, reach outside the project through
//! a symlink, or read and rewrite another user's logs and job records.

use crate::support::*;

#[test]
fn ls_all_users_escapes_a_project_path_with_control_characters() {
    let env = TestEnv::new();
    // A folder name that would end the row, start a forged one and recolour the terminal.
    let dir = env.project("evil\nberth-x  running  -\x1b[31m", "");
    env.berth(&dir, &["up"]).ok();
    let ls = env.berth(&dir, &["ls", "--all-users"]).ok();
    assert!(!ls.stdout.contains('\x1b'), "raw escape reached the terminal: {:?}", ls.stdout);
    let row = ls.stdout.lines().find(|l| l.contains("evil")).expect("the environment is listed");
    assert!(row.contains("evil\\nberth-x  running  -\\x1b[31m"), "{row:?}");
    assert!(!ls.stdout.lines().any(|l| l.starts_with("berth-x")), "a forged row: {:?}", ls.stdout);
}
