//! The Kubernetes-facing layer: every call tokend makes to the API server, through kube-rs.
//! It speaks Kubernetes objects and knows nothing of gRPC or of tokend's request shapes.

mod error;
mod lease;

pub use error::Error;

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

    /// The uid of a ServiceAccount, if it exists (a metadata-only GET).
    pub async fn service_account_uid(&self, ns: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .service_accounts(ns)
            .get_metadata_opt(name)
            .await?
            .map(|partial| partial.metadata.uid.unwrap_or_default()))
    }

    /// A ServiceAccount, if it exists.
    pub async fn service_account(&self, ns: &str, name: &str) -> Result<Option<ServiceAccount>> {
        Ok(self.service_accounts(ns).get_opt(name).await?)
    }

    /// Creates a ServiceAccount labelled as tokend's; one created meanwhile by someone else
    /// (another replica) counts as existing.
    pub async fn ensure_service_account(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<(ServiceAccount, Ensured)> {
        let sa = ServiceAccount {
            metadata: managed_meta(name, Some(ns)),
            ..Default::default()
        };
        match self
            .service_accounts(ns)
            .create(&PostParams::default(), &sa)
            .await
        {
            Ok(created) => Ok((created, Ensured::Created)),
            Err(e) if is_already_exists(&e) => {
                let existing = self.service_accounts(ns).get(name).await?;
                Ok((existing, Ensured::Existed))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a ServiceAccount this call created, only if it is still the same object.
    pub async fn delete_service_account(&self, ns: &str, name: &str, uid: &str) -> Result<()> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        ignore_not_found(
            self.service_accounts(ns)
                .delete(name, &params)
                .await
                .map(drop),
        )
    }

    /// Whether a ClusterRole exists.
    pub async fn cluster_role_exists(&self, name: &str) -> Result<bool> {
        Ok(Api::<ClusterRole>::all(self.client.clone())
            .get_opt(name)
            .await?
            .is_some())
    }

    /// Ensures a RoleBinding `binding` in `ns` grants ClusterRole `role` to the ServiceAccount.
    pub async fn ensure_role_binding(
        &self,
        ns: &str,
        binding: &str,
        sa: &str,
        role: &str,
    ) -> Result<Ensured> {
        let rb = RoleBinding {
            metadata: managed_meta(binding, Some(ns)),
            role_ref: cluster_role_ref(role),
            subjects: Some(vec![sa_subject(ns, sa)]),
        };
        let api: Api<RoleBinding> = Api::namespaced(self.client.clone(), ns);
        match api.create(&PostParams::default(), &rb).await {
            Ok(_) => Ok(Ensured::Created),
            Err(e) if is_already_exists(&e) => {
                let existing = api.get(binding).await?;
                check_same_binding(
                    binding,
                    &existing.role_ref,
                    existing.subjects.as_deref(),
                    &rb,
                )?;
                Ok(Ensured::Existed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ensures a ClusterRoleBinding `binding` grants ClusterRole `role` to the ServiceAccount.
    pub async fn ensure_cluster_role_binding(
        &self,
        binding: &str,
        ns: &str,
        sa: &str,
        role: &str,
    ) -> Result<Ensured> {
        let crb = ClusterRoleBinding {
            metadata: managed_meta(binding, None),
            role_ref: cluster_role_ref(role),
            subjects: Some(vec![sa_subject(ns, sa)]),
        };
        let api: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &crb).await {
            Ok(_) => Ok(Ensured::Created),
            Err(e) if is_already_exists(&e) => {
                let existing = api.get(binding).await?;
                let wanted = RoleBinding {
                    role_ref: crb.role_ref.clone(),
                    subjects: crb.subjects.clone(),
                    ..Default::default()
                };
                check_same_binding(
                    binding,
                    &existing.role_ref,
                    existing.subjects.as_deref(),
                    &wanted,
                )?;
                Ok(Ensured::Existed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a RoleBinding this call created.
    pub async fn delete_role_binding(&self, ns: &str, name: &str) -> Result<()> {
        let api: Api<RoleBinding> = Api::namespaced(self.client.clone(), ns);
        ignore_not_found(api.delete(name, &DeleteParams::default()).await.map(drop))
    }

    /// Deletes a ClusterRoleBinding this call created.
    pub async fn delete_cluster_role_binding(&self, name: &str) -> Result<()> {
        let api: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        ignore_not_found(api.delete(name, &DeleteParams::default()).await.map(drop))
    }

    /// Creates a Secret.
    pub async fn create_secret(&self, secret: &Secret) -> Result<Secret> {
        let ns = secret.metadata.namespace.as_deref().unwrap_or_default();
        Ok(self
            .secrets(ns)
            .create(&PostParams::default(), secret)
            .await?)
    }

    /// A Secret's metadata, if it exists: never its data, so a large Secret costs nothing.
    pub async fn secret_metadata(&self, ns: &str, name: &str) -> Result<Option<ObjectMeta>> {
        Ok(self
            .secrets(ns)
            .get_metadata_opt(name)
            .await?
            .map(|partial| partial.metadata))
    }

    /// One page (at most `limit`) of the metadata of record-typed Secrets matching a label
    /// selector, in one namespace or all; one bounded API call, resumed from `continue_token`.
    /// The type is a field selector, so other Secrets never leave the API server.
    pub async fn record_page(
        &self,
        ns: Option<&str>,
        selector: &str,
        limit: u32,
        continue_token: Option<&str>,
    ) -> Result<MetadataPage> {
        let api: Api<Secret> = match ns {
            Some(ns) => self.secrets(ns),
            None => Api::all(self.client.clone()),
        };
        let mut params = ListParams::default()
            .labels(selector)
            .fields(&format!("type={RECORD_SECRET_TYPE}"))
            .limit(limit);
        if let Some(token) = continue_token {
            params = params.continue_token(token);
        }
        let list = api.list_metadata(&params).await?;
        Ok(MetadataPage {
            items: list.items.into_iter().map(|p| p.metadata).collect(),
            continue_token: list.metadata.continue_.filter(|c| !c.is_empty()),
        })
    }

    /// Confirms a record once its token is issued: merges `annotations` (corrections and the
    /// seal), drops the pending label, and makes the Secret immutable, which no one can undo, so
    /// a confirmed record can never again pass for a pending one.
    pub async fn confirm_record(
        &self,
        ns: &str,
        name: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<()> {
        let patch = serde_json::json!({
            "metadata": {
                "annotations": annotations,
                "labels": { PENDING_LABEL: null },
            },
            "immutable": true,
        });
        self.secrets(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// What the API server itself enforces about a Secret (the fields only the server or its
    /// creator control): uid, resourceVersion, type and whether it is immutable. A full GET, so
    /// only for the few Secrets this is asked about.
    pub async fn secret_facts(&self, ns: &str, name: &str) -> Result<Option<SecretFacts>> {
        Ok(self.secrets(ns).get_opt(name).await?.map(|s| SecretFacts {
            uid: s.metadata.uid.unwrap_or_default(),
            resource_version: s.metadata.resource_version.unwrap_or_default(),
            type_: s.type_.unwrap_or_default(),
            immutable: s.immutable == Some(true),
        }))
    }

    /// The key in Secret `name` of `ns`; when the Secret is missing it is created holding
    /// `fresh`, and a replica that lost that race reads the winner's.
    pub async fn shared_key(&self, ns: &str, name: &str, fresh: &[u8]) -> Result<Vec<u8>> {
        let read = |secret: Secret| {
            secret
                .data
                .and_then(|mut data| data.remove(RECORD_KEY_DATA))
                .map(|bytes| bytes.0)
                .filter(|bytes| bytes.len() >= 32)
                .ok_or_else(|| {
                    Error::Unexpected(format!(
                        "Secret {ns}/{name} has no key {RECORD_KEY_DATA:?} of at least 32 bytes"
                    ))
                })
        };
        if let Some(existing) = self.secrets(ns).get_opt(name).await? {
            return read(existing);
        }
        let secret = Secret {
            metadata: managed_meta(name, Some(ns)),
            data: Some(BTreeMap::from([(
                RECORD_KEY_DATA.to_owned(),
                k8s_openapi::ByteString(fresh.to_vec()),
            )])),
            immutable: Some(true),
            ..Default::default()
        };
        match self
            .secrets(ns)
            .create(&PostParams::default(), &secret)
            .await
        {
            Ok(created) => read(created),
            Err(e) if is_already_exists(&e) => read(self.secrets(ns).get(name).await?),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a Secret only if it is still the object that was read (same uid and
    /// resourceVersion): what was checked is what is deleted. `false` when it is gone or changed.
    pub async fn delete_secret_if_unchanged(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        resource_version: &str,
    ) -> Result<bool> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: Some(resource_version.to_owned()),
            }),
            ..Default::default()
        };
        match self.secrets(ns).delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a Secret; `false` when it was already gone.
    pub async fn delete_secret(&self, ns: &str, name: &str) -> Result<bool> {
        match self
            .secrets(ns)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// TokenRequest for a ServiceAccount, bound to a Secret so deleting the Secret revokes it.
    pub async fn request_token(
        &self,
        ns: &str,
        sa: &str,
        expiration_seconds: i64,
        audiences: &[String],
        bound_secret: &Secret,
    ) -> Result<IssuedServiceAccountToken> {
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Secret".into()),
                    name: bound_secret.metadata.name.clone(),
                    uid: bound_secret.metadata.uid.clone(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let answer: TokenRequest = self
            .service_accounts(ns)
            .create_subresource("token", sa, &PostParams::default(), &request)
            .await?;
        let status = answer
            .status
            .ok_or_else(|| Error::Unexpected("TokenRequest answered without a status".into()))?;
        match (status.token, status.expiration_timestamp) {
            (Some(token), Some(expiration)) => Ok(IssuedServiceAccountToken {
                token,
                expiration: expiration.0,
            }),
            _ => Err(Error::Unexpected(
                "TokenRequest answered without token or expiry".into(),
            )),
        }
    }

    /// TokenReview: what the API server's authenticator makes of a token right now.
    pub async fn review_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<TokenReviewStatus> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        Ok(answer.status.unwrap_or_default())
    }

    /// SubjectAccessReview: may this user do this, by the cluster's authorizers?
    pub async fn subject_access_review(
        &self,
        user: &str,
        uid: &str,
        groups: &[String],
        extra: &BTreeMap<String, Vec<String>>,
        access: &ResourceAccess<'_>,
    ) -> Result<AccessDecision> {
        let review = access_review(user, uid, groups, extra, access);
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let status = answer.status.unwrap_or_default();
        Ok(AccessDecision {
            allowed: status.allowed,
            reason: status.reason.unwrap_or_default(),
        })
    }

    /// The CA bundle the API server publishes in `kube-root-ca.crt`, if that ConfigMap exists.
    pub async fn published_root_ca(&self, ns: &str) -> Result<Option<String>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let cm = api.get_opt(ROOT_CA_CONFIGMAP).await?;
        Ok(cm
            .and_then(|cm| cm.data)
            .and_then(|mut data| data.remove(ROOT_CA_KEY)))
    }

    fn service_accounts(&self, ns: &str) -> Api<ServiceAccount> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }
}

/// The SubjectAccessReview asking whether this identity, with everything its authenticator said
/// of it (extra included), may do `access`.
fn access_review(
    user: &str,
    uid: &str,
    groups: &[String],
    extra: &BTreeMap<String, Vec<String>>,
    access: &ResourceAccess<'_>,
) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            uid: (!uid.is_empty()).then(|| uid.to_owned()),
            groups: Some(groups.to_vec()),
            extra: (!extra.is_empty()).then(|| extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(access.verb.to_owned()),
                group: Some(access.group.to_owned()),
                resource: Some(access.resource.to_owned()),
                subresource: access.subresource.map(str::to_owned),
                namespace: access.namespace.map(str::to_owned),
                name: access.name.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn managed_meta(name: &str, ns: Option<&str>) -> ObjectMeta {
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

fn cluster_role_ref(role: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "ClusterRole".into(),
        name: role.to_owned(),
    }
}

fn sa_subject(ns: &str, sa: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: sa.to_owned(),
        namespace: Some(ns.to_owned()),
        api_group: None,
    }
}

/// A binding of the same name must grant the same role to our ServiceAccount, else it is
/// someone else's and tokend must not claim it.
fn check_same_binding(
    name: &str,
    role_ref: &RoleRef,
    subjects: Option<&[Subject]>,
    wanted: &RoleBinding,
) -> Result<()> {
    let subject_present = wanted.subjects.iter().flatten().all(|w| {
        subjects
            .unwrap_or_default()
            .iter()
            .any(|s| s.kind == w.kind && s.name == w.name && s.namespace == w.namespace)
    });
    if role_ref.name == wanted.role_ref.name
        && role_ref.kind == wanted.role_ref.kind
        && subject_present
    {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "binding \"{name}\" already exists with a different role or subjects"
        )))
    }
}

fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// A failed precondition (uid or resourceVersion) answers 409 Conflict.
fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn ignore_not_found(result: Result<(), kube::Error>) -> Result<()> {
    match result {
        Err(e) if is_not_found(&e) => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_review_carries_the_authenticators_extra() {
        let extra = BTreeMap::from([(
            "authentication.kubernetes.io/pod-name".to_owned(),
            vec!["web-0".to_owned()],
        )]);
        let access = ResourceAccess {
            verb: "create",
            group: "",
            resource: "serviceaccounts",
            subresource: Some("token"),
            namespace: Some("a"),
            name: Some("b"),
        };
        let review = access_review("u", "", &["g".to_owned()], &extra, &access);
        assert_eq!(review.spec.extra, Some(extra));
        let none = access_review("u", "", &[], &BTreeMap::new(), &access);
        assert_eq!(none.spec.extra, None);
    }
}
