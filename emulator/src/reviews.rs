//! The review endpoints: TokenReview, SubjectAccessReview, SelfSubjectAccessReview, LocalSubjectAccessReview.

use serde_json::{Map, Value, json};

use crate::authn::{UserInfo, authenticate_token};
use crate::rbac::{Attributes, authorize};
use crate::state::Shared;
use crate::status::{ApiError, FieldError};

fn parse_review(kind: &str, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {e}"
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: the body is not a JSON object"
        )));
    }
    Ok(v)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn review_metadata(req: &Value) -> Value {
    let mut meta = req
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    meta["creationTimestamp"] = Value::Null;
    meta
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: 201 with the review's status, never an HTTP error for a bad token.
pub fn token_review(shared: &Shared, body: &[u8]) -> Result<Value, ApiError> {
    let req = parse_review("TokenReview", body)?;
    let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let requested = strings(spec.get("audiences"));
    let wanted = if requested.is_empty() {
        vec![shared.signer.issuer().to_string()]
    } else {
        requested
    };
    let status = match authenticate_token(shared, token, &wanted) {
        Ok((user, audiences)) => {
            let mut u = Map::new();
            u.insert("username".into(), user.name.into());
            if !user.uid.is_empty() {
                u.insert("uid".into(), user.uid.into());
            }
            u.insert("groups".into(), json!(user.groups));
            json!({"authenticated": true, "user": u, "audiences": audiences})
        }
        Err(rejection) => json!({"user": {}, "error": rejection.review_error()}),
    };
    Ok(json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": review_metadata(&req),
        "spec": spec,
        "status": status,
    }))
}

/// Which access review is being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessReview {
    /// SubjectAccessReview: any user, any namespace.
    Subject,
    /// LocalSubjectAccessReview: any user, the URL's namespace.
    Local,
    /// SelfSubjectAccessReview: the caller.
    SelfSubject,
}

impl AccessReview {
    fn kind(self) -> &'static str {
        match self {
            AccessReview::Subject => "SubjectAccessReview",
            AccessReview::Local => "LocalSubjectAccessReview",
            AccessReview::SelfSubject => "SelfSubjectAccessReview",
        }
    }
}

fn attributes_from_spec(spec: &Value, user: UserInfo) -> Attributes {
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        Attributes {
            user: Some(user),
            verb: field(ra, "verb"),
            resource_request: true,
            namespace: field(ra, "namespace"),
            api_group: field(ra, "group"),
            resource: field(ra, "resource"),
            subresource: field(ra, "subresource"),
            name: field(ra, "name"),
            path: String::new(),
        }
    } else {
        let nra = spec
            .get("nonResourceAttributes")
            .cloned()
            .unwrap_or_default();
        Attributes {
            user: Some(user),
            verb: field(&nra, "verb"),
            path: field(&nra, "path"),
            ..Attributes::default()
        }
    }
}

/// Answers an access review with the stored RBAC policy; `caller` is who asked, `url_ns` the URL's namespace.
pub fn access_review(
    shared: &Shared,
    which: AccessReview,
    caller: &UserInfo,
    url_ns: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let kind = which.kind();
    let req = parse_review(kind, body)?;
    let mut spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    if !spec.is_object() {
        spec = json!({});
    }
    let has_resource = spec.get("resourceAttributes").is_some_and(Value::is_object);
    let has_non_resource = spec
        .get("nonResourceAttributes")
        .is_some_and(Value::is_object);
    let mut errs = Vec::new();
    if has_resource == has_non_resource {
        errs.push(FieldError::invalid(
            "spec.resourceAttributes",
            "",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let user = match which {
        AccessReview::SelfSubject => {
            spec["user"] = json!(caller.name);
            if !caller.uid.is_empty() {
                spec["uid"] = json!(caller.uid);
            }
            spec["groups"] = json!(caller.groups);
            caller.clone()
        }
        AccessReview::Subject | AccessReview::Local => {
            let name = spec
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let groups = strings(spec.get("groups"));
            if name.is_empty() && groups.is_empty() {
                errs.push(FieldError::invalid(
                    "spec.user",
                    "",
                    "at least one of user or group must be specified",
                ));
            }
            UserInfo {
                name,
                uid: spec
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                groups,
            }
        }
    };
    if which == AccessReview::Local && has_resource {
        let ns = spec
            .pointer("/resourceAttributes/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if ns.is_empty() {
            spec["resourceAttributes"]["namespace"] = json!(url_ns);
        } else if ns != url_ns {
            errs.push(FieldError::invalid(
                "spec.resourceAttributes.namespace",
                ns,
                "must match metadata.namespace",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("authorization.k8s.io", kind, "", &errs));
    }
    let attrs = attributes_from_spec(&spec, user);
    let decision = authorize(&shared.store(), &attrs);
    let mut status = Map::new();
    status.insert("allowed".into(), decision.allowed.into());
    if !decision.reason.is_empty() {
        status.insert("reason".into(), decision.reason.into());
    }
    let mut metadata = review_metadata(&req);
    if which == AccessReview::Local {
        metadata["namespace"] = json!(url_ns);
    }
    Ok(json!({
        "kind": kind,
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": metadata,
        "spec": spec,
        "status": status,
    }))
}
