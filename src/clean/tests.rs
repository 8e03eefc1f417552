//! Which items `clean` removes, keeps or never lists.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn berth(uid: u32, owner: &str, project: &str) -> BTreeMap<String, String> {
    labels(&[
        (LABEL_MANAGED, "true"),
        (LABEL_OWNER_UID, &uid.to_string()),
        (LABEL_OWNER, owner),
        (LABEL_PROJECT, project),
        (LABEL_NAME, project.rsplit('/').next().unwrap_or(project)),
    ])
}

/// A container as the engine lists it: berth's own carry a plan hash beside `managed`.
fn container(id: &str, state: &str, mut labels: BTreeMap<String, String>) -> ContainerInfo {
    if labels.get(LABEL_MANAGED).map(String::as_str) == Some("true") {
        labels.entry(crate::plan::LABEL_HASH.to_string()).or_insert_with(|| "0123456789abcdef".to_string());
    }
    ContainerInfo {
        id: id.into(),
        name: format!("c-{id}"),
        image_id: "sha256:base".into(),
        state: state.into(),
        labels,
        size_rw: 1000,
        changes: Vec::new(),
    }
}

fn image(
    id: &str,
    tags: &[&str],
    created: i64,
    size: u64,
    layers: &[&str],
    labels: BTreeMap<String, String>,
) -> ImageInfo {
    ImageInfo {
        id: id.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        created,
        size,
        labels,
        layers: layers.iter().map(|l| l.to_string()).collect(),
    }
}

const ALICE: Scope = Scope { uid: 1000, all_users: false, force: false };

fn decided(items: &[Item]) -> Vec<(&str, Reason, bool)> {
    items.iter().map(|i| (i.id.as_str(), i.reason, i.remove)).collect()
}

#[test]
fn only_the_callers_stopped_berth_containers_are_candidates() {
    let containers = vec![
        container("stopped", "exited", berth(1000, "alice", "/p/a")),
        container("created", "created", berth(1000, "alice", "/p/b")),
        container("running", "running", berth(1000, "alice", "/p/c")),
        container("bobs", "exited", berth(1001, "bob", "/p/d")),
        container("foreign", "exited", labels(&[("com.example", "x")])),
        container("unlabelled", "exited", BTreeMap::new()),
    ];
    let items = plan(&containers, &[], &ALICE);
    assert_eq!(decided(&items), [("stopped", Reason::Stopped, true), ("created", Reason::Stopped, true)]);
}

#[test]
fn changes_that_matter_keep_a_container_unless_forced() {
    let mut c = container("work", "exited", berth(1000, "alice", "/p/a"));
    c.changes = vec!["/root/model.pt (added)".into(), "3 files under /opt".into()];
    let items = plan(std::slice::from_ref(&c), &[], &ALICE);
    assert!(!items[0].remove);
    assert_eq!(
        items[0].kept_because.as_deref(),
        Some("holds changes that matter (/root/model.pt (added) and 1 more); --force removes it")
    );
    let forced = plan(&[c.clone()], &[], &Scope { force: true, ..ALICE });
    assert!(forced[0].remove);
    // A build's scratch container goes whatever it holds.
    c.labels.insert(LABEL_BUILD.into(), "true".into());
    assert_eq!(decided(&plan(&[c], &[], &ALICE)), [("work", Reason::BuildLeftover, true)]);
}

#[test]
fn other_users_need_all_users_root_and_force() {
    let containers = vec![container("bobs", "exited", berth(1001, "bob", "/p/d"))];
    let listed = plan(&containers, &[], &Scope { all_users: true, ..ALICE });
    assert_eq!(
        listed[0].kept_because.as_deref(),
        Some("belongs to bob; only root may remove another user's")
    );
    let root = Scope { uid: 0, all_users: true, force: false };
    assert!(plan(&containers, &[], &root)[0].kept_because.as_deref().is_some_and(|w| w.contains("--force")));
    assert!(plan(&containers, &[], &Scope { force: true, ..root })[0].remove);
}

#[test]
fn dangling_and_superseded_berth_images_go_unless_a_container_uses_them() {
    let base = image("sha256:base", &["busybox:1"], 1, 2_000_000, &["l0"], BTreeMap::new());
    let dangling = image("sha256:dang", &[], 5, 3_000_000, &["l0", "l1"], berth(1000, "alice", "/p/a"));
    let old = image("sha256:old", &["berth/a:1"], 10, 2_500_000, &["l0", "l2"], berth(1000, "alice", "/p/a"));
    let new = image("sha256:new", &["berth/a:2"], 20, 2_600_000, &["l0", "l3"], berth(1000, "alice", "/p/a"));
    let used = image("sha256:used", &[], 6, 2_100_000, &["l0", "l4"], berth(1000, "alice", "/p/b"));
    let foreign = image("sha256:foreign", &[], 7, 9_000_000, &["l9"], BTreeMap::new());
    let bobs = image("sha256:bobs", &[], 8, 9_000_000, &["l0", "l8"], berth(1001, "bob", "/p/d"));
    let images = vec![base, dangling, old, new, used, foreign, bobs];
    let mut user = container("u", "running", berth(1000, "alice", "/p/b"));
    user.image_id = "sha256:used".into();
    let items = plan(&[user], &images, &ALICE);
    assert_eq!(
        decided(&items),
        [("sha256:dang", Reason::Dangling, true), ("sha256:old", Reason::Superseded, true)]
    );
    assert_eq!(items[0].bytes, 1_000_000, "only what the base does not hold");
    assert_eq!(items[1].tags, ["berth/a:1"]);
    assert_eq!(items[1].environment, "a", "named after the project when the image has no name label");
}

#[test]
fn a_superseded_snapshot_of_an_environment_needs_force() {
    let mut labels = berth(1000, "alice", "/p/a");
    labels.insert(crate::plan::LABEL_PLAN.into(), "{}".into());
    let snap = image("sha256:snap", &["berth/a:commit-1"], 10, 5, &["l0", "l1"], labels);
    let build = image("sha256:build", &["berth/a:2"], 20, 5, &["l0", "l2"], berth(1000, "alice", "/p/a"));
    let images = vec![snap, build];
    let items = plan(&[], &images, &ALICE);
    assert_eq!(decided(&items), [("sha256:snap", Reason::Superseded, false)]);
    assert!(
        items[0].kept_because.as_deref().is_some_and(|w| w.contains("snapshot") && w.contains("--force"))
    );
    assert!(plan(&[], &images, &Scope { force: true, ..ALICE })[0].remove);
}

#[test]
fn an_image_freed_by_removing_its_container_goes_with_it() {
    let img = image("sha256:snap", &[], 5, 3_000_000, &["l0", "l1"], berth(1000, "alice", "/p/a"));
    let mut c = container("stopped", "exited", berth(1000, "alice", "/p/a"));
    c.image_id = "sha256:snap".into();
    let items = plan(std::slice::from_ref(&c), std::slice::from_ref(&img), &ALICE);
    assert_eq!(
        decided(&items),
        [("stopped", Reason::Stopped, true), ("sha256:snap", Reason::Dangling, true)]
    );
    c.changes = vec!["/root/x (added)".into()];
    let items = plan(&[c], &[img], &ALICE);
    assert_eq!(decided(&items), [("stopped", Reason::Stopped, false)], "a kept container keeps its image");
}

#[test]
fn unique_bytes_subtract_the_largest_prefix_image() {
    let a = image("a", &[], 0, 100, &["x"], BTreeMap::new());
    let b = image("b", &[], 0, 150, &["x", "y"], BTreeMap::new());
    let c = image("c", &[], 0, 180, &["x", "y", "z"], BTreeMap::new());
    let twin = image("twin", &[], 0, 180, &["x", "y", "z"], BTreeMap::new());
    let all = vec![a.clone(), b.clone(), c.clone()];
    assert_eq!(unique_bytes(&c, &all), 30);
    assert_eq!(unique_bytes(&a, &all), 100);
    assert_eq!(unique_bytes(&c, &[c.clone(), twin]), 0, "the same layers under another id free nothing");
}

#[test]
fn containers_that_only_inherited_berths_image_labels_are_not_berths() {
    // `docker run berth/x:…` copies the image's labels (managed, owner, project) but no plan hash.
    let mut c = container("user-run", "exited", BTreeMap::new());
    c.labels = berth(1000, "alice", "/home/alice/p");
    let scope = Scope { uid: 1000, all_users: false, force: false };
    assert!(container_candidates(&[c], &scope).is_empty());
}

#[test]
fn an_image_the_user_tagged_is_theirs_even_with_berths_labels() {
    let mine = berth(1000, "alice", "/home/alice/p");
    let images = vec![
        image("sha256:old", &["berth/p:aaaa", "myorg/model:v1"], 1, 100, &["l1"], mine.clone()),
        image("sha256:new", &["berth/p:bbbb"], 2, 100, &["l1", "l2"], mine),
    ];
    let items = plan(&[], &images, &ALICE);
    assert!(items.iter().all(|i| i.id != "sha256:old"), "{items:?}");
}
