//! Black-box checks of the deployment files in `deploy/`; no server, no cluster.
//!
//! Every YAML document under `deploy/` must parse into the typed k8s-openapi struct for its
//! `kind`, and re-serializing that struct must give back the same document: k8s-openapi ignores
//! unknown fields, so this round trip is what makes a typo'd field (`readOnlyRootFileSystem`)
//! fail instead of silently vanishing when applied. Kustomizations and the cert-manager
//! Certificate have no typed struct here and are checked against the keys they may hold.
//!
//! On top of parsing: the kustomizations list every file and only existing ones, every object
//! carries the full `app.kubernetes.io/*` labels, the Deployment's probes reach a port the
//! Service exposes (liveness apart from readiness), the NetworkPolicy opens exactly the
//! container's ports, the container is locked down, and no RBAC rule uses a wildcard or an
//! unrestricted `bind`. When `kustomize` or `kubectl` is on PATH, the base and the overlays are
//! also rendered, and the rendered objects checked the same way (which covers the overlays'
//! patches). One test runs tokend and scrapes it: the alerts of the monitoring overlay may name
//! only metrics and labels it exports.

use tokend_test_support as common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Probe, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
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

/// A Prometheus Operator ServiceMonitor (monitoring.coreos.com/v1): the fields used here.
fn check_service_monitor(doc: &Value, origin: &str) {
    assert_eq!(
        doc["apiVersion"], "monitoring.coreos.com/v1",
        "{origin}: apiVersion"
    );
    keys_within(
        doc,
        &["apiVersion", "kind", "metadata", "spec"],
        &["metadata", "spec"],
        origin,
    );
    let spec = &doc["spec"];
    keys_within(
        spec,
        &[
            "selector",
            "namespaceSelector",
            "endpoints",
            "jobLabel",
            "targetLabels",
            "podTargetLabels",
            "sampleLimit",
        ],
        &["selector", "endpoints"],
        &format!("{origin}: spec"),
    );
    keys_within(
        &spec["selector"],
        &["matchLabels", "matchExpressions"],
        &[],
        &format!("{origin}: spec.selector"),
    );
    let endpoints = spec["endpoints"].as_array().expect("endpoints is a list");
    assert!(!endpoints.is_empty(), "{origin}: no endpoints");
    for (i, endpoint) in endpoints.iter().enumerate() {
        keys_within(
            endpoint,
            &[
                "port",
                "targetPort",
                "path",
                "scheme",
                "interval",
                "scrapeTimeout",
                "honorLabels",
                "relabelings",
                "metricRelabelings",
            ],
            &["port"],
            &format!("{origin}: spec.endpoints[{i}]"),
        );
    }
}

/// A Prometheus Operator PrometheusRule: groups of alerts, each with an expression, a
/// duration, a severity and a summary.
fn check_prometheus_rule(doc: &Value, origin: &str) {
    assert_eq!(
        doc["apiVersion"], "monitoring.coreos.com/v1",
        "{origin}: apiVersion"
    );
    keys_within(
        doc,
        &["apiVersion", "kind", "metadata", "spec"],
        &["metadata", "spec"],
        origin,
    );
    keys_within(&doc["spec"], &["groups"], &["groups"], origin);
    for group in doc["spec"]["groups"].as_array().expect("groups is a list") {
        keys_within(
            group,
            &["name", "interval", "rules"],
            &["name", "rules"],
            origin,
        );
        for rule in group["rules"].as_array().expect("rules is a list") {
            let what = format!("{origin}: rule {}", rule["alert"]);
            keys_within(
                rule,
                &["alert", "expr", "for", "labels", "annotations"],
                &["alert", "expr", "for", "labels", "annotations"],
                &what,
            );
            assert!(
                rule["labels"]["severity"].is_string(),
                "{what}: labels.severity"
            );
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{what}: annotations.summary"
            );
        }
    }
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
        "NetworkPolicy" => {
            strict::<NetworkPolicy>(doc, origin);
        }
        "Certificate" => check_certificate(doc, origin),
        "ServiceMonitor" => check_service_monitor(doc, origin),
        "PrometheusRule" => check_prometheus_rule(doc, origin),
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
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
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
    // Liveness apart from readiness: startup and liveness ask the `liveness` health service,
    // which an API outage leaves SERVING; readiness asks the server's own status, which
    // follows the API (tests/faults.rs shows both on a running tokend).
    let service_of = |probe: &Probe| probe.grpc.as_ref().and_then(|g| g.service.clone());
    assert_eq!(
        service_of(&probes[0]).as_deref(),
        Some(tokend::server::health::LIVENESS_SERVICE),
        "startupProbe"
    );
    assert_eq!(
        service_of(&probes[2]).as_deref(),
        Some(tokend::server::health::LIVENESS_SERVICE),
        "livenessProbe"
    );
    let readiness = service_of(&probes[1]).unwrap_or_default();
    assert!(
        tokend::server::health::READINESS_SERVICES.contains(&readiness.as_str()),
        "the readinessProbe asks {readiness:?}, which does not follow the Kubernetes API"
    );
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
    let monitoring = root.join("overlays/monitoring");
    for dir in [root.clone(), overlay.clone(), monitoring.clone()] {
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
        check_policy_opens_the_served_ports(
            &deployment,
            &the_one::<NetworkPolicy>(&manifests),
            &what,
        );

        let service = the_one::<Service>(&manifests);
        for m in &manifests {
            check_labels(&m.doc, &m.origin);
        }
        if dir == monitoring {
            // The ServiceMonitor selects the Service and scrapes a port it has by name.
            let monitor = manifests
                .iter()
                .find(|m| m.kind() == "ServiceMonitor")
                .expect("a ServiceMonitor");
            let labels = service.metadata.labels.clone().unwrap_or_default();
            let wanted = monitor.doc["spec"]["selector"]["matchLabels"]
                .as_object()
                .expect("matchLabels");
            assert!(
                wanted
                    .iter()
                    .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()),
                "the ServiceMonitor's selector {wanted:?} misses the Service's labels {labels:?}"
            );
            let port_names: Vec<String> = service
                .spec
                .as_ref()
                .and_then(|s| s.ports.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.name)
                .collect();
            for endpoint in monitor.doc["spec"]["endpoints"].as_array().expect("list") {
                let port = endpoint["port"].as_str().unwrap_or("");
                assert!(
                    port_names.iter().any(|p| p == port),
                    "the ServiceMonitor scrapes port {port:?}, not one of {port_names:?}"
                );
            }
        }
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

/// The labels every object (and the pod template) carries: the recommended
/// `app.kubernetes.io/*` set, with the version the image tag and the crate have.
fn check_labels(doc: &Value, origin: &str) {
    let check = |labels: &Value, what: &str| {
        for (key, want) in [
            ("app.kubernetes.io/name", Some("tokend")),
            ("app.kubernetes.io/instance", Some("tokend")),
            ("app.kubernetes.io/version", Some(env!("CARGO_PKG_VERSION"))),
            ("app.kubernetes.io/component", None),
            ("app.kubernetes.io/part-of", Some("tokend")),
            ("app.kubernetes.io/managed-by", Some("kustomize")),
        ] {
            let value = labels[key].as_str();
            assert!(
                value.is_some_and(|v| !v.is_empty()),
                "{what}: label {key} missing"
            );
            if let Some(want) = want {
                assert_eq!(value, Some(want), "{what}: label {key}");
            }
        }
    };
    check(&doc["metadata"]["labels"], origin);
    if doc["kind"] == "Deployment" {
        check(
            &doc["spec"]["template"]["metadata"]["labels"],
            &format!("{origin} pod template"),
        );
        let image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("");
        assert!(
            image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
            "{origin}: the image {image} is not the version the labels name"
        );
    }
}

#[test]
fn every_object_carries_the_recommended_labels() {
    for m in load_manifests() {
        if !m.is_kustomization() {
            check_labels(&m.doc, &m.origin);
        }
    }
}

/// The rendered NetworkPolicy admits exactly the ports the rendered container serves (by name, or
/// by number where a port has none): an overlay that adds a port (the webhook's, which the API
/// server must reach) must open it too.
fn check_policy_opens_the_served_ports(
    deployment: &Deployment,
    policy: &NetworkPolicy,
    what: &str,
) {
    let pod = deployment.spec.template.spec.as_ref().expect("pod spec");
    let served: BTreeSet<String> = pod.containers[0]
        .ports
        .iter()
        .flatten()
        .map(|p| {
            p.name
                .clone()
                .unwrap_or_else(|| p.container_port.to_string())
        })
        .collect();
    let opened: BTreeSet<String> = policy
        .spec
        .iter()
        .flat_map(|s| s.ingress.iter().flatten())
        .flat_map(|rule| rule.ports.iter().flatten())
        .filter_map(|p| p.port.as_ref())
        .map(|port| match port {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(name) => name.clone(),
        })
        .collect();
    assert_eq!(
        opened, served,
        "{what}: NetworkPolicy ingress ports vs the container's ports"
    );
}

#[test]
fn the_network_policy_opens_exactly_the_containers_ports_and_reaches_dns_and_the_api() {
    let base = base_manifests();
    let deployment = the_one::<Deployment>(&base);
    let policy = the_one::<NetworkPolicy>(&base).spec.expect("spec");
    let pod = deployment.spec.template.spec.clone().expect("pod spec");
    let container = &pod.containers[0];
    let ports = container.ports.clone().unwrap_or_default();
    let pod_labels = deployment
        .spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    let selected = policy
        .pod_selector
        .clone()
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert!(
        !selected.is_empty() && selected.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "the NetworkPolicy selects {selected:?}, not tokend's pods {pod_labels:?}"
    );
    let types = policy.policy_types.clone().unwrap_or_default();
    assert!(
        types.iter().any(|t| t == "Ingress") && types.iter().any(|t| t == "Egress"),
        "{types:?}"
    );

    // Ingress: every container port, by name or number, and nothing else.
    let resolve = |port: &IntOrString| -> i32 {
        match port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => {
                ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .unwrap_or_else(|| {
                        panic!("the NetworkPolicy names port {name}, which the container lacks")
                    })
                    .container_port
            }
        }
    };
    let mut opened = BTreeSet::new();
    for rule in policy.ingress.clone().unwrap_or_default() {
        let rule_ports = rule.ports.unwrap_or_default();
        assert!(
            !rule_ports.is_empty(),
            "an ingress rule without ports opens every port"
        );
        for p in rule_ports {
            opened.insert(resolve(&p.port.expect("a port")));
        }
    }
    let served: BTreeSet<i32> = ports.iter().map(|p| p.container_port).collect();
    assert_eq!(opened, served, "ingress ports vs the container's ports");
    let args = container.args.clone().unwrap_or_default();
    for flag in ["--listen", "--metrics-listen"] {
        let port: i32 = args
            .iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the Deployment passes {flag} ADDR"));
        assert!(opened.contains(&port), "{flag} port {port} is not open");
    }

    // Egress: DNS over UDP and TCP, and the API server's ports; nothing without ports.
    let mut egress = BTreeSet::new();
    for rule in policy.egress.unwrap_or_default() {
        let rule_ports = rule.ports.unwrap_or_default();
        assert!(
            !rule_ports.is_empty(),
            "an egress rule without ports reaches everything"
        );
        for p in rule_ports {
            let number = match p.port.expect("a port") {
                IntOrString::Int(n) => n,
                IntOrString::String(name) => panic!("egress port {name} must be a number"),
            };
            egress.insert((p.protocol.unwrap_or_else(|| "TCP".into()), number));
        }
    }
    for want in [("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)] {
        assert!(
            egress.contains(&(want.0.to_owned(), want.1)),
            "egress lacks {want:?}: {egress:?}"
        );
    }
}

/// The webhook port's ingress rules in a rendered NetworkPolicy: the `from` of each (None: from
/// anywhere) as CIDRs.
fn webhook_sources(policy: &NetworkPolicy) -> Vec<Option<Vec<String>>> {
    policy
        .spec
        .iter()
        .flat_map(|s| s.ingress.iter().flatten())
        .filter(|rule| {
            rule.ports
                .iter()
                .flatten()
                .any(|p| p.port.as_ref() == Some(&IntOrString::String("webhook".into())))
        })
        .map(|rule| {
            rule.from.as_ref().map(|peers| {
                peers
                    .iter()
                    .map(|peer| {
                        assert!(
                            peer.namespace_selector.is_none() && peer.pod_selector.is_none(),
                            "the API server is not a pod: the webhook's `from` names addresses"
                        );
                        peer.ip_block.as_ref().expect("an ipBlock").cidr.clone()
                    })
                    .collect()
            })
        })
        .collect()
}

/// `to` as a path relative to the folder `from`.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from = from.canonicalize().expect("canonical");
    let to = to.canonicalize().expect("canonical");
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut path = PathBuf::new();
    for _ in from.components().skip(common) {
        path.push("..");
    }
    path.extend(to.components().skip(common));
    path
}

#[test]
fn the_webhook_port_has_a_rule_of_its_own_that_an_operator_narrows_to_the_control_plane() {
    let Some((tool, sub)) = kustomize_command() else {
        println!("skipped: neither kustomize nor kubectl is on PATH, so nothing renders deploy/");
        return;
    };
    let overlay = deploy_dir().join("overlays/tls-cert-manager");
    let policy_of = |dir: &Path| -> NetworkPolicy {
        let manifests: Vec<Manifest> = render(&tool, sub, dir)
            .into_iter()
            .map(|doc| Manifest {
                origin: dir.display().to_string(),
                file: dir.to_owned(),
                doc,
            })
            .collect();
        the_one::<NetworkPolicy>(&manifests)
    };
    // As shipped: one rule, its `from` the clearly marked placeholder admitting every address.
    let shipped = std::fs::read_to_string(overlay.join("kustomization.yaml")).expect("read");
    assert!(
        shipped.contains("CONTROL-PLANE-CIDR"),
        "the `from` to narrow is marked"
    );
    assert_eq!(
        webhook_sources(&policy_of(&overlay)),
        vec![Some(vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()])]
    );
    // Narrowed as README says: a patch of that rule's `from` in an overlay of one's own.
    // kustomize takes only relative paths to other kustomizations: the overlay of one's own
    // lives under target/ and names tokend's by a relative path.
    let own = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let kustomization = format!(
        "resources:\n  - {}\npatches:\n  - target: {{group: networking.k8s.io, version: v1, kind: \
         NetworkPolicy, name: tokend}}\n    patch: |-\n      - op: replace\n        path: \
         /spec/ingress/1/from\n        value: [{{ipBlock: {{cidr: 10.0.0.0/24}}}}]\n",
        relative(own.path(), &overlay).display()
    );
    std::fs::write(own.path().join("kustomization.yaml"), kustomization).expect("write");
    let narrowed = policy_of(own.path());
    assert_eq!(
        webhook_sources(&narrowed),
        vec![Some(vec!["10.0.0.0/24".to_owned()])]
    );
    // and the other ports keep their own rule.
    let first = narrowed
        .spec
        .as_ref()
        .and_then(|s| s.ingress.as_ref())
        .expect("ingress")[0]
        .clone();
    assert!(
        first.from.is_none(),
        "the gRPC and metrics rule is untouched"
    );
}

/// The metric names an exposition declares (`# TYPE` lines), as the sample names they write:
/// a counter `x` is sampled as `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`.
fn exported_sample_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        for suffix in suffixes {
            names.insert(format!("{name}{suffix}"));
        }
    }
    names
}

/// Each `metric{label=...}` selector of a PromQL expression: the metric and its label names.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let bytes: Vec<char> = expr.chars().collect();
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '{' {
            let mut start = i;
            while start > 0 && is_name(bytes[start - 1]) {
                start -= 1;
            }
            let name: String = bytes[start..i].iter().collect();
            let end = bytes[i..]
                .iter()
                .position(|c| *c == '}')
                .map_or(bytes.len(), |p| i + p);
            let inside: String = bytes[i + 1..end].iter().collect();
            let labels = inside
                .split(',')
                .filter_map(|m| {
                    let key: String = m.trim().chars().take_while(|c| is_name(*c)).collect();
                    (!key.is_empty()).then_some(key)
                })
                .collect();
            if !name.is_empty() {
                out.push((name, labels));
            }
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn selectors_are_read_from_promql() {
    assert_eq!(
        selectors(
            r#"sum by (le) (rate(a_b_bucket{job="x", grpc_code=~"A|B"}[5m])) / c_total{d="{"}"#
        ),
        vec![
            (
                "a_b_bucket".to_owned(),
                vec!["job".to_owned(), "grpc_code".to_owned()]
            ),
            ("c_total".to_owned(), vec!["d".to_owned()]),
        ]
    );
}

#[tokio::test]
async fn the_alerts_name_only_metrics_and_labels_tokend_exports() {
    // Given a running tokend that has answered a call (so labelled series exist) and its scrape.
    let env = common::start().await;
    let client = env.client().await;
    let _ = client
        .issue_token(common::issue("default", "Not A Valid Name"))
        .await;
    let text = env.scrape_metrics().await;
    let exported = exported_sample_names(&text);
    assert!(exported.contains("grpc_server_handled_total"), "{text}");

    // Then every selector of every alert names an exported metric, with labels its samples
    // carry (besides the target labels Prometheus adds when scraping).
    let rules = load_manifests()
        .into_iter()
        .find(|m| m.kind() == "PrometheusRule")
        .expect("deploy/ has a PrometheusRule");
    let mut alerts = 0;
    for group in rules.doc["spec"]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            alerts += 1;
            let alert = rule["alert"].as_str().unwrap_or("?");
            let expr = rule["expr"].as_str().expect("expr");
            let used = selectors(expr);
            assert!(!used.is_empty(), "{alert}: names no metric: {expr}");
            for (metric, labels) in used {
                assert!(
                    exported.contains(&metric),
                    "{alert}: `{metric}` is not a metric tokend exports"
                );
                for label in labels {
                    if ["job", "namespace", "pod", "instance"].contains(&label.as_str()) {
                        continue;
                    }
                    assert!(
                        text.lines().any(|l| l.starts_with(&format!("{metric}{{"))
                            && l.contains(&format!("{label}=\""))),
                        "{alert}: no sample of `{metric}` has the label `{label}`"
                    );
                }
            }
        }
    }
    assert!(
        alerts >= 4,
        "error ratio, latency, sweeper, API: {alerts} alerts"
    );
}
