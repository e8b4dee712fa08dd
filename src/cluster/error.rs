//! The cluster layer's error: what the API server said, or that it could not be reached.

/// A failed call to the Kubernetes API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with a Status (404, 409, 422, 403, ...).
    #[error("{message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// Kubernetes reason, e.g. `NotFound`, `AlreadyExists`, `Invalid`.
        reason: String,
        /// The API server's message.
        message: String,
    },
    /// The API server could not be reached or did not answer in time.
    #[error("Kubernetes API unreachable: {0}")]
    Unreachable(String),
    /// An object exists that tokend would have created, but it is not what tokend would create.
    #[error("{0}")]
    Conflict(String),
    /// The API server answered something tokend cannot read.
    #[error("unexpected answer from the Kubernetes API: {0}")]
    Unexpected(String),
}

impl Error {
    /// Whether trying again later may succeed: the API was unreachable, overloaded or failing.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unreachable(_)
                | Error::Api {
                    code: 429 | 500..=599,
                    ..
                }
        )
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => Error::Api {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            kube::Error::HyperError(e) => Error::Unreachable(e.to_string()),
            kube::Error::Service(e) => Error::Unreachable(e.to_string()),
            kube::Error::HttpError(e) => Error::Unreachable(e.to_string()),
            other => Error::Unexpected(other.to_string()),
        }
    }
}
