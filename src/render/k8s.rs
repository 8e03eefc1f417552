//! `k8s/<name>.yaml`: the environment as Kubernetes objects, in one of three flavors.
//!
//! - `job` (default, no operator): a headless Service and an Indexed Job of N pods; pod `i`
//!   is `<name>-i.<name>`, its rank the completion index, node 0 the master.
//! - `jobset` (JobSet v1alpha2, checked against v0.12.0): one replicated Job `node`; JobSet
//!   makes the headless Service; pod `i` is `<name>-node-0-i.<name>`.
//! - `trainjob` (Kubeflow Trainer v2.3, `trainer.kubeflow.org/v1alpha1` with `runtimePatches`):
//!   the `torch-distributed` runtime injects torchrun's `PET_*` itself (and refuses them in
//!   `trainer.env`); volumes and mounts go through a runtime patch of the container `node`.

use super::k8s_pod::{self, CONTAINER, Storage};
use super::yaml::{Map, Yaml, document, strs};
use super::{ExportPlan, Rendered};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Job,
    JobSet,
    TrainJob,
}

pub const JOBSET_API: &str = "jobset.x-k8s.io/v1alpha2";
pub const TRAINER_API: &str = "trainer.kubeflow.org/v1alpha1";
/// The Trainer release whose TrainJob schema this flavor is written for.
pub const TRAINER_VERSION: &str = "v2.3";

pub fn render(p: &ExportPlan, flavor: Flavor) -> Rendered {
    let mut warnings = Vec::new();
    k8s_pod::unsupported(p, &mut warnings);
    let storage = k8s_pod::storage(p, &mut warnings);
    let mut extra: Vec<String> = p.gpus_per_node_note().into_iter().collect();
    let docs = match flavor {
        Flavor::Job => {
            extra.push(format!("Indexed Job + headless Service (batch/v1, Kubernetes 1.24 or later): kubectl apply -f k8s/{}.yaml", p.dns_name));
            vec![service(p), job(p, &storage, &mut warnings)]
        }
        Flavor::JobSet => {
            extra.push(format!(
                "JobSet {JOBSET_API} (written for JobSet v0.12): needs the JobSet controller."
            ));
            vec![jobset(p, &storage, &mut warnings)]
        }
        Flavor::TrainJob => {
            extra.push(format!(
                "TrainJob {TRAINER_API}, Kubeflow Trainer {TRAINER_VERSION} API (runtimePatches; v2.0-v2.2 differ)."
            ));
            extra.push("Needs Trainer's ClusterTrainingRuntime \"torch-distributed\", which sets torchrun's PET_* itself.".into());
            vec![trainjob(p, &storage, &mut warnings)]
        }
    };
    if !p.host_env.is_empty() {
        let verb = if p.host_env.len() == 1 { "comes" } else { "come" };
        extra.push(format!(
            "{} {verb} from the Secret \"{}\": kubectl create secret generic {} --from-literal={}=...",
            p.host_env.join(", "),
            k8s_pod::secret_name(p),
            k8s_pod::secret_name(p),
            p.host_env[0]
        ));
    }
    if p.keep_alive {
        extra.push(
            "No command was given: the pod runs the keep-alive; enter it with kubectl exec -it POD -- sh"
                .into(),
        );
    }
    extra.extend(warnings.iter().map(|w| format!("warning: {w}")));
    let mut text = p.header("#", &extra);
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&document(doc));
    }
    Rendered { text, warnings }
}

fn metadata(p: &ExportPlan, name: &str) -> Map {
    Map::new().set("name", name).set("labels", k8s_pod::labels(p))
}

fn service(p: &ExportPlan) -> Map {
    let port = Map::new().set("name", "rdzv").set("port", p.master_port).set("targetPort", p.master_port);
    Map::new().set("apiVersion", "v1").set("kind", "Service").set("metadata", metadata(p, &p.dns_name)).set(
        "spec",
        Map::new()
            .set("clusterIP", "None")
            .comment("Pods need each other's names before they are ready (torchrun's rendezvous).")
            .set("publishNotReadyAddresses", true)
            .set("selector", Map::new().set("job-name", p.dns_name.as_str()))
            .set("ports", Yaml::Seq(vec![port.into()])),
    )
}

/// The container every flavor runs; `pet` are the topology variables this flavor sets.
fn container(p: &ExportPlan, storage: &Storage, pet: Vec<Yaml>) -> Map {
    let port = Map::new().set("name", "rdzv").set("containerPort", p.master_port);
    Map::new()
        .set("name", CONTAINER)
        .set("image", p.image.as_str())
        .set("imagePullPolicy", "IfNotPresent")
        .set("command", strs(&p.command))
        .set("workingDir", p.workdir.as_str())
        .set_seq("env", k8s_pod::env(p, pet))
        .set("ports", Yaml::Seq(vec![port.into()]))
        .set_map("resources", Map::new().set_map("limits", k8s_pod::limits(p)))
        .set_map("securityContext", k8s_pod::security(p))
        .set_seq("volumeMounts", storage.mounts.clone())
}

fn pod_spec(p: &ExportPlan, container: Map, subdomain: Option<&str>) -> Map {
    Map::new()
        .set_opt("subdomain", subdomain)
        .set("restartPolicy", "Never")
        .set_opt("hostIPC", (p.ipc.as_deref() == Some("host")).then_some(true))
        .set_opt("hostNetwork", (p.network.as_deref() == Some("host")).then_some(true))
        .set("containers", Yaml::Seq(vec![container.into()]))
}

fn pet(p: &ExportPlan, master: String) -> Vec<Yaml> {
    vec![
        k8s_pod::var("PET_NNODES", p.nodes.to_string()),
        k8s_pod::var("PET_NPROC_PER_NODE", p.nproc_per_node().to_string()),
        k8s_pod::rank_var(),
        k8s_pod::var("PET_MASTER_ADDR", master),
        k8s_pod::var("PET_MASTER_PORT", p.master_port.to_string()),
    ]
}

/// An Indexed Job spec: N pods at once, no retries (a failed rank fails the run).
fn indexed(p: &ExportPlan, pod: Map) -> Map {
    Map::new()
        .set("completionMode", "Indexed")
        .set("completions", p.nodes)
        .set("parallelism", p.nodes)
        .set("backoffLimit", 0i64)
        .set(
            "template",
            Map::new().set("metadata", Map::new().set("labels", k8s_pod::labels(p))).set("spec", pod),
        )
}

fn job(p: &ExportPlan, storage: &Storage, _warnings: &mut [String]) -> Map {
    let master = format!("{}-0.{}", p.dns_name, p.dns_name);
    let c = container(p, storage, pet(p, master));
    let pod = pod_spec(p, c, Some(&p.dns_name)).set_seq("volumes", storage.volumes.clone());
    Map::new()
        .set("apiVersion", "batch/v1")
        .set("kind", "Job")
        .set("metadata", metadata(p, &p.dns_name))
        .set("spec", indexed(p, pod))
}

fn jobset(p: &ExportPlan, storage: &Storage, _warnings: &mut [String]) -> Map {
    let master = format!("{0}-{CONTAINER}-0-0.{0}", p.dns_name);
    let c = container(p, storage, pet(p, master));
    let pod = pod_spec(p, c, None).set_seq("volumes", storage.volumes.clone());
    let replicated = Map::new()
        .set("name", CONTAINER)
        .set("replicas", 1u32)
        .set("template", Map::new().set("spec", indexed(p, pod)));
    Map::new()
        .set("apiVersion", JOBSET_API)
        .set("kind", "JobSet")
        .set("metadata", metadata(p, &p.dns_name))
        .set(
            "spec",
            Map::new()
                .set("failurePolicy", Map::new().set("maxRestarts", 0i64))
                .set(
                    "network",
                    Map::new().set("enableDNSHostnames", true).set("publishNotReadyAddresses", true),
                )
                .set("replicatedJobs", Yaml::Seq(vec![replicated.into()])),
        )
}

fn trainjob(p: &ExportPlan, storage: &Storage, warnings: &mut Vec<String>) -> Map {
    if p.ipc.as_deref() == Some("host") || p.network.as_deref() == Some("host") {
        warnings.push(
            "Trainer's runtime patches cannot set host IPC or network: [run] ipc/network are ignored".into(),
        );
    }
    // The patch API cannot set the working folder (kubeflow/trainer#3199): change to it first.
    let mut command =
        vec!["sh".to_string(), "-c".into(), "cd \"$0\" && exec \"$@\"".into(), p.workdir.clone()];
    command.extend(p.command.iter().cloned());
    let mut trainer = Map::new()
        .set("image", p.image.as_str())
        .set("command", strs(&command))
        .set_seq("env", k8s_pod::env(p, Vec::new()))
        .set("numNodes", p.nodes);
    if p.gpus_per_node > 0 {
        trainer = trainer.set("numProcPerNode", p.gpus_per_node);
    }
    trainer = trainer.set_map("resourcesPerNode", Map::new().set_map("limits", k8s_pod::limits(p)));
    let patched = Map::new()
        .set("name", CONTAINER)
        .set_map("securityContext", k8s_pod::security(p))
        .set_seq("volumeMounts", storage.mounts.clone());
    let pod = Map::new()
        .set_seq("volumes", storage.volumes.clone())
        .set("containers", Yaml::Seq(vec![patched.into()]));
    let job_patch = Map::new()
        .set("name", CONTAINER)
        .set("template", Map::new().set("spec", Map::new().set("template", Map::new().set("spec", pod))));
    let patch = Map::new().set("manager", "berth").set(
        "trainingRuntimeSpec",
        Map::new().set(
            "template",
            Map::new().set("spec", Map::new().set("replicatedJobs", Yaml::Seq(vec![job_patch.into()]))),
        ),
    );
    let runtime_ref = Map::new()
        .set("name", "torch-distributed")
        .set("kind", "ClusterTrainingRuntime")
        .set("apiGroup", "trainer.kubeflow.org");
    Map::new()
        .set("apiVersion", TRAINER_API)
        .set("kind", "TrainJob")
        .set("metadata", metadata(p, &p.dns_name))
        .set(
            "spec",
            Map::new()
                .set("runtimeRef", runtime_ref)
                .set("trainer", trainer)
                .set("runtimePatches", Yaml::Seq(vec![patch.into()])),
        )
}
