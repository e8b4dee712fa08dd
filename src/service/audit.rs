//! The audit trail: one line per issue and revoke, on the `tokend::service::audit` target. Never a token.

use super::error::Error;
use super::record::TokenRecord;
use crate::caller::Caller;
use crate::token_id::TokenId;

/// Logs a token issued.
pub fn issued(caller: &Caller, record: &TokenRecord, outcome: &str) {
    tracing::info!(
        target: "tokend::service::audit",
        action = "issue",
        outcome,
        caller = %caller_name(caller),
        namespace = %record.namespace,
        service_account = %record.service_account,
        token_id = %record.token_id,
        expiration = %record.expiration.map(|t| t.to_string()).unwrap_or_default(),
        audiences = ?record.audiences,
        cluster_role = record.cluster_role.as_deref().unwrap_or(""),
        replaces = %record.replaces.as_ref().map(ToString::to_string).unwrap_or_default(),
    );
}

/// Logs an issue that failed.
pub fn issue_failed(caller: &Caller, namespace: &str, service_account: &str, error: &Error) {
    tracing::info!(
        target: "tokend::service::audit",
        action = "issue",
        outcome = "failed",
        caller = %caller_name(caller),
        namespace,
        service_account,
        error = %error,
    );
}

/// Logs a token revoked.
pub fn revoked(caller: &Caller, record: &TokenRecord) {
    tracing::info!(
        target: "tokend::service::audit",
        action = "revoke",
        outcome = "revoked",
        caller = %caller_name(caller),
        namespace = %record.namespace,
        service_account = %record.service_account,
        token_id = %record.token_id,
    );
}

/// Logs a token revoked because nobody received it (`revoked: caller left`), or that revoking
/// it failed for now (its record is deleted later, in the background or by the sweeper).
pub fn taken_back(
    caller: &Caller,
    namespace: &str,
    service_account: &str,
    token_id: &TokenId,
    reason: &str,
    revoked: bool,
) {
    let outcome = if revoked {
        format!("revoked: {reason}")
    } else {
        format!("revoke failed: {reason}; the record is deleted once the Kubernetes API answers")
    };
    tracing::info!(
        target: "tokend::service::audit",
        action = "revoke",
        outcome = %outcome,
        caller = %caller_name(caller),
        namespace,
        service_account,
        token_id = %token_id,
    );
}

fn caller_name(caller: &Caller) -> &str {
    if caller.username.is_empty() {
        "unauthenticated (--auth none)"
    } else {
        &caller.username
    }
}

/// Logs a bootstrap token issued (its id and facts; never its secret).
pub fn bootstrap_issued(caller: &Caller, info: &super::BootstrapTokenInfo) {
    tracing::info!(
        target: "tokend::service::audit",
        action = "issue",
        kind = "bootstrap-token",
        outcome = "issued",
        caller = %caller_name(caller),
        bootstrap_token_id = %info.token_id,
        expiration = %info.expiration.map(|t| t.to_string()).unwrap_or_default(),
        extra_groups = ?info.extra_groups,
        usages = ?info.usages,
    );
}

/// Logs a bootstrap token issue that failed.
pub fn bootstrap_issue_failed(caller: &Caller, id: &str, error: &Error) {
    tracing::info!(
        target: "tokend::service::audit",
        action = "issue",
        kind = "bootstrap-token",
        outcome = "failed",
        caller = %caller_name(caller),
        bootstrap_token_id = id,
        error = %error,
    );
}

/// Logs a bootstrap token deleted again because nobody received it.
pub fn bootstrap_taken_back(caller: &Caller, id: &str, revoked: bool) {
    tracing::info!(
        target: "tokend::service::audit",
        action = "revoke",
        kind = "bootstrap-token",
        outcome = if revoked { "revoked: caller left" } else { "revoke failed: caller left; delete the Secret or let it expire" },
        caller = %caller_name(caller),
        bootstrap_token_id = id,
    );
}

/// Logs a bootstrap token revoked.
pub fn bootstrap_revoked(caller: &Caller, id: &str) {
    tracing::info!(
        target: "tokend::service::audit",
        action = "revoke",
        kind = "bootstrap-token",
        outcome = "revoked",
        caller = %caller_name(caller),
        bootstrap_token_id = id,
    );
}

/// Logs a client certificate issued, with its serial number: it cannot be revoked, so this line
/// is what ties a certificate in use back to the caller who asked for it.
pub fn certificate_issued(
    caller: &Caller,
    user: &str,
    groups: &[String],
    serial: &str,
    not_after: &str,
) {
    tracing::info!(
        target: "tokend::service::audit",
        action = "issue",
        kind = "client-certificate",
        outcome = "issued",
        caller = %caller_name(caller),
        user,
        groups = ?groups,
        serial_number = serial,
        not_after,
    );
}

/// Logs a client certificate issue that failed.
pub fn certificate_issue_failed(caller: &Caller, user: &str, error: &Error) {
    tracing::info!(
        target: "tokend::service::audit",
        action = "issue",
        kind = "client-certificate",
        outcome = "failed",
        caller = %caller_name(caller),
        user,
        error = %error,
    );
}
