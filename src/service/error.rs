//! The service layer's error: what went wrong, in terms a caller can act on.

use crate::cluster;

/// Why a request failed; the gRPC layer maps each variant to one status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field breaks a rule.
    #[error("{field}: {rule}")]
    InvalidArgument {
        /// The request field, as named in the proto.
        field: String,
        /// The rule it broke.
        rule: String,
    },
    /// A namespace, ServiceAccount, role or token does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Something tokend would create exists and is not what it would create.
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller is not who it says, or said nothing.
    #[error("{0}")]
    Unauthenticated(String),
    /// tokend's policy refuses the request.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The Kubernetes API cannot be reached or is failing.
    #[error("{0}")]
    Unavailable(String),
    /// A fault in tokend or an answer it cannot read.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// An [`Error::InvalidArgument`] for `field`.
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl From<cluster::Error> for Error {
    fn from(e: cluster::Error) -> Self {
        match e {
            cluster::Error::Api {
                code,
                reason,
                message,
            } => match (code, reason.as_str()) {
                (404, _) => Error::NotFound(message),
                (409, "AlreadyExists") => Error::AlreadyExists(message),
                (409, _) => Error::FailedPrecondition(message),
                (400 | 422, _) => Error::invalid("request", message),
                (403, _) => Error::PermissionDenied(format!(
                    "the Kubernetes API refused tokend's own request: {message}"
                )),
                (401, _) => Error::Unavailable(format!(
                    "the Kubernetes API does not accept tokend's credentials: {message}"
                )),
                (429, _) | (500..=599, _) => {
                    Error::Unavailable(format!("Kubernetes API error {code}: {message}"))
                }
                _ => Error::Internal(format!("Kubernetes API error {code} {reason}: {message}")),
            },
            cluster::Error::Unreachable(msg) => {
                Error::Unavailable(format!("Kubernetes API unreachable: {msg}"))
            }
            cluster::Error::Conflict(msg) => Error::AlreadyExists(msg),
            cluster::Error::Unexpected(msg) => Error::Internal(msg),
        }
    }
}

impl From<super::KeyError> for Error {
    fn from(e: super::KeyError) -> Self {
        match e {
            super::KeyError::Cluster(e) => match Error::from(e) {
                unavailable @ Error::Unavailable(_) => unavailable,
                other => {
                    Error::Internal(format!("the record key cannot be read or created: {other}"))
                }
            },
            file @ super::KeyError::File { .. } => Error::Internal(file.to_string()),
        }
    }
}
