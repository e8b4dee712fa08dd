//! Who is calling: the identity the transport proved (TokenReview, a verified client
//! certificate), shared by the server layer that establishes it and the service that acts on it.

/// Who is calling, as authenticated by the transport; empty when authentication is off.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Kubernetes username of the caller.
    pub username: String,
    /// The caller's uid, as the authenticator gave it.
    pub uid: String,
    /// The caller's groups.
    pub groups: Vec<String>,
    /// The authenticator's extra attributes (scopes, the pod a token is bound to...), passed on
    /// to SubjectAccessReview as they came: scoped tokens and webhook authorizers decide on them.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}
