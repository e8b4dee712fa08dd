//! Runs tokend with exactly the RBAC of deploy/: the ClusterRole and lease Role from the
//! manifests are loaded into the backend under unique names and bound to a ServiceAccount of
//! a fresh namespace, and tokend talks to Kubernetes with that account's token. Every black-box
//! test thereby proves the manifests grant enough.

use std::path::Path;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::backend::Cluster;
use crate::cleanup::Cleanup;

/// tokend's identity for one test run.
pub struct TokendAccount {
    /// Client configuration authenticating as tokend's ServiceAccount.
    pub config: kube::Config,
    /// Namespace of that ServiceAccount (and of the sweeper's Lease).
    pub namespace: String,
    /// Name of the ClusterRole made from deploy/ (to delete on a real cluster).
    pub cluster_role: String,
}

fn documents(path: &Path) -> Vec<serde_json::Value> {
    use serde::Deserialize as _;
    let text = std::fs::read_to_string(path).expect("read deploy manifest");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_json::Value::deserialize(doc).expect("YAML document"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn manifest<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> T {
    let path = crate::control_plane::workspace_root()
        .join("deploy/base")
        .join(file);
    let doc = documents(&path)
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("{file} holds a {kind}"));
    serde_json::from_value(doc).expect("typed manifest")
}

/// The rules of tokend's ClusterRole in deploy/.
pub fn deploy_cluster_rules() -> Vec<PolicyRule> {
    manifest::<ClusterRole>("rbac-tokend.yaml", "ClusterRole")
        .rules
        .unwrap_or_default()
}

/// The rules of the lease Role in deploy/ (the sweeper's leader election).
pub fn deploy_lease_rules() -> Vec<PolicyRule> {
    manifest::<Role>("rbac-leader-election.yaml", "Role")
        .rules
        .unwrap_or_default()
}

/// tokend's RBAC for one run: the ClusterRole's rules and the lease Role's rules.
#[derive(Debug, Clone)]
pub struct TokendRbac {
    /// Rules of tokend's ClusterRole.
    pub cluster_rules: Vec<PolicyRule>,
    /// Rules of its Role in its own namespace.
    pub lease_rules: Vec<PolicyRule>,
}

impl TokendRbac {
    /// Exactly what deploy/ grants.
    pub fn deploy() -> Self {
        Self {
            cluster_rules: deploy_cluster_rules(),
            lease_rules: deploy_lease_rules(),
        }
    }
}

/// Sets up tokend's account with `rbac` (deploy/'s, or a variant of it).
pub async fn tokend_account(
    cluster: &Cluster,
    cleanup: &Cleanup,
    rbac: TokendRbac,
) -> TokendAccount {
    let admin = &cluster.client;
    let rules = rbac.cluster_rules;
    let namespace = crate::unique_name("tokend-sa");
    let name = "tokend";
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("tokend namespace");
    cleanup.namespace(&namespace);
    let meta = |n: &str| ObjectMeta {
        name: Some(n.into()),
        namespace: Some(namespace.clone()),
        ..Default::default()
    };
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), &namespace);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta(name),
                ..Default::default()
            },
        )
        .await
        .expect("tokend SA");
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(namespace.clone()),
        api_group: None,
    };

    let subject_in_force = subject.clone();
    let rules_in_force = rules.clone();
    let lease_rules_in_force = rbac.lease_rules.clone();
    let cluster_role = namespace.clone();
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(cluster_role.clone()),
            ..Default::default()
        },
        rules: Some(rules),
        ..Default::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("tokend ClusterRole");
    cleanup.cluster_role(&cluster_role);
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(cluster_role.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: cluster_role.clone(),
        },
        subjects: Some(vec![subject.clone()]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("tokend ClusterRoleBinding");
    cleanup.cluster_role_binding(&cluster_role);

    let lease_role = Role {
        metadata: meta("tokend-leader-election"),
        rules: Some(rbac.lease_rules),
    };
    Api::<Role>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &lease_role)
        .await
        .expect("lease Role");
    let lease_binding = RoleBinding {
        metadata: meta("tokend-leader-election"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "tokend-leader-election".into(),
        },
        subjects: Some(vec![subject]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &lease_binding)
        .await
        .expect("lease RoleBinding");

    // The authorizer sees new bindings through informers: on a busy API server tokend's first
    // calls could otherwise be refused what deploy/ grants.
    crate::propagation::expect_rbac_in_force(admin, &subject_in_force, None, &rules_in_force).await;
    crate::propagation::expect_rbac_in_force(
        admin,
        &subject_in_force,
        Some(&namespace),
        &lease_rules_in_force,
    )
    .await;
    let token = service_account_token(admin, &namespace, name).await;
    let mut config = cluster.config.clone();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    TokendAccount {
        config,
        namespace,
        cluster_role,
    }
}

/// A one-hour token of ServiceAccount `ns/name`, from TokenRequest.
pub async fn service_account_token(admin: &Client, ns: &str, name: &str) -> String {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer: TokenRequest = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    answer.status.and_then(|s| s.token).expect("token")
}
