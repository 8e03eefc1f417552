//! Parsing the tools' answers and cgroup paths, and naming who a process is.

use super::*;

const SD: &str = "3f1c2a9e5b7d4c1e8a6f0b2d9c4e7a1f3b5d8c2e6a9f1b4d7c0e3a6f9b2d5c8e";

#[test]
fn nvidia_smi_csv_parses_and_unknown_memory_stays_unknown() {
    let gpus = parse_nvidia_gpus(
        "0, GPU-aaa, NVIDIA RTX A6000, 29734, 49140\n1, GPU-bbb, NVIDIA H100 80GB HBM3, [N/A], [N/A]\nbad\n",
    );
    assert_eq!(gpus.len(), 2);
    assert_eq!((gpus[0].index, gpus[0].uuid.as_deref(), gpus[0].used_mib), (0, Some("GPU-aaa"), Some(29734)));
    assert_eq!(gpus[1].name, "NVIDIA H100 80GB HBM3");
    assert_eq!((gpus[1].used_mib, gpus[1].total_mib), (None, None));
    assert_eq!(gpus[0].utilization_percent, None, "a recording without utilisation");
    let busy =
        parse_nvidia_gpus("0, GPU-aaa, NVIDIA RTX A6000, 29734, 49140, 87\n1, GPU-bbb, X, 1, 2, [N/A]\n");
    assert_eq!((busy[0].utilization_percent, busy[1].utilization_percent), (Some(87), None));
    let apps = parse_nvidia_apps("412345, 20000, GPU-aaa\n77, [N/A], GPU-bbb\n");
    assert_eq!(apps, [(412345, Some(20000), "GPU-aaa".to_string()), (77, None, "GPU-bbb".to_string())]);
}

#[test]
fn container_ids_come_from_every_cgroup_layout() {
    let forms = [
        // cgroup v1 (cgroupfs driver): one line per hierarchy.
        format!("12:pids:/docker/{SD}\n11:devices:/docker/{SD}\n0::/system.slice/containerd.service\n"),
        // cgroup v2, cgroupfs driver.
        format!("0::/docker/{SD}\n"),
        // cgroup v2, systemd driver.
        format!("0::/system.slice/docker-{SD}.scope\n"),
        // cgroup v1, systemd driver.
        format!("4:memory:/system.slice/docker-{SD}.scope\n"),
        // A systemd inside the container makes sub-cgroups.
        format!("0::/system.slice/docker-{SD}.scope/init.scope\n"),
        // Rootless Docker and Podman.
        format!("0::/user.slice/user-1000.slice/user@1000.service/app.slice/docker-{SD}.scope\n"),
        format!("0::/machine.slice/libpod-{SD}.scope/container\n"),
    ];
    for text in &forms {
        assert_eq!(container_id(text).as_deref(), Some(SD), "{text}");
    }
    assert_eq!(container_id("0::/user.slice/user-1000.slice/session-4.scope\n"), None);
    assert_eq!(container_id("0::/init.scope\n"), None);
    assert_eq!(
        container_id(&format!("0::/machine.slice/libpod-conmon-{SD}.scope\n")),
        None,
        "conmon is not the container"
    );
}

fn berth_container(id: &str, name: &str, owner: &str, uid: u32, project: &str) -> ContainerMeta {
    let labels = [
        (LABEL_MANAGED, "true"),
        (crate::plan::LABEL_HASH, "sha256:5f0c"),
        (LABEL_NAME, name),
        (LABEL_OWNER, owner),
        (LABEL_OWNER_UID, &uid.to_string()),
        (LABEL_PROJECT, project),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    ContainerMeta { id: id.into(), name: format!("berth-{owner}-{name}"), labels }
}

#[test]
fn processes_are_named_by_environment_job_container_or_host() {
    let other = "b".repeat(64);
    let foreign = "c".repeat(64);
    let containers = vec![
        berth_container(SD, "sdcnet", "alice", 1000, "/home/alice/sdcnet"),
        berth_container(&other, "llm", "bob", 1001, "/home/bob/llm"),
        ContainerMeta { id: foreign.clone(), name: "jupyter".into(), labels: BTreeMap::new() },
    ];
    // A plain `docker run` of an image berth committed carries the image's labels, not a plan.
    let mut from_image = berth_container(&"e".repeat(64), "sdcnet", "alice", 1000, "/home/alice/sdcnet");
    from_image.labels.remove(crate::plan::LABEL_HASH);
    from_image.labels.remove(LABEL_NAME);
    from_image.name = "serve-copy".into();
    let containers = [containers, vec![from_image]].concat();
    let jobs: BTreeMap<String, Jobs> = [
        ("/home/alice/sdcnet".to_string(), vec![("train".to_string(), 7)]),
        ("/home/bob/llm".to_string(), vec![("serve".to_string(), 9)]),
    ]
    .into_iter()
    .collect();
    let alice = Viewer { uid: 1000, all_users: false };
    let proc = |container: Option<&str>, ns: &[u32]| ProcInfo {
        pid: 1,
        uid: Some(1000),
        command: "python".into(),
        container: container.map(str::to_string),
        ns_pids: ns.to_vec(),
    };
    let job_of = |w: Who| match w {
        Who::Environment { job, .. } => job,
        other => panic!("not an environment: {other:?}"),
    };
    assert_eq!(job_of(who(&proc(Some(SD), &[15, 7, 1]), &containers, &jobs, alice)), Some("train".into()));
    assert_eq!(job_of(who(&proc(Some(SD), &[30, 1]), &containers, &jobs, alice)), None);
    assert_eq!(
        who(&proc(Some(&other), &[9]), &containers, &jobs, alice),
        Who::OtherUsersEnvironment { owner: "bob".into() }
    );
    let everyone = Viewer { all_users: true, ..alice };
    assert_eq!(job_of(who(&proc(Some(&other), &[9]), &containers, &jobs, everyone)), Some("serve".into()));
    assert_eq!(
        who(&proc(Some(&foreign), &[]), &containers, &jobs, alice),
        Who::Container { container: "jupyter".into() }
    );
    assert_eq!(
        who(&proc(Some(&"d".repeat(64)), &[]), &containers, &jobs, alice),
        Who::UnknownContainer { id: "dddddddddddd".into() }
    );
    assert_eq!(who(&proc(None, &[]), &containers, &jobs, alice), Who::Host);
    assert_eq!(
        who(&proc(Some(&"e".repeat(64)), &[1]), &containers, &jobs, alice),
        Who::Container { container: "serve-copy".into() },
        "regression: named as alice's environment"
    );
}

#[test]
fn namespace_pids_follow_the_group_leader_and_ancestors_on_a_recorded_host() {
    let root = crate::host::HostRoot::at(format!("{}/tests/hosts/nvidia-2", env!("CARGO_MANIFEST_DIR")));
    let train = sources::proc_info(&root, 412345);
    assert_eq!(train.command, "python");
    assert_eq!(train.uid, Some(1000));
    assert_eq!(train.container.as_deref().map(|c| c.len()), Some(64));
    assert_eq!(train.ns_pids, [15, 7, 1], "itself, its group leader `sh` (the job), the container's init");
    let host = sources::proc_info(&root, 3100);
    assert_eq!((host.container, host.ns_pids), (None, vec![]));
    assert_eq!(
        sources::running_jobs(&root, "/home/alice/sdcnet"),
        [("train".to_string(), 7)],
        "eval has exited"
    );
    assert_eq!(sources::user_names(&root).get(&1001).map(String::as_str), Some("bob"));
}
