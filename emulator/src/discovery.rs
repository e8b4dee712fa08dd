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
