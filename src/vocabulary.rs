//! Every label, annotation, name pattern and limit tokend writes to or reads from Kubernetes.

/// Label on everything tokend creates, so its objects can be listed and told apart.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on tokend's objects.
pub const MANAGED_BY_VALUE: &str = "tokend";
/// Label holding the ServiceAccount a token record belongs to, for per-account listing.
pub const SERVICE_ACCOUNT_LABEL: &str = "tokend.io/service-account";
/// Prefix reserved for tokend's own labels and annotations; callers' labels may not use it.
pub const RESERVED_PREFIX: &str = "tokend.io/";

/// Annotation: who asked for the token.
pub const ISSUED_BY_ANNOTATION: &str = "tokend.io/issued-by";
/// Annotation: when the token expires (RFC 3339), as the API server set it.
pub const EXPIRATION_ANNOTATION: &str = "tokend.io/expiration-time";
/// Annotation: the token's audiences, a JSON array (empty: the API server's own).
pub const AUDIENCES_ANNOTATION: &str = "tokend.io/audiences";
/// Annotation: uid of the ServiceAccount the token was issued for; a recreated account orphans it.
pub const SERVICE_ACCOUNT_UID_ANNOTATION: &str = "tokend.io/service-account-uid";
/// Annotation: the ClusterRole bound for this token, if any.
pub const CLUSTER_ROLE_ANNOTATION: &str = "tokend.io/cluster-role";
/// Annotation: `namespace` or `cluster`, the scope of that binding.
pub const BINDING_SCOPE_ANNOTATION: &str = "tokend.io/binding-scope";
/// Annotation: the record's seal (HMAC over its facts and its Secret's uid), written once the
/// token is issued; a record without a valid one is not shown as tokend's.
pub const SEAL_ANNOTATION: &str = "tokend.io/seal";
/// Annotation: the token_id of the token this one replaced (RenewToken).
pub const REPLACES_ANNOTATION: &str = "tokend.io/replaces";
/// Annotation on a record: the uid of the object (a ServiceAccountToken) the token was issued
/// for, sealed with the record; only that object's controller revokes it.
pub const OWNER_UID_ANNOTATION: &str = "tokend.io/owner-uid";
/// Label on a record written before its token was issued and not yet confirmed (sealed); one
/// left pending (its issue failed and the undo could not run) is swept after `--pending-grace`.
pub const PENDING_LABEL: &str = "tokend.io/pending";
/// Name of the Secret in tokend's own namespace holding the key records are sealed with.
pub const RECORD_KEY_SECRET: &str = "tokend-record-key";
/// Key of the record key in that Secret's data.
pub const RECORD_KEY_DATA: &str = "key";

/// Secret type of a token record: never mistaken for an ordinary Opaque Secret.
pub const RECORD_SECRET_TYPE: &str = "tokend.io/token-record";
/// Prefix of a record Secret's name; the rest is the token's random id.
pub const RECORD_SECRET_PREFIX: &str = "tokend-";
/// Prefix of the bindings tokend creates (`tokend:SA:ROLE`, `tokend:NS:SA:ROLE`).
pub const BINDING_PREFIX: &str = "tokend:";

/// The API server refuses shorter tokens (TokenRequest validation).
pub const MIN_TOKEN_SECONDS: u64 = 600;
/// Most audiences one token may carry.
pub const MAX_AUDIENCES: usize = 32;
/// Longest audience string accepted.
pub const MAX_AUDIENCE_LEN: usize = 256;
/// Most caller labels on one record.
pub const MAX_LABELS: usize = 32;

/// ConfigMap the API server publishes its CA in, in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// Key of the CA bundle in [`ROOT_CA_CONFIGMAP`].
pub const ROOT_CA_KEY: &str = "ca.crt";

/// ClusterRoles tokend may bind unless `--allowed-cluster-roles` says otherwise: Kubernetes'
/// user-facing roles and tokend's own presets (deploy/base/preset-roles.yaml) that deploy/'s RBAC
/// lets tokend bind.
pub const DEFAULT_ALLOWED_CLUSTER_ROLES: &str = "view,edit,admin,tokend-view,tokend-admin";

/// Namespace of bootstrap token Secrets (the API server's bootstrap authenticator reads only it).
pub const BOOTSTRAP_TOKEN_NAMESPACE: &str = "kube-system";
/// Type of a bootstrap token Secret.
pub const BOOTSTRAP_TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Prefix of a bootstrap token Secret's name; the rest is the token id.
pub const BOOTSTRAP_TOKEN_SECRET_PREFIX: &str = "bootstrap-token-";
/// The group every bootstrap token authenticates in.
pub const BOOTSTRAP_DEFAULT_GROUP: &str = "system:bootstrappers";
/// Prefix every extra group of a bootstrap token must have.
pub const BOOTSTRAP_GROUP_PREFIX: &str = "system:bootstrappers:";
/// Extra group of a token whose request names none, as kubeadm's default.
pub const BOOTSTRAP_DEFAULT_EXTRA_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// Cluster, user and context names of a bootstrap kubeconfig, as the kubeconfig guide writes it.
pub const BOOTSTRAP_KUBECONFIG_CLUSTER: &str = "kubernetes";
/// The user entry of a bootstrap kubeconfig.
pub const BOOTSTRAP_KUBECONFIG_USER: &str = "kubelet-bootstrap";
/// The context of a bootstrap kubeconfig.
pub const BOOTSTRAP_KUBECONFIG_CONTEXT: &str = "default";
/// The signer of client certificates the API server accepts (`--client-ca-file`).
pub const CLIENT_CERT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Prefix of the CertificateSigningRequests tokend creates (deleted once the certificate is read).
pub const CSR_NAME_PREFIX: &str = "tokend-";
/// The group no client certificate from tokend may name (the API server's signer admission
/// refuses it too).
pub const MASTERS_GROUP: &str = "system:masters";
/// The CSR API refuses shorter lifetimes (expirationSeconds validation).
pub const MIN_CERTIFICATE_SECONDS: u64 = 600;
