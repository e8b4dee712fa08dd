//! Discovery documents for kubectl and kube-rs: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/GROUP[/VERSION]`.

use serde_json::{Map, Value, json};

use crate::resources::{self, GROUPS, Handling, ResourceType};

/// The Kubernetes version the emulator reports.
pub const GIT_VERSION: &str = "v1.33.0";

/// The `/version` document.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "60a317eadfcb839692a5551a5a6e8b1bec1e5e2b",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:04:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// The `/api` document.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// The `/apis` document.
pub fn groups() -> Value {
    let groups: Vec<Value> = GROUPS.iter().map(|(g, v)| group_entry(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The `/apis/GROUP` document, None for a group not served.
pub fn group(name: &str) -> Option<Value> {
    let (g, v) = GROUPS.iter().find(|(g, _)| *g == name)?;
    let mut doc = group_entry(g, v);
    if let Some(m) = doc.as_object_mut() {
        m.insert("kind".into(), "APIGroup".into());
        m.insert("apiVersion".into(), "v1".into());
    }
    Some(doc)
}

fn api_resource(rt: &ResourceType) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), rt.plural.into());
    m.insert("singularName".into(), rt.singular.into());
    m.insert("namespaced".into(), rt.namespaced.into());
    if rt.handling == Handling::Subresource {
        m.insert("group".into(), "authentication.k8s.io".into());
        m.insert("version".into(), "v1".into());
    }
    m.insert("kind".into(), rt.kind.into());
    m.insert("verbs".into(), json!(rt.verbs));
    if !rt.short_names.is_empty() {
        m.insert("shortNames".into(), json!(rt.short_names));
    }
    Value::Object(m)
}

/// The APIResourceList of one group version ("" for the core group), None when not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served = if group.is_empty() {
        version == "v1"
    } else {
        GROUPS.iter().any(|(g, v)| *g == group && *v == version)
    };
    if !served {
        return None;
    }
    let list: Vec<Value> = resources::in_group_version(group, version)
        .map(api_resource)
        .collect();
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    }))
}

/// The OpenAPI v3 index at `/openapi/v3`: one document per served group version.
pub fn openapi_v3_index() -> Value {
    let mut paths = Map::new();
    let mut add = |gv_path: String| {
        let url = format!("/openapi/v3/{gv_path}?hash={}", OPENAPI_HASH);
        paths.insert(gv_path, json!({"serverRelativeURL": url}));
    };
    add("api/v1".into());
    for (g, v) in GROUPS {
        add(format!("apis/{g}/{v}"));
    }
    json!({"paths": paths})
}

/// A stable hash for the OpenAPI document URLs (the documents never change).
const OPENAPI_HASH: &str = "6B2E3D4F5A697887";

/// A minimal OpenAPI v3 document for one group version: the paths of its stored resources with the
/// group-version-kind extension and the `fieldValidation` parameter, so kubectl validates server-side.
///
/// It carries no schemas: kubectl then computes apply patches from its own built-in types.
pub fn openapi_v3_document(group: &str, version: &str) -> Option<Value> {
    resource_list(group, version)?;
    let mut paths = Map::new();
    let field_validation = json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    for rt in resources::in_group_version(group, version).filter(|r| r.handling == Handling::Stored)
    {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let collection = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
        } else {
            format!("{prefix}/{}", rt.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": rt.kind});
        let op = |action: &str| {
            json!({
                "parameters": [field_validation.clone()],
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk.clone(),
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(
            collection.clone(),
            json!({"post": op("post"), "get": op("list")}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_short_names_and_the_token_subresource() {
        let Some(list) = resource_list("", "v1") else {
            panic!("core v1 not served");
        };
        let names: Vec<&str> = list["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"serviceaccounts/token"));
        let sa = list["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == "serviceaccounts");
        assert_eq!(sa.map(|r| r["shortNames"].clone()), Some(json!(["sa"])));
        assert!(resource_list("nope.io", "v1").is_none());
    }
}
