//! The client's error type: gRPC statuses with their code, message and `google.rpc.Status`
//! details (the stable reason, every bad field, the retry delay), and local failures.

use tonic_types::StatusExt as _;
pub use tonic_types::{ErrorDetails, FieldViolation};

/// The ErrorInfo domain of tokend's errors.
pub const DOMAIN: &str = "tokend.io";

/// What went wrong talking to tokend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a gRPC error; `message` is the server's, meant for a person.
    #[error("{code:?}: {message}")]
    Status {
        /// The gRPC status code (`NotFound`, `PermissionDenied`, ...).
        code: tonic::Code,
        /// The server's message.
        message: String,
        /// The `google.rpc.Status` details the server sent (empty when it sent none); see
        /// [`Error::reason`], [`Error::field_violations`] and [`Error::retry_delay`].
        details: Box<ErrorDetails>,
    },
    /// The connection to the server could not be made or TLS could not be set up.
    #[error("cannot connect to tokend at {endpoint}: {source}")]
    Transport {
        /// The endpoint that was dialled.
        endpoint: String,
        /// The underlying transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The endpoint is not a valid URI.
    #[error("invalid tokend endpoint {endpoint:?}: {source}")]
    InvalidUri {
        /// The endpoint as given.
        endpoint: String,
        /// Why it is not a URI.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The bearer token could not be read or cannot be sent in a header.
    #[error("cannot use the bearer token from {origin}: {source}")]
    Credentials {
        /// Where the token came from: a file's path, or "the bearer token given".
        origin: String,
        /// The underlying I/O error (`InvalidData` for an empty token or one a header cannot hold).
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The gRPC code of this error: the server's for [`Error::Status`]; otherwise the code tonic
    /// itself uses for such a failure (`Unavailable` for transport, `InvalidArgument` for a bad
    /// URI, `Unauthenticated` for unusable credentials).
    pub fn code(&self) -> tonic::Code {
        match self {
            Error::Status { code, .. } => *code,
            Error::Transport { .. } => tonic::Code::Unavailable,
            Error::InvalidUri { .. } => tonic::Code::InvalidArgument,
            Error::Credentials { .. } => tonic::Code::Unauthenticated,
        }
    }

    /// The server's message for [`Error::Status`], or this error's own description otherwise.
    pub fn message(&self) -> String {
        match self {
            Error::Status { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The server's stable reason (`ErrorInfo.reason` in domain `tokend.io`), e.g.
    /// `"DURATION_OVER_MAXIMUM"`: what a program should branch on. The reasons are listed in
    /// `proto/tokend/v1/errors.proto` (and as [`v1::ErrorReason`](crate::v1::ErrorReason)).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Status { details, .. } => details
                .error_info()
                .filter(|info| info.domain == DOMAIN)
                .map(|info| info.reason.as_str()),
            _ => None,
        }
    }

    /// The reason as the generated enum; None when absent or newer than this client.
    pub fn error_reason(&self) -> Option<crate::v1::ErrorReason> {
        self.reason()
            .and_then(crate::v1::ErrorReason::from_str_name)
    }

    /// A fact from `ErrorInfo.metadata`, e.g. `"maximum_seconds"` with
    /// `DURATION_OVER_MAXIMUM`, or `"fields"` with `INVALID_FIELDS`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        match self {
            Error::Status { details, .. } => details
                .error_info()
                .and_then(|info| info.metadata.get(key))
                .map(String::as_str),
            _ => None,
        }
    }

    /// Every bad field of an `INVALID_ARGUMENT` (`BadRequest.field_violations`), each with its
    /// field, reason and description; empty otherwise.
    pub fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Error::Status { details, .. } => details
                .bad_request()
                .map(|b| b.field_violations.as_slice())
                .unwrap_or_default(),
            _ => &[],
        }
    }

    /// How long to wait before retrying, when the server says a retry may succeed
    /// (`RetryInfo`, sent with `UNAVAILABLE` when the Kubernetes API is unreachable).
    pub fn retry_delay(&self) -> Option<std::time::Duration> {
        match self {
            Error::Status { details, .. } => details.retry_info().and_then(|r| r.retry_delay),
            _ => None,
        }
    }

    /// Builds the error for an unreadable or unusable token, naming where it came from.
    pub(crate) fn credentials(origin: impl Into<String>, source: std::io::Error) -> Self {
        Error::Credentials {
            origin: origin.into(),
            source,
        }
    }

    /// Path-flavoured [`Error::credentials`].
    pub(crate) fn token_file(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::credentials(path.display().to_string(), source)
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Status {
            code: status.code(),
            message: status.message().to_owned(),
            details: Box::new(status.get_error_details()),
        }
    }
}

/// The result type of this crate's calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_code_and_message() {
        let error = Error::from(tonic::Status::not_found("serviceaccount ns/sa not found"));
        assert_eq!(error.code(), tonic::Code::NotFound);
        assert_eq!(error.message(), "serviceaccount ns/sa not found");
        assert!(matches!(
            error,
            Error::Status {
                code: tonic::Code::NotFound,
                ..
            }
        ));
    }

    #[test]
    fn local_errors_map_to_codes() {
        let error = Error::token_file(
            std::path::Path::new("/nope"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(error.code(), tonic::Code::Unauthenticated);
        assert!(error.to_string().contains("/nope"));
    }
}
