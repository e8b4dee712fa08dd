//! Conversions between proto messages and the service layer's types.

use k8s_openapi::jiff::Timestamp;
use tonic::Status;

use super::to_status;
use super::v1;
use crate::service::{self, BindingScope, IssueRequest, TokenRecord, TokenState};

/// An IssueTokenRequest in the service's terms.
pub fn issue_request(request: v1::IssueTokenRequest) -> Result<IssueRequest, Status> {
    let binding_scope = match v1::BindingScope::try_from(request.binding_scope) {
        Ok(v1::BindingScope::Unspecified) => None,
        Ok(v1::BindingScope::Namespace) => Some(BindingScope::Namespace),
        Ok(v1::BindingScope::Cluster) => Some(BindingScope::Cluster),
        Err(_) => {
            return Err(to_status(service::Error::invalid(
                "binding_scope",
                format!("unknown value {}", request.binding_scope),
            )));
        }
    };
    Ok(IssueRequest {
        namespace: request.namespace,
        service_account: request.service_account,
        duration: request.duration,
        audiences: request.audiences,
        create_service_account: request.create_service_account,
        cluster_role: request.cluster_role,
        binding_scope,
        labels: request.labels.into_iter().collect(),
        replaces: None,
    })
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

/// A state to filter ListTokens by; UNSPECIFIED and unknown numbers are refused.
pub fn state_filter(value: i32) -> Result<TokenState, Status> {
    match v1::TokenState::try_from(value) {
        Ok(v1::TokenState::Active) => Ok(TokenState::Active),
        Ok(v1::TokenState::Expired) => Ok(TokenState::Expired),
        Ok(v1::TokenState::Orphaned) => Ok(TokenState::Orphaned),
        _ => Err(to_status(service::Error::invalid(
            "states",
            format!("unknown or unspecified state {value}"),
        ))),
    }
}
