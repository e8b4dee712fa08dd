//! Delegated authorisation: tokend asks Kubernetes (SubjectAccessReview) whether the caller could
//! do with kubectl what it asks tokend to do, so tokend never widens anyone's rights.

use std::collections::BTreeMap;

use super::{Caller, Error, Failure, Reason, Result, TokenService};
use crate::cluster::ResourceAccess;

impl TokenService {
    /// Refuses the call unless the caller may do `access`; a no-op when authentication is off.
    pub(super) async fn require(&self, caller: &Caller, access: ResourceAccess<'_>) -> Result<()> {
        if !self.settings.authorize {
            return Ok(());
        }
        // Like the API server's own authorizer cache: allowed answers are reused briefly, so a
        // withdrawn permission lasts at most the cache TTL; denials are always asked again.
        let key = AccessKey::new(caller, &access);
        if self.allowed.get(&key).is_some() {
            return Ok(());
        }
        let decision = self
            .cluster
            .subject_access_review(
                &caller.username,
                &caller.uid,
                &caller.groups,
                &caller.extra,
                &access,
            )
            .await?;
        if decision.allowed {
            self.allowed.insert(key, ());
            return Ok(());
        }
        let message = format!(
            "{} may not {}{}",
            if caller.username.is_empty() {
                "the caller"
            } else {
                caller.username.as_str()
            },
            access.describe(),
            if decision.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", decision.reason)
            },
        );
        let mut failure = Failure::new(Reason::PermissionDenied, message)
            .with("verb", access.verb)
            .with("resource", access.resource);
        if !access.group.is_empty() {
            failure = failure.with("group", access.group);
        }
        if let Some(sub) = access.subresource {
            failure = failure.with("subresource", sub);
        }
        if let Some(ns) = access.namespace {
            failure = failure.with("namespace", ns);
        }
        Err(Error::PermissionDenied(failure))
    }
}

/// Who asked for what, field by field: two different questions can never share a key, whatever
/// separators a caller's user or group names hold (`["a,b"]` is not `["a", "b"]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct AccessKey {
    username: String,
    uid: String,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
    verb: String,
    group: String,
    resource: String,
    subresource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

impl AccessKey {
    fn new(caller: &Caller, access: &ResourceAccess<'_>) -> Self {
        Self {
            username: caller.username.clone(),
            uid: caller.uid.clone(),
            groups: caller.groups.clone(),
            extra: caller.extra.clone(),
            verb: access.verb.to_owned(),
            group: access.group.to_owned(),
            resource: access.resource.to_owned(),
            subresource: access.subresource.map(str::to_owned),
            namespace: access.namespace.map(str::to_owned),
            name: access.name.map(str::to_owned),
        }
    }
}
