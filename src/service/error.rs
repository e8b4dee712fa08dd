//! The service layer's error: what went wrong, in terms a caller can act on, each with a stable
//! [`Reason`]; bad requests carry every field they got wrong.

use std::fmt;
use std::time::Duration;

use super::reason::Reason;
use crate::cluster;

/// How long a caller should wait before retrying when the Kubernetes API is unavailable: long
/// enough for a restarting API server or a leader election, short enough not to stall callers.
pub const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Why a request failed; the gRPC layer maps each variant to one status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Request fields break rules: every one of them, not only the first.
    #[error("{0}")]
    InvalidArgument(Violations),
    /// A namespace, ServiceAccount, role or token does not exist.
    #[error("{0}")]
    NotFound(Failure),
    /// Something tokend would create exists and is not what it would create.
    #[error("{0}")]
    AlreadyExists(Failure),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(Failure),
    /// The caller is not who it says, or said nothing.
    #[error("{0}")]
    Unauthenticated(Failure),
    /// tokend's policy refuses the request.
    #[error("{0}")]
    FailedPrecondition(Failure),
    /// The Kubernetes API cannot be reached or is failing.
    #[error("{0}")]
    Unavailable(Failure),
    /// A fault in tokend or an answer it cannot read.
    #[error("{0}")]
    Internal(Failure),
}

/// A failure other than bad fields: its reason, a message for people, and facts for programs.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The stable reason.
    pub reason: Reason,
    /// What happened, for people.
    pub message: String,
    /// Facts a program may use (e.g. `maximum_seconds`), as ErrorInfo metadata.
    pub metadata: Vec<(&'static str, String)>,
    /// When set, trying again after this long may succeed.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure for `reason` with `message`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            metadata: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds a fact for programs.
    #[must_use]
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.metadata.push((key, value.into()));
        self
    }

    /// Says a retry after `delay` may succeed.
    #[must_use]
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One request field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field as named in the proto (`labels["team"]`, `audiences[2]` for entries).
    pub field: String,
    /// The rule's stable reason.
    pub reason: Reason,
    /// The rule it broke, for people.
    pub description: String,
}

/// Every field of a request that breaks a rule, in the order the fields were checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    /// Records that `field` breaks a rule.
    pub fn add(
        &mut self,
        field: impl Into<String>,
        reason: Reason,
        description: impl Into<String>,
    ) {
        self.0.push(Violation {
            field: field.into(),
            reason,
            description: description.into(),
        });
    }

    /// The value of a check, or None after recording its failure against `field`.
    pub fn check<T, E: Into<String>>(
        &mut self,
        field: impl Into<String>,
        reason: Reason,
        result: std::result::Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(rule) => {
                self.add(field, reason, rule);
                None
            }
        }
    }

    /// Merges in the violations of another check (such as one that returns an [`Error`]).
    pub fn absorb(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        match result {
            Err(Error::InvalidArgument(more)) => {
                self.0.extend(more.0);
                Ok(())
            }
            other => other,
        }
    }

    /// Whether no field broke a rule.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when no field broke a rule, else an [`Error::InvalidArgument`] with them all.
    pub fn into_result(self) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self))
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

impl Error {
    /// An [`Error::InvalidArgument`] for one `field`.
    pub fn invalid(field: impl Into<String>, reason: Reason, rule: impl Into<String>) -> Self {
        let mut violations = Violations::default();
        violations.add(field, reason, rule);
        Error::InvalidArgument(violations)
    }

    /// An [`Error::Internal`]: a fault in tokend or an answer it cannot read.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(Failure::new(Reason::Internal, message))
    }

    /// An [`Error::NotFound`] for `reason`.
    pub fn not_found(reason: Reason, message: impl Into<String>) -> Self {
        Error::NotFound(Failure::new(reason, message))
    }

    /// The stable reason of this error.
    pub fn reason(&self) -> Reason {
        match self {
            Error::InvalidArgument(_) => Reason::InvalidFields,
            Error::NotFound(f)
            | Error::AlreadyExists(f)
            | Error::PermissionDenied(f)
            | Error::Unauthenticated(f)
            | Error::FailedPrecondition(f)
            | Error::Unavailable(f)
            | Error::Internal(f) => f.reason,
        }
    }
}

impl From<cluster::Error> for Error {
    fn from(e: cluster::Error) -> Self {
        let transient = e.is_transient();
        match e {
            cluster::Error::Api {
                code,
                reason,
                message,
            } => match (code, reason.as_str()) {
                (404, _) => Error::not_found(Reason::KubernetesObjectNotFound, message),
                (409, "AlreadyExists") => {
                    Error::AlreadyExists(Failure::new(Reason::KubernetesObjectExists, message))
                }
                (409, _) => {
                    Error::FailedPrecondition(Failure::new(Reason::KubernetesConflict, message))
                }
                (400 | 422, _) => Error::invalid("request", Reason::KubernetesRejected, message),
                (403, _) => Error::PermissionDenied(Failure::new(
                    Reason::TokendForbidden,
                    format!("the Kubernetes API refused tokend's own request: {message}"),
                )),
                (401, _) => Error::Unavailable(Failure::new(
                    Reason::KubernetesCredentialsRejected,
                    format!("the Kubernetes API does not accept tokend's credentials: {message}"),
                )),
                _ if transient => Error::Unavailable(
                    Failure::new(
                        Reason::KubernetesUnavailable,
                        format!("Kubernetes API error {code}: {message}"),
                    )
                    .with("http_status", code.to_string())
                    .retry_after(RETRY_DELAY),
                ),
                _ => Error::internal(format!("Kubernetes API error {code} {reason}: {message}")),
            },
            cluster::Error::Unreachable(msg) => Error::Unavailable(
                Failure::new(
                    Reason::KubernetesUnavailable,
                    format!("Kubernetes API unreachable: {msg}"),
                )
                .retry_after(RETRY_DELAY),
            ),
            cluster::Error::Conflict(msg) => {
                Error::AlreadyExists(Failure::new(Reason::KubernetesObjectExists, msg))
            }
            cluster::Error::Unexpected(msg) => Error::internal(msg),
        }
    }
}

impl From<super::KeyError> for Error {
    fn from(e: super::KeyError) -> Self {
        match e {
            super::KeyError::Cluster(e) => match Error::from(e) {
                unavailable @ Error::Unavailable(_) => unavailable,
                other => {
                    Error::internal(format!("the record key cannot be read or created: {other}"))
                }
            },
            file @ super::KeyError::File { .. } => Error::internal(file.to_string()),
            missing @ super::KeyError::NamespaceMissing { .. } => Error::FailedPrecondition(
                Failure::new(Reason::TokendNamespaceNotFound, missing.to_string()),
            ),
        }
    }
}
