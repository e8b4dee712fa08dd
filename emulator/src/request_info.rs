//! Parsing a request path and method into Kubernetes request attributes (resource, namespace, name, verb).

/// What a request addresses, as kube-apiserver's RequestInfoFactory works it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether the path addresses a resource (else a non-resource path such as `/api` or `/version`).
    pub resource_request: bool,
    /// The path.
    pub path: String,
    /// The verb.
    pub verb: String,
    /// API group ("" for the core group).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace, empty when none.
    pub namespace: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Object name.
    pub name: String,
}

/// Subresources of namespaces that are not resources in their own right.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Works out the request attributes; `watch` is the `watch` query flag.
pub fn parse(method: &http::Method, path: &str, watch: bool) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.as_str().to_ascii_lowercase(),
        ..RequestInfo::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => {
            info.api_version = version.to_string();
            rest
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            info.api_group = group.to_string();
            info.api_version = version.to_string();
            rest
        }
        _ => return info,
    };
    info.resource_request = true;
    let mut current: &[&str] = rest;
    if current[0] == "namespaces" && current.len() > 1 {
        info.namespace = current[1].to_string();
        if current.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&current[2]) {
            current = &current[2..];
        }
    }
    info.resource = current[0].to_string();
    if let Some(name) = current.get(1) {
        info.name = name.to_string();
    }
    if let Some(sub) = current.get(2) {
        info.subresource = sub.to_string();
    }
    info.verb = match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if info.name.is_empty() => "deletecollection",
        http::Method::DELETE => "delete",
        http::Method::GET | http::Method::HEAD if watch => "watch",
        http::Method::GET | http::Method::HEAD if info.name.is_empty() => "list",
        http::Method::GET | http::Method::HEAD => "get",
        _ => return info,
    }
    .to_string();
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn namespaced_objects_and_subresources() {
        let i = parse(
            &Method::POST,
            "/api/v1/namespaces/ns/serviceaccounts/sa/token",
            false,
        );
        assert!(i.resource_request);
        assert_eq!(
            (
                i.verb.as_str(),
                i.namespace.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str()
            ),
            ("create", "ns", "serviceaccounts", "sa", "token")
        );
        let i = parse(
            &Method::GET,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles",
            false,
        );
        assert_eq!(
            (i.verb.as_str(), i.api_group.as_str(), i.resource.as_str()),
            ("list", "rbac.authorization.k8s.io", "roles")
        );
    }

    #[test]
    fn namespaces_themselves() {
        let i = parse(&Method::GET, "/api/v1/namespaces/ns", false);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "ns", "ns")
        );
        let i = parse(&Method::GET, "/api/v1/namespaces", false);
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str(), i.namespace.as_str()),
            ("list", "namespaces", "")
        );
        let i = parse(&Method::DELETE, "/api/v1/namespaces/ns", false);
        assert_eq!(i.verb, "delete");
    }

    #[test]
    fn discovery_paths_are_not_resources() {
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/rbac.authorization.k8s.io/v1",
            "/version",
            "/",
        ] {
            let i = parse(&Method::GET, p, false);
            assert!(!i.resource_request, "{p}");
            assert_eq!(i.verb, "get");
        }
    }
}
