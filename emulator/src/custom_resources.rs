//! CustomResourceDefinitions and the custom resources they define: CRD defaulting, validation and
//! status (Established at once), the resource types served for established CRDs (routing and
//! discovery), metadata.generation, and the `status` subresource.
//!
//! Not done: OpenAPI schema validation, pruning and defaulting (objects are stored as sent),
//! conversion between versions (every served version shows the stored object with its own
//! apiVersion), `scale` subresources, printer columns (clients get JSON, not Tables).

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use serde_json::{Map, Value, json};

use crate::clock;
use crate::patch::{PatchKind, json_patch, merge_patch};
use crate::request_info::RequestInfo;
use crate::resources::{self, Handling, ResourceType};
use crate::rest::{self, RestRequest};
use crate::state::Shared;
use crate::status::{ApiError, FieldError};
use crate::store::{Store, meta_str};

/// The API group of CustomResourceDefinitions.
pub const GROUP: &str = "apiextensions.k8s.io";
/// The plural resource name of CustomResourceDefinitions.
pub const PLURAL: &str = "customresourcedefinitions";

/// How many distinct custom resource types one process serves (each is allocated once, for good).
const MAX_TYPES: usize = 4096;

/// Everything that makes a served custom resource type different from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TypeKey {
    group: String,
    version: String,
    plural: String,
    singular: String,
    kind: String,
    namespaced: bool,
    short_names: Vec<String>,
    status_subresource: bool,
}

/// The resource types made for CRDs. `ResourceType` holds `&'static str`s, so each distinct
/// definition is leaked once and reused by every emulator in the process; the count is bounded.
static TYPES: LazyLock<Mutex<HashMap<TypeKey, &'static ResourceType>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn intern(key: TypeKey) -> Option<&'static ResourceType> {
    let mut types = TYPES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = types.get(&key) {
        return Some(*rt);
    }
    if types.len() >= MAX_TYPES {
        tracing::warn!(group = %key.group, plural = %key.plural, "too many custom resource types; not served");
        return None;
    }
    let short_names: Vec<&'static str> = key.short_names.iter().map(|s| leak(s)).collect();
    let rt: &'static ResourceType = Box::leak(Box::new(ResourceType {
        group: leak(&key.group),
        version: leak(&key.version),
        plural: leak(&key.plural),
        singular: leak(&key.singular),
        kind: leak(&key.kind),
        namespaced: key.namespaced,
        short_names: Box::leak(short_names.into_boxed_slice()),
        verbs: &[
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "create",
            "update",
            "watch",
        ],
        handling: Handling::Custom {
            status_subresource: key.status_subresource,
        },
    }));
    types.insert(key, rt);
    Some(rt)
}

fn crd_type() -> Option<&'static ResourceType> {
    resources::stored_type(GROUP, PLURAL)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn versions(crd: &Value) -> impl Iterator<Item = &Value> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True")
}

/// The resource type a CRD serves at `version`, None when that version is not served.
fn served_type(crd: &Value, version: &str) -> Option<&'static ResourceType> {
    if !is_established(crd) || meta_str(crd, "deletionTimestamp").is_some() {
        return None;
    }
    let v = versions(crd).find(|v| v["name"] == version && v["served"] == true)?;
    let names = crd.pointer("/spec/names")?;
    intern(TypeKey {
        group: str_at(crd, "/spec/group").to_owned(),
        version: version.to_owned(),
        plural: str_at(names, "/plural").to_owned(),
        singular: str_at(names, "/singular").to_owned(),
        kind: str_at(names, "/kind").to_owned(),
        namespaced: str_at(crd, "/spec/scope") == "Namespaced",
        short_names: names
            .get("shortNames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        status_subresource: v.pointer("/subresources/status").is_some(),
    })
}

/// The custom resource type served at `group/version/plural`, if an established CRD defines it.
pub fn find(
    store: &Store,
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'static ResourceType> {
    let crd = store.get(crd_type()?, "", &format!("{plural}.{group}"))?;
    served_type(crd, version)
}

/// Any served version of the custom resource type with this group and plural (for the garbage
/// collector, which needs the type of an object it only knows by group and plural).
pub fn find_any(store: &Store, group: &str, plural: &str) -> Option<&'static ResourceType> {
    let crd = store.get(crd_type()?, "", &format!("{plural}.{group}"))?;
    versions(crd).find_map(|v| served_type(crd, v["name"].as_str()?))
}

/// The custom resource type of a kind in a group (for owner references), any served version.
pub fn find_kind(store: &Store, group: &str, kind: &str) -> Option<&'static ResourceType> {
    store
        .list(crd_type()?, None)
        .filter(|crd| {
            str_at(crd, "/spec/group") == group && str_at(crd, "/spec/names/kind") == kind
        })
        .find_map(|crd| versions(crd).find_map(|v| served_type(crd, v["name"].as_str()?)))
}

/// Removes every object of a deleted CRD (a real server's `customresourcecleanup` finalizer).
pub fn remove_all(store: &mut Store, crd: &Value) {
    let group = str_at(crd, "/spec/group").to_owned();
    let plural = str_at(crd, "/spec/names/plural").to_owned();
    let Some(key) = TYPES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .find(|rt| rt.group == group && rt.plural == plural)
        .map(|rt| (rt.group, rt.plural))
    else {
        return;
    };
    store.remove_type(key.0, key.1);
}

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first, then others by name.
fn version_rank(v: &str) -> (u8, i64, i64, String) {
    let parse = |s: &str| -> Option<(u8, i64, i64)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        for (prefix, level) in [("beta", 1u8), ("alpha", 2u8)] {
            if let Some(n) = tail.strip_prefix(prefix) {
                return Some((level, -major, -n.parse::<i64>().ok()?));
            }
        }
        None
    };
    match parse(v) {
        Some((level, major, minor)) => (level, major, minor, String::new()),
        None => (3, 0, 0, v.to_owned()),
    }
}

/// The served versions of each custom group, best first.
fn custom_groups(store: &Store) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Some(rt) = crd_type() else {
        return groups;
    };
    for crd in store.list(rt, None).filter(|c| is_established(c)) {
        let entry = groups
            .entry(str_at(crd, "/spec/group").to_owned())
            .or_default();
        for v in versions(crd).filter(|v| v["served"] == true) {
            if let Some(name) = v["name"].as_str()
                && !entry.iter().any(|e| e == name)
            {
                entry.push(name.to_owned());
            }
        }
    }
    for versions in groups.values_mut() {
        versions.sort_by_key(|v| version_rank(v));
    }
    groups.retain(|_, v| !v.is_empty());
    groups
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": gvs, "preferredVersion": gvs.first().cloned().unwrap_or_default()})
}

/// The custom groups as APIGroup entries, for `/apis`.
pub fn discovery_groups(store: &Store) -> Vec<Value> {
    custom_groups(store)
        .iter()
        .map(|(g, v)| group_doc(g, v))
        .collect()
}

/// The `/apis/GROUP` document of a custom group.
pub fn discovery_group(store: &Store, group: &str) -> Option<Value> {
    let groups = custom_groups(store);
    let mut doc = group_doc(group, groups.get(group)?);
    doc["kind"] = "APIGroup".into();
    doc["apiVersion"] = "v1".into();
    Some(doc)
}

/// The `/apis/GROUP/VERSION` APIResourceList of a custom group version.
pub fn discovery_resources(store: &Store, group: &str, version: &str) -> Option<Value> {
    let crds = store.list(crd_type()?, None);
    let mut list = Vec::new();
    for crd in crds.filter(|c| str_at(c, "/spec/group") == group) {
        let Some(rt) = served_type(crd, version) else {
            continue;
        };
        let mut m = Map::new();
        m.insert("name".into(), rt.plural.into());
        m.insert("singularName".into(), rt.singular.into());
        m.insert("namespaced".into(), rt.namespaced.into());
        m.insert("kind".into(), rt.kind.into());
        m.insert("verbs".into(), json!(rt.verbs));
        if !rt.short_names.is_empty() {
            m.insert("shortNames".into(), json!(rt.short_names));
        }
        if let Some(c) = crd.pointer("/spec/names/categories") {
            m.insert("categories".into(), c.clone());
        }
        m.insert("storageVersionHash".into(), storage_hash(rt).into());
        list.push(Value::Object(m));
        if let Handling::Custom {
            status_subresource: true,
        } = rt.handling
        {
            list.push(json!({
                "name": format!("{}/status", rt.plural), "singularName": "",
                "namespaced": rt.namespaced, "kind": rt.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if list.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"), "resources": list,
    }))
}

/// A stable stand-in for the storage version hash discovery carries.
fn storage_hash(rt: &ResourceType) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (rt.group, rt.plural, rt.kind).hash(&mut h);
    let bytes = h.finish().to_be_bytes();
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes[..8])
}

/// CRD defaulting, validation and status, as the apiextensions-apiserver does them: the CRD is
/// NamesAccepted and Established at once (a real server takes a moment; clients poll).
pub fn prepare_crd(obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").unwrap_or("").to_owned();
    let mut errs = Vec::new();
    let group = str_at(obj, "/spec/group").to_owned();
    let plural = str_at(obj, "/spec/names/plural").to_owned();
    let kind = str_at(obj, "/spec/names/kind").to_owned();
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            &group,
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    }
    if kind.is_empty() {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = str_at(obj, "/spec/scope").to_owned();
    if scope != "Namespaced" && scope != "Cluster" {
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.scope".into(),
            body: format!(
                "Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"",
                crate::status::go_quote(&scope)
            ),
        });
    }
    let storage: Vec<String> = versions(obj)
        .filter(|v| v["storage"] == true)
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    if versions(obj).next().is_none() {
        errs.push(FieldError::invalid(
            "spec.versions",
            "null",
            "must have exactly one version marked as storage version",
        ));
    } else if storage.len() != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            "",
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions(obj).enumerate() {
        if v.pointer("/schema/openAPIV3Schema").is_none() {
            errs.push(FieldError::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }
    if let Some(old) = old {
        if str_at(old, "/spec/scope") != scope {
            errs.push(FieldError::invalid(
                "spec.scope",
                &scope,
                "field is immutable",
            ));
        }
        if str_at(old, "/spec/group") != group {
            errs.push(FieldError::invalid(
                "spec.group",
                &group,
                "field is immutable",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(
            GROUP,
            "CustomResourceDefinition",
            &name,
            &errs,
        ));
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    spec.entry("conversion")
        .or_insert_with(|| json!({"strategy": "None"}));
    let names = spec
        .get_mut("names")
        .and_then(Value::as_object_mut)
        .map(|names| {
            names
                .entry("singular")
                .or_insert_with(|| kind.to_lowercase().into());
            names
                .entry("listKind")
                .or_insert_with(|| format!("{kind}List").into());
            Value::Object(names.clone())
        })
        .unwrap_or_default();
    let mut stored_versions: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in storage {
        if !stored_versions.iter().any(|v| v == s.as_str()) {
            stored_versions.push(s.into());
        }
    }
    let now = clock::now_rfc3339();
    let since = |ty: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["type"] == ty)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| now.clone().into())
    };
    let status = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": since("NamesAccepted"),
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": since("Established"),
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "acceptedNames": names,
        "storedVersions": stored_versions,
    });
    if let Some(m) = obj.as_object_mut() {
        m.insert("status".into(), status);
    }
    set_generation(obj, old, |o| o.get("spec").cloned().unwrap_or_default());
    Ok(())
}

/// Sets metadata.generation: 1 on create, +1 on an update that changes what `spec_of` returns.
fn set_generation(obj: &mut Value, old: Option<&Value>, spec_of: impl Fn(&Value) -> Value) {
    let generation = match old {
        None => 1,
        Some(old) => {
            let previous = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if spec_of(old) == spec_of(obj) {
                previous
            } else {
                previous + 1
            }
        }
    };
    if let Some(meta) = crate::store::metadata_mut(obj) {
        meta.insert("generation".into(), generation.into());
    }
}

/// Everything but metadata and status: what a custom resource's generation counts.
fn custom_spec(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

/// A custom resource on create or update of the main resource: with the status subresource,
/// status is dropped on create and kept from the stored object on update; generation counts
/// changes to anything but metadata and status.
pub fn prepare(obj: &mut Value, old: Option<&Value>, status_subresource: bool) {
    if status_subresource && let Some(m) = obj.as_object_mut() {
        match old.and_then(|o| o.get("status")) {
            Some(status) => m.insert("status".into(), status.clone()),
            None => m.remove("status"),
        };
    }
    set_generation(obj, old, custom_spec);
}

/// The request attributes a custom resource handler needs.
#[derive(Debug)]
pub struct CustomRequest<'a> {
    /// The parsed request attributes.
    pub info: &'a RequestInfo,
    /// The HTTP method.
    pub method: &'a http::Method,
    /// Query parameters.
    pub query: &'a HashMap<String, String>,
    /// The Content-Type header.
    pub content_type: &'a str,
    /// The request body.
    pub body: &'a [u8],
}

/// Serves a request for a custom resource type: the main resource through the generic REST
/// verbs, `status` here.
pub fn handle(
    shared: &Shared,
    rt: &'static ResourceType,
    r: &CustomRequest<'_>,
) -> Result<(u16, Value), ApiError> {
    if *r.method == http::Method::PATCH
        && PatchKind::from_content_type(r.content_type).is_none_or(|_| {
            r.content_type
                .starts_with("application/strategic-merge-patch+json")
        })
    {
        return Err(ApiError::unsupported_patch(r.content_type));
    }
    if *r.method == http::Method::PUT {
        require_resource_version(rt, &r.info.name, r.body)?;
    }
    match r.info.subresource.as_str() {
        "" => {
            let reply = rest::handle(
                shared,
                &RestRequest {
                    info: r.info,
                    rt,
                    method: r.method,
                    query: r.query,
                    content_type: r.content_type,
                    body: r.body,
                },
            )?;
            Ok((reply.code, reply.body))
        }
        "status"
            if rt.handling
                == (Handling::Custom {
                    status_subresource: true,
                }) =>
        {
            status(shared, rt, r)
        }
        _ => Err(ApiError::no_such_path()),
    }
}

/// Custom resources allow no unconditional update: a PUT must carry the resourceVersion it replaces.
fn require_resource_version(rt: &ResourceType, name: &str, body: &[u8]) -> Result<(), ApiError> {
    let Ok(obj) = serde_json::from_slice::<Value>(body) else {
        return Ok(()); // the handler answers a malformed body
    };
    if meta_str(&obj, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
        return Ok(());
    }
    Err(ApiError::invalid(
        rt.group,
        rt.kind,
        name,
        &[FieldError {
            reason: "FieldValueInvalid",
            field: "metadata.resourceVersion".into(),
            body: "Invalid value: 0x0: must be specified for an update".into(),
        }],
    ))
}

/// GET, PUT and PATCH of `<resource>/status`: only status changes, whatever else the body says.
fn status(
    shared: &Shared,
    rt: &'static ResourceType,
    r: &CustomRequest<'_>,
) -> Result<(u16, Value), ApiError> {
    let ns = r.info.namespace.as_str();
    let name = r.info.name.as_str();
    if rt.namespaced == ns.is_empty() || name.is_empty() {
        return Err(ApiError::no_such_path());
    }
    let mut store = shared.store();
    let old = store
        .get(rt, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt.group_resource(), name))?;
    let proposed = match r.method.clone() {
        http::Method::GET => return Ok((200, old)),
        http::Method::PUT => serde_json::from_slice::<Value>(r.body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                ApiError::bad_request(format!("the body is not a JSON {} object", rt.kind))
            })?,
        http::Method::PATCH => {
            let kind = PatchKind::from_content_type(r.content_type)
                .ok_or_else(|| ApiError::unsupported_patch(r.content_type))?;
            let mut new = old.clone();
            match kind {
                PatchKind::Json => {
                    let ops: Value = serde_json::from_slice(r.body)
                        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                    json_patch(&mut new, &ops).map_err(|m| {
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
                    })?;
                }
                PatchKind::Merge => {
                    let patch: Value = serde_json::from_slice(r.body)
                        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                    merge_patch(&mut new, &patch);
                }
                PatchKind::Apply => {
                    let patch: Value = serde_yaml::from_slice(r.body)
                        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
                    merge_patch(&mut new, &patch);
                }
            }
            new
        }
        _ => return Err(ApiError::method_not_allowed(rt.group, rt.plural)),
    };
    if meta_str(&proposed, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&proposed, "name").unwrap_or("")
        )));
    }
    if let Some(rv) = meta_str(&proposed, "resourceVersion")
        && !rv.is_empty()
        && Some(rv) != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::stale(rt.group_resource(), name));
    }
    let mut new = old.clone();
    if let Some(m) = new.as_object_mut() {
        match proposed.get("status") {
            Some(s) if !s.is_null() => m.insert("status".into(), s.clone()),
            _ => m.remove("status"),
        };
    }
    if new == old {
        return Ok((200, old));
    }
    Ok((200, store.replace(rt, ns, name, new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_kubernetes_sorts_them() {
        let mut v = vec![
            "v1alpha1",
            "foo",
            "v2",
            "v1beta2",
            "v1",
            "v1beta1",
            "v10alpha1",
        ];
        v.sort_by_key(|s| version_rank(s));
        assert_eq!(
            v,
            vec![
                "v2",
                "v1",
                "v1beta2",
                "v1beta1",
                "v10alpha1",
                "v1alpha1",
                "foo"
            ]
        );
    }

    #[test]
    fn generation_counts_spec_changes_only() {
        let old = json!({"metadata": {"generation": 3}, "spec": {"a": 1}, "status": {"x": 1}});
        let mut same =
            json!({"metadata": {"labels": {"l": "v"}}, "spec": {"a": 1}, "status": {"x": 2}});
        prepare(&mut same, Some(&old), true);
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["status"], json!({"x": 1}));
        let mut changed = json!({"metadata": {}, "spec": {"a": 2}});
        prepare(&mut changed, Some(&old), true);
        assert_eq!(changed["metadata"]["generation"], 4);
        let mut created = json!({"metadata": {}, "spec": {}, "status": {"x": 1}});
        prepare(&mut created, None, true);
        assert_eq!(created, json!({"metadata": {"generation": 1}, "spec": {}}));
    }
}
