//! `metav1.Status` failure bodies with the reasons, codes and messages a real kube-apiserver sends.

use serde_json::{Map, Value, json};

/// A group and a plural resource name, as Kubernetes qualifies resources in messages.
#[derive(Debug, Clone, Copy)]
pub struct GroupResource<'a> {
    /// API group, empty for the core group.
    pub group: &'a str,
    /// Plural resource name (`serviceaccounts`) or, where the server does so, a kind.
    pub resource: &'a str,
}

impl GroupResource<'_> {
    /// `resource` for the core group, `resource.group` otherwise.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// One field error of a 422 Invalid answer.
#[derive(Debug, Clone)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// The field path, such as `metadata.name`.
    pub field: String,
    /// The body of the message, such as `Invalid value: "x": ...`.
    pub body: String,
}

impl FieldError {
    /// An `Invalid value` error for a string value.
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            body: format!("Invalid value: {}: {detail}", go_quote(value)),
        }
    }

    /// An `Invalid value` error for a numeric value.
    pub fn invalid_number(field: impl Into<String>, value: i64, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            body: format!("Invalid value: {value}: {detail}"),
        }
    }

    /// A `Forbidden` error.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            body: format!("Forbidden: {detail}"),
        }
    }

    /// A `Required value` error.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let body = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            body,
        }
    }

    fn message(&self) -> String {
        format!("{}: {}", self.field, self.body)
    }
}

/// A failed API call: the HTTP code and the Status body the server answers with.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code, repeated in the body's `code`.
    pub code: u16,
    /// The machine-readable `reason`.
    pub reason: &'static str,
    /// The human-readable `message`.
    pub message: String,
    /// The `details` object, when the server sends one.
    pub details: Option<Value>,
    /// Extra response headers (such as `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Option<Value>) -> Self {
        ApiError {
            code,
            reason,
            message,
            details,
            headers: Vec::new(),
        }
    }

    /// 404 NotFound for a named object.
    pub fn not_found(gr: GroupResource<'_>, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {} not found", gr.qualified(), go_quote(name)),
            Some(details(gr.group, gr.resource, name)),
        )
    }

    /// 404 for a path the server does not serve.
    pub fn no_such_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(json!({})),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(gr: GroupResource<'_>, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {} already exists", gr.qualified(), go_quote(name)),
            Some(details(gr.group, gr.resource, name)),
        )
    }

    /// 409 Conflict, `Operation cannot be fulfilled on ...`.
    pub fn conflict(gr: GroupResource<'_>, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {}: {why}",
                gr.qualified(),
                go_quote(name)
            ),
            Some(details(gr.group, gr.resource, name)),
        )
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn stale(gr: GroupResource<'_>, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid for a kind (`group` qualifies it) and name, with the field errors as causes.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = GroupResource {
            group,
            resource: kind,
        }
        .qualified();
        let summary = match errors {
            [one] => one.message(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(FieldError::message)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut d = details(group, kind, name);
        let causes = errors
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.body, "field": e.field}))
            .collect::<Vec<_>>();
        if let Some(obj) = d.as_object_mut() {
            obj.insert("causes".into(), Value::Array(causes));
        }
        Self::new(
            422,
            "Invalid",
            format!("{qualified} {} is invalid: {summary}", go_quote(name)),
            Some(d),
        )
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into(), None)
    }

    /// 401 Unauthorized, as for a missing-when-required, invalid or revoked token.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into(), None)
    }

    /// 403 Forbidden with the given message and details.
    pub fn forbidden(message: String, details: Value) -> Self {
        Self::new(403, "Forbidden", message, Some(details))
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(group: &str, resource: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            Some(details(group, resource, "")),
        )
    }

    /// 415 UnsupportedMediaType for a PATCH with a content type the server does not know.
    pub fn unsupported_patch(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
            None,
        )
    }

    /// 500 InternalError.
    pub fn internal(why: &str) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {why}"),
            Some(json!({"causes": [{"message": why}]})),
        )
    }

    /// An answer for an arbitrary code, shaped as a real server shapes that code.
    pub fn for_code(code: u16, why: &str) -> Self {
        match code {
            400 => Self::bad_request(why),
            401 => Self::unauthorized(),
            403 => Self::forbidden(format!("forbidden: {why}"), json!({})),
            404 => Self::no_such_path(),
            405 => Self::method_not_allowed("", ""),
            409 => Self::new(409, "Conflict", why.to_string(), None),
            422 => Self::new(422, "Invalid", why.to_string(), None),
            429 => {
                let mut e = Self::new(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.".into(),
                    Some(json!({"retryAfterSeconds": 1})),
                );
                e.headers.push(("retry-after", "1".into()));
                e
            }
            500 => Self::internal(why),
            503 => Self::new(
                503,
                "ServiceUnavailable",
                format!("The server is currently unable to handle the request ({why})"),
                None,
            ),
            504 => Self::new(
                504,
                "Timeout",
                format!("Timeout: {why}"),
                Some(json!({"retryAfterSeconds": 1})),
            ),
            other => Self::new(other, "Unknown", why.to_string(), None),
        }
    }

    /// The Status body.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), "Status".into());
        m.insert("apiVersion".into(), "v1".into());
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), "Failure".into());
        m.insert("message".into(), self.message.clone().into());
        m.insert("reason".into(), self.reason.into());
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        m.insert("code".into(), self.code.into());
        Value::Object(m)
    }
}

/// A `details` object with empty fields left out, as Go's `omitempty` does.
fn details(group: &str, kind: &str, name: &str) -> Value {
    let mut m = Map::new();
    if !name.is_empty() {
        m.insert("name".into(), name.into());
    }
    if !group.is_empty() {
        m.insert("group".into(), group.into());
    }
    if !kind.is_empty() {
        m.insert("kind".into(), kind.into());
    }
    Value::Object(m)
}

/// Quotes a string the way Go's `%q` does for printable text.
pub fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Quotes a list the way Go's `%q` does for a `[]string`: `["a" "b"]`.
pub fn go_quote_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| go_quote(s))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_the_recording() {
        let e = ApiError::not_found(
            GroupResource {
                group: "",
                resource: "namespaces",
            },
            "ghostns",
        );
        assert_eq!(
            e.body(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"namespaces \"ghostns\" not found","reason":"NotFound",
                   "details":{"name":"ghostns","kind":"namespaces"},"code":404})
        );
    }

    #[test]
    fn group_resources_are_qualified() {
        let e = ApiError::not_found(
            GroupResource {
                group: "rbac.authorization.k8s.io",
                resource: "roles",
            },
            "r",
        );
        assert_eq!(e.message, "roles.rbac.authorization.k8s.io \"r\" not found");
    }

    #[test]
    fn go_quote_of_a_list_is_space_separated() {
        assert_eq!(
            go_quote_list(&["a".into(), "b".into()]),
            "[\"a\" \"b\"]".to_string()
        );
    }
}
