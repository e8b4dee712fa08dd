//! The RBAC policy a fresh API server starts with: the user-facing ClusterRoles (`view`, `edit`,
//! `admin`, `cluster-admin`) and the discovery roles and bindings, as kube-apiserver's bootstrap
//! policy defines them (the subset tokend and its tests meet).

use serde_json::{Value, json};

use crate::authn::MASTERS;
use crate::resources::{self, ResourceType};

/// One resource rule.
pub(crate) fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

pub(crate) fn url_rule(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const CORE_READABLE: &[&str] = &[
    "configmaps",
    "endpoints",
    "events",
    "limitranges",
    "namespaces",
    "namespaces/status",
    "persistentvolumeclaims",
    "pods",
    "pods/log",
    "pods/status",
    "replicationcontrollers",
    "resourcequotas",
    "serviceaccounts",
    "services",
];
const CORE_WRITABLE: &[&str] = &[
    "configmaps",
    "events",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "secrets",
    "serviceaccounts",
    "services",
];
const APPS: &[&str] = &["daemonsets", "deployments", "replicasets", "statefulsets"];
const BATCH: &[&str] = &["cronjobs", "jobs"];

fn view_rules() -> Vec<Value> {
    vec![
        rule(&[""], CORE_READABLE, READ),
        rule(&["apps"], APPS, READ),
        rule(&["batch"], BATCH, READ),
    ]
}

fn edit_rules() -> Vec<Value> {
    let mut rules = view_rules();
    rules.push(rule(&[""], &["secrets"], READ));
    rules.push(rule(&[""], CORE_WRITABLE, WRITE));
    rules.push(rule(&[""], &["serviceaccounts/token"], &["create"]));
    rules.push(rule(&[""], &["serviceaccounts"], &["impersonate"]));
    rules.push(rule(&["apps"], APPS, WRITE));
    rules.push(rule(&["batch"], BATCH, WRITE));
    rules.push(rule(&["coordination.k8s.io"], &["leases"], READ));
    rules.push(rule(&["coordination.k8s.io"], &["leases"], WRITE));
    rules
}

fn admin_rules() -> Vec<Value> {
    let mut rules = edit_rules();
    rules.push(rule(
        &["rbac.authorization.k8s.io"],
        &["rolebindings", "roles"],
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
    ));
    rules.push(rule(
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews"],
        &["create"],
    ));
    rules
}

fn bootstrap_meta(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "kind": "ClusterRole",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": bootstrap_meta(name),
        "rules": rules,
    })
}

fn cluster_role_binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g}))
        .collect();
    json!({
        "kind": "ClusterRoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": bootstrap_meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The bootstrap ClusterRoles and ClusterRoleBindings a fresh kube-apiserver creates (simplified rules).
pub fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let info_urls = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    vec![
        (
            "clusterroles",
            cluster_role(
                "cluster-admin",
                vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
            ),
        ),
        ("clusterroles", cluster_role("admin", admin_rules())),
        ("clusterroles", cluster_role("edit", edit_rules())),
        ("clusterroles", cluster_role("view", view_rules())),
        (
            "clusterroles",
            cluster_role(
                "system:basic-user",
                vec![
                    rule(
                        &["authorization.k8s.io"],
                        &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                        &["create"],
                    ),
                    rule(
                        &["authentication.k8s.io"],
                        &["selfsubjectreviews"],
                        &["create"],
                    ),
                ],
            ),
        ),
        (
            "clusterroles",
            cluster_role(
                "system:discovery",
                vec![url_rule(
                    &[
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ],
                    &["get"],
                )],
            ),
        ),
        (
            "clusterroles",
            cluster_role(
                "system:public-info-viewer",
                vec![url_rule(&info_urls, &["get"])],
            ),
        ),
        (
            "clusterroles",
            cluster_role(
                "system:auth-delegator",
                vec![
                    rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                    rule(
                        &["authorization.k8s.io"],
                        &["subjectaccessreviews"],
                        &["create"],
                    ),
                ],
            ),
        ),
        (
            "clusterrolebindings",
            cluster_role_binding("cluster-admin", "cluster-admin", &[MASTERS]),
        ),
        (
            "clusterrolebindings",
            cluster_role_binding(
                "system:basic-user",
                "system:basic-user",
                &["system:authenticated"],
            ),
        ),
        (
            "clusterrolebindings",
            cluster_role_binding(
                "system:discovery",
                "system:discovery",
                &["system:authenticated"],
            ),
        ),
        (
            "clusterrolebindings",
            cluster_role_binding(
                "system:public-info-viewer",
                "system:public-info-viewer",
                &["system:authenticated", "system:unauthenticated"],
            ),
        ),
    ]
}

/// The resource type of a bootstrap policy object.
pub fn policy_type(plural: &str) -> Option<&'static ResourceType> {
    resources::stored_type("rbac.authorization.k8s.io", plural)
}
