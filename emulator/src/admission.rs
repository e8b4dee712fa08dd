//! What the API server does to an object between the request and the store, as admission and
//! the registry's strategies do: kind, apiVersion and namespace set, generateName expanded,
//! Secret type rules and immutability, and validation of names, labels and data keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::status::{ApiError, FieldError};
use crate::store::{meta_str, metadata_mut};
use crate::validation::{NameRule, validate_data_keys, validate_labels, validate_name};

pub(crate) fn name_rule(rt: &ResourceType) -> NameRule {
    match (rt.plural, rt.group) {
        ("namespaces", _) => NameRule::Label,
        (_, "rbac.authorization.k8s.io") => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Sets kind, apiVersion and namespace, checking the body's namespace against the URL's.
pub(crate) fn normalize(rt: &ResourceType, ns: &str, obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("the body is not a JSON object"));
    };
    map.insert("kind".into(), rt.kind.into());
    map.insert("apiVersion".into(), rt.api_version().into());
    let meta = metadata_mut(obj).ok_or_else(|| ApiError::bad_request("invalid metadata"))?;
    let body_ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if rt.namespaced {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.insert("namespace".into(), ns.into());
    } else {
        meta.remove("namespace");
    }
    for server_field in ["selfLink", "managedFields", "deletionTimestamp"] {
        meta.remove(server_field);
    }
    Ok(())
}

pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Type-specific defaulting and checks, with the stored object on update.
pub(crate) fn prepare(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if let crate::resources::Handling::Custom { status_subresource } = rt.handling {
        crate::custom_resources::prepare(obj, old, status_subresource);
        return Ok(());
    }
    match rt.plural {
        "secrets" => prepare_secret(obj, old),
        "customresourcedefinitions" => crate::custom_resources::prepare_crd(obj, old),
        "mutatingwebhookconfigurations" | "validatingwebhookconfigurations" => {
            crate::webhooks::prepare_config(rt, obj)
        }
        "namespaces" => {
            if let Some(m) = obj.as_object_mut() {
                m.entry("spec")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|s| {
                        s.entry("finalizers")
                            .or_insert_with(|| json!(["kubernetes"]))
                    });
                let phase = old
                    .and_then(|o| o.pointer("/status/phase"))
                    .cloned()
                    .unwrap_or_else(|| "Active".into());
                m.insert("status".into(), json!({"phase": phase}));
            }
            let name = meta_str(obj, "name").unwrap_or("").to_string();
            if let Some(meta) = metadata_mut(obj) {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), name.into());
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn prepare_secret(obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    if let Some(string_data) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        if data.is_null() {
            *data = json!({});
        }
        if let (Some(data), Some(sd)) = (data.as_object_mut(), string_data.as_object()) {
            for (k, v) in sd {
                let s = v.as_str().unwrap_or("");
                data.insert(k.clone(), STANDARD.encode(s).into());
            }
        }
    }
    if let Some(data) = map.get("data").and_then(Value::as_object) {
        for v in data.values() {
            let ok = v.as_str().is_some_and(|s| STANDARD.decode(s).is_ok());
            if !ok {
                return Err(ApiError::bad_request(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0",
                ));
            }
        }
    }
    let ty = map
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or("Opaque")
        .to_string();
    map.insert("type".into(), ty.clone().into());
    if let Some(old_ty) = old.and_then(|o| o.get("type")).and_then(Value::as_str)
        && old_ty != ty
    {
        let name = meta_str(obj, "name").unwrap_or("");
        return Err(ApiError::invalid(
            "",
            "Secret",
            name,
            &[FieldError::invalid("type", &ty, "field is immutable")],
        ));
    }
    // An immutable Secret keeps its data and stays immutable; its metadata may still change.
    if old
        .and_then(|o| o.get("immutable"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        let detail = "field is immutable when `immutable` is set";
        let mut errors = Vec::new();
        let empty = json!({});
        let data = |o: &Value| {
            o.get("data")
                .filter(|d| !d.is_null())
                .unwrap_or(&empty)
                .clone()
        };
        if old.map(data) != Some(data(obj)) {
            errors.push(FieldError::forbidden("data", detail));
        }
        if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
            errors.push(FieldError::forbidden("immutable", detail));
        }
        if !errors.is_empty() {
            let name = meta_str(obj, "name").unwrap_or("");
            return Err(ApiError::invalid("", "Secret", name, &errors));
        }
    }
    Ok(())
}

pub(crate) fn validate(
    rt: &ResourceType,
    name: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let mut errs = if name.is_empty() {
        vec![FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )]
    } else {
        validate_name(name, name_rule(rt))
    };
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        errs.extend(validate_labels(labels));
    }
    if matches!(rt.plural, "secrets" | "configmaps") {
        for field in ["data", "binaryData"] {
            if let Some(data) = obj.get(field).and_then(Value::as_object) {
                errs.extend(validate_data_keys(field, data.keys()));
            }
        }
    }
    if matches!(rt.plural, "rolebindings" | "clusterrolebindings") {
        let role_ref = obj.get("roleRef");
        let field = |k: &str| {
            role_ref
                .and_then(|r| r.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        if field("name").is_empty() {
            errs.push(FieldError::required("roleRef.name", ""));
        }
        if !matches!(field("kind"), "Role" | "ClusterRole") {
            errs.push(FieldError::invalid(
                "roleRef.kind",
                field("kind"),
                "supported values: \"Role\", \"ClusterRole\"",
            ));
        }
        if let Some(old_ref) = old.and_then(|o| o.get("roleRef"))
            && Some(old_ref) != role_ref
        {
            errs.push(FieldError::invalid(
                "roleRef",
                &role_ref.map(Value::to_string).unwrap_or_default(),
                "cannot change roleRef",
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt.group, rt.kind, name, &errs))
    }
}
