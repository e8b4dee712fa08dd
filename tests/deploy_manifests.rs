//! Black-box checks of the deployment files in `deploy/`; no server, no cluster.
//!
//! Every YAML document under `deploy/` must parse into the typed k8s-openapi struct for its
//! `kind`, and re-serializing that struct must give back the same document: k8s-openapi ignores
//! unknown fields, so this round trip is what makes a typo'd field (`readOnlyRootFileSystem`)
//! fail instead of silently vanishing when applied. Kustomizations and the cert-manager
//! Certificate have no typed struct here and are checked against the keys they may hold.
//!
//! On top of parsing: the kustomizations list every file and only existing ones, the
//! Deployment's probes reach a port the Service exposes, the container is locked down, and no
//! RBAC rule uses a wildcard or an unrestricted `bind`. When `kustomize` or `kubectl` is on
//! PATH, the base and the overlay are also rendered, and the rendered objects checked the same
//! way (which covers the overlay's patches).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Probe, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The ClusterRoles Kubernetes ships that tokend's RBAC may name without defining them.
const BUILT_IN_CLUSTER_ROLES: &[&str] = &["view", "edit", "admin"];

/// Where the deployment files live.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// One YAML document of one file, as JSON.
struct Manifest {
    /// Where it came from, for messages: `deploy/base/rbac.yaml#2`.
    origin: String,
    file: PathBuf,
    doc: Value,
}

impl Manifest {
    fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or("")
    }

    fn is_kustomization(&self) -> bool {
        self.file
            .file_name()
            .is_some_and(|n| n == "kustomization.yaml")
    }
}

/// Every `.yaml`/`.yml` file under `dir`, recursively, in a stable order.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Splits YAML text into its documents, each converted to JSON; empty documents (a file that
/// starts with `---` after a comment) are skipped.
fn documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin} document {i}: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Every document of every YAML file under `deploy/`.
fn load_manifests() -> Vec<Manifest> {
    let root = deploy_dir();
    let mut out = Vec::new();
    for file in yaml_files(&root) {
        let relative = file
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap_or(&file);
        let name = relative.display().to_string();
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (i, doc) in documents(&text, &name).into_iter().enumerate() {
            out.push(Manifest {
                origin: format!("{name}#{i}"),
                file: file.clone(),
                doc,
            });
        }
    }
    assert!(!out.is_empty(), "no YAML found under {}", root.display());
    out
}

/// Removes `null` members from objects, recursively: an explicit `null` in YAML and an absent
/// field mean the same to Kubernetes, and the typed structs drop both.
fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// The first place where the written document and its typed round trip differ, phrased for
/// the person who has to fix the YAML.
fn first_difference(written: &Value, typed: &Value, path: &str) -> Option<String> {
    match (written, typed) {
        (Value::Object(w), Value::Object(t)) => {
            for (key, w_value) in w {
                let here = format!("{path}.{key}");
                match t.get(key) {
                    None => {
                        return Some(format!(
                            "field `{here}` is not part of the type (a typo, or the wrong level?)"
                        ));
                    }
                    Some(t_value) => {
                        if let Some(diff) = first_difference(w_value, t_value, &here) {
                            return Some(diff);
                        }
                    }
                }
            }
            t.keys()
                .find(|key| !w.contains_key(*key))
                .map(|key| format!("the type adds `{path}.{key}`, which the YAML does not have"))
        }
        (Value::Array(w), Value::Array(t)) if w.len() == t.len() => w
            .iter()
            .zip(t)
            .enumerate()
            .find_map(|(i, (w, t))| first_difference(w, t, &format!("{path}[{i}]"))),
        _ if written == typed => None,
        _ => Some(format!(
            "`{path}` is written as {written} but reads back as {typed}"
        )),
    }
}

/// Parses `doc` into `T` and checks that `T` holds every field the document wrote, unchanged;
/// the error says what to fix.
fn try_strict<T: Resource + DeserializeOwned + Serialize>(doc: &Value) -> Result<T, String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or("");
    if api_version != T::API_VERSION {
        return Err(format!(
            "{} must be apiVersion {}, not {api_version}",
            T::KIND,
            T::API_VERSION
        ));
    }
    let typed: T =
        serde_json::from_value(doc.clone()).map_err(|e| format!("not a valid {}: {e}", T::KIND))?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_difference(&strip_nulls(doc), &strip_nulls(&back), "") {
        Some(diff) => Err(format!("{} does not round-trip: {diff}", T::KIND)),
        None => Ok(typed),
    }
}

/// [`try_strict`], failing the test with the document's origin.
fn strict<T: Resource + DeserializeOwned + Serialize>(doc: &Value, origin: &str) -> T {
    try_strict(doc).unwrap_or_else(|e| panic!("{origin}: {e}"))
}

/// Asserts that `value` is an object whose keys are all in `allowed` and that it has every key
/// in `required`: the strictness the typed structs give, for the documents without one.
fn keys_within(value: &Value, allowed: &[&str], required: &[&str], what: &str) {
    let map = value
        .as_object()
        .unwrap_or_else(|| panic!("{what} must be a mapping"));
    for key in map.keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "{what}: unexpected key `{key}` (a typo?)"
        );
    }
    for key in required {
        assert!(map.contains_key(*key), "{what}: missing `{key}`");
    }
}

/// A kustomization: the keys this project uses, each of the expected shape.
fn check_kustomization(doc: &Value, origin: &str) {
    assert_eq!(
        doc["apiVersion"], "kustomize.config.k8s.io/v1beta1",
        "{origin}: apiVersion"
    );
    keys_within(
        doc,
        &[
            "apiVersion",
            "kind",
            "namespace",
            "resources",
            "patches",
            "images",
            "labels",
        ],
        &["apiVersion", "kind", "resources"],
        origin,
    );
    let resources = doc["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{origin}: resources"));
    assert!(!resources.is_empty(), "{origin}: resources is empty");
    assert!(
        resources.iter().all(Value::is_string),
        "{origin}: resources must be paths"
    );
    if let Some(patches) = doc.get("patches") {
        for (i, patch) in patches
            .as_array()
            .expect("patches is a list")
            .iter()
            .enumerate()
        {
            let what = format!("{origin}: patches[{i}]");
            keys_within(patch, &["target", "patch", "path", "options"], &[], &what);
            assert!(
                patch.get("patch").is_some() != patch.get("path").is_some(),
                "{what}: exactly one of patch and path"
            );
            if let Some(target) = patch.get("target") {
                let allowed = [
                    "group",
                    "version",
                    "kind",
                    "name",
                    "namespace",
                    "labelSelector",
                ];
                keys_within(target, &allowed, &["kind"], &format!("{what}.target"));
            }
        }
    }
}

/// A cert-manager Certificate (cert-manager.io/v1): its documented spec fields only, and the
/// ones a serving certificate cannot do without.
fn check_certificate(doc: &Value, origin: &str) {
    assert_eq!(
        doc["apiVersion"], "cert-manager.io/v1",
        "{origin}: apiVersion"
    );
    keys_within(
        doc,
        &["apiVersion", "kind", "metadata", "spec"],
        &["metadata", "spec"],
        origin,
    );
    keys_within(
        &doc["metadata"],
        &["name", "namespace", "labels", "annotations"],
        &["name"],
        origin,
    );
    let spec = &doc["spec"];
    keys_within(
        spec,
        &[
            "secretName",
            "secretTemplate",
            "commonName",
            "literalSubject",
            "subject",
            "dnsNames",
            "ipAddresses",
            "uris",
            "emailAddresses",
            "otherNames",
            "duration",
            "renewBefore",
            "renewBeforePercentage",
            "privateKey",
            "usages",
            "issuerRef",
            "isCA",
            "keystores",
            "encodeUsagesInRequest",
            "revisionHistoryLimit",
            "additionalOutputFormats",
            "nameConstraints",
        ],
        &["secretName", "issuerRef", "dnsNames"],
        &format!("{origin}: spec"),
    );
    keys_within(
        &spec["issuerRef"],
        &["name", "kind", "group"],
        &["name"],
        &format!("{origin}: spec.issuerRef"),
    );
    if let Some(key) = spec.get("privateKey") {
        let allowed = ["algorithm", "size", "encoding", "rotationPolicy"];
        keys_within(key, &allowed, &[], &format!("{origin}: spec.privateKey"));
    }
    let names = spec["dnsNames"].as_array().expect("dnsNames is a list");
    assert!(
        !names.is_empty(),
        "{origin}: a serving certificate needs dnsNames"
    );
}

/// Checks one document by its kind; unknown kinds fail, so a new kind in deploy/ gets a check.
fn check_document(doc: &Value, origin: &str, is_kustomization: bool) {
    if is_kustomization {
        assert_eq!(doc["kind"], "Kustomization", "{origin}: kind");
        check_kustomization(doc, origin);
        return;
    }
    match doc["kind"].as_str().unwrap_or("") {
        "Namespace" => {
            strict::<Namespace>(doc, origin);
        }
        "ServiceAccount" => {
            strict::<ServiceAccount>(doc, origin);
        }
        "Deployment" => {
            strict::<Deployment>(doc, origin);
        }
        "Service" => {
            strict::<Service>(doc, origin);
        }
        "PodDisruptionBudget" => {
            strict::<PodDisruptionBudget>(doc, origin);
        }
        "ClusterRole" => {
            strict::<ClusterRole>(doc, origin);
        }
        "ClusterRoleBinding" => {
            strict::<ClusterRoleBinding>(doc, origin);
        }
        "Role" => {
            strict::<Role>(doc, origin);
        }
        "RoleBinding" => {
            strict::<RoleBinding>(doc, origin);
        }
        "Certificate" => check_certificate(doc, origin),
        "CustomResourceDefinition" => {
            strict::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(doc, origin);
        }
        "MutatingWebhookConfiguration" => {
            strict::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>(
                doc, origin,
            );
        }
        other => panic!("{origin}: no check for kind `{other}`; add it to check_document"),
    }
}

/// The typed objects of kind `T` among `manifests` (already checked by `strict`).
fn typed<T: Resource + DeserializeOwned + Serialize>(manifests: &[Manifest]) -> Vec<T> {
    manifests
        .iter()
        .filter(|m| !m.is_kustomization() && m.kind() == T::KIND)
        .map(|m| strict::<T>(&m.doc, &m.origin))
        .collect()
}

/// The manifests of the base only (what `kubectl apply -k deploy/` installs).
fn base_manifests() -> Vec<Manifest> {
    let base = deploy_dir().join("base");
    load_manifests()
        .into_iter()
        .filter(|m| m.file.parent() == Some(base.as_path()))
        .collect()
}

/// The one object of kind `T` a set of manifests must hold.
fn the_one<T: Resource + DeserializeOwned + Serialize>(manifests: &[Manifest]) -> T {
    let mut all = typed::<T>(manifests);
    assert_eq!(all.len(), 1, "expected exactly one {}", T::KIND);
    all.remove(0)
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

#[test]
fn every_manifest_parses_strictly_into_its_kubernetes_type() {
    let manifests = load_manifests();
    for m in &manifests {
        check_document(&m.doc, &m.origin, m.is_kustomization());
    }
    let kinds: BTreeSet<&str> = manifests.iter().map(Manifest::kind).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ClusterRole",
        "ClusterRoleBinding",
        "Kustomization",
        "Certificate",
    ] {
        assert!(kinds.contains(kind), "deploy/ has no {kind}");
    }
}

#[test]
fn the_strict_check_catches_a_typo_and_a_misplaced_field() {
    // The round trip is the whole point: prove it fails on the mistakes it exists for.
    let typo: Value = serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "x"}, "automountServiceAccountTokens": true
    });
    let error = try_strict::<ServiceAccount>(&typo).expect_err("a typo'd field must fail");
    assert!(error.contains(".automountServiceAccountTokens"), "{error}");
    let misplaced: Value = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "replicas": 2}
    });
    let error = try_strict::<Namespace>(&misplaced).expect_err("a misplaced field must fail");
    assert!(error.contains(".metadata.replicas"), "{error}");
}

#[test]
fn kustomizations_list_every_file_and_only_existing_ones() {
    let root = deploy_dir();
    let manifests = load_manifests();
    let kustomizations: Vec<&Manifest> =
        manifests.iter().filter(|m| m.is_kustomization()).collect();

    // Every folder holding YAML is a kustomization, so no file is outside all of them.
    let folders: BTreeSet<PathBuf> = yaml_files(&root)
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    for folder in &folders {
        assert!(
            folder.join("kustomization.yaml").is_file(),
            "{} holds YAML but no kustomization.yaml",
            folder.display()
        );
    }

    for k in &kustomizations {
        let dir = k.file.parent().expect("a folder");
        let mut referenced = BTreeSet::new();
        let resources = k.doc["resources"].as_array().expect("checked: a list");
        let patch_paths = k.doc["patches"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["path"].as_str());
        for entry in resources
            .iter()
            .filter_map(Value::as_str)
            .chain(patch_paths)
        {
            let target = dir.join(entry);
            assert!(
                target.is_file() || target.join("kustomization.yaml").is_file(),
                "{}: `{entry}` is neither a file nor a kustomization folder",
                k.origin
            );
            referenced.insert(target.canonicalize().expect("exists"));
        }
        // Every YAML file beside the kustomization is one of its resources or patches: a
        // manifest left out would silently never be applied.
        for file in yaml_files(dir) {
            if file.parent() != Some(dir)
                || file.file_name().is_some_and(|n| n == "kustomization.yaml")
            {
                continue;
            }
            assert!(
                referenced.contains(&file.canonicalize().expect("exists")),
                "{}: {} is not listed",
                k.origin,
                file.display()
            );
        }
    }

    // `kubectl apply -k deploy/` installs the base, and the base puts everything in tokend.
    let top = kustomizations
        .iter()
        .find(|k| k.file == root.join("kustomization.yaml"));
    let top = top.expect("deploy/kustomization.yaml exists");
    assert!(
        top.doc["resources"]
            .as_array()
            .unwrap()
            .contains(&Value::from("base"))
    );
    let base = kustomizations
        .iter()
        .find(|k| k.file == root.join("base/kustomization.yaml"));
    assert_eq!(
        base.expect("deploy/base/kustomization.yaml exists").doc["namespace"],
        "tokend"
    );
}

/// The container port a probe targets: by number (`grpc.port`, `tcpSocket.port: 50051`) or by
/// the container port's name (`tcpSocket.port: grpc`).
fn probe_target<'a>(probe: &Probe, container: &'a Container, what: &str) -> &'a ContainerPort {
    let port = if let Some(grpc) = &probe.grpc {
        IntOrString::Int(grpc.port)
    } else if let Some(tcp) = &probe.tcp_socket {
        tcp.port.clone()
    } else if let Some(http) = &probe.http_get {
        http.port.clone()
    } else {
        panic!("{what}: a probe with neither grpc, tcpSocket nor httpGet");
    };
    let ports = container.ports.as_deref().unwrap_or_default();
    ports
        .iter()
        .find(|p| match &port {
            IntOrString::Int(n) => p.container_port == *n,
            IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
        })
        .unwrap_or_else(|| panic!("{what}: probe port {port:?} is not a port of the container"))
}

/// Asserts that the Service sends some port to `target` (by number, by name, or, with no
/// targetPort, to the same number).
fn assert_service_exposes(service: &Service, target: &ContainerPort, what: &str) {
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let exposed = ports.iter().any(|p| match &p.target_port {
        None => p.port == target.container_port,
        Some(IntOrString::Int(n)) => *n == target.container_port,
        Some(IntOrString::String(name)) => target.name.as_deref() == Some(name.as_str()),
    });
    assert!(
        exposed,
        "{what}: the Service does not expose container port {target:?}"
    );
}

/// Checks the probes of a Deployment against a Service: each exists and targets a port the
/// Service exposes.
fn check_probes(deployment: &Deployment, service: &Service, what: &str) -> Vec<Probe> {
    let template = &deployment.spec.template;
    let pod = template.spec.as_ref().expect("pod spec");
    let pod_labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    assert!(!selector.is_empty(), "{what}: the Service has no selector");
    assert!(
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "{what}: the Service's selector {selector:?} does not match the pods' labels {pod_labels:?}"
    );
    let container = &pod.containers[0];
    let mut probes = Vec::new();
    for (name, probe) in [
        ("startupProbe", &container.startup_probe),
        ("readinessProbe", &container.readiness_probe),
        ("livenessProbe", &container.liveness_probe),
    ] {
        let probe = probe
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no {name}"));
        let target = probe_target(probe, container, &format!("{what} {name}"));
        assert_service_exposes(service, target, &format!("{what} {name}"));
        probes.push(probe.clone());
    }
    probes
}

#[test]
fn deployment_probes_are_grpc_on_a_port_the_service_exposes() {
    let base = base_manifests();
    let deployment = the_one::<Deployment>(&base);
    let service = the_one::<Service>(&base);
    let probes = check_probes(&deployment, &service, "deploy/base");
    // Native gRPC probes against grpc.health.v1, on the port the server listens on.
    let pod = deployment.spec.template.spec.expect("pod spec");
    let args = pod.containers[0].args.clone().unwrap_or_default();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--listen=")))
        .expect("the Deployment passes --listen");
    let listen_port: i32 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    for probe in &probes {
        let grpc = probe
            .grpc
            .as_ref()
            .expect("the base's probes are native gRPC probes");
        assert_eq!(
            grpc.port, listen_port,
            "a probe aims at a port tokend does not listen on"
        );
    }
    let startup = &probes[0];
    let patience = startup.failure_threshold.unwrap_or(3) * startup.period_seconds.unwrap_or(10);
    assert!(
        patience >= 60,
        "the startup probe gives a slow API server only {patience}s"
    );
}

#[test]
fn deployment_is_locked_down() {
    let base = base_manifests();
    let deployment = the_one::<Deployment>(&base);
    let spec = deployment.spec;
    assert_eq!(spec.replicas, Some(2), "two replicas");
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("tokend"));
    assert!(
        !pod.topology_spread_constraints
            .unwrap_or_default()
            .is_empty(),
        "topology spread"
    );
    let pod_seccomp = pod
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.clone());
    for container in &pod.containers {
        let what = format!("container {}", container.name);
        let sc = container
            .security_context
            .clone()
            .unwrap_or_else(|| panic!("{what}: no securityContext"));
        assert_eq!(sc.run_as_non_root, Some(true), "{what}: runAsNonRoot");
        assert_eq!(
            sc.read_only_root_filesystem,
            Some(true),
            "{what}: readOnlyRootFilesystem"
        );
        assert_eq!(
            sc.allow_privilege_escalation,
            Some(false),
            "{what}: allowPrivilegeEscalation"
        );
        let drop = sc.capabilities.and_then(|c| c.drop).unwrap_or_default();
        assert!(
            drop.iter().any(|c| c == "ALL"),
            "{what}: capabilities must drop ALL"
        );
        let seccomp = sc
            .seccomp_profile
            .or_else(|| pod_seccomp.clone())
            .map(|p| p.type_);
        assert_eq!(
            seccomp.as_deref(),
            Some("RuntimeDefault"),
            "{what}: seccomp"
        );
        let resources = container
            .resources
            .clone()
            .unwrap_or_else(|| panic!("{what}: resources"));
        for (name, set) in [
            ("requests", resources.requests),
            ("limits", resources.limits),
        ] {
            let set = set.unwrap_or_else(|| panic!("{what}: no resource {name}"));
            assert!(
                set.contains_key("cpu") && set.contains_key("memory"),
                "{what}: {name}"
            );
        }
    }
    // The PodDisruptionBudget guards these very pods.
    let pdb = the_one::<PodDisruptionBudget>(&base).spec.expect("spec");
    assert_eq!(pdb.min_available, Some(IntOrString::Int(1)));
    let labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    let wanted = pdb
        .selector
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert!(!wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v)));
}

/// Asserts the rules carry no wildcard and every `bind` names its roles.
fn check_rules(rules: &[PolicyRule], what: &str) {
    assert!(!rules.is_empty(), "{what}: no rules");
    for (i, rule) in rules.iter().enumerate() {
        let what = format!("{what} rule {i}");
        let lists = [
            ("verbs", Some(&rule.verbs)),
            ("resources", rule.resources.as_ref()),
            ("apiGroups", rule.api_groups.as_ref()),
            ("resourceNames", rule.resource_names.as_ref()),
            ("nonResourceURLs", rule.non_resource_urls.as_ref()),
        ];
        for (field, list) in lists {
            let list = list.map(Vec::as_slice).unwrap_or_default();
            assert!(
                !list.iter().any(|v| v.contains('*')),
                "{what}: `*` in {field}"
            );
        }
        if rule
            .verbs
            .iter()
            .any(|v| v == "bind" || v == "escalate" || v == "impersonate")
        {
            assert!(
                !rule
                    .resource_names
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty(),
                "{what}: {:?} without resourceNames would reach every role",
                rule.verbs
            );
        }
    }
}

/// Every rule of every ClusterRole and Role in `manifests`.
fn check_all_rules(manifests: &[Manifest], what: &str) {
    for role in typed::<ClusterRole>(manifests) {
        check_rules(
            &role.rules.unwrap_or_default(),
            &format!("{what} ClusterRole {}", name_of(&role.metadata)),
        );
    }
    for role in typed::<Role>(manifests) {
        check_rules(
            &role.rules.unwrap_or_default(),
            &format!("{what} Role {}", name_of(&role.metadata)),
        );
    }
}

#[test]
fn rbac_has_no_wildcards_and_bind_is_named() {
    check_all_rules(&load_manifests(), "deploy/");
}

#[test]
fn rbac_bindings_and_presets_are_consistent() {
    let base = base_manifests();
    let cluster_roles = typed::<ClusterRole>(&base);
    let roles = typed::<Role>(&base);
    let defined: BTreeSet<&str> = cluster_roles.iter().map(|r| name_of(&r.metadata)).collect();
    for preset in ["tokend", "tokend-admin", "tokend-view", "tokend-caller"] {
        assert!(defined.contains(preset), "ClusterRole {preset} is missing");
    }

    // The read-only preset never reads Secrets (tokend's records and every other credential).
    let view = cluster_roles
        .iter()
        .find(|r| name_of(&r.metadata) == "tokend-view")
        .unwrap();
    for rule in view.rules.as_deref().unwrap_or_default() {
        assert!(
            rule.verbs
                .iter()
                .all(|v| ["get", "list", "watch"].contains(&v.as_str()))
        );
        assert!(
            !rule
                .resources
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|r| r.starts_with("secrets"))
        );
    }

    // tokend may bind only roles that exist: built in, or defined here.
    let tokend = cluster_roles
        .iter()
        .find(|r| name_of(&r.metadata) == "tokend")
        .unwrap();
    for rule in tokend.rules.as_deref().unwrap_or_default() {
        if rule.verbs.iter().any(|v| v == "bind") {
            for name in rule.resource_names.as_deref().unwrap_or_default() {
                assert!(
                    defined.contains(name.as_str())
                        || BUILT_IN_CLUSTER_ROLES.contains(&name.as_str()),
                    "tokend may bind `{name}`, which neither Kubernetes nor deploy/ defines"
                );
            }
        }
    }

    // Each binding gives a role defined here to the tokend ServiceAccount defined here.
    let account = the_one::<ServiceAccount>(&base);
    let account = (
        name_of(&account.metadata),
        account.metadata.namespace.as_deref().unwrap_or(""),
    );
    let role_names: BTreeSet<&str> = roles.iter().map(|r| name_of(&r.metadata)).collect();
    let bindings = typed::<ClusterRoleBinding>(&base)
        .into_iter()
        .map(|b| (b.role_ref, b.subjects))
        .chain(
            typed::<RoleBinding>(&base)
                .into_iter()
                .map(|b| (b.role_ref, b.subjects)),
        );
    let mut count = 0;
    for (role_ref, subjects) in bindings {
        count += 1;
        let known = match role_ref.kind.as_str() {
            "ClusterRole" => defined.contains(role_ref.name.as_str()),
            "Role" => role_names.contains(role_ref.name.as_str()),
            other => panic!("roleRef kind {other}"),
        };
        assert!(
            known,
            "a binding refers to {} {}, not defined in deploy/",
            role_ref.kind, role_ref.name
        );
        for s in subjects.unwrap_or_default() {
            assert_eq!(s.kind, "ServiceAccount");
            assert_eq!(
                (s.name.as_str(), s.namespace.as_deref().unwrap_or("")),
                account
            );
        }
    }
    assert!(count >= 1, "tokend's ServiceAccount is bound to nothing");
}

/// `kustomize build` or `kubectl kustomize`, whichever is on PATH.
fn kustomize_command() -> Option<(PathBuf, &'static str)> {
    let path = std::env::var_os("PATH")?;
    for (tool, sub) in [("kustomize", "build"), ("kubectl", "kustomize")] {
        if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
        {
            return Some((found, sub));
        }
    }
    None
}

/// Renders a kustomization folder and returns its documents.
fn render(tool: &Path, sub: &str, dir: &Path) -> Vec<Value> {
    let out = Command::new(tool)
        .arg(sub)
        .arg(dir)
        .output()
        .expect("the tool runs");
    assert!(
        out.status.success(),
        "{} {sub} {} failed: {}",
        tool.display(),
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    documents(
        &String::from_utf8(out.stdout).expect("UTF-8 output"),
        &dir.display().to_string(),
    )
}

#[test]
fn kustomize_renders_base_and_overlay() {
    let Some((tool, sub)) = kustomize_command() else {
        println!("skipped: neither kustomize nor kubectl is on PATH, so nothing renders deploy/");
        return;
    };
    let root = deploy_dir();
    let overlay = root.join("overlays/tls-cert-manager");
    for dir in [root.clone(), overlay.clone()] {
        let what = dir
            .strip_prefix(&root)
            .map(|p| format!("deploy/{}", p.display()))
            .unwrap();
        let docs = render(&tool, sub, &dir);
        let manifests: Vec<Manifest> = docs
            .into_iter()
            .enumerate()
            .map(|(i, doc)| Manifest {
                origin: format!("rendered {what}#{i}"),
                file: dir.clone(),
                doc,
            })
            .collect();
        // The rendered objects pass the same checks as the files: this is what covers the
        // overlay's patches, which only exist once applied.
        for m in &manifests {
            check_document(&m.doc, &m.origin, false);
            let cluster_scoped = [
                "Namespace",
                "ClusterRole",
                "ClusterRoleBinding",
                "CustomResourceDefinition",
                "MutatingWebhookConfiguration",
            ]
            .contains(&m.kind());
            if !cluster_scoped {
                assert_eq!(
                    m.doc["metadata"]["namespace"], "tokend",
                    "{}: namespace",
                    m.origin
                );
            }
        }
        check_all_rules(&manifests, &what);
        let deployment = the_one::<Deployment>(&manifests);
        check_probes(&deployment, &the_one::<Service>(&manifests), &what);

        if dir == overlay {
            // The overlay serves TLS from the Secret the Certificate fills, mounted where the
            // flags point.
            let certificate = manifests
                .iter()
                .find(|m| m.kind() == "Certificate")
                .expect("a Certificate");
            let secret = certificate.doc["spec"]["secretName"].as_str().unwrap();
            let pod = deployment.spec.template.spec.expect("pod spec");
            let container = &pod.containers[0];
            let args = container.args.clone().unwrap_or_default();
            let volume = pod
                .volumes
                .unwrap_or_default()
                .into_iter()
                .find(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(secret))
                .expect("the certificate's Secret is a volume");
            let mount = container
                .volume_mounts
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|m| m.name == volume.name)
                .expect("the certificate's volume is mounted");
            for flag in ["--tls-cert=", "--tls-key="] {
                let file = args
                    .iter()
                    .find_map(|a| a.strip_prefix(flag))
                    .unwrap_or_else(|| panic!("{flag} missing"));
                assert!(
                    file.starts_with(&format!("{}/", mount.mount_path)),
                    "{flag}{file} is outside the mount"
                );
            }
        }
    }
}
