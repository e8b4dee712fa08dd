//! The stable reasons a request fails, as callers in every language branch on them
//! (`google.rpc.ErrorInfo.reason` and `BadRequest.FieldViolation.reason`). Each is documented in
//! proto/tokend/v1/errors.proto (`enum ErrorReason`) and the README; a test keeps the three alike.

/// Why a request failed, in one UPPER_SNAKE word callers can compare against. Never renamed:
/// callers' code depends on the strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// One or more request fields break a rule; the BadRequest lists each with its own reason.
    InvalidFields,
    /// A required field is empty (or a required choice is unset).
    FieldRequired,
    /// Two fields were set where only one of them may be.
    FieldsMutuallyExclusive,
    /// A field may only be set together with another that is empty.
    FieldNeedsAnother,
    /// A name (namespace, ServiceAccount, ClusterRole, context, or a credential's user or group) is
    /// malformed.
    NameInvalid,
    /// A duration breaks the grammar, or a google.protobuf.Duration is negative or fractional.
    DurationInvalid,
    /// A duration is shorter than the API server's minimum token or certificate lifetime.
    DurationUnderMinimum,
    /// A duration is longer than this server allows (--max-duration, --bootstrap-token-max-duration
    /// or --client-cert-max-duration).
    DurationOverMaximum,
    /// An audience is empty, too long, not printable, or listed twice.
    AudienceInvalid,
    /// A label key or value is malformed or reserved for tokend.
    LabelInvalid,
    /// A free-text field (a bootstrap token's description, an exec kubeconfig's command or
    /// extra_args) is too long or holds control characters.
    TextInvalid,
    /// A list or map field holds more entries than allowed.
    TooManyValues,
    /// An enum field holds a number this server does not know (or UNSPECIFIED where not allowed),
    /// or a list of fixed choices (a bootstrap token's usages) a value it does not know.
    ValueUnknown,
    /// A numeric field is out of range (a negative page_size).
    ValueOutOfRange,
    /// A label_selector is malformed or selects tokend's own labels.
    LabelSelectorInvalid,
    /// A page_token was not returned by this server for this query, or has expired.
    PageTokenInvalid,
    /// A token_id is malformed.
    TokenIdInvalid,
    /// A token is not a ServiceAccount token (JWT), or is not bound to a tokend record.
    TokenMalformed,
    /// The API server does not accept the token (revoked, expired or foreign).
    TokenNotAuthenticated,
    /// The kubeconfig server is not an https:// URL with a host, or an exec kubeconfig's
    /// tokend_address not an http:// or https:// one.
    ServerUrlInvalid,
    /// A csr is not one PEM CERTIFICATE REQUEST block holding a PKCS#10 request, or is too large.
    CsrInvalid,
    /// A csr's subject is not exactly one CN, the request's user, and one O per group, each a
    /// UTF8String or PrintableString alone in its RDN (nothing Go's parser could read otherwise).
    CsrIdentityMismatch,
    /// The Kubernetes API refused an object tokend made from the request (HTTP 400/422).
    KubernetesRejected,
    /// The namespace is outside this server's --allowed-namespaces.
    NamespaceNotAllowed,
    /// The ClusterRole is outside this server's --allowed-cluster-roles.
    ClusterRoleNotAllowed,
    /// A client certificate would name a system: user or group outside this server's
    /// --client-cert-allowed-system-identities.
    SystemIdentityNotAllowed,
    /// The operator has not switched this kind of credential on (--enable-bootstrap-tokens,
    /// --enable-client-certificates).
    FeatureDisabled,
    /// A bootstrap token's extra group is outside this server's --bootstrap-token-allowed-groups.
    GroupNotAllowed,
    /// The namespace does not exist.
    NamespaceNotFound,
    /// The ServiceAccount does not exist (and create_service_account was not set).
    ServiceAccountNotFound,
    /// The ClusterRole does not exist.
    ClusterRoleNotFound,
    /// No record of this token: never issued, already revoked, or swept (a bootstrap token: no
    /// Secret of that id).
    TokenNotFound,
    /// Another Kubernetes object the request needs does not exist.
    KubernetesObjectNotFound,
    /// An object tokend would create exists and is not tokend's.
    KubernetesObjectExists,
    /// The Kubernetes API reported a conflicting change; the request may be repeated.
    KubernetesConflict,
    /// The cluster's certificate signer refused or failed the CertificateSigningRequest tokend
    /// made.
    SignerRefused,
    /// The caller lacks the Kubernetes permission the request amounts to (a SubjectAccessReview
    /// said no).
    PermissionDenied,
    /// The Kubernetes API refused tokend's own request: tokend's RBAC is missing something.
    TokendForbidden,
    /// The caller presented no credential, or one that names nobody.
    Unauthenticated,
    /// The caller's credential claims an identity nobody may claim through tokend, or a client
    /// certificate would name system:masters.
    IdentityForbidden,
    /// The caller's address failed authentication too often lately.
    CallerThrottled,
    /// The Kubernetes API is unreachable, overloaded or failing; retry after RetryInfo's delay.
    KubernetesUnavailable,
    /// The Kubernetes API does not accept tokend's own credentials.
    KubernetesCredentialsRejected,
    /// The cluster's certificate signer did not sign in time (is kube-controller-manager signing?).
    SignerTimedOut,
    /// tokend's own namespace (--lease-namespace), where it keeps its record key, does not exist.
    TokendNamespaceNotFound,
    /// A fault in tokend, or an answer from Kubernetes it cannot read.
    Internal,
}

impl Reason {
    /// Every reason, for the tests that keep the proto and README in step.
    pub const ALL: &[Reason] = &[
        Reason::InvalidFields,
        Reason::FieldRequired,
        Reason::FieldsMutuallyExclusive,
        Reason::FieldNeedsAnother,
        Reason::NameInvalid,
        Reason::DurationInvalid,
        Reason::DurationUnderMinimum,
        Reason::DurationOverMaximum,
        Reason::AudienceInvalid,
        Reason::LabelInvalid,
        Reason::TextInvalid,
        Reason::TooManyValues,
        Reason::ValueUnknown,
        Reason::ValueOutOfRange,
        Reason::LabelSelectorInvalid,
        Reason::PageTokenInvalid,
        Reason::TokenIdInvalid,
        Reason::TokenMalformed,
        Reason::TokenNotAuthenticated,
        Reason::ServerUrlInvalid,
        Reason::CsrInvalid,
        Reason::CsrIdentityMismatch,
        Reason::KubernetesRejected,
        Reason::NamespaceNotAllowed,
        Reason::ClusterRoleNotAllowed,
        Reason::SystemIdentityNotAllowed,
        Reason::FeatureDisabled,
        Reason::GroupNotAllowed,
        Reason::NamespaceNotFound,
        Reason::ServiceAccountNotFound,
        Reason::ClusterRoleNotFound,
        Reason::TokenNotFound,
        Reason::KubernetesObjectNotFound,
        Reason::KubernetesObjectExists,
        Reason::KubernetesConflict,
        Reason::SignerRefused,
        Reason::PermissionDenied,
        Reason::TokendForbidden,
        Reason::Unauthenticated,
        Reason::IdentityForbidden,
        Reason::CallerThrottled,
        Reason::KubernetesUnavailable,
        Reason::KubernetesCredentialsRejected,
        Reason::SignerTimedOut,
        Reason::TokendNamespaceNotFound,
        Reason::Internal,
    ];

    /// The reason as callers see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidFields => "INVALID_FIELDS",
            Reason::FieldRequired => "FIELD_REQUIRED",
            Reason::FieldsMutuallyExclusive => "FIELDS_MUTUALLY_EXCLUSIVE",
            Reason::FieldNeedsAnother => "FIELD_NEEDS_ANOTHER",
            Reason::NameInvalid => "NAME_INVALID",
            Reason::DurationInvalid => "DURATION_INVALID",
            Reason::DurationUnderMinimum => "DURATION_UNDER_MINIMUM",
            Reason::DurationOverMaximum => "DURATION_OVER_MAXIMUM",
            Reason::AudienceInvalid => "AUDIENCE_INVALID",
            Reason::LabelInvalid => "LABEL_INVALID",
            Reason::TextInvalid => "TEXT_INVALID",
            Reason::TooManyValues => "TOO_MANY_VALUES",
            Reason::ValueUnknown => "VALUE_UNKNOWN",
            Reason::ValueOutOfRange => "VALUE_OUT_OF_RANGE",
            Reason::LabelSelectorInvalid => "LABEL_SELECTOR_INVALID",
            Reason::PageTokenInvalid => "PAGE_TOKEN_INVALID",
            Reason::TokenIdInvalid => "TOKEN_ID_INVALID",
            Reason::TokenMalformed => "TOKEN_MALFORMED",
            Reason::TokenNotAuthenticated => "TOKEN_NOT_AUTHENTICATED",
            Reason::ServerUrlInvalid => "SERVER_URL_INVALID",
            Reason::CsrInvalid => "CSR_INVALID",
            Reason::CsrIdentityMismatch => "CSR_IDENTITY_MISMATCH",
            Reason::KubernetesRejected => "KUBERNETES_REJECTED",
            Reason::NamespaceNotAllowed => "NAMESPACE_NOT_ALLOWED",
            Reason::ClusterRoleNotAllowed => "CLUSTER_ROLE_NOT_ALLOWED",
            Reason::SystemIdentityNotAllowed => "SYSTEM_IDENTITY_NOT_ALLOWED",
            Reason::FeatureDisabled => "FEATURE_DISABLED",
            Reason::GroupNotAllowed => "GROUP_NOT_ALLOWED",
            Reason::NamespaceNotFound => "NAMESPACE_NOT_FOUND",
            Reason::ServiceAccountNotFound => "SERVICE_ACCOUNT_NOT_FOUND",
            Reason::ClusterRoleNotFound => "CLUSTER_ROLE_NOT_FOUND",
            Reason::TokenNotFound => "TOKEN_NOT_FOUND",
            Reason::KubernetesObjectNotFound => "KUBERNETES_OBJECT_NOT_FOUND",
            Reason::KubernetesObjectExists => "KUBERNETES_OBJECT_EXISTS",
            Reason::KubernetesConflict => "KUBERNETES_CONFLICT",
            Reason::SignerRefused => "SIGNER_REFUSED",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::TokendForbidden => "TOKEND_FORBIDDEN",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::IdentityForbidden => "IDENTITY_FORBIDDEN",
            Reason::CallerThrottled => "CALLER_THROTTLED",
            Reason::KubernetesUnavailable => "KUBERNETES_UNAVAILABLE",
            Reason::KubernetesCredentialsRejected => "KUBERNETES_CREDENTIALS_REJECTED",
            Reason::SignerTimedOut => "SIGNER_TIMED_OUT",
            Reason::TokendNamespaceNotFound => "TOKEND_NAMESPACE_NOT_FOUND",
            Reason::Internal => "INTERNAL",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
