//! push for real: a registry on loopback with a password, credentials only in docker's config.

use crate::fixtures::*;
use crate::support::*;

#[test]
fn push_uses_the_login_from_docker_config_and_the_registry_has_the_image() {
    let registry = Registry::start();
    let mut env = TestEnv::new();
    let image = TestImage::build("push", IMAGE, 50_000);
    let dir = env.project("push", &project_toml(&image.tag));
    let config = env.root.path().join("docker-config");
    std::fs::create_dir_all(&config).expect("mkdir");
    env.env.push(("DOCKER_CONFIG".into(), config.display().to_string()));
    let reference = format!("127.0.0.1:{}/berth-it/{}:v1", registry.port, unique("env"));
    let _untag = Untag(reference.clone());

    // No login yet: the registry's refusal, explained.
    let refused = env.berth(&dir, &["push", &reference]).code(1);
    assert!(refused.stderr.contains("docker login"), "{}", refused.stderr);

    use base64::Engine as _;
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"));
    let json = format!(r#"{{"auths":{{"127.0.0.1:{}":{{"auth":"{auth}"}}}}}}"#, registry.port);
    std::fs::write(config.join("config.json"), json).expect("config.json");
    let pushed = env.berth(&dir, &["push", &reference, "--json"]).ok();
    assert!(!pushed.stderr.contains(REGISTRY_PASSWORD) && !pushed.stdout.contains(REGISTRY_PASSWORD));
    let report: serde_json::Value = serde_json::from_str(&pushed.stdout).expect("push --json");
    assert_eq!(report["authenticated"], true);
    let digest = report["digest"].as_str().expect("a digest").to_string();

    let (repo, tag) = reference.split_once('/').map(|(_, r)| r.rsplit_once(':').expect("tag")).expect("repo");
    let head = registry
        .get(&format!("/v2/{repo}/manifests/{tag}"), Some((REGISTRY_USER, REGISTRY_PASSWORD)))
        .expect("registry reachable");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains(&format!("docker-content-digest: {digest}")), "{head}");
}

#[test]
fn push_without_a_reference_needs_an_image_named_for_a_registry() {
    let env = TestEnv::new();
    let dir = env.project("pushname", "");
    let run = env.berth(&dir, &["push"]).code(2);
    assert!(run.stderr.contains("say where to push"), "{}", run.stderr);
}

/// Removes the tag berth made for the push.
struct Untag(String);

impl Drop for Untag {
    fn drop(&mut self) {
        let _ = docker(&["rmi", &self.0]);
    }
}
