//! The resource types the emulator serves: names, kinds, scopes and verbs, shared by routing and discovery.

/// How the emulator handles requests for a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Stored objects with the usual REST verbs.
    Stored,
    /// A create-only review endpoint (TokenReview, SubjectAccessReview, ...).
    Review,
    /// A subresource handled by its own endpoint (serviceaccounts/token).
    Subresource,
    /// A custom resource served for a CustomResourceDefinition (see `custom_resources`).
    Custom {
        /// Whether the `status` subresource is enabled.
        status_subresource: bool,
    },
}

/// One resource type of the Kubernetes API.
#[derive(Debug, Clone, Copy)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Plural resource name as in URLs (`serviceaccounts`, `serviceaccounts/token`).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind of the objects.
    pub kind: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names kubectl accepts.
    pub short_names: &'static [&'static str],
    /// Verbs advertised by discovery.
    pub verbs: &'static [&'static str],
    /// How requests for it are handled.
    pub handling: Handling,
}

impl ResourceType {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group and plural name, for Status messages.
    pub fn group_resource(&self) -> crate::status::GroupResource<'static> {
        crate::status::GroupResource {
            group: self.group,
            resource: self.plural,
        }
    }
}

const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NS_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const CREATE: &[&str] = &["create"];

const fn stored(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    verbs: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        verbs,
        handling: Handling::Stored,
    }
}

const fn review(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceType {
    ResourceType {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names: &[],
        verbs: CREATE,
        handling: Handling::Review,
    }
}

/// Every resource type served, in discovery order.
pub const RESOURCES: &[ResourceType] = &[
    stored(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        CRUD,
    ),
    stored(
        "",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        NS_VERBS,
    ),
    stored("", "secrets", "secret", "Secret", true, &[], CRUD),
    stored(
        "",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        CRUD,
    ),
    ResourceType {
        group: "",
        version: "v1",
        plural: "serviceaccounts/token",
        singular: "",
        kind: "TokenRequest",
        namespaced: true,
        short_names: &[],
        verbs: CREATE,
        handling: Handling::Subresource,
    },
    review(
        "authentication.k8s.io",
        "tokenreviews",
        "tokenreview",
        "TokenReview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        "LocalSubjectAccessReview",
        true,
    ),
    review(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
    ),
    stored(
        "certificates.k8s.io",
        "certificatesigningrequests",
        "certificatesigningrequest",
        "CertificateSigningRequest",
        false,
        &["csr"],
        CRUD,
    ),
    ResourceType {
        group: "certificates.k8s.io",
        version: "v1",
        plural: "certificatesigningrequests/approval",
        singular: "",
        kind: "CertificateSigningRequest",
        namespaced: false,
        short_names: &[],
        verbs: &["get", "patch", "update"],
        handling: Handling::Subresource,
    },
    stored(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        "MutatingWebhookConfiguration",
        false,
        &[],
        CRUD,
    ),
    stored(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        "ValidatingWebhookConfiguration",
        false,
        &[],
        CRUD,
    ),
    stored(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        CRUD,
    ),
    stored(
        "coordination.k8s.io",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        CRUD,
    ),
    stored(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        CRUD,
    ),
    stored(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        CRUD,
    ),
    stored(
        "rbac.authorization.k8s.io",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        CRUD,
    ),
    stored(
        "rbac.authorization.k8s.io",
        "roles",
        "role",
        "Role",
        true,
        &[],
        CRUD,
    ),
];

/// The API groups served besides the core group, with their one version.
pub const GROUPS: &[(&str, &str)] = &[
    ("admissionregistration.k8s.io", "v1"),
    ("apiextensions.k8s.io", "v1"),
    ("authentication.k8s.io", "v1"),
    ("authorization.k8s.io", "v1"),
    ("certificates.k8s.io", "v1"),
    ("coordination.k8s.io", "v1"),
    ("rbac.authorization.k8s.io", "v1"),
];

/// Looks up a resource type by group, version and plural name (subresources as `a/b`).
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks up a stored resource type by its plural name in the core or a named group.
pub fn stored_type(group: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural && r.handling == Handling::Stored)
}

/// The resource types served under one group and version.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceType> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}
