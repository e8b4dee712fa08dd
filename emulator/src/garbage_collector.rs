//! The garbage collector of kube-controller-manager, in small: when an owner is deleted, the
//! objects whose ownerReferences name its uid (and no other live owner) are deleted too.
//!
//! Like the real one it runs asynchronously (a task fed by the store's change log, so callers
//! poll), and it supports the three propagation policies: Background (the default), Foreground
//! (the owner keeps a `foregroundDeletion` finalizer until its dependents are gone; unlike a real
//! server the emulator waits for every dependent, not only those with `blockOwnerDeletion`) and
//! Orphan (done at once by the DELETE: the dependents lose their ownerReference to the owner).
//! Its index holds one entry per ownerReference; when it falls behind the log it rebuilds the
//! index from the store and sweeps every dependent.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::custom_resources;
use crate::resources::{self, Handling, ResourceType};
use crate::rest;
use crate::state::Shared;
use crate::status::ApiError;
use crate::store::{Store, meta_str, metadata_mut};
use crate::watches::{Event, EventType};

/// The finalizer an owner deleted in the foreground keeps until its dependents are gone.
pub const FOREGROUND: &str = "foregroundDeletion";

/// DeleteOptions.propagationPolicy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now, its dependents afterwards.
    #[default]
    Background,
    /// Delete the dependents first, then the owner.
    Foreground,
    /// Keep the dependents, without their ownerReference to the owner.
    Orphan,
}

impl Propagation {
    /// Parses the policy; absent means Background.
    pub fn parse(text: Option<&str>) -> Result<Propagation, ApiError> {
        match text {
            None | Some("" | "Background") => Ok(Propagation::Background),
            Some("Foreground") => Ok(Propagation::Foreground),
            Some("Orphan") => Ok(Propagation::Orphan),
            Some(other) => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {}: supported values: \"Foreground\", \"Background\", \"Orphan\"",
                crate::status::go_quote(other)
            ))),
        }
    }
}

/// An object's address: group, plural, namespace, name.
type ObjKey = (&'static str, &'static str, String, String);

fn key(group: &'static str, plural: &'static str, obj: &Value) -> ObjKey {
    (
        group,
        plural,
        meta_str(obj, "namespace").unwrap_or("").to_owned(),
        meta_str(obj, "name").unwrap_or("").to_owned(),
    )
}

fn owner_refs(obj: &Value) -> impl Iterator<Item = &Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    owner_refs(obj)
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The resource type of stored objects with this group and plural.
fn stored_type(store: &Store, group: &str, plural: &str) -> Option<&'static ResourceType> {
    resources::stored_type(group, plural)
        .or_else(|| custom_resources::find_any(store, group, plural))
}

/// Whether the owner an ownerReference names exists with that uid. Kinds the emulator does not
/// know count as existing: like the real collector, it deletes nothing it cannot check.
fn owner_exists(store: &Store, dependent_ns: &str, r: &Value) -> bool {
    let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
    let rt = resources::RESOURCES
        .iter()
        .find(|t| t.group == group && t.kind == kind && t.handling == Handling::Stored)
        .or_else(|| custom_resources::find_kind(store, group, kind));
    let Some(rt) = rt else {
        return true;
    };
    let ns = if rt.namespaced { dependent_ns } else { "" };
    store
        .get(rt, ns, name)
        .is_some_and(|o| meta_str(o, "uid") == Some(uid))
}

/// Removes `owner_uid` from the ownerReferences of every object (propagationPolicy Orphan).
pub fn orphan_dependents(store: &mut Store, owner_uid: &str) {
    let dependents: Vec<(ObjKey, Value)> = store
        .all()
        .filter(|(_, _, o)| owner_uids(o).iter().any(|u| u == owner_uid))
        .map(|(g, p, o)| (key(g, p, o), o.clone()))
        .collect();
    for ((group, plural, ns, name), mut obj) in dependents {
        let Some(rt) = stored_type(store, group, plural) else {
            continue;
        };
        let kept: Vec<Value> = owner_refs(&obj)
            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
            .cloned()
            .collect();
        if let Some(meta) = metadata_mut(&mut obj) {
            if kept.is_empty() {
                meta.remove("ownerReferences");
            } else {
                meta.insert("ownerReferences".into(), json!(kept));
            }
        }
        store.replace(rt, &ns, &name, obj);
    }
}

/// Which objects name which owner uid.
#[derive(Debug, Default)]
struct Index {
    dependents: HashMap<String, HashSet<ObjKey>>,
}

impl Index {
    fn build(store: &Store) -> Index {
        let mut index = Index::default();
        for (g, p, obj) in store.all() {
            index.add(g, p, obj);
        }
        index
    }

    fn add(&mut self, group: &'static str, plural: &'static str, obj: &Value) {
        for uid in owner_uids(obj) {
            self.dependents
                .entry(uid)
                .or_default()
                .insert(key(group, plural, obj));
        }
    }

    /// Forgets an object's references; returns the owner uids it had.
    fn forget(&mut self, group: &'static str, plural: &'static str, obj: &Value) -> Vec<String> {
        let k = key(group, plural, obj);
        let uids = owner_uids(obj);
        for uid in &uids {
            if let Some(set) = self.dependents.get_mut(uid) {
                set.remove(&k);
                if set.is_empty() {
                    self.dependents.remove(uid);
                }
            }
        }
        uids
    }
}

/// Starts the collector for one emulator; it ends when the emulator's state is dropped.
pub fn spawn(shared: &Arc<Shared>) {
    let (changes, index, progress) = {
        let store = shared.store();
        (
            store.events.subscribe(),
            Index::build(&store),
            store.revision(),
        )
    };
    tokio::spawn(run(Arc::downgrade(shared), changes, index, progress));
}

async fn run(
    shared: Weak<Shared>,
    mut changes: watch::Receiver<u64>,
    mut index: Index,
    mut progress: u64,
) {
    while changes.changed().await.is_ok() {
        changes.borrow_and_update();
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut store = shared.store();
        // Its own deletions add changes; take them in the same turn while the lock is held.
        loop {
            match store.events.since(progress) {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    for event in events {
                        progress = event.revision;
                        handle(&mut store, &mut index, &event);
                    }
                }
                Err(_) => {
                    index = Index::build(&store);
                    progress = store.revision();
                    sweep(&mut store);
                }
            }
        }
    }
}

/// Deletes every dependent none of whose owners exists (after the collector fell behind).
fn sweep(store: &mut Store) {
    let orphans: Vec<ObjKey> = store
        .all()
        .filter(|(_, _, o)| owner_refs(o).next().is_some())
        .filter(|(_, _, o)| {
            let ns = meta_str(o, "namespace").unwrap_or("");
            !owner_refs(o).any(|r| owner_exists(store, ns, r))
        })
        .map(|(g, p, o)| key(g, p, o))
        .collect();
    for k in orphans {
        delete_dependent(store, &k);
    }
}

fn delete_dependent(store: &mut Store, (group, plural, ns, name): &ObjKey) {
    let Some(rt) = stored_type(store, group, plural) else {
        return;
    };
    let Some(obj) = store.get(rt, ns, name) else {
        return;
    };
    if meta_str(obj, "deletionTimestamp").is_some() {
        return;
    }
    if let Err(e) = rest::delete_object(store, rt, ns, name, Propagation::Background) {
        tracing::debug!(%ns, %name, error = %e.message, "garbage collector could not delete");
    }
}

/// Deletes a dependent of a deleted owner unless another of its owners still exists.
fn collect(store: &mut Store, k: &ObjKey) {
    let Some(rt) = stored_type(store, k.0, k.1) else {
        return;
    };
    let Some(obj) = store.get(rt, &k.2, &k.3) else {
        return;
    };
    if owner_refs(obj).any(|r| owner_exists(store, &k.2, r)) {
        return;
    }
    delete_dependent(store, k);
}

fn is_foreground_deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
        && obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|v| v == FOREGROUND))
}

/// Drops the foregroundDeletion finalizer of an owner whose dependents are all gone (which
/// deletes it when no other finalizer is left).
fn finish_foreground(
    store: &mut Store,
    index: &Index,
    group: &'static str,
    plural: &'static str,
    obj: &Value,
) {
    let uid = meta_str(obj, "uid").unwrap_or("");
    if index.dependents.contains_key(uid) {
        return;
    }
    let Some(rt) = stored_type(store, group, plural) else {
        return;
    };
    let ns = meta_str(obj, "namespace").unwrap_or("").to_owned();
    let name = meta_str(obj, "name").unwrap_or("").to_owned();
    let Some(mut current) = store.get(rt, &ns, &name).cloned() else {
        return;
    };
    let rest: Vec<Value> = current
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| *f != FOREGROUND)
        .cloned()
        .collect();
    if rest.is_empty() {
        store.remove(rt, &ns, &name);
    } else if let Some(meta) = metadata_mut(&mut current) {
        meta.insert("finalizers".into(), json!(rest));
        store.replace(rt, &ns, &name, current);
    }
}

fn handle(store: &mut Store, index: &mut Index, event: &Event) {
    let (group, plural, obj) = (event.group, event.plural, &event.object);
    match event.kind {
        EventType::Added => {
            index.add(group, plural, obj);
            let ns = meta_str(obj, "namespace").unwrap_or("");
            if owner_refs(obj).next().is_some()
                && !owner_refs(obj).any(|r| owner_exists(store, ns, r))
            {
                delete_dependent(store, &key(group, plural, obj));
            }
        }
        EventType::Modified => {
            if let Some(old) = &event.old {
                index.forget(group, plural, old);
            }
            index.add(group, plural, obj);
            if is_foreground_deleting(obj) {
                let uid = meta_str(obj, "uid").unwrap_or("");
                let dependents: Vec<ObjKey> = index
                    .dependents
                    .get(uid)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                for k in &dependents {
                    delete_dependent(store, k);
                }
                finish_foreground(store, index, group, plural, obj);
            }
        }
        EventType::Deleted => {
            let ns = meta_str(obj, "namespace").unwrap_or("").to_owned();
            for owner_uid in index.forget(group, plural, obj) {
                if index.dependents.contains_key(&owner_uid) {
                    continue;
                }
                let owner = owner_refs(obj)
                    .find(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid.as_str()))
                    .cloned();
                if let Some(owner) = owner {
                    foreground_owner_done(store, index, &ns, &owner);
                }
            }
            let uid = meta_str(obj, "uid").unwrap_or("");
            if let Some(dependents) = index.dependents.remove(uid) {
                for k in &dependents {
                    collect(store, k);
                }
            }
        }
    }
}

/// After a dependent went away: if its owner is being deleted in the foreground and has no
/// dependents left, the owner goes too.
fn foreground_owner_done(store: &mut Store, index: &Index, dependent_ns: &str, owner: &Value) {
    let api_version = owner
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = owner.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = owner.get("name").and_then(Value::as_str).unwrap_or("");
    let rt = resources::RESOURCES
        .iter()
        .find(|t| t.group == group && t.kind == kind && t.handling == Handling::Stored)
        .or_else(|| custom_resources::find_kind(store, group, kind));
    let Some(rt) = rt else {
        return;
    };
    let ns = if rt.namespaced { dependent_ns } else { "" };
    let Some(obj) = store.get(rt, ns, name).cloned() else {
        return;
    };
    if meta_str(&obj, "uid") == owner.get("uid").and_then(Value::as_str)
        && is_foreground_deleting(&obj)
    {
        finish_foreground(store, index, rt.group, rt.plural, &obj);
    }
}
