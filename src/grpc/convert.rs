//! Conversions between proto messages and the service layer's types.

use super::v1;
use crate::service::policy::GivenLifetime;
use crate::service::{BindingScope, IssueRequest, Reason, TokenRecord, TokenState, Violations};
use k8s_openapi::jiff::Timestamp;

/// An IssueTokenRequest in the service's terms; fields it cannot translate go into
/// `untranslatable`, to be reported with the service's own findings.
pub fn issue_request(request: v1::IssueTokenRequest) -> IssueRequest {
    let mut untranslatable = Violations::default();
    let binding_scope = match v1::BindingScope::try_from(request.binding_scope) {
        Ok(v1::BindingScope::Unspecified) => None,
        Ok(v1::BindingScope::Namespace) => Some(BindingScope::Namespace),
        Ok(v1::BindingScope::Cluster) => Some(BindingScope::Cluster),
        Err(_) => {
            untranslatable.add(
                "binding_scope",
                Reason::ValueUnknown,
                format!("unknown value {}", request.binding_scope),
            );
            None
        }
    };
    IssueRequest {
        namespace: request.namespace,
        service_account: request.service_account,
        duration: request.duration,
        lifetime: request.lifetime.map(|d| GivenLifetime {
            seconds: d.seconds,
            nanos: d.nanos,
        }),
        untranslatable,
        audiences: request.audiences,
        create_service_account: request.create_service_account,
        cluster_role: request.cluster_role,
        binding_scope,
        labels: request.labels.into_iter().collect(),
        replaces: None,
        owner: None,
    }
}

/// A protobuf Duration of whole seconds.
pub fn duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

/// A protobuf Timestamp.
pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

/// A record as the API shows it.
pub fn record(r: TokenRecord, state: TokenState) -> v1::TokenRecord {
    v1::TokenRecord {
        token_id: r.token_id.to_string(),
        namespace: r.namespace,
        service_account: r.service_account,
        state: match state {
            TokenState::Active => v1::TokenState::Active,
            TokenState::Expired => v1::TokenState::Expired,
            TokenState::Orphaned => v1::TokenState::Orphaned,
        } as i32,
        issue_time: r.issued_at.map(timestamp),
        // Deprecated in the proto for issue_time; filled for callers that still read it.
        #[allow(deprecated)]
        issued_at: r.issued_at.map(timestamp),
        expiration_time: r.expiration.map(timestamp),
        audiences: r.audiences,
        labels: r.labels.into_iter().collect(),
        issued_by: r.issued_by,
        cluster_role: r.cluster_role.unwrap_or_default(),
        binding_scope: match r.binding_scope {
            None => v1::BindingScope::Unspecified,
            Some(BindingScope::Namespace) => v1::BindingScope::Namespace,
            Some(BindingScope::Cluster) => v1::BindingScope::Cluster,
        } as i32,
        replaces: r.replaces.map(|id| id.to_string()).unwrap_or_default(),
    }
}

/// The states to filter ListTokens by; UNSPECIFIED and unknown numbers are recorded in
/// `untranslatable`.
pub fn state_filter(values: &[i32], untranslatable: &mut Violations) -> Vec<TokenState> {
    let mut states = Vec::new();
    for (i, &value) in values.iter().enumerate() {
        match v1::TokenState::try_from(value) {
            Ok(v1::TokenState::Active) => states.push(TokenState::Active),
            Ok(v1::TokenState::Expired) => states.push(TokenState::Expired),
            Ok(v1::TokenState::Orphaned) => states.push(TokenState::Orphaned),
            _ => untranslatable.add(
                format!("states[{i}]"),
                Reason::ValueUnknown,
                format!("unknown or unspecified state {value}"),
            ),
        }
    }
    states
}
