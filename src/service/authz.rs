//! Delegated authorisation: tokend asks Kubernetes (SubjectAccessReview) whether the caller could
//! do with kubectl what it asks tokend to do, so tokend never widens anyone's rights.

use super::{Caller, Error, Result, TokenService};
use crate::cluster::ResourceAccess;

impl TokenService {
    /// Refuses the call unless the caller may do `access`; a no-op when authentication is off.
    pub(super) async fn require(&self, caller: &Caller, access: ResourceAccess<'_>) -> Result<()> {
        if !self.settings.authorize {
            return Ok(());
        }
        // Like the API server's own authorizer cache: allowed answers are reused briefly, so a
        // withdrawn permission lasts at most the cache TTL; denials are always asked again.
        let key = format!(
            "{}\n{}\n{}\n{:?}",
            caller.username,
            caller.uid,
            caller.groups.join(","),
            access
        );
        if self.allowed.get(&key).is_some() {
            return Ok(());
        }
        let decision = self
            .cluster
            .subject_access_review(&caller.username, &caller.uid, &caller.groups, &access)
            .await?;
        if decision.allowed {
            self.allowed.insert(key, ());
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
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
        )))
    }
}
