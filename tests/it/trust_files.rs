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

/// Everything berth and the engine keep about a project: its container, its images (config and
/// history) and its `.berth` folder.
fn everything_kept(env: &TestEnv, dir: &std::path::Path) -> String {
    let mut all = String::new();
    for id in env.containers_of(dir) {
        all += &docker_ok(&["inspect", &id]);
        let image = docker_ok(&["inspect", "-f", "{{.Image}}", &id]);
        all += &docker_ok(&["image", "inspect", image.trim()]);
        all += &docker_ok(&["history", "--no-trunc", image.trim()]);
    }
    for entry in walk(&dir.join(".berth")) {
        all += &String::from_utf8_lossy(&std::fs::read(entry).unwrap_or_default());
    }
    all
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn a_pip_index_password_is_refused_and_from_host_keeps_it_out_of_the_image() {
    let env = TestEnv::new();
    let secret = "hunter2-b3rth";
    let url = format!("https://alice:{secret}@pypi.corp.example/simple");
    // Written into the file: refused at its line, nothing built or created, the secret not echoed.
    let dir = env.project(
        "baked",
        &format!("[image]\nbase = \"{IMAGE}\"\napt = [\"curl\"]\npip-index-url = \"{url}\"\n"),
    );
    let refused = env.berth(&dir, &["up"]).code(2);
    assert!(refused.stderr.contains("berth.toml:4:17:"), "{}", refused.stderr);
    assert!(refused.stderr.contains("from-host = true"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(secret), "{}", refused.stderr);
    assert!(env.containers_of(&dir).is_empty() && !dir.join(".berth").exists());

    // The way that works: passed from the host at start, seen inside, recorded nowhere.
    let dir = env.project(
        "fromhost",
        &format!("[image]\nbase = \"{IMAGE}\"\ndockerfile = \"Dockerfile\"\n[env]\nPIP_INDEX_URL = {{ from-host = true }}\n"),
    );
    // A build that colours its output, as pip and apt do on a terminal.
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {IMAGE}\nRUN printf '\\033[1;31mcoloured step\\033[0m\\n'\n"),
    )
    .unwrap();
    let mut env = env;
    env.env.push(("PIP_INDEX_URL".into(), url.clone()));
    env.berth(&dir, &["up"]).ok();
    let inside = env.berth(&dir, &["exec", "--", "sh", "-c", "echo $PIP_INDEX_URL"]).ok();
    assert_eq!(inside.stdout.trim(), url);
    env.berth(&dir, &["run", "--name", "env", "--", "sh", "-c", "echo started"]).ok();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let kept = everything_kept(&env, &dir);
    assert!(kept.contains("dev.berth"), "the inspection found the container and image");
    assert!(!kept.contains(secret), "the password was recorded somewhere");

    let log = std::fs::read_to_string(dir.join(".berth/build.log")).unwrap();
    assert!(log.contains("coloured step") && !log.contains('\x1b'), "{log:?}");
}

#[test]
fn a_symlink_out_of_the_project_is_mounted_read_only_and_outside_build_inputs_are_refused() {
    let env = TestEnv::new();
    let outside = env.root.path().join("datasets/x");
    std::fs::create_dir_all(&outside).unwrap();
    let dir = env.project("linked", "mounts = [\".:/workspace\", \"./data:/data\"]");
    std::os::unix::fs::symlink(&outside, dir.join("data")).unwrap();
    env.berth(&dir, &["up"]).ok();
    let write = env.berth(&dir, &["exec", "--", "sh", "-c", "touch /data/planted"]);
    assert_ne!(write.code, 0, "the dataset behind the link was writable");
    assert!(!outside.join("planted").exists());

    let dir = env.project(
        "shadow",
        &format!("[image]\nbase = \"{IMAGE}\"\napt = [\"curl\"]\nrequirements = \"/etc/shadow\"\n"),
    );
    let refused = env.berth(&dir, &["up"]).code(2);
    assert!(refused.stderr.contains("berth.toml:4:16:"), "{}", refused.stderr);
    assert!(refused.stderr.contains("outside the project folder"), "{}", refused.stderr);
    // No build began: it would have written .berth/build.log (and left a layer behind).
    assert!(env.containers_of(&dir).is_empty() && !dir.join(".berth").exists());
}

/// A link planted in the project (by the environment itself, which can write there) turns a
/// mount inside the project into one of a host folder: that is access beyond the project, named
/// by `up` and `status` like the same folder written directly, and named again when the link moves.
#[test]
fn a_mount_through_a_symlink_planted_in_the_project_is_listed_as_access_outside_it() {
    let env = TestEnv::new();
    let outside = env.root.path().join("elsewhere");
    let other = env.root.path().join("other");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let dir = env.project("planted", "mounts = [\".:/workspace\", \"./d:/w2\"]");
    env.berth(&dir, &["up"]).ok();
    let json = |dir: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&env.berth(dir, &["status", "--json"]).ok().stdout).unwrap()
    };
    let access = json(&dir)["access"].to_string();
    assert!(!access.contains("./d:/w2"), "a folder inside the project is no access: {access}");
    std::fs::remove_dir(dir.join("d")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("d")).unwrap();
    let access = json(&dir)["access"].to_string();
    assert!(access.contains("./d:/w2") && access.contains(outside.to_str().unwrap()), "{access}");
    let up = env.berth(&dir, &["up", "--recreate"]).ok();
    assert!(up.stderr.contains(outside.to_str().unwrap()), "up did not name it: {}", up.stderr);
    std::fs::remove_file(dir.join("d")).unwrap();
    std::os::unix::fs::symlink(&other, dir.join("d")).unwrap();
    let up = env.berth(&dir, &["up", "--recreate"]).ok();
    assert!(up.stderr.contains(other.to_str().unwrap()), "a moved link is a changed setting: {}", up.stderr);
}

#[test]
fn the_hugging_face_login_token_stays_out_of_the_environment_and_status_names_writable_folders() {
    let env = TestEnv::new();
    let hf = env.home.join(".cache/huggingface");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::write(hf.join("token"), "hf_s3cretT0ken\n").unwrap();
    let data = env.root.path().join("dataset");
    std::fs::create_dir_all(&data).unwrap();
    let dir = env.project("hf", &format!("mounts = [\".:/workspace\", \"{}:/data\"]", data.display()));
    env.berth(&dir, &["up"]).ok();
    let inside = env
        .berth(&dir, &["exec", "--", "sh", "-c", "grep -rl s3cret /berth \"$HOME\" 2>/dev/null; echo hub=$HF_HUB_CACHE; echo model > $HF_HUB_CACHE/m"])
        .ok();
    assert_eq!(inside.stdout.trim(), "hub=/berth/cache/huggingface/hub", "the token is visible inside");
    assert_eq!(std::fs::read_to_string(hf.join("hub/m")).unwrap(), "model\n", "downloads are shared");

    let status = env.berth(&dir, &["status"]).ok();
    // The `writable` section: its first line and the indented lines after it.
    let mut section = status.stdout.lines().skip_while(|l| !l.starts_with("writable"));
    let writable: Vec<&str> =
        section.next().into_iter().chain(section.take_while(|l| l.starts_with(' '))).collect();
    let listed = |p: &std::path::Path| writable.iter().any(|l| l.contains(&format!(" {} (", p.display())));
    assert!(listed(&dir) && listed(&hf.join("hub")) && listed(&dir.join(".berth")), "{}", status.stdout);
    assert!(!listed(&data), "a read-only dataset is not writable: {}", status.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&env.berth(&dir, &["status", "--json"]).ok().stdout).unwrap();
    assert!(json["writable_host_folders"].as_array().unwrap().iter().any(|p| p == dir.to_str().unwrap()));
}

/// Runs `sh -c script` as `uid` (a member of the docker group, like a colleague on the server).
fn sh_as(uid: u32, script: &str) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            &format!("--groups={}", docker_socket_gid()),
        ])
        .args(["sh", "-c", script])
        .output()
        .unwrap()
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn job_state(env: &TestEnv, dir: &std::path::Path, name: &str) -> serde_json::Value {
    let jobs: Vec<serde_json::Value> =
        serde_json::from_str(&env.berth(dir, &["jobs", "--json"]).ok().stdout).unwrap();
    jobs.into_iter().find(|j| j["name"] == name).unwrap_or_else(|| panic!("no job {name}"))
}

fn wait_exit(dir: &std::path::Path, name: &str) {
    let exit = dir.join(".berth/jobs").join(name).join("exit");
    let start = std::time::Instant::now();
    while !exit.exists() && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(not(berth_root_tests), ignore = "switching to other uids needs root")]
fn another_user_can_read_no_job_or_build_log_and_cannot_rewrite_a_job() {
    let (alice, bob) = (4261, 4262);
    let mut env = TestEnv::new();
    env.as_user = Some((alice, alice, "alice".into()));
    env.env.push(("HF_TOKEN".into(), "hf_alices_secret".into()));
    let dir = env.project(
        "shared",
        &format!("[image]\nbase = \"{IMAGE}\"\ndockerfile = \"Dockerfile\"\n[env]\nHF_TOKEN = {{ from-host = true }}\n"),
    );
    std::fs::write(dir.join("Dockerfile"), format!("FROM {IMAGE}\nRUN echo built\n")).unwrap();
    chown_tree(env.root.path(), alice, alice);
    // A project folder others may look into, as on many shared servers.
    for p in [env.root.path(), dir.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    env.berth(&dir, &["up"]).ok();
    env.berth(&dir, &["run", "--name", "leak", "--", "sh", "-c", "echo token=$HF_TOKEN"]).ok();
    wait_exit(&dir, "leak");
    let state = dir.join(".berth");
    let job = state.join("jobs/leak");
    assert_eq!(std::fs::read_to_string(job.join("log")).unwrap(), "token=hf_alices_secret\n");
    assert_eq!((mode(&state), mode(&state.join("jobs")), mode(&job)), (0o700, 0o700, 0o700));
    assert_eq!((mode(&job.join("log")), mode(&state.join("build.log"))), (0o600, 0o600));

    for path in [job.join("log"), state.join("build.log")] {
        let read = sh_as(bob, &format!("cat '{}'", path.display()));
        assert!(
            !read.status.success(),
            "bob read {}: {}",
            path.display(),
            String::from_utf8_lossy(&read.stdout)
        );
    }
    let forged = sh_as(bob, &format!("echo 0 > '{0}/exit'; echo 1 > '{0}/pid'; rm -rf '{0}'", job.display()));
    assert!(!forged.status.success());
    let seen = job_state(&env, &dir, "leak");
    assert_eq!((seen["state"].as_str(), seen["exit_code"].as_i64()), (Some("exited"), Some(0)), "{seen}");
    assert!(std::fs::read_to_string(job.join("pid")).unwrap().trim().parse::<u32>().is_ok());
}

#[test]
fn a_job_of_an_image_user_runs_in_a_folder_no_other_user_can_write() {
    let mut env = TestEnv::new();
    if is_root() {
        // The usual case: a host user who is neither root nor the image user.
        env.as_user = Some((4264, 4264, "carol".into()));
        chown_tree(env.root.path(), 4264, 4264);
    }
    let dir = env.project("imageuser", "[user]\nas = \"nobody\"\n");
    env.berth(&dir, &["up"]).ok();
    env.berth(&dir, &["run", "--name", "who", "--", "sh", "-c", "id -u"]).ok();
    wait_exit(&dir, "who");
    let job = dir.join(".berth/jobs/who");
    assert_eq!(std::fs::read_to_string(job.join("log")).unwrap(), "65534\n", "the image user wrote its log");
    assert_eq!(mode(&job) & 0o007, 0, "the job folder is open to others: {:o}", mode(&job));
    assert_eq!(mode(&job.join("log")) & 0o007, 0);
    assert_eq!(mode(&dir.join(".berth")), 0o750);
    let seen = job_state(&env, &dir, "who");
    assert_eq!((seen["state"].as_str(), seen["exit_code"].as_i64()), (Some("exited"), Some(0)), "{seen}");
    // The image user reads its pid file and records its end through the group it was given.
    env.berth(&dir, &["run", "--name", "long", "--", "sleep", "60"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(500));
    env.berth(&dir, &["kill", "long", "--grace", "5"]).ok();
    assert_eq!(job_state(&env, &dir, "long")["state"], "exited");
}

#[test]
fn an_old_open_state_folder_is_tightened_and_a_forged_job_is_reported_not_trusted() {
    let env = TestEnv::new();
    let dir = env.project("legacy", "");
    env.berth(&dir, &["up"]).ok();
    env.berth(&dir, &["run", "--name", "old", "--", "sh", "-c", "echo hi"]).ok();
    env.berth(&dir, &["run", "--name", "forged", "--", "sleep", "60"]).ok();
    wait_exit(&dir, "old");
    // What an older berth left: readable by all, and a job folder anyone could write.
    let state = dir.join(".berth");
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    set(&state, 0o755);
    set(&state.join("jobs/old/log"), 0o644);
    set(&state.join("jobs/old"), 0o777);
    env.berth(&dir, &["jobs"]).ok();
    assert_eq!(
        (mode(&state), mode(&state.join("jobs/old")), mode(&state.join("jobs/old/log"))),
        (0o700, 0o700, 0o600)
    );
    assert_eq!(job_state(&env, &dir, "old")["state"], "exited");

    // A file only another user could have put there: the job is not believed, nor signalled.
    let pid = state.join("jobs/forged/pid");
    std::os::unix::fs::chown(&pid, Some(4263), None).unwrap();
    let seen = job_state(&env, &dir, "forged");
    assert_eq!(seen["state"], "untrusted", "{seen}");
    assert!(seen["diagnosis"]["cause"].as_str().unwrap().contains("uid 4263"), "{seen}");
    let table = env.berth(&dir, &["jobs"]).ok();
    assert!(
        table.stdout.lines().any(|l| l.starts_with("forged") && l.contains("untrusted")),
        "{}",
        table.stdout
    );
    let kill = env.berth(&dir, &["kill", "forged"]).code(4);
    assert!(kill.stderr.contains("not trusted"), "{}", kill.stderr);
}

/// On a server whose users share one primary group (`users`), the owner's group is no private
/// channel to an image user: berth's folders stay the owner's alone and a job as an image user
/// is refused, saying why, instead of opening its log and record to every colleague.
#[test]
fn a_job_as_an_image_user_is_refused_when_the_owners_primary_group_is_shared_with_colleagues() {
    if !is_root() {
        eprintln!("skipped: switching to other uids needs root");
        return;
    }
    // A primary group another (non-root) account of this host has too.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let Some((colleague, gid)) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let uid: u32 = f.get(2)?.parse().ok()?;
        (uid != 0).then_some((f[0].to_string(), f.get(3)?.parse::<u32>().ok()?))
    }) else {
        eprintln!("skipped: no other account in /etc/passwd");
        return;
    };
    let mut env = TestEnv::new();
    env.as_user = Some((4266, gid, "erin".into()));
    chown_tree(env.root.path(), 4266, gid);
    let dir = env.project("sharedgroup", "[user]\nas = \"nobody\"\n");
    env.berth(&dir, &["up"]).ok();
    let state = dir.join(".berth");
    assert_eq!(mode(&state) & 0o077, 0, ".berth is open to the shared group: {:o}", mode(&state));
    let refused = env.berth(&dir, &["run", "--name", "leak", "--", "sh", "-c", "echo hi"]).code(4);
    assert!(refused.stderr.contains(&colleague) && refused.stderr.contains("sg GROUP"), "{}", refused.stderr);
    assert!(!state.join("jobs/leak").exists(), "a job folder was made");
}

#[test]
fn a_newline_in_a_folder_name_never_starts_a_forged_line_in_berths_progress() {
    let env = TestEnv::new();
    let dir = env.project("newline", "");
    let out = env.root.path().join("packs\nerror: forged by a folder name");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join("p.tar.zst");
    let packed = env.berth(&dir, &["pack", "-o", file.to_str().unwrap()]).ok();
    assert!(
        packed.stderr.lines().all(|l| !l.starts_with("error: forged")),
        "a path started a line of its own:\n{}",
        packed.stderr
    );
    assert!(packed.stderr.contains("  error: forged by a folder name"), "{}", packed.stderr);
}

#[test]
fn links_planted_in_berth_folder_from_inside_never_make_berth_truncate_or_delete_host_files() {
    let env = TestEnv::new();
    let dir = env.project("planted", "");
    env.berth(&dir, &["up"]).ok();
    // Files of the caller's outside the project: anything root may write, for a root caller.
    let outside = env.root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), "keep me\n").unwrap();
    let _agent = std::os::unix::net::UnixListener::bind(outside.join("agent.sock")).unwrap();
    // `.berth` is writable inside: a process there replaces the lock and the agent's folder.
    let plant = format!(
        "rm -rf /berth/state/lock /berth/state/ssh-agent && ln -s {0}/precious /berth/state/lock && \
         ln -s {0} /berth/state/ssh-agent",
        outside.display()
    );
    env.berth(&dir, &["exec", "--", "sh", "-c", &plant]).ok();
    env.berth(&dir, &["stop"]).ok();
    env.berth(&dir, &["up"]).ok();
    // A session with an agent: the planted link is replaced by berth's own folder, never followed.
    let mut session = env.command(&dir, &["exec", "--", "true"]);
    session.env("SSH_AUTH_SOCK", outside.join("agent.sock"));
    let out = session.stdin(std::process::Stdio::null()).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("not forwarded"), "the link keeps the agent out: {stderr}");
    let folder = std::fs::symlink_metadata(dir.join(".berth/ssh-agent")).unwrap();
    assert!(folder.is_dir(), "berth's own folder again");
    env.berth(&dir, &["down", "--force"]).ok();
    assert_eq!(
        std::fs::read_to_string(outside.join("precious")).unwrap(),
        "keep me\n",
        "truncated through .berth/lock"
    );
    assert!(outside.join("agent.sock").exists(), "removed through .berth/ssh-agent");
    assert!(
        !std::fs::symlink_metadata(dir.join(".berth/lock")).unwrap().is_symlink(),
        "the lock is berth's own again"
    );
}
