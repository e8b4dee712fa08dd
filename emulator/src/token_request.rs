//! The TokenRequest endpoint, `POST .../serviceaccounts/NAME/token`, issuing bound service-account JWTs.

use serde_json::{Value, json};

use crate::clock;
use crate::resources;
use crate::state::Shared;
use crate::status::{ApiError, FieldError, GroupResource};
use crate::store::{meta_str, new_uid};
use crate::tokens::{Claims, KubernetesClaim, ObjectRef};

/// Tokens shorter-lived than this are refused (422).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Tokens longer-lived than this are refused (422).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime given when the request names none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

fn str_field<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or("")
}

/// Issues a token for ServiceAccount `name` in `ns`; the answer is the 201 TokenRequest body.
pub fn create_token(shared: &Shared, ns: &str, name: &str, body: &[u8]) -> Result<Value, ApiError> {
    let mut req: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {e}"
        ))
    })?;
    if !req.is_object() {
        return Err(ApiError::bad_request(
            "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: the body is not a JSON object",
        ));
    }
    let body_name = str_field(&req, "/metadata/name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "TokenRequest.authentication.k8s.io {body_name:?} is invalid: metadata.name: Invalid value: {body_name:?}: must match the service account name if specified"
        )));
    }
    let body_ns = str_field(&req, "/metadata/namespace");
    if !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(format!(
            "TokenRequest.authentication.k8s.io {body_name:?} is invalid: metadata.namespace: Invalid value: {body_ns:?}: must match the service account namespace if specified"
        )));
    }

    let sa_type = resources::stored_type("", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not served"))?;
    let secret_type = resources::stored_type("", "secrets")
        .ok_or_else(|| ApiError::internal("secrets are not served"))?;
    let sa_uid = {
        let store = shared.store();
        let sa = store
            .get(sa_type, ns, name)
            .ok_or_else(|| ApiError::not_found(sa_type.group_resource(), name))?;
        meta_str(sa, "uid").unwrap_or("").to_string()
    };

    let spec = req
        .as_object_mut()
        .map(|m| m.entry("spec").or_insert_with(|| json!({})))
        .ok_or_else(|| ApiError::bad_request("invalid TokenRequest"))?;
    if !spec.is_object() {
        *spec = json!({});
    }
    let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![shared.signer.issuer().to_string()],
    };
    spec["audiences"] = json!(audiences);
    let seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: expirationSeconds must be an integer",
            )
        })?,
    };
    let seconds = if seconds == 0 {
        DEFAULT_EXPIRATION_SECONDS
    } else {
        seconds
    };
    spec["expirationSeconds"] = json!(seconds);
    let invalid_duration = if seconds < MIN_EXPIRATION_SECONDS {
        Some("may not specify a duration less than 10 minutes")
    } else if seconds > MAX_EXPIRATION_SECONDS {
        Some("may not specify a duration larger than 2^32 seconds")
    } else {
        None
    };
    if let Some(why) = invalid_duration {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            "",
            &[FieldError::invalid_number(
                "spec.expirationSeconds",
                seconds,
                why,
            )],
        ));
    }

    // A real server answers 201 with the shortened token (and a warning header), never an error.
    let seconds = shared
        .max_token_seconds
        .map_or(seconds, |max| seconds.min(max));
    spec["expirationSeconds"] = json!(seconds);

    let mut secret_ref = None;
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        let kind = str_field(bound, "/kind");
        let api_version = str_field(bound, "/apiVersion");
        let bound_name = str_field(bound, "/name");
        let bound_uid = str_field(bound, "/uid");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let actual_uid = match (group, kind) {
            ("", "Secret") => {
                let store = shared.store();
                let secret = store
                    .get(secret_type, ns, bound_name)
                    .ok_or_else(|| ApiError::not_found(secret_type.group_resource(), bound_name))?;
                meta_str(secret, "uid").unwrap_or("").to_string()
            }
            ("", "Pod") => {
                return Err(ApiError::not_found(
                    GroupResource {
                        group: "",
                        resource: "pods",
                    },
                    bound_name,
                ));
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {group}/{version}, Kind={kind}"
                )));
            }
        };
        if !bound_uid.is_empty() && bound_uid != actual_uid {
            return Err(ApiError::conflict(
                GroupResource {
                    group: "",
                    resource: kind,
                },
                bound_name,
                &format!(
                    "the UID in the bound object reference ({bound_uid}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        secret_ref = Some(ObjectRef {
            name: bound_name.to_string(),
            uid: actual_uid,
        });
    }

    let now = clock::now_unix();
    let claims = Claims {
        aud: audiences,
        exp: now + seconds,
        iat: now,
        iss: shared.signer.issuer().to_string(),
        jti: new_uid(),
        kubernetes: KubernetesClaim {
            namespace: ns.to_string(),
            serviceaccount: ObjectRef {
                name: name.to_string(),
                uid: sa_uid,
            },
            secret: secret_ref,
            pod: None,
        },
        nbf: now,
        sub: format!("system:serviceaccount:{ns}:{name}"),
    };
    let token = shared
        .signer
        .sign(&claims)
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    let spec = spec.clone();
    let mut metadata = req
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    metadata["creationTimestamp"] = Value::Null;
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "token": token,
            "expirationTimestamp": clock::rfc3339(now + seconds),
        },
    }))
}
