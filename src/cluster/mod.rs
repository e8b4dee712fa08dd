//! The Kubernetes-facing layer: every call tokend makes to the API server, through kube-rs.
//! It speaks Kubernetes objects and knows nothing of gRPC or of tokend's request shapes.

mod accounts;
mod bootstrap_tokens;
mod certificates;
mod error;
mod lease;
mod rbac;
mod reviews;
mod secrets;

pub use bootstrap_tokens::SecretPage;
pub use certificates::Signed;
pub use error::Error;
pub use lease::{LeaseRecord, LeaseWrite};

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::{
    BoundObjectReference, TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
    TokenReviewStatus,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client};

use crate::vocabulary::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, PENDING_LABEL, RECORD_KEY_DATA, RECORD_SECRET_TYPE,
    ROOT_CA_CONFIGMAP, ROOT_CA_KEY,
};

/// Result of the cluster layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A token the API server issued: the value and the expiry it chose.
pub struct IssuedServiceAccountToken {
    /// The bearer token; handed to the caller and nowhere else.
    pub token: String,
    /// Expiry from the TokenRequest status (the server may shorten what was asked).
    pub expiration: Timestamp,
}

/// What asking for a binding or ServiceAccount did: made it, or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// This call created the object; undo it if the rest of the call fails.
    Created,
    /// It existed already; leave it alone.
    Existed,
}

/// One action on a resource, as RBAC sees it.
#[derive(Debug, Clone, Copy)]
pub struct ResourceAccess<'a> {
    /// The verb: create, get, list, delete, bind.
    pub verb: &'a str,
    /// API group ("" for core).
    pub group: &'a str,
    /// Resource, plural.
    pub resource: &'a str,
    /// Subresource, e.g. `token`.
    pub subresource: Option<&'a str>,
    /// Namespace; None for cluster-scoped.
    pub namespace: Option<&'a str>,
    /// Object name, when the action is on one object.
    pub name: Option<&'a str>,
}

impl ResourceAccess<'_> {
    /// The action as `kubectl auth can-i` would phrase it: `create serviceaccounts/token "x" in namespace "y"`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} {}", self.verb, self.resource);
        if let Some(sub) = self.subresource {
            text.push('/');
            text.push_str(sub);
        }
        if !self.group.is_empty() {
            text.push('.');
            text.push_str(self.group);
        }
        if let Some(name) = self.name {
            text.push_str(&format!(" \"{name}\""));
        }
        match self.namespace {
            Some(ns) => text.push_str(&format!(" in namespace \"{ns}\"")),
            None => text.push_str(" (cluster-wide)"),
        }
        text
    }
}

/// The API server's answer to a SubjectAccessReview.
#[derive(Debug, Clone)]
pub struct AccessDecision {
    /// Whether RBAC allows it.
    pub allowed: bool,
    /// Why, as the authorizer put it.
    pub reason: String,
}

/// One page of a metadata-only list.
#[derive(Debug, Default)]
pub struct MetadataPage {
    /// The objects' metadata, in the API server's order.
    pub items: Vec<ObjectMeta>,
    /// Where the next page starts; None on the last page.
    pub continue_token: Option<String>,
}

/// What the API server enforces about a Secret.
#[derive(Debug, Clone)]
pub struct SecretFacts {
    /// Its uid.
    pub uid: String,
    /// Its resourceVersion.
    pub resource_version: String,
    /// Its type (immutable once created).
    pub type_: String,
    /// Whether it is immutable (once set, never unset).
    pub immutable: bool,
}

/// Handle on the Kubernetes API, cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
}

impl Cluster {
    /// Wraps a kube-rs client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Asks the API server for its version: the liveness probe of the dependency.
    pub async fn ping(&self) -> Result<()> {
        self.client.apiserver_version().await?;
        Ok(())
    }

    /// Whether a namespace exists.
    pub async fn namespace_exists(&self, name: &str) -> Result<bool> {
        Ok(Api::<Namespace>::all(self.client.clone())
            .get_opt(name)
            .await?
            .is_some())
    }

    pub(super) fn service_accounts(&self, ns: &str) -> Api<ServiceAccount> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub(super) fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }
}

pub(super) fn managed_meta(name: &str, ns: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: ns.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            MANAGED_BY_LABEL.into(),
            MANAGED_BY_VALUE.into(),
        )])),
        ..Default::default()
    }
}

pub(super) fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// A failed precondition (uid or resourceVersion) answers 409 Conflict.
pub(super) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

pub(super) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub(super) fn ignore_not_found(result: Result<(), kube::Error>) -> Result<()> {
    match result {
        Err(e) if is_not_found(&e) => Ok(()),
        other => Ok(other?),
    }
}
