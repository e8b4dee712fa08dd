//! The REST verbs on stored objects: get, list, create, update, patch, delete, deletecollection.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::admission::{normalize, prepare, random_suffix, validate};
use crate::clock;
use crate::patch::{PatchKind, json_patch, merge_patch};
use crate::request_info::RequestInfo;
use crate::resources::{self, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::state::Shared;
use crate::status::{ApiError, FieldError, GroupResource};
use crate::store::{Store, meta_str, metadata_mut};

/// The name of the ConfigMap holding the cluster CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// Namespaces the NamespaceLifecycle admission plugin refuses to delete.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// A request for a stored resource type, already authenticated and authorised.
#[derive(Debug)]
pub struct RestRequest<'a> {
    /// The parsed request attributes.
    pub info: &'a RequestInfo,
    /// The resource type addressed.
    pub rt: &'static ResourceType,
    /// The HTTP method.
    pub method: &'a http::Method,
    /// Query parameters.
    pub query: &'a HashMap<String, String>,
    /// The Content-Type header (for PATCH).
    pub content_type: &'a str,
    /// The request body.
    pub body: &'a [u8],
}

/// A successful answer: HTTP code and JSON body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub code: u16,
    /// Response body.
    pub body: Value,
}

fn ok(body: Value) -> Result<Reply, ApiError> {
    Ok(Reply { code: 200, body })
}

/// Serves one request for a stored resource type.
pub fn handle(shared: &Shared, r: &RestRequest<'_>) -> Result<Reply, ApiError> {
    let rt = r.rt;
    let info = r.info;
    let is_ns = rt.plural == "namespaces";
    if !rt.namespaced && !is_ns && !info.namespace.is_empty() {
        return Err(ApiError::no_such_path());
    }
    if rt.namespaced && info.namespace.is_empty() && !info.name.is_empty() {
        return Err(ApiError::no_such_path());
    }
    let ns = if is_ns { "" } else { info.namespace.as_str() };
    let name = info.name.as_str();
    if rt.namespaced && ns.is_empty() && *r.method != http::Method::GET {
        return Err(ApiError::method_not_allowed(rt.group, rt.plural));
    }
    use http::Method as M;
    match (r.method.clone(), name.is_empty()) {
        (M::GET | M::HEAD, true) => ok(list(shared, rt, (!ns.is_empty()).then_some(ns), r.query)?),
        (M::GET | M::HEAD, false) => ok(get(shared, rt, ns, name)?),
        (M::POST, true) => {
            let obj = parse_json(rt, r.body)?;
            let mut store = shared.store();
            Ok(Reply {
                code: 201,
                body: create(shared, &mut store, rt, ns, obj)?,
            })
        }
        (M::PUT, false) => update(shared, rt, ns, name, r.body),
        (M::PATCH, false) => patch(shared, rt, ns, name, r.content_type, r.body),
        (M::DELETE, false) => ok(delete(shared, rt, ns, name, r.body, r.query)?),
        (M::DELETE, true) => ok(delete_collection(shared, rt, ns, r.query)?),
        _ => Err(ApiError::method_not_allowed(rt.group, rt.plural)),
    }
}

fn parse_json(rt: &ResourceType, body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: the body is not a JSON object",
            rt.kind, rt.version, rt.kind
        )));
    }
    Ok(value)
}

fn extra_field_selectors(rt: &ResourceType) -> &'static [&'static str] {
    match rt.plural {
        "secrets" => &["type"],
        "namespaces" => &["status.phase"],
        _ => &[],
    }
}

/// Strips `kind` and `apiVersion` from a list item, as a real server's typed lists do.
fn list_item(obj: &Value) -> Value {
    let mut item = obj.clone();
    if let Some(m) = item.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    item
}

fn selected<'a>(
    store: &'a Store,
    rt: &ResourceType,
    ns: Option<&'a str>,
    query: &HashMap<String, String>,
) -> Result<Vec<&'a Value>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(
        query.get("fieldSelector").map_or("", String::as_str),
        extra_field_selectors(rt),
    )
    .map_err(ApiError::bad_request)?;
    Ok(store
        .list(rt, ns)
        .filter(|o| {
            labels.matches(
                o.get("metadata")
                    .and_then(|m| m.get("labels"))
                    .and_then(Value::as_object),
            ) && fields.matches(o)
        })
        .collect())
}

fn list_body(rt: &ResourceType, revision: u64, items: Vec<Value>) -> Value {
    json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    })
}

/// A list, in pages when `limit` is set: like a real server, items come in key order
/// (namespace, then name) and `continue` names the key to resume after.
///
/// A real server reads every page of one list at the resourceVersion of its first page (an
/// etcd snapshot); the emulator resumes after the key in the current state. Either way every
/// object that existed throughout the listing appears exactly once.
fn list(
    shared: &Shared,
    rt: &ResourceType,
    ns: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let store = shared.store();
    let limit = match query.get("limit").map(String::as_str) {
        None | Some("") => None,
        Some(text) => match text.parse::<usize>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "limit: Invalid value: {text:?}: must be a non-negative integer"
                )));
            }
        },
    };
    let start = match query.get("continue").map(String::as_str) {
        None | Some("") => None,
        Some(token) => Some(decode_continue(token)?),
    };
    let key = |o: &Value| {
        (
            meta_str(o, "namespace").unwrap_or("").to_owned(),
            meta_str(o, "name").unwrap_or("").to_owned(),
        )
    };
    let mut remaining = selected(&store, rt, ns, query)?
        .into_iter()
        .filter(|o| start.as_ref().is_none_or(|after| key(o) > *after))
        .peekable();
    let mut items = Vec::new();
    let mut last = None;
    while let Some(obj) = remaining.next_if(|_| limit.is_none_or(|n| items.len() < n)) {
        last = Some(key(obj));
        items.push(list_item(obj));
    }
    let more = remaining.peek().is_some();
    let mut body = list_body(rt, store.revision(), items);
    if let (true, Some(after)) = (more, last) {
        body["metadata"]["continue"] = encode_continue(store.revision(), &after).into();
    }
    Ok(body)
}

/// The shape of a real server's continue token: unpadded URL-safe base64 (Go's RawURLEncoding,
/// as apiserver's storage.EncodeContinue writes and DecodeContinue insists on) of
/// `{"v","rv","start"}`.
fn encode_continue(revision: u64, (ns, name): &(String, String)) -> String {
    let token =
        json!({"v": "meta.k8s.io/v1", "rv": revision, "start": format!("{ns}/{name}\u{0}")});
    URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: the continue token is not valid for this list",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let start = value
        .get("start")
        .and_then(Value::as_str)
        .and_then(|s| s.strip_suffix('\u{0}'))
        .ok_or_else(invalid)?;
    let (ns, name) = start.split_once('/').unwrap_or(("", start));
    Ok((ns.to_owned(), name.to_owned()))
}

fn get(shared: &Shared, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
    shared
        .store()
        .get(rt, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt.group_resource(), name))
}

/// Stores a new object, with the side effects a real cluster has (kube-root-ca.crt in new namespaces).
fn insert_created(
    shared: &Shared,
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    obj: Value,
) -> Value {
    let stored = store.insert_new(rt, ns, name, obj);
    if rt.plural == "namespaces" {
        add_root_ca(store, &shared.ca_pem, name);
    }
    stored
}

/// Creates the `kube-root-ca.crt` ConfigMap in a namespace.
pub fn add_root_ca(store: &mut Store, ca_pem: &str, ns: &str) {
    let Some(rt) = resources::stored_type("", "configmaps") else {
        return;
    };
    if store.get(rt, ns, ROOT_CA_CONFIGMAP).is_some() {
        return;
    }
    let cm = json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": ROOT_CA_CONFIGMAP,
            "namespace": ns,
            "annotations": {
                "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
            }
        },
        "data": {"ca.crt": ca_pem},
    });
    store.insert_new(rt, ns, ROOT_CA_CONFIGMAP, cm);
}

/// Creates an object: defaulting, validation (422), namespace existence (404), uniqueness (409).
pub fn create(
    shared: &Shared,
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    mut obj: Value,
) -> Result<Value, ApiError> {
    normalize(rt, ns, &mut obj)?;
    let meta = metadata_mut(&mut obj).ok_or_else(|| ApiError::bad_request("invalid metadata"))?;
    for server_field in ["uid", "resourceVersion", "creationTimestamp"] {
        meta.remove(server_field);
    }
    let mut name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let generate = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() && !generate.is_empty() {
        name = format!("{generate}{}", random_suffix());
        meta.insert("name".into(), name.clone().into());
    }
    prepare(rt, &mut obj, None)?;
    validate(rt, &name, &obj, None)?;
    if rt.namespaced && !store.namespace_exists(ns) {
        return Err(ApiError::not_found(
            GroupResource {
                group: "",
                resource: "namespaces",
            },
            ns,
        ));
    }
    if rt.namespaced && namespace_terminating(store, ns) {
        // The NamespaceLifecycle admission plugin's answer.
        return Err(ApiError::forbidden(
            format!(
                "{} {} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                rt.group_resource().qualified(),
                crate::status::go_quote(&name)
            ),
            json!({"name": name, "kind": rt.plural}),
        ));
    }
    if store.get(rt, ns, &name).is_some() {
        return Err(ApiError::already_exists(rt.group_resource(), &name));
    }
    Ok(insert_created(shared, store, rt, ns, &name, obj))
}

fn allows_create_on_update(rt: &ResourceType) -> bool {
    matches!(
        rt.group,
        "rbac.authorization.k8s.io" | "coordination.k8s.io"
    )
}

fn without_resource_version(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    o
}

/// Checks and stores a new version of an existing object.
fn finish_update(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    old: &Value,
    mut new: Value,
) -> Result<Value, ApiError> {
    let old_rv = meta_str(old, "resourceVersion").unwrap_or("");
    if let Some(rv) = meta_str(&new, "resourceVersion")
        && !rv.is_empty()
        && rv != old_rv
    {
        return Err(ApiError::stale(rt.group_resource(), name));
    }
    let meta = metadata_mut(&mut new).ok_or_else(|| ApiError::bad_request("invalid metadata"))?;
    for kept in ["uid", "creationTimestamp", "deletionTimestamp"] {
        match old.get("metadata").and_then(|m| m.get(kept)) {
            Some(v) => meta.insert(kept.into(), v.clone()),
            None => meta.remove(kept),
        };
    }
    meta.insert("resourceVersion".into(), old_rv.into());
    if meta.contains_key("deletionTimestamp") {
        if let Some(grace) = old.pointer("/metadata/deletionGracePeriodSeconds") {
            meta.insert("deletionGracePeriodSeconds".into(), grace.clone());
        }
    } else {
        meta.remove("deletionGracePeriodSeconds");
    }
    prepare(rt, &mut new, Some(old))?;
    validate(rt, name, &new, Some(old))?;
    let deleting = meta_str(old, "deletionTimestamp").is_some();
    let had = finalizers(old);
    let added: Vec<String> = finalizers(&new)
        .into_iter()
        .filter(|f| !had.contains(f))
        .collect();
    if deleting && !added.is_empty() {
        return Err(ApiError::invalid(
            rt.group,
            rt.kind,
            name,
            &[FieldError::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    added
                        .iter()
                        .map(|f| crate::status::go_quote(f))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )],
        ));
    }
    if without_resource_version(&new) == without_resource_version(old) {
        return Ok(old.clone());
    }
    if deleting && finalizers(&new).is_empty() {
        // The last finalizer is gone: the object is deleted, as a real registry does on update.
        if rt.plural == "namespaces" {
            return Ok(store.replace(rt, ns, name, new));
        }
        let removed = store.remove(rt, ns, name);
        finish_terminating_namespace(store, ns);
        return Ok(removed.map(|_| new).unwrap_or_default());
    }
    Ok(store.replace(rt, ns, name, new))
}

fn check_name(obj: &Value, name: &str) -> Result<(), ApiError> {
    let body_name = meta_str(obj, "name").unwrap_or("");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

fn update(
    shared: &Shared,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let mut obj = parse_json(rt, body)?;
    normalize(rt, ns, &mut obj)?;
    check_name(&obj, name)?;
    let mut store = shared.store();
    match store.get(rt, ns, name).cloned() {
        Some(old) => ok(finish_update(&mut store, rt, ns, name, &old, obj)?),
        None if allows_create_on_update(rt) => Ok(Reply {
            code: 201,
            body: create(shared, &mut store, rt, ns, obj)?,
        }),
        None => Err(ApiError::not_found(rt.group_resource(), name)),
    }
}

fn patch(
    shared: &Shared,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let kind = PatchKind::from_content_type(content_type)
        .ok_or_else(|| ApiError::unsupported_patch(content_type))?;
    let patch: Value = match kind {
        PatchKind::Apply => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
    };
    let mut store = shared.store();
    let Some(old) = store.get(rt, ns, name).cloned() else {
        if kind == PatchKind::Apply {
            let mut obj = patch;
            normalize(rt, ns, &mut obj)?;
            check_name(&obj, name)?;
            return Ok(Reply {
                code: 201,
                body: create(shared, &mut store, rt, ns, obj)?,
            });
        }
        return Err(ApiError::not_found(rt.group_resource(), name));
    };
    let mut new = old.clone();
    match kind {
        PatchKind::Json => json_patch(&mut new, &patch).map_err(|m| {
            ApiError::invalid(
                rt.group,
                rt.kind,
                name,
                &[FieldError {
                    reason: "FieldValueInvalid",
                    field: "patch".into(),
                    body: m,
                }],
            )
        })?,
        PatchKind::Merge | PatchKind::Apply => merge_patch(&mut new, &patch),
    }
    normalize(rt, ns, &mut new)?;
    check_name(&new, name)?;
    ok(finish_update(&mut store, rt, ns, name, &old, new)?)
}

/// Whether deleting returns the object (else a Status with details), per the type's registry.
fn returns_deleted_object(rt: &ResourceType) -> bool {
    matches!(rt.plural, "serviceaccounts" | "namespaces")
}

fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    obj: &Value,
    body: &[u8],
) -> Result<(), ApiError> {
    let Ok(opts) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let Some(pre) = opts.get("preconditions") else {
        return Ok(());
    };
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(want) = pre.get(field).and_then(Value::as_str) {
            let have = meta_str(obj, field).unwrap_or("");
            if want != have {
                return Err(ApiError::conflict(
                    rt.group_resource(),
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn delete(
    shared: &Shared,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    body: &[u8],
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    if rt.plural == "namespaces" && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            json!({"name": name, "kind": "namespaces"}),
        ));
    }
    let mut store = shared.store();
    let Some(existing) = store.get(rt, ns, name) else {
        return Err(ApiError::not_found(rt.group_resource(), name));
    };
    check_preconditions(rt, name, existing, body)?;
    let policy = propagation_policy(body, query)?;
    match delete_object(&mut store, rt, ns, name, policy)? {
        Deleted::Pending(obj) => Ok(obj),
        Deleted::Removed(obj) if returns_deleted_object(rt) => Ok(obj),
        Deleted::Removed(obj) => Ok(success_status(
            rt,
            name,
            meta_str(&obj, "uid").unwrap_or(""),
        )),
    }
}

/// DeleteOptions.propagationPolicy, from the body or the query.
fn propagation_policy(
    body: &[u8],
    query: &HashMap<String, String>,
) -> Result<crate::garbage_collector::Propagation, ApiError> {
    let from_body = serde_json::from_slice::<Value>(body).ok().and_then(|o| {
        o.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let text = from_body.or_else(|| query.get("propagationPolicy").cloned());
    crate::garbage_collector::Propagation::parse(text.as_deref())
}

/// What deleting an object did.
#[derive(Debug)]
pub enum Deleted {
    /// It has finalizers (or waits for dependents): it now has a deletionTimestamp and stays.
    Pending(Value),
    /// It is gone.
    Removed(Value),
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// Deletes one object as a real registry does: an object with finalizers only gets
/// `deletionTimestamp` (and `deletionGracePeriodSeconds: 0`) and stays until its finalizers are
/// removed; others are removed at once. Used by DELETE, deletecollection and the garbage collector.
pub fn delete_object(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    policy: crate::garbage_collector::Propagation,
) -> Result<Deleted, ApiError> {
    use crate::garbage_collector::Propagation;
    let Some(existing) = store.get(rt, ns, name).cloned() else {
        return Err(ApiError::not_found(rt.group_resource(), name));
    };
    let mut wanted = finalizers(&existing);
    match policy {
        Propagation::Foreground
            if rt.plural != "namespaces"
                && !wanted
                    .iter()
                    .any(|f| f == crate::garbage_collector::FOREGROUND) =>
        {
            wanted.push(crate::garbage_collector::FOREGROUND.into());
        }
        Propagation::Orphan => {
            if let Some(uid) = meta_str(&existing, "uid") {
                crate::garbage_collector::orphan_dependents(store, uid);
            }
        }
        _ => {}
    }
    if rt.plural == "namespaces" && wanted.is_empty() && !empty_namespace(store, name) {
        // Content with finalizers left: the namespace stays Terminating until it goes, as the
        // namespace controller keeps it (NamespaceFinalizersRemaining).
        let mut obj = existing.clone();
        if let Some(meta) = metadata_mut(&mut obj)
            && !meta.contains_key("deletionTimestamp")
        {
            meta.insert("deletionTimestamp".into(), clock::now_rfc3339().into());
        }
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({"phase": "Terminating"}));
        }
        if obj == existing {
            return Ok(Deleted::Pending(existing));
        }
        return Ok(Deleted::Pending(store.replace(rt, ns, name, obj)));
    }
    if !wanted.is_empty() {
        let mut obj = existing.clone();
        if let Some(meta) = metadata_mut(&mut obj) {
            if !meta.contains_key("deletionTimestamp") {
                meta.insert("deletionTimestamp".into(), clock::now_rfc3339().into());
                meta.insert("deletionGracePeriodSeconds".into(), 0.into());
            }
            meta.insert("finalizers".into(), json!(wanted));
        }
        if obj == existing {
            return Ok(Deleted::Pending(existing));
        }
        return Ok(Deleted::Pending(store.replace(rt, ns, name, obj)));
    }
    let mut obj = store
        .remove(rt, ns, name)
        .ok_or_else(|| ApiError::not_found(rt.group_resource(), name))?;
    if rt.plural == "namespaces" {
        store.remove_namespace_contents(name);
        if let Some(meta) = metadata_mut(&mut obj) {
            meta.insert("deletionTimestamp".into(), clock::now_rfc3339().into());
        }
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({"phase": "Terminating"}));
        }
    }
    if rt.group == crate::custom_resources::GROUP && rt.plural == crate::custom_resources::PLURAL {
        crate::custom_resources::remove_all(store, &obj);
    }
    if rt.plural != "namespaces" {
        finish_terminating_namespace(store, ns);
    }
    Ok(Deleted::Removed(obj))
}

/// Deletes everything in namespace `ns` as the namespace controller does: objects without
/// finalizers go at once, those with finalizers are marked deleted and stay until their
/// finalizers are removed. Answers whether the namespace is empty now.
fn empty_namespace(store: &mut Store, ns: &str) -> bool {
    let contents: Vec<(&'static str, &'static str, String)> = store
        .all()
        .filter(|(_, plural, o)| *plural != "namespaces" && meta_str(o, "namespace") == Some(ns))
        .map(|(group, plural, o)| (group, plural, meta_str(o, "name").unwrap_or("").to_owned()))
        .collect();
    for (group, plural, name) in contents {
        let rt = resources::stored_type(group, plural)
            .or_else(|| crate::custom_resources::find_any(store, group, plural));
        if let Some(rt) = rt {
            let _ = delete_object(
                store,
                rt,
                ns,
                &name,
                crate::garbage_collector::Propagation::Background,
            );
        }
    }
    let remaining = store
        .all()
        .any(|(_, plural, o)| plural != "namespaces" && meta_str(o, "namespace") == Some(ns));
    if !remaining {
        store.remove_namespace_contents(ns);
    }
    !remaining
}

/// Whether namespace `ns` is being deleted.
fn namespace_terminating(store: &Store, ns: &str) -> bool {
    resources::stored_type("", "namespaces")
        .and_then(|namespaces| store.get(namespaces, "", ns))
        .is_some_and(|n| meta_str(n, "deletionTimestamp").is_some())
}

/// Removes namespace `ns` once it is Terminating and its last object has gone.
pub fn finish_terminating_namespace(store: &mut Store, ns: &str) {
    let Some(namespaces) = resources::stored_type("", "namespaces") else {
        return;
    };
    if ns.is_empty()
        || store
            .get(namespaces, "", ns)
            .is_none_or(|n| meta_str(n, "deletionTimestamp").is_none())
    {
        return;
    }
    let remaining = store
        .all()
        .any(|(_, plural, o)| plural != "namespaces" && meta_str(o, "namespace") == Some(ns));
    if !remaining {
        store.remove(namespaces, "", ns);
    }
}

fn success_status(rt: &ResourceType, name: &str, uid: &str) -> Value {
    let mut details = Map::new();
    details.insert("name".into(), name.into());
    if !rt.group.is_empty() {
        details.insert("group".into(), rt.group.into());
    }
    details.insert("kind".into(), rt.plural.into());
    details.insert("uid".into(), uid.into());
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn delete_collection(
    shared: &Shared,
    rt: &ResourceType,
    ns: &str,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    if rt.plural == "namespaces" {
        return Err(ApiError::method_not_allowed(rt.group, rt.plural));
    }
    let mut store = shared.store();
    let names: Vec<(String, String)> = selected(&store, rt, (!ns.is_empty()).then_some(ns), query)?
        .into_iter()
        .map(|o| {
            (
                meta_str(o, "namespace").unwrap_or("").to_string(),
                meta_str(o, "name").unwrap_or("").to_string(),
            )
        })
        .collect();
    let items = names
        .iter()
        .filter_map(
            |(n, name)| match delete_object(&mut store, rt, n, name, Default::default()) {
                Ok(Deleted::Removed(o) | Deleted::Pending(o)) => Some(list_item(&o)),
                Err(_) => None,
            },
        )
        .collect();
    Ok(list_body(rt, store.revision(), items))
}
