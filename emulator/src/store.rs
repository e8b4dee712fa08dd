//! The object store: JSON objects keyed by resource, namespace and name, with uids and resourceVersions.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::clock;
use crate::resources::ResourceType;
use crate::watches::{EventLog, EventType};

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

/// Where a resource type's objects are kept: its group and plural name (custom resources of
/// different groups may share a plural).
type TypeKey = (&'static str, &'static str);

fn type_key(rt: &ResourceType) -> TypeKey {
    (rt.group, rt.plural)
}

/// All stored objects, the revision counter their resourceVersions come from, and the log of
/// recent changes that watches read.
#[derive(Debug, Default)]
pub struct Store {
    objects: HashMap<TypeKey, BTreeMap<(String, String), Value>>,
    revision: u64,
    /// Recent changes, for watches.
    pub events: EventLog,
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
            .get(&type_key(rt))?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Whether the namespace exists.
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .get(&("", "namespaces"))
            .is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())))
    }

    /// All objects of a type, optionally limited to one namespace, in name order.
    pub fn list<'a>(
        &'a self,
        rt: &ResourceType,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(&type_key(rt))
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
            .entry(type_key(rt))
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj.clone());
        self.events
            .record(EventType::Added, rt, ns, &obj, None, self.revision);
        obj
    }

    /// Replaces an existing object with a new resourceVersion; returns the stored copy.
    pub fn replace(&mut self, rt: &ResourceType, ns: &str, name: &str, mut obj: Value) -> Value {
        let rv = self.next_revision();
        if let Some(meta) = metadata_mut(&mut obj) {
            meta.insert("resourceVersion".into(), rv.into());
        }
        let old = self
            .objects
            .entry(type_key(rt))
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj.clone());
        self.events
            .record(EventType::Modified, rt, ns, &obj, old, self.revision);
        obj
    }

    /// Removes one object, returning it.
    pub fn remove(&mut self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let removed = self
            .objects
            .get_mut(&type_key(rt))?
            .remove(&(ns.to_string(), name.to_string()));
        if let Some(obj) = &removed {
            self.revision += 1;
            self.events
                .record_deleted(rt.group, rt.plural, ns, obj, self.revision);
        }
        removed
    }

    /// Removes every namespaced object in `ns`.
    pub fn remove_namespace_contents(&mut self, ns: &str) {
        let mut removed = Vec::new();
        for ((group, plural), map) in self.objects.iter_mut() {
            if *plural != "namespaces" {
                let keys: Vec<(String, String)> = map
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in keys {
                    if let Some(obj) = map.remove(&key) {
                        removed.push((*group, *plural, obj));
                    }
                }
            }
        }
        self.revision += 1;
        for (group, plural, obj) in removed {
            self.revision += 1;
            self.events
                .record_deleted(group, plural, ns, &obj, self.revision);
        }
    }

    /// Every stored object with its group and plural, for the garbage collector's rebuilds.
    pub fn all(&self) -> impl Iterator<Item = (&'static str, &'static str, &Value)> + '_ {
        self.objects
            .iter()
            .flat_map(|((g, p), m)| m.values().map(move |v| (*g, *p, v)))
    }

    /// Removes every object of one type (a deleted CustomResourceDefinition's resources).
    pub fn remove_type(&mut self, group: &'static str, plural: &'static str) {
        let Some(map) = self.objects.remove(&(group, plural)) else {
            return;
        };
        for ((ns, _), obj) in map {
            self.revision += 1;
            self.events
                .record_deleted(group, plural, &ns, &obj, self.revision);
        }
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
