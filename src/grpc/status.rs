//! The one place errors become gRPC statuses: a code, a bounded message, and the
//! `google.rpc.Status` details other languages read — `ErrorInfo` (domain [`DOMAIN`], a stable
//! reason), `BadRequest` with every bad field, `RetryInfo` when a retry may succeed.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::server::authn::AuthError;
use crate::service::{Error, Failure, Reason, Violations};

/// The ErrorInfo domain of every tokend error.
pub const DOMAIN: &str = "tokend.io";

/// Most field violations one status lists; a request breaking more rules hears of these first.
const MAX_VIOLATIONS: usize = 50;

/// Maps a service error to the gRPC status a caller sees.
pub fn to_status(error: Error) -> Status {
    let message = bounded(error.to_string());
    match error {
        Error::InvalidArgument(violations) => bad_request(message, violations),
        Error::NotFound(f) => with_details(Code::NotFound, message, f),
        Error::AlreadyExists(f) => with_details(Code::AlreadyExists, message, f),
        Error::PermissionDenied(f) => with_details(Code::PermissionDenied, message, f),
        Error::Unauthenticated(f) => with_details(Code::Unauthenticated, message, f),
        Error::FailedPrecondition(f) => with_details(Code::FailedPrecondition, message, f),
        Error::Unavailable(f) => with_details(Code::Unavailable, message, f),
        Error::Internal(f) => with_details(Code::Internal, message, f),
    }
}

/// Maps an authentication failure (the layer before the service) to its status.
pub fn auth_status(error: AuthError) -> Status {
    let message = bounded(error.to_string());
    let (code, failure) = match error {
        AuthError::Unauthenticated(_) => (
            Code::Unauthenticated,
            Failure::new(Reason::Unauthenticated, ""),
        ),
        AuthError::Forbidden(_) => (
            Code::PermissionDenied,
            Failure::new(Reason::IdentityForbidden, ""),
        ),
        AuthError::Throttled(_) => (
            Code::ResourceExhausted,
            Failure::new(Reason::CallerThrottled, ""),
        ),
        AuthError::Unavailable(_) => (
            Code::Unavailable,
            Failure::new(Reason::KubernetesUnavailable, "")
                .retry_after(crate::service::RETRY_DELAY),
        ),
    };
    with_details(code, message, failure)
}

fn with_details(code: Code, message: String, failure: Failure) -> Status {
    let metadata: HashMap<String, String> = failure
        .metadata
        .into_iter()
        .map(|(k, v)| (k.to_owned(), bounded(v)))
        .collect();
    let mut details = ErrorDetails::with_error_info(failure.reason.as_str(), DOMAIN, metadata);
    if let Some(delay) = failure.retry_after {
        details.set_retry_info(Some(delay));
    }
    Status::with_error_details(code, message, details)
}

fn bad_request(message: String, violations: Violations) -> Status {
    let fields: Vec<&str> = violations
        .0
        .iter()
        .take(MAX_VIOLATIONS)
        .map(|v| v.field.as_str())
        .collect();
    let metadata = HashMap::from([
        ("fields".to_owned(), bounded(fields.join(","))),
        ("violations".to_owned(), violations.0.len().to_string()),
    ]);
    let mut details =
        ErrorDetails::with_error_info(Reason::InvalidFields.as_str(), DOMAIN, metadata);
    details.set_bad_request(
        violations
            .0
            .into_iter()
            .take(MAX_VIOLATIONS)
            .map(|v| FieldViolation {
                field: v.field,
                description: bounded(v.description),
                reason: v.reason.as_str().to_owned(),
                localized_message: None,
            })
            .collect::<Vec<_>>(),
    );
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// Longest message a status carries. Messages quote callers' values shortened already; this
/// bounds what is left (an API server's message quoting them back, say), as a grpc-message is a
/// header the caller's client must hold.
const MAX_MESSAGE_BYTES: usize = 1024;

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::v1;

    #[test]
    fn every_reason_is_in_the_proto_enum_and_the_readme() {
        let readme = include_str!("../../README.md");
        for reason in Reason::ALL {
            assert!(
                v1::ErrorReason::from_str_name(reason.as_str()).is_some(),
                "{reason} is missing from proto/tokend/v1/errors.proto"
            );
            assert!(
                readme.contains(&format!("| `{reason}` |")),
                "{reason} is missing from the README's table"
            );
        }
        // And nothing in the proto that the server never sends (0 is UNSPECIFIED).
        let mut n = 1;
        while let Ok(value) = v1::ErrorReason::try_from(n) {
            assert!(
                Reason::ALL
                    .iter()
                    .any(|r| r.as_str() == value.as_str_name()),
                "{} is in the proto but not in Reason",
                value.as_str_name()
            );
            n += 1;
        }
        assert_eq!(n as usize, Reason::ALL.len() + 1);
    }

    #[test]
    fn bad_requests_list_every_field() {
        let mut v = Violations::default();
        v.add("namespace", Reason::NameInvalid, "bad");
        v.add("duration", Reason::DurationInvalid, "worse");
        let status = to_status(Error::InvalidArgument(v));
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "INVALID_FIELDS");
        assert_eq!(info.domain, DOMAIN);
        let fields: Vec<_> = status
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations
            .into_iter()
            .map(|f| (f.field, f.reason))
            .collect();
        assert_eq!(
            fields,
            [
                ("namespace".to_owned(), "NAME_INVALID".to_owned()),
                ("duration".to_owned(), "DURATION_INVALID".to_owned())
            ]
        );
    }

    #[test]
    fn unavailable_carries_retry_info() {
        let status = to_status(Error::from(crate::cluster::Error::Unreachable("x".into())));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.get_details_retry_info().is_some());
        assert_eq!(
            status.get_details_error_info().map(|i| i.reason),
            Some("KUBERNETES_UNAVAILABLE".into())
        );
    }
}
