//! RenewToken: a replacement for a token on record (same ServiceAccount, audiences, role and
//! labels), issued as IssueToken issues, and the old token revoked now or after a grace period.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokend_api::duration::parse_duration;

use super::checks::{not_found_token, parse_token_id, secret_access};
use super::policy::GivenLifetime;
use super::{
    Error, IssueRequest, IssuedToken, Reason, Result, RevokeTarget, TokenService, Violations,
};
use crate::caller::Caller;
use crate::token_id::TokenId;

/// Longest grace an old token may be given before it is revoked: the revocation waits in
/// tokend's memory, so it is kept short.
pub const MAX_REVOKE_GRACE: Duration = Duration::from_secs(3600);

/// A RenewToken request in the service's terms.
#[derive(Debug, Clone, Default)]
pub struct RenewRequest {
    /// The token_id to replace.
    pub token_id: String,
    /// Lifetime of the new token; empty means `lifetime`, or the default.
    pub duration: String,
    /// Lifetime as a google.protobuf.Duration's parts; at most one of this and `duration`.
    pub lifetime: Option<GivenLifetime>,
    /// Revoke the old token after `revoke_grace`.
    pub revoke_old: bool,
    /// Grace before the old token is revoked, in the duration grammar; empty means none.
    pub revoke_grace: String,
}

/// A renewal done.
#[derive(Debug)]
pub struct Renewed {
    /// The new token.
    pub issued: IssuedToken,
    /// The token it replaced.
    pub replaced: TokenId,
    /// When the old token is (or was) revoked; None when it was not asked.
    pub old_revoked_at: Option<Timestamp>,
    /// Whether the old token was revoked before the answer (no grace).
    pub old_revoked_now: bool,
}

impl TokenService {
    /// Issues a replacement for a token on record and revokes the old one when asked. The caller
    /// needs what issuing needs and what revoking the old token needs, whether or not it asks
    /// for the revocation: renewing is issuing in the old token's name.
    pub async fn renew(&self, caller: &Caller, request: RenewRequest) -> Result<Renewed> {
        // Every bad field at once: the token_id and the grace.
        let mut violations = Violations::default();
        let id = match parse_token_id(&request.token_id) {
            Ok(id) => Some(id),
            Err(e) => {
                violations.absorb(Err(e))?;
                None
            }
        };
        let grace = revoke_grace(&request, &mut violations);
        violations.into_result()?;
        let (Some(id), Some(grace)) = (id, grace) else {
            return Err(Error::internal(
                "renew: a field was refused without a violation",
            ));
        };
        // Checked before anything is read, so a refused caller learns nothing about records.
        self.require(
            caller,
            secret_access("delete", id.namespace(), Some(&id.secret_name())),
        )
        .await?;
        let old = self
            .record(&id)
            .await?
            .ok_or_else(|| not_found_token(&id))?;
        let issue = IssueRequest {
            namespace: old.namespace.clone(),
            service_account: old.service_account.clone(),
            duration: request.duration,
            lifetime: request.lifetime,
            untranslatable: Violations::default(),
            audiences: old.audiences.clone(),
            create_service_account: false,
            cluster_role: old.cluster_role.clone().unwrap_or_default(),
            binding_scope: old.cluster_role.as_ref().and(old.binding_scope),
            labels: old.labels.clone(),
            replaces: Some(id.clone()),
            owner: None,
        };
        let now_revoke = grace == Some(Duration::ZERO);
        let this = self.clone();
        let revoker = caller.clone();
        let old_id = id.clone();
        // A revocation due now happens before the answer: if it fails, the new token is taken
        // back and the caller keeps the old one, as if nothing had happened.
        let issued = self
            .issue_then(caller, issue, move |issued| async move {
                if now_revoke {
                    this.revoke(&revoker, RevokeTarget::TokenId(old_id.to_string()))
                        .await?;
                }
                Ok(issued)
            })
            .await?;
        let old_revoked_at = match grace {
            None => None,
            Some(Duration::ZERO) => Some(Timestamp::now()),
            Some(grace) => {
                self.revoke_later(caller.clone(), id.clone(), grace);
                SignedDuration::try_from(grace)
                    .ok()
                    .and_then(|g| Timestamp::now().checked_add(g).ok())
            }
        };
        Ok(Renewed {
            issued,
            replaced: id,
            old_revoked_at,
            old_revoked_now: now_revoke,
        })
    }

    /// Revokes `id` once `grace` has passed, in a task of its own; a record already gone by
    /// then (revoked or swept) is fine. Lost if tokend stops first: the token then lives to its
    /// expiry, as the API documents.
    fn revoke_later(&self, caller: Caller, id: TokenId, grace: Duration) {
        let this = self.clone();
        let task = async move {
            tokio::time::sleep(grace).await;
            match this
                .revoke(&caller, RevokeTarget::TokenId(id.to_string()))
                .await
            {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(token_id = %id, error = %e, "revoking a renewed token failed");
                }
            }
        };
        tokio::spawn(tracing::Instrument::instrument(
            task,
            tracing::Span::current(),
        ));
    }
}

/// The grace before the old token is revoked (`Some(None)` when it is not to be revoked); None
/// when `revoke_grace` or `revoke_old` breaks a rule, recorded in `violations`.
fn revoke_grace(request: &RenewRequest, violations: &mut Violations) -> Option<Option<Duration>> {
    if !request.revoke_old {
        if !request.revoke_grace.is_empty() {
            violations.add(
                "revoke_grace",
                Reason::FieldNeedsAnother,
                "may only be set together with revoke_old",
            );
            return None;
        }
        return Some(None);
    }
    if request.revoke_grace.is_empty() {
        return Some(Some(Duration::ZERO));
    }
    let grace = violations.check(
        "revoke_grace",
        Reason::DurationInvalid,
        parse_duration(&request.revoke_grace).map_err(|e| format!("{e} (e.g. 30s, 5m)")),
    )?;
    if grace > MAX_REVOKE_GRACE {
        violations.add(
            "revoke_grace",
            Reason::DurationOverMaximum,
            "must be at most 1h",
        );
        return None;
    }
    Some(Some(grace))
}
