//! The `Ready` condition of a ServiceAccountToken and the reasons it is reported with.

use k8s_openapi::jiff::Timestamp;

use super::resource::Condition;

/// The one condition type.
pub const READY: &str = "Ready";
/// True: the token is valid and its Secret and ServiceAccount exist.
pub const SUBRESOURCES_READY: &str = "SubresourcesReady";
/// False: the token's expiry has passed (and no rotation was asked for).
pub const TOKEN_EXPIRED: &str = "TokenExpired";
/// False: the Secret or ServiceAccount made for the resource was deleted.
pub const SUBRESOURCE_NOT_FOUND: &str = "SubresourceNotFound";
/// False: no requester in the spec: tokend's admission webhook did not see the object's CREATE.
pub const REQUESTER_UNKNOWN: &str = "RequesterUnknown";
/// False: a requester tokend cannot prove its own webhook wrote for this object as it is
/// (hand-written where no webhook is registered, copied, or kept across an unseen spec change).
pub const REQUESTER_UNPROVEN: &str = "RequesterUnproven";
/// False: the requester may not get this token itself (the SubjectAccessReview said no).
pub const FORBIDDEN: &str = "Forbidden";

/// A `Ready` condition, keeping the transition time of `previous` when the status is unchanged.
pub fn ready(
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    previous: &[Condition],
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == READY && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| Some(now.to_string()));
    Condition {
        type_: READY.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time,
        observed_generation: generation,
    }
}
