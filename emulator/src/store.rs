//! The object store: JSON objects keyed by resource, namespace and name, with uids and resourceVersions.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::clock;
use crate::resources::ResourceType;

/// A random RFC 4122 version-4 UUID in its usual text form, as the API server's uids are.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Reads `metadata.<field>` as a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The object's `metadata` map, created when missing (the object must be a JSON object).
pub fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// All stored objects, and the revision counter their resourceVersions come from.
#[derive(Debug, Default)]
pub struct Store {
    objects: HashMap<&'static str, BTreeMap<(String, String), Value>>,
    revision: u64,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// The latest resourceVersion handed out, for list metadata.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// One object by namespace ("" for cluster-scoped) and name.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(rt.plural)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Whether the namespace exists.
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .get("namespaces")
            .is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())))
    }

    /// All objects of a type, optionally limited to one namespace, in name order.
    pub fn list<'a>(
        &'a self,
        rt: &ResourceType,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(rt.plural)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((n, _), _)| ns.is_none_or(|want| want == n))
            .map(|(_, v)| v)
    }

    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// Stores a new object, stamping uid, resourceVersion and creationTimestamp; returns the stored copy.
    ///
    /// The caller has checked that it does not exist yet and that its namespace does.
    pub fn insert_new(&mut self, rt: &ResourceType, ns: &str, name: &str, mut obj: Value) -> Value {
        let rv = self.next_revision();
        if let Some(meta) = metadata_mut(&mut obj) {
            meta.insert("uid".into(), new_uid().into());
            meta.insert("resourceVersion".into(), rv.into());
            meta.insert("creationTimestamp".into(), clock::now_rfc3339().into());
        }
        self.objects
            .entry(rt.plural)
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj.clone());
        obj
    }

    /// Replaces an existing object with a new resourceVersion; returns the stored copy.
    pub fn replace(&mut self, rt: &ResourceType, ns: &str, name: &str, mut obj: Value) -> Value {
        let rv = self.next_revision();
        if let Some(meta) = metadata_mut(&mut obj) {
            meta.insert("resourceVersion".into(), rv.into());
        }
        self.objects
            .entry(rt.plural)
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj.clone());
        obj
    }

    /// Removes one object, returning it.
    pub fn remove(&mut self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let removed = self
            .objects
            .get_mut(rt.plural)?
            .remove(&(ns.to_string(), name.to_string()));
        if removed.is_some() {
            self.revision += 1;
        }
        removed
    }

    /// Removes every namespaced object in `ns`.
    pub fn remove_namespace_contents(&mut self, ns: &str) {
        for (plural, map) in self.objects.iter_mut() {
            if *plural != "namespaces" {
                map.retain(|(n, _), _| n != ns);
            }
        }
        self.revision += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_uuid_v4() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(u, new_uid());
    }
}
