//! Dynamic admission: MutatingWebhookConfiguration and ValidatingWebhookConfiguration
//! (admissionregistration.k8s.io/v1) defaulting and validation, and calling the registered
//! webhooks with an AdmissionReview v1 over HTTPS for CREATE and UPDATE (PATCH included).
//!
//! As kube-apiserver does: rules match operations, groups, versions, resources and scope;
//! namespaceSelector and objectSelector are honoured; mutating webhooks run first, in the order of
//! their configurations' names, and their JSONPatch responses are applied; a refusal becomes the
//! answer (`admission webhook "NAME" denied the request: ...`, code at least 400); a failed call
//! obeys failurePolicy; `timeoutSeconds` bounds each call (default 10 s) and is sent as `?timeout=`.
//!
//! Not done: `clientConfig.service` (the emulator runs no Services: such a call fails and
//! failurePolicy decides), DELETE and CONNECT operations, subresource requests, matchPolicy
//! Equivalent (rules match the requested version exactly) and reinvocation.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Map, Value, json};

use crate::admission::normalize;
use crate::authn::UserInfo;
use crate::custom_resources;
use crate::patch::{PatchKind, json_patch, merge_patch};
use crate::request_info::RequestInfo;
use crate::resources::{self, Handling, ResourceType};
use crate::selector::LabelSelector;
use crate::state::Shared;
use crate::status::{ApiError, FieldError};
use crate::store::{Store, meta_str};

/// The API group of webhook configurations.
const GROUP: &str = "admissionregistration.k8s.io";
/// The largest AdmissionReview response read.
const MAX_RESPONSE: usize = 3 * 1024 * 1024;
/// kube-apiserver's default and largest `timeoutSeconds`.
const DEFAULT_TIMEOUT: u64 = 10;
const MAX_TIMEOUT: u64 = 30;

/// A request rewritten by mutating webhooks: the handler serves this instead.
#[derive(Debug)]
pub struct Admitted {
    /// POST for a create, PUT for an update (a PATCH becomes the PUT of the patched object).
    pub method: http::Method,
    /// Always JSON.
    pub content_type: &'static str,
    /// The object after mutation.
    pub body: Bytes,
}

/// Defaults and validates a webhook configuration, as the API server's registry does.
pub fn prepare_config(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let mutating = rt.plural == "mutatingwebhookconfigurations";
    let name = meta_str(obj, "name").unwrap_or("").to_owned();
    let mut errs = Vec::new();
    let hooks = obj
        .get_mut("webhooks")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, mut hook) in hooks.into_iter().enumerate() {
        let at = |f: &str| format!("webhooks[{i}].{f}");
        let hook_name = hook["name"].as_str().unwrap_or("").to_owned();
        if hook_name.split('.').filter(|s| !s.is_empty()).count() < 3 {
            errs.push(FieldError::invalid(
                at("name"),
                &hook_name,
                "should be a domain with at least three segments separated by dots",
            ));
        }
        let side = hook["sideEffects"].as_str().unwrap_or("");
        if !matches!(side, "None" | "NoneOnDryRun") {
            errs.push(FieldError::required(
                at("sideEffects"),
                "must specify one of None, NoneOnDryRun",
            ));
        }
        let versions_ok = hook["admissionReviewVersions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == "v1" || x == "v1beta1"));
        if !versions_ok {
            errs.push(FieldError::required(
                at("admissionReviewVersions"),
                "must specify one of v1, v1beta1",
            ));
        }
        let url = hook.pointer("/clientConfig/url").and_then(Value::as_str);
        let service = hook.pointer("/clientConfig/service");
        match (url, service) {
            (Some(_), Some(_)) | (None, None) => errs.push(FieldError::required(
                at("clientConfig"),
                "exactly one of url or service is required",
            )),
            (Some(u), None) if !u.starts_with("https://") => errs.push(FieldError {
                reason: "FieldValueNotSupported",
                field: at("clientConfig.url"),
                body: format!(
                    "Unsupported value: {}: supported values: \"https\"",
                    crate::status::go_quote(u.split("://").next().unwrap_or(""))
                ),
            }),
            _ => {}
        }
        if let Some(m) = hook.as_object_mut() {
            m.entry("failurePolicy").or_insert_with(|| "Fail".into());
            m.entry("matchPolicy")
                .or_insert_with(|| "Equivalent".into());
            m.entry("namespaceSelector").or_insert_with(|| json!({}));
            m.entry("objectSelector").or_insert_with(|| json!({}));
            let t = m
                .entry("timeoutSeconds")
                .or_insert_with(|| DEFAULT_TIMEOUT.into());
            if !t.as_u64().is_some_and(|t| (1..=MAX_TIMEOUT).contains(&t)) {
                errs.push(FieldError::invalid(
                    at("timeoutSeconds"),
                    &t.to_string(),
                    "the timeout value must be between 1 and 30 seconds",
                ));
            }
            if mutating {
                m.entry("reinvocationPolicy")
                    .or_insert_with(|| "Never".into());
            }
            if let Some(rules) = m.get_mut("rules").and_then(Value::as_array_mut) {
                for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                    rule.entry("scope").or_insert_with(|| "*".into());
                }
            }
        }
        out.push(hook);
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("webhooks".into(), Value::Array(out));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(GROUP, rt.kind, &name, &errs))
    }
}

fn list_has(list: &Value, want: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|v| v == "*" || v == want))
}

fn rule_matches(rule: &Value, op: &str, rt: &ResourceType) -> bool {
    let scope_ok = match rule["scope"].as_str().unwrap_or("*") {
        "Cluster" => !rt.namespaced,
        "Namespaced" => rt.namespaced,
        _ => true,
    };
    let resource_ok = rule["resources"]
        .as_array()
        .is_some_and(|l| l.iter().any(|r| r == "*" || r == "*/*" || r == rt.plural));
    scope_ok
        && resource_ok
        && list_has(&rule["operations"], op)
        && list_has(&rule["apiGroups"], rt.group)
        && list_has(&rule["apiVersions"], rt.version)
}

/// A metav1.LabelSelector as the string form the selector parser reads; None when it is malformed.
fn selector_text(sel: &Value) -> Option<String> {
    let mut terms = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            terms.push(format!("{k}={}", v.as_str()?));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str()?;
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        terms.push(match e["operator"].as_str()? {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    Some(terms.join(","))
}

fn selects(sel: &Value, labels: Option<&Map<String, Value>>) -> bool {
    selector_text(sel)
        .and_then(|t| LabelSelector::parse(&t).ok())
        .is_some_and(|s| s.matches(labels))
}

fn labels_of(obj: Option<&Value>) -> Option<&Map<String, Value>> {
    obj?.pointer("/metadata/labels")?.as_object()
}

/// One webhook to call, copied out of its configuration.
#[derive(Debug, Clone)]
struct Hook {
    spec: Value,
    mutating: bool,
}

impl Hook {
    fn name(&self) -> &str {
        self.spec["name"].as_str().unwrap_or("")
    }
}

/// The webhooks that apply to a request, mutating ones first, each kind in configuration-name order.
fn matching_hooks(
    store: &Store,
    op: &str,
    rt: &ResourceType,
    ns: &str,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Vec<Hook> {
    let mut hooks = Vec::new();
    for (plural, mutating) in [
        ("mutatingwebhookconfigurations", true),
        ("validatingwebhookconfigurations", false),
    ] {
        let Some(config_type) = resources::stored_type(GROUP, plural) else {
            continue;
        };
        for config in store.list(config_type, None) {
            for hook in config["webhooks"].as_array().into_iter().flatten() {
                let ruled = hook["rules"]
                    .as_array()
                    .is_some_and(|rules| rules.iter().any(|r| rule_matches(r, op, rt)));
                if !ruled {
                    continue;
                }
                let ns_labels = if rt.plural == "namespaces" && rt.group.is_empty() {
                    labels_of(object.or(old)).cloned()
                } else if rt.namespaced {
                    resources::stored_type("", "namespaces")
                        .and_then(|t| store.get(t, "", ns))
                        .and_then(|n| labels_of(Some(n)).cloned())
                } else {
                    None
                };
                let ns_ok = (!rt.namespaced && rt.plural != "namespaces")
                    || selects(&hook["namespaceSelector"], ns_labels.as_ref());
                let obj_ok = selects(&hook["objectSelector"], labels_of(object))
                    || selects(&hook["objectSelector"], labels_of(old));
                if ns_ok && obj_ok {
                    hooks.push(Hook {
                        spec: hook.clone(),
                        mutating,
                    });
                }
            }
        }
    }
    hooks
}

fn parse_body(body: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

/// What a request would store, and what it replaces, worked out before admission; None when
/// the handler should answer the request as it is (malformed bodies, missing objects).
fn proposed(
    store: &Store,
    rt: &ResourceType,
    info: &RequestInfo,
    method: &http::Method,
    content_type: &str,
    body: &[u8],
) -> Option<(&'static str, Value, Option<Value>)> {
    let ns = if rt.namespaced {
        info.namespace.as_str()
    } else {
        ""
    };
    let stored = store.get(rt, ns, &info.name).cloned();
    let (op, mut obj, old) = match *method {
        http::Method::POST if info.name.is_empty() => ("CREATE", parse_body(body)?, None),
        http::Method::PUT => ("UPDATE", parse_body(body)?, Some(stored?)),
        http::Method::PATCH => {
            let kind = PatchKind::from_content_type(content_type)?;
            match (kind, stored) {
                (PatchKind::Apply, None) => ("CREATE", serde_yaml::from_slice(body).ok()?, None),
                (_, None) => return None,
                (kind, Some(old)) => {
                    let mut new = old.clone();
                    match kind {
                        PatchKind::Json => {
                            json_patch(&mut new, &serde_json::from_slice(body).ok()?).ok()?
                        }
                        PatchKind::Merge => merge_patch(&mut new, &parse_body(body)?),
                        PatchKind::Apply => {
                            merge_patch(&mut new, &serde_yaml::from_slice(body).ok()?)
                        }
                    }
                    ("UPDATE", new, Some(old))
                }
            }
        }
        _ => return None,
    };
    normalize(rt, ns, &mut obj).ok()?;
    Some((op, obj, old))
}

/// Runs the admission webhooks registered for a create or update; Some when mutating webhooks
/// changed the object (the handler then stores that), an error when one refused it.
pub async fn admit(
    shared: &Shared,
    info: &RequestInfo,
    method: &http::Method,
    content_type: &str,
    body: &[u8],
    user: &UserInfo,
) -> Result<Option<Admitted>, ApiError> {
    if !info.resource_request
        || !info.subresource.is_empty()
        || !matches!(info.verb.as_str(), "create" | "update" | "patch")
        || info.api_group == GROUP
    {
        return Ok(None);
    }
    let (rt, op, mut object, old, hooks) = {
        let store = shared.store();
        let rt = match resources::find(&info.api_group, &info.api_version, &info.resource) {
            Some(rt) if rt.handling == Handling::Stored => rt,
            Some(_) => return Ok(None),
            None => match custom_resources::find(
                &store,
                &info.api_group,
                &info.api_version,
                &info.resource,
            ) {
                Some(rt) => rt,
                None => return Ok(None),
            },
        };
        if !info.namespace.is_empty() && !rt.namespaced && rt.plural != "namespaces" {
            return Ok(None);
        }
        let configured = [
            "mutatingwebhookconfigurations",
            "validatingwebhookconfigurations",
        ]
        .iter()
        .filter_map(|p| resources::stored_type(GROUP, p))
        .any(|t| store.list(t, None).next().is_some());
        if !configured {
            return Ok(None); // the common case costs no parsing
        }
        let Some((op, object, old)) = proposed(&store, rt, info, method, content_type, body) else {
            return Ok(None);
        };
        let hooks = matching_hooks(&store, op, rt, &info.namespace, Some(&object), old.as_ref());
        (rt, op, object, old, hooks)
    };
    if hooks.is_empty() {
        return Ok(None);
    }
    let dry_run = false;
    let mut mutated = false;
    for hook in &hooks {
        let review = review(rt, op, info, &object, old.as_ref(), user, dry_run);
        let response = match call(&hook.spec, &review).await {
            Ok(r) => r,
            Err(why) if hook.spec["failurePolicy"] == "Ignore" => {
                tracing::warn!(webhook = hook.name(), %why, "webhook call failed; ignored");
                continue;
            }
            Err(why) => {
                return Err(ApiError::internal(&format!(
                    "failed calling webhook {}: {why}",
                    crate::status::go_quote(hook.name())
                )));
            }
        };
        if response["uid"] != review["request"]["uid"] {
            let why = format!(
                "expected response.uid={}, got {}",
                review["request"]["uid"], response["uid"]
            );
            if hook.spec["failurePolicy"] == "Ignore" {
                continue;
            }
            return Err(ApiError::internal(&format!(
                "failed calling webhook {}: {why}",
                crate::status::go_quote(hook.name())
            )));
        }
        if response["allowed"] != true {
            return Err(denied(hook.name(), response.get("status")));
        }
        if hook.mutating
            // Go decodes a []byte from base64 (the usual form) or from an array of numbers
            // (what kube-rs' AdmissionResponse writes); the API server takes both.
            && let Some(patch) = response.get("patch").and_then(|p| match p {
                Value::String(s) => STANDARD.decode(s).ok(),
                Value::Array(a) => a
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect(),
                _ => None,
            })
        {
            let ops = Some(patch)
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .ok_or_else(|| {
                    ApiError::internal(&format!(
                        "received undecodable patch in webhook response from {}",
                        crate::status::go_quote(hook.name())
                    ))
                })?;
            json_patch(&mut object, &ops).map_err(|e| {
                ApiError::internal(&format!(
                    "JSON Patch from webhook {}: {e}",
                    crate::status::go_quote(hook.name())
                ))
            })?;
            mutated = true;
        }
    }
    if !mutated {
        return Ok(None);
    }
    let method = match (op, method) {
        ("CREATE", _) => http::Method::POST,
        _ => http::Method::PUT,
    };
    if method == http::Method::PUT
        && let (Some(meta), Some(rv)) = (
            object.get_mut("metadata").and_then(Value::as_object_mut),
            old.as_ref().and_then(|o| meta_str(o, "resourceVersion")),
        )
    {
        // A PATCH that became a PUT replaces exactly the version it was computed from.
        meta.entry("resourceVersion")
            .or_insert_with(|| rv.to_owned().into());
    }
    Ok(Some(Admitted {
        method,
        content_type: "application/json",
        body: Bytes::from(serde_json::to_vec(&object).unwrap_or_default()),
    }))
}

fn review(
    rt: &ResourceType,
    op: &str,
    info: &RequestInfo,
    object: &Value,
    old: Option<&Value>,
    user: &UserInfo,
    dry_run: bool,
) -> Value {
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let resource = json!({"group": rt.group, "version": rt.version, "resource": rt.plural});
    let mut request = Map::new();
    request.insert("uid".into(), crate::store::new_uid().into());
    request.insert("kind".into(), kind.clone());
    request.insert("resource".into(), resource.clone());
    request.insert("requestKind".into(), kind);
    request.insert("requestResource".into(), resource);
    let name = meta_str(object, "name").unwrap_or(info.name.as_str());
    if !name.is_empty() {
        request.insert("name".into(), name.into());
    }
    if rt.namespaced && !info.namespace.is_empty() {
        request.insert("namespace".into(), info.namespace.clone().into());
    }
    request.insert("operation".into(), op.into());
    let mut user_info = Map::new();
    user_info.insert("username".into(), user.name.clone().into());
    if !user.uid.is_empty() {
        user_info.insert("uid".into(), user.uid.clone().into());
    }
    user_info.insert("groups".into(), json!(user.groups));
    request.insert("userInfo".into(), Value::Object(user_info));
    request.insert("object".into(), object.clone());
    request.insert("oldObject".into(), old.cloned().unwrap_or(Value::Null));
    request.insert("dryRun".into(), dry_run.into());
    let options = if op == "CREATE" {
        "CreateOptions"
    } else {
        "UpdateOptions"
    };
    request.insert(
        "options".into(),
        json!({"kind": options, "apiVersion": "meta.k8s.io/v1"}),
    );
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request})
}

/// The refusal a webhook's `allowed: false` becomes, as kube-apiserver's `ToStatusErr` builds it.
fn denied(webhook: &str, status: Option<&Value>) -> ApiError {
    let status = status.cloned().unwrap_or_default();
    let denied_by = format!(
        "admission webhook {} denied the request",
        crate::status::go_quote(webhook)
    );
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let message = status["message"].as_str().unwrap_or("");
    let reason_text = status["reason"].as_str().unwrap_or("");
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason_text.is_empty() {
        format!("{denied_by}: {reason_text}")
    } else {
        format!("{denied_by} without explanation")
    };
    ApiError {
        code,
        reason: static_reason(reason_text),
        message,
        details: status.get("details").cloned(),
        headers: Vec::new(),
    }
}

/// The metav1.StatusReason values, as `&'static str` (an unknown reason becomes empty).
fn static_reason(reason: &str) -> &'static str {
    const REASONS: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    REASONS
        .iter()
        .find(|r| **r == reason)
        .copied()
        .unwrap_or("")
}

/// POSTs an AdmissionReview to the webhook and returns its `response`, or why the call failed.
async fn call(hook: &Value, review: &Value) -> Result<Value, String> {
    let Some(url) = hook.pointer("/clientConfig/url").and_then(Value::as_str) else {
        return Err(
            "failed to call webhook: clientConfig.service is not supported by the emulator".into(),
        );
    };
    let timeout = hook["timeoutSeconds"].as_u64().unwrap_or(DEFAULT_TIMEOUT);
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}timeout={timeout}s");
    let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
    let ca = hook
        .pointer("/clientConfig/caBundle")
        .and_then(Value::as_str)
        .unwrap_or("");
    let result = tokio::time::timeout(Duration::from_secs(timeout), post(&full, ca, body)).await;
    let bytes = match result {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(format!("failed to call webhook: Post {full:?}: {e}")),
        Err(_) => {
            return Err(format!(
                "failed to call webhook: Post {full:?}: context deadline exceeded"
            ));
        }
    };
    let reply: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("received invalid webhook response: {e}"))?;
    reply
        .get("response")
        .filter(|r| r.is_object())
        .cloned()
        .ok_or_else(|| "received invalid webhook response: no response".into())
}

async fn post(url: &str, ca_bundle: &str, body: Vec<u8>) -> Result<Bytes, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let host = uri
        .host()
        .ok_or("no host")?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let pem = STANDARD
        .decode(ca_bundle)
        .map_err(|_| "caBundle is not base64")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("caBundle: {e}"))?;
        roots.add(cert).map_err(|e| format!("caBundle: {e}"))?;
    }
    if roots.is_empty() {
        return Err(
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                .into(),
        );
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("").to_owned();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let request = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = axum::body::to_bytes(Body::new(response.into_body()), MAX_RESPONSE)
        .await
        .map_err(|e| e.to_string())?;
    driver.abort();
    if status != http::StatusCode::OK {
        return Err(format!("webhook answered {status}"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_from_objects() {
        let sel = json!({"matchLabels": {"a": "1"}, "matchExpressions": [
            {"key": "b", "operator": "In", "values": ["x", "y"]},
            {"key": "c", "operator": "DoesNotExist"}]});
        let labels = |v: Value| v.as_object().cloned();
        assert!(selects(&sel, labels(json!({"a": "1", "b": "y"})).as_ref()));
        assert!(!selects(
            &sel,
            labels(json!({"a": "1", "b": "y", "c": ""})).as_ref()
        ));
        assert!(!selects(&sel, labels(json!({"a": "1"})).as_ref()));
        assert!(selects(&json!({}), None));
    }

    #[test]
    fn refusals_are_shaped_as_the_api_server_shapes_them() {
        let e = denied(
            "a.b.c",
            Some(&json!({"message": "no", "code": 403, "reason": "Forbidden"})),
        );
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        assert_eq!(
            e.message,
            "admission webhook \"a.b.c\" denied the request: no"
        );
        let e = denied("a.b.c", None);
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "admission webhook \"a.b.c\" denied the request without explanation"
        );
    }
}
