//! One reconciliation of a ServiceAccountToken: drop an earlier version's finalizer; check the
//! requester (its seal); issue when there is no token (or the spec changed), rotate when less than
//! `renewBefore` remains, revoke a rotated-out token after the grace, and report `Ready`.
//! Deletion needs nothing from here: what the resource made is owned by it and
//! garbage-collected, its token's record included (which revokes the token).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource as _, ResourceExt as _};

use super::objects;
use super::requester;
use super::resource::{Condition, SecretRef, ServiceAccountToken, ServiceAccountTokenStatus};
use super::status::{
    self, FORBIDDEN, REQUESTER_UNKNOWN, REQUESTER_UNPROVEN, SUBRESOURCE_NOT_FOUND,
    SUBRESOURCES_READY, TOKEN_EXPIRED,
};
use super::{Context, Error, LEGACY_FINALIZER};
use crate::service::{Caller, DeclaredOwner, IssueRequest};

/// How often a resource is looked at even when nothing it watches changed (a named
/// ServiceAccount it does not own may have been deleted).
const RECHECK: Duration = Duration::from_secs(300);
/// How soon a refused resource is tried again (the requester may have been granted the rights).
const RETRY_REFUSED: Duration = Duration::from_secs(60);

pub(super) async fn reconcile(
    sat: Arc<ServiceAccountToken>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let result = reconcile_once(&sat, &context).await;
    if result.is_ok() {
        // A success ends the run of failures: the next failure waits the shortest delay again.
        context.failures.invalidate(&failure_key(&sat));
    }
    result
}

/// One reconciliation: drop an earlier version's finalizer, leave a deleted resource to garbage
/// collection, else [`apply`].
async fn reconcile_once(sat: &ServiceAccountToken, context: &Context) -> Result<Action, Error> {
    let ns = sat
        .namespace()
        .ok_or_else(|| Error::Object("a ServiceAccountToken without a namespace".into()))?;
    if sat.finalizers().iter().any(|f| f == LEGACY_FINALIZER) {
        drop_legacy_finalizer(sat, &ns, context).await?;
    }
    if sat.metadata.deletion_timestamp.is_some() {
        // Garbage collection revokes the token (its record is owned by the resource).
        return Ok(Action::await_change());
    }
    apply(sat, &ns, context).await
}

/// Removes [`LEGACY_FINALIZER`], only from the finalizers as they were read (a JSON patch
/// `test`ed against them), so a finalizer someone else added meanwhile is kept.
async fn drop_legacy_finalizer(
    sat: &ServiceAccountToken,
    ns: &str,
    context: &Context,
) -> Result<(), Error> {
    let current = sat.finalizers().to_vec();
    let kept: Vec<&String> = current.iter().filter(|f| *f != LEGACY_FINALIZER).collect();
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        { "op": "test", "path": "/metadata/finalizers", "value": current },
        { "op": "replace", "path": "/metadata/finalizers", "value": kept },
    ]))
    .map_err(|e| Error::Object(e.to_string()))?;
    Api::<ServiceAccountToken>::namespaced(context.client.clone(), ns)
        .patch(
            &sat.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await?;
    Ok(())
}

pub(super) fn error_policy(
    sat: Arc<ServiceAccountToken>,
    error: &Error,
    context: Arc<Context>,
) -> Action {
    let key = failure_key(&sat);
    let failures = context.failures.get(&key).unwrap_or(0).saturating_add(1);
    context.failures.insert(key, failures);
    context
        .metrics
        .reconcile_errors
        .get_or_create(&crate::metrics::ReconcileFailure {
            reason: error.reason(),
        })
        .inc();
    let delay = retry_delay(failures);
    tracing::warn!(
        namespace = sat.namespace().unwrap_or_default(),
        name = sat.name_any(),
        error = %error,
        failures,
        retry_in_seconds = delay.as_secs(),
        "ServiceAccountToken not reconciled; trying again"
    );
    Action::requeue(delay)
}

/// The first retry after a failure comes after this long; each further failure in a row doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between retries of a resource that keeps failing.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// How long to wait after the `failures`-th failure in a row (1-based): exponential from
/// [`FIRST_RETRY`], at most [`MAX_RETRY`], so a broken API server or resource is not hammered.
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// Which resource a run of failures belongs to: its uid (a re-created name starts afresh).
fn failure_key(sat: &ServiceAccountToken) -> String {
    sat.metadata
        .uid
        .clone()
        .unwrap_or_else(|| format!("{}/{}", sat.namespace().unwrap_or_default(), sat.name_any()))
}

/// The resource as the owner of the tokens issued for it.
fn declared_owner(sat: &ServiceAccountToken) -> DeclaredOwner {
    DeclaredOwner {
        api_version: ServiceAccountToken::api_version(&()).into_owned(),
        kind: ServiceAccountToken::kind(&()).into_owned(),
        name: sat.name_any(),
        uid: sat.metadata.uid.clone().unwrap_or_default(),
        owns_service_account: sat.spec.service_account_name.is_empty(),
    }
}

async fn apply(sat: &ServiceAccountToken, ns: &str, context: &Context) -> Result<Action, Error> {
    let now = context.options.clock.now();
    let name = sat.name_any();
    let generation = sat.metadata.generation;
    let mut status = sat.status.clone().unwrap_or_default();
    let spec = &sat.spec;
    let report =
        |status: &mut ServiceAccountTokenStatus, ok: bool, reason: &str, message: String| {
            let condition = status::ready(ok, reason, message, generation, &status.conditions, now);
            status.conditions = vec![condition];
            status.observed_generation = generation;
        };

    let owner = declared_owner(sat);
    // A rotated-out token goes once its grace is over; the id in status is only a pointer:
    // revoke_declared acts only when the token's sealed record names this resource.
    let mut wake: Option<Timestamp> = None;
    if let (Some(previous), Some(at)) = (
        status.previous_token_id.clone(),
        status.previous_revoke_at.clone(),
    ) {
        let at: Timestamp = at.parse().unwrap_or(now);
        if at <= now {
            let on_behalf = format!("tokend controller (ServiceAccountToken {ns}/{name} rotated)");
            match context
                .service
                .revoke_declared(&on_behalf, &previous, ns, &owner)
                .await
            {
                Ok(_) | Err(crate::service::Error::InvalidArgument { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            status.previous_token_id = None;
            status.previous_revoke_at = None;
        } else {
            wake = Some(at);
        }
    }

    let Some(requester) = spec.requester.clone().filter(|r| !r.username.is_empty()) else {
        report(
            &mut status,
            false,
            REQUESTER_UNKNOWN,
            "spec.requester is empty: tokend's admission webhook did not see this object created, \
             so nothing is issued"
                .into(),
        );
        write_status(context, ns, &name, &status, sat.status.as_ref()).await?;
        return Ok(Action::await_change());
    };
    // Only a requester tokend's own webhook sealed for this object as it is now; one written by
    // hand (no webhook registered), copied from another object or kept across a spec change the
    // webhook did not see gets nothing. The log names no one: the identity is unproven.
    let key = context.service.record_key().await?;
    if let Err(why) = requester::verify(key, sat) {
        tracing::warn!(namespace = ns, name = %name, reason = %why, "ServiceAccountToken requester not proven: nothing issued");
        report(
            &mut status,
            false,
            REQUESTER_UNPROVEN,
            format!(
                "spec.requester is not proven ({why}): tokend acts only on a requester its \
                 admission webhook stamped for this object as it is now (is the webhook \
                 registered?); nothing is issued"
            ),
        );
        write_status(context, ns, &name, &status, sat.status.as_ref()).await?;
        return Ok(Action::await_change());
    }
    let caller = Caller {
        username: requester.username,
        uid: requester.uid,
        groups: requester.groups,
        extra: requester.extra,
    };
    let default_account = spec.service_account_name.is_empty();
    let account = if default_account {
        name.clone()
    } else {
        spec.service_account_name.clone()
    };
    let request = IssueRequest {
        namespace: ns.to_owned(),
        service_account: account.clone(),
        duration: spec.duration.clone(),
        audiences: spec.audiences.clone(),
        // The controller makes the default account itself (owned by the resource), but the
        // requester must be allowed to create ServiceAccounts for that.
        create_service_account: default_account,
        cluster_role: spec.cluster_role.clone(),
        binding_scope: None,
        labels: Default::default(),
        lifetime: None,
        untranslatable: Default::default(),
        replaces: None,
        owner: Some(owner.clone()),
    };
    let renew_before = match parse_renew_before(&spec.renew_before) {
        Ok(d) => d,
        Err(message) => {
            report(&mut status, false, "InvalidSpec", message);
            write_status(context, ns, &name, &status, sat.status.as_ref()).await?;
            return Ok(Action::await_change());
        }
    };

    let issued = status.token_id.is_some();
    let spec_changed = issued && status.issued_generation != generation;
    if issued && !spec_changed {
        // Are the token and what was made for it still there and valid?
        let secret_name = status
            .secret_ref
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let secret_there = !secret_name.is_empty()
            && objects::secret_meta(&context.client, ns, &secret_name)
                .await?
                .is_some();
        if !secret_there {
            report(
                &mut status,
                false,
                SUBRESOURCE_NOT_FOUND,
                format!("subresource not found: Secret {ns}/{secret_name} has been deleted"),
            );
            write_status(context, ns, &name, &status, sat.status.as_ref()).await?;
            return Ok(requeue(wake, now, RECHECK));
        }
        if !objects::account_exists(&context.client, ns, &account).await? {
            report(
                &mut status,
                false,
                SUBRESOURCE_NOT_FOUND,
                format!("subresource not found: ServiceAccount {ns}/{account} has been deleted"),
            );
            write_status(context, ns, &name, &status, sat.status.as_ref()).await?;
            return Ok(requeue(wake, now, RECHECK));
        }
        let expiry: Option<Timestamp> = status
            .expiration_time
            .as_deref()
            .and_then(|t| t.parse().ok());
        let rotate_at = match (expiry, renew_before) {
            (Some(e), Some(before)) => e.checked_sub(before).ok(),
            _ => None,
        };
        let due = rotate_at.is_some_and(|at| at <= now);
        if !due {
            if expiry.is_some_and(|e| e <= now) {
                report(
                    &mut status,
                    false,
                    TOKEN_EXPIRED,
                    "This token has expired".into(),
                );
                write_status(context, ns, &name, &status, sat.status.as_ref()).await?;
                return Ok(requeue(wake, now, RECHECK));
            }
            report(
                &mut status,
                true,
                SUBRESOURCES_READY,
                "All subresources are ready".into(),
            );
            write_status(context, ns, &name, &status, sat.status.as_ref()).await?;
            let next = [wake, rotate_at, expiry].into_iter().flatten().min();
            return Ok(requeue(next, now, RECHECK));
        }
    }

    // Issue: the first token, a rotation, or a changed spec. The watch cache may still hold the
    // object from before this controller's last status write (which would issue twice and
    // orphan a token): issue only for the object as the API server has it now.
    let fresh = Api::<ServiceAccountToken>::namespaced(context.client.clone(), ns)
        .get_metadata(&name)
        .await?;
    if fresh.metadata.resource_version != sat.metadata.resource_version {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    // Authorised as the requester first, before anything (the default ServiceAccount
    // included) is made.
    if let Err(e) = context.service.authorize_declared(&caller, &request).await {
        return refused(context, sat, ns, &mut status, now, e).await;
    }
    if default_account {
        objects::ensure_default_account(&context.client, sat, ns, &account).await?;
    }
    let issue = IssueRequest {
        create_service_account: false,
        ..request
    };
    let credentials = match context
        .service
        .issue_declared(&caller, issue, &spec.server, &spec.context_name)
        .await
    {
        Ok(c) => c,
        Err(e) => return refused(context, sat, ns, &mut status, now, e).await,
    };
    let on_behalf = format!("tokend controller (ServiceAccountToken {ns}/{name})");
    let existing = match &status.secret_ref {
        Some(secret) => objects::secret_meta(&context.client, ns, &secret.name)
            .await?
            .filter(|meta| objects::is_owned_by(meta, sat))
            .map(|_| secret.name.clone()),
        None => None,
    };
    let written = match &existing {
        Some(secret) => objects::update_secret(&context.client, ns, secret, &credentials)
            .await
            .map(|()| secret.clone()),
        None => objects::create_secret(&context.client, sat, ns, &credentials).await,
    };
    let secret = match written {
        Ok(secret) => secret,
        Err(e) => {
            // Nobody can read a token that was never written down: take it back.
            let _ = context
                .service
                .revoke_declared(&on_behalf, &credentials.token_id.to_string(), ns, &owner)
                .await;
            return Err(e);
        }
    };
    // The token replaced stays valid for the grace, then goes (or at once, when a changed spec
    // replaced it: the old one was issued for a spec that no longer holds).
    if let Some(old) = status.token_id.take() {
        if let Some(earlier) = status.previous_token_id.take() {
            let _ = context
                .service
                .revoke_declared(&on_behalf, &earlier, ns, &owner)
                .await;
        }
        let grace = if spec_changed {
            SignedDuration::ZERO
        } else {
            SignedDuration::try_from(context.options.rotation_grace).unwrap_or(SignedDuration::ZERO)
        };
        let at = now.checked_add(grace).unwrap_or(now);
        status.previous_token_id = Some(old);
        status.previous_revoke_at = Some(at.to_string());
        wake = Some(wake.map_or(at, |w| w.min(at)));
    }
    status.token_id = Some(credentials.token_id.to_string());
    status.issued_generation = generation;
    status.expiration_time = Some(credentials.expiration.to_string());
    status.secret_ref = Some(SecretRef { name: secret });
    report(
        &mut status,
        true,
        SUBRESOURCES_READY,
        "All subresources are ready".into(),
    );
    write_status(context, ns, &name, &status, sat.status.as_ref()).await?;
    let rotate_at = renew_before.and_then(|b| credentials.expiration.checked_sub(b).ok());
    let next = [wake, rotate_at, Some(credentials.expiration)]
        .into_iter()
        .flatten()
        .min();
    Ok(requeue(next, now, RECHECK))
}

/// Reports a refusal as `Ready=False` (issuing nothing); a transient failure is retried.
async fn refused(
    context: &Context,
    sat: &ServiceAccountToken,
    ns: &str,
    status: &mut ServiceAccountTokenStatus,
    now: Timestamp,
    error: crate::service::Error,
) -> Result<Action, Error> {
    if error.is_transient() {
        return Err(error.into());
    }
    let generation = sat.metadata.generation;
    let reason = match error.condition_reason() {
        "Forbidden" => FORBIDDEN,
        other => other,
    };
    let condition: Condition = status::ready(
        false,
        reason,
        error.to_string(),
        generation,
        &status.conditions,
        now,
    );
    status.conditions = vec![condition];
    status.observed_generation = generation;
    write_status(context, ns, &sat.name_any(), status, sat.status.as_ref()).await?;
    Ok(Action::requeue(RETRY_REFUSED))
}

async fn write_status(
    context: &Context,
    ns: &str,
    name: &str,
    status: &ServiceAccountTokenStatus,
    original: Option<&ServiceAccountTokenStatus>,
) -> Result<(), Error> {
    // Writing an unchanged status would wake the controller for nothing, forever.
    if original == Some(status) {
        return Ok(());
    }
    let api = Api::<ServiceAccountToken>::namespaced(context.client.clone(), ns);
    // A merge patch of the whole status: fields cleared are written as null, so removed.
    let mut value = serde_json::to_value(status).map_err(|e| Error::Object(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        for key in [
            "previousTokenId",
            "previousRevokeAt",
            "tokenId",
            "secretRef",
            "expirationTime",
        ] {
            map.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": value })),
    )
    .await?;
    Ok(())
}

/// Requeues at `at` (at least a second from now), or after `fallback`, whichever is sooner.
fn requeue(at: Option<Timestamp>, now: Timestamp, fallback: Duration) -> Action {
    let wait = at
        .and_then(|at| at.duration_since(now).try_into().ok())
        .map(|d: Duration| d.max(Duration::from_secs(1)))
        .map_or(fallback, |d| d.min(fallback));
    Action::requeue(wait)
}

fn parse_renew_before(text: &str) -> Result<Option<SignedDuration>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let duration = tokend_api::duration::parse_duration(text)
        .map_err(|rule| format!("spec.renewBefore: {rule}"))?;
    SignedDuration::try_from(duration)
        .map(Some)
        .map_err(|_| "spec.renewBefore: is too long".into())
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        for (failures, seconds) in [
            (0, 2),
            (1, 2),
            (2, 4),
            (3, 8),
            (4, 16),
            (7, 128),
            (8, 256),
            (9, 300),
            (40, 300),
            (u32::MAX, 300),
        ] {
            assert_eq!(
                retry_delay(failures),
                Duration::from_secs(seconds),
                "after {failures} failures"
            );
        }
    }
}
