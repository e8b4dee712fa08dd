//! Waiting until what a test just wrote to the API server is in force there: RBAC it granted
//! (the authorizer reads Roles and bindings through informers) and an admission webhook it
//! registered (read through an informer too). On an idle server that is milliseconds; on a busy
//! one (CI, the real stage's background load) it can be seconds, and a test acting at once then
//! fails for no fault of tokend's. Both work the same on the emulator, where they are at once.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use tokend::controller::{ServiceAccountToken, ServiceAccountTokenSpec};

use crate::polling::{EVENTUALLY, eventually_within};

/// The user and groups the API server authenticates `subject` as.
fn user_of(subject: &Subject) -> (Option<String>, Vec<String>) {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject.namespace.clone().unwrap_or_default();
            (
                Some(format!("system:serviceaccount:{ns}:{}", subject.name)),
                vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{ns}"),
                    "system:authenticated".into(),
                ],
            )
        }
        "Group" => (None, vec![subject.name.clone()]),
        _ => (
            Some(subject.name.clone()),
            vec!["system:authenticated".into()],
        ),
    }
}

/// Every (verb, group, resource, subresource, name) `rules` grant, one name per rule.
fn accesses(rules: &[PolicyRule]) -> Vec<ResourceAttributes> {
    let mut out = Vec::new();
    for rule in rules {
        let group = rule
            .api_groups
            .as_ref()
            .and_then(|g| g.first())
            .cloned()
            .unwrap_or_default();
        let name = rule
            .resource_names
            .as_ref()
            .and_then(|n| n.first())
            .cloned();
        for resource in rule.resources.iter().flatten() {
            let (resource, subresource) = match resource.split_once('/') {
                Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
                None => (resource.clone(), None),
            };
            for verb in &rule.verbs {
                out.push(ResourceAttributes {
                    verb: Some(verb.clone()),
                    group: Some(group.clone()),
                    resource: Some(resource.clone()),
                    subresource: subresource.clone(),
                    name: name.clone(),
                    ..Default::default()
                });
            }
        }
    }
    out
}

/// Waits until the API server's authorizer allows `subject` everything `rules` grant, in
/// namespace `namespace` (None: cluster-wide); fails after [`EVENTUALLY`] naming what is
/// still denied.
pub async fn rbac_in_force(
    admin: &Client,
    subject: &Subject,
    namespace: Option<&str>,
    rules: &[PolicyRule],
) -> Result<()> {
    let (user, groups) = user_of(subject);
    let reviews = Api::<SubjectAccessReview>::all(admin.clone());
    let wanted = accesses(rules);
    let denied = std::sync::Mutex::new(String::new());
    eventually_within("granted RBAC is in force", EVENTUALLY, || {
        let (reviews, wanted, user, groups, denied) = (&reviews, &wanted, &user, &groups, &denied);
        async move {
            for attributes in wanted {
                let review = SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: user.clone(),
                        groups: Some(groups.clone()),
                        resource_attributes: Some(ResourceAttributes {
                            namespace: namespace.map(str::to_owned),
                            ..attributes.clone()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let answer = reviews.create(&PostParams::default(), &review).await?;
                if !answer.status.is_some_and(|s| s.allowed) {
                    *denied.lock().unwrap_or_else(|p| p.into_inner()) = format!("{attributes:?}");
                    return Ok(false);
                }
            }
            Ok(true)
        }
    })
    .await
    .with_context(|| {
        format!(
            "still denied to {}: {}",
            subject.name,
            denied.lock().unwrap_or_else(|p| p.into_inner())
        )
    })
}

/// Waits until ServiceAccountTokens created in `namespace` go through a mutating webhook (the
/// API server returns them changed): creates a probe object (`labels` on it; one no controller
/// selects) and deletes it, until one comes back mutated; fails after [`EVENTUALLY`].
pub async fn webhook_in_force(
    admin: &Client,
    namespace: &str,
    labels: BTreeMap<String, String>,
) -> Result<()> {
    let api = Api::<ServiceAccountToken>::namespaced(admin.clone(), namespace);
    eventually_within("the registered webhook is in force", EVENTUALLY, || {
        let (api, labels) = (&api, &labels);
        async move {
            let mut probe = ServiceAccountToken::new(
                &crate::unique_name("webhook-probe"),
                ServiceAccountTokenSpec::default(),
            );
            probe.metadata.labels = Some(labels.clone());
            let created = api.create(&PostParams::default(), &probe).await?;
            let name = created.metadata.name.clone().unwrap_or_default();
            api.delete(&name, &DeleteParams::default()).await?;
            let mutated = serde_json::to_value(&created.spec)?
                != serde_json::to_value(&probe.spec)?
                || created.metadata.annotations.is_some_and(|a| !a.is_empty());
            Ok(mutated)
        }
    })
    .await
}

/// [`rbac_in_force`] that panics, for setup code.
pub async fn expect_rbac_in_force(
    admin: &Client,
    subject: &Subject,
    namespace: Option<&str>,
    rules: &[PolicyRule],
) {
    if let Err(e) = rbac_in_force(admin, subject, namespace, rules).await {
        panic!("{e:#}");
    }
}
