//! Contract tests for what a kube-runtime controller and an admission webhook need from the API
//! server: CustomResourceDefinitions served with the status subresource, watches, finalizers,
//! owner-reference garbage collection and mutating/validating admission webhooks. They run on
//! the emulator or unchanged on the real control plane (`TOKEND_TEST_BACKEND=real`).

use tokend_test_support as common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::contract::api_error;
use common::{
    Backend, Cluster, SkipKind, eventually_ok, eventually_some, eventually_within, skip,
    unique_name,
};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use std::future::Future;

/// How long a test waits for one watch event before failing instead of hanging.
const EVENT_WAIT: Duration = Duration::from_secs(30);

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    Ok(serde_json::from_value(v)?)
}

/// Polls `check` until it succeeds (test-support's `eventually_ok`, for checks that fail with a reason).
async fn until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    eventually_ok(what, || {
        let attempt = check();
        async move { attempt.await.map(|()| true) }
    })
    .await
}

/// How long garbage collection may take: a real controller-manager's collector learns of a new
/// CRD's resources only at its next discovery resync (every 30 s).
const GC_WAIT: Duration = Duration::from_secs(90);

/// Polls `check` for up to [`GC_WAIT`] until it succeeds.
async fn until_collected<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    eventually_within(what, GC_WAIT, || {
        let attempt = check();
        async move { attempt.await.map(|()| true) }
    })
    .await
}

/// Sends a JSON patch (RFC 6902) to `path`.
async fn json_patch(c: &Cluster, path: &str, ops: Value) -> kube::Result<Value> {
    let req = http::Request::patch(path)
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(serde_json::to_vec(&ops).unwrap_or_default())
        .map_err(kube::Error::HttpError)?;
    c.client.request::<Value>(req).await
}

/// Cluster-scoped objects a test made, deleted (on a real cluster) when the guard drops, on a
/// thread and runtime of their own as test-support's cleanup does.
struct ClusterObjects {
    config: Option<kube::Config>,
    paths: Mutex<Vec<String>>,
}

impl ClusterObjects {
    fn new(c: &Cluster) -> ClusterObjects {
        ClusterObjects {
            config: (c.backend == Backend::Real).then(|| c.config.clone()),
            paths: Mutex::default(),
        }
    }

    fn add(&self, path: String) {
        self.paths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(path);
    }
}

impl Drop for ClusterObjects {
    fn drop(&mut self) {
        let paths = std::mem::take(&mut *self.paths.lock().unwrap_or_else(|p| p.into_inner()));
        let Some(config) = self.config.clone() else {
            return;
        };
        let worker = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(client) = kube::Client::try_from(config) else {
                    return;
                };
                for path in paths.iter().rev() {
                    let req = http::Request::delete(path.as_str()).body(Vec::new());
                    if let Ok(req) = req
                        && let Err(e) = client.request_text(req).await
                    {
                        eprintln!("cleanup: DELETE {path}: {e}");
                    }
                }
            });
        });
        let _ = worker.join();
    }
}

/// A CRD made for one test, in a group of its own.
struct TestCrd {
    group: String,
    plural: String,
    kind: String,
    namespaced: bool,
    resource: ApiResource,
}

impl TestCrd {
    fn api(&self, c: &Cluster, ns: &str) -> Api<DynamicObject> {
        if self.namespaced {
            Api::namespaced_with(c.client.clone(), ns, &self.resource)
        } else {
            Api::all_with(c.client.clone(), &self.resource)
        }
    }

    fn object(&self, name: &str, spec: Value) -> Result<DynamicObject> {
        obj(json!({
            "apiVersion": format!("{}/v1", self.group),
            "kind": self.kind,
            "metadata": {"name": name},
            "spec": spec,
        }))
    }
}

fn crd_body(group: &str, scope: &str, status: bool) -> Value {
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let mut version = json!({
        "name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": open, "status": open}}},
    });
    if status {
        version["subresources"] = json!({"status": {}});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "scope": scope,
            "versions": [version],
        },
    })
}

fn crd_api(c: &Cluster) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition");
    Api::all_with(
        c.client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "customresourcedefinitions"),
    )
}

async fn get_json(c: &Cluster, path: &str) -> Result<Value> {
    let req = http::Request::get(path).body(Vec::new())?;
    Ok(c.client.request::<Value>(req).await?)
}

/// Creates a CRD and waits until it is Established and its group version is discovered.
async fn make_crd(
    c: &Cluster,
    cleanup: &ClusterObjects,
    scope: &str,
    status: bool,
) -> Result<TestCrd> {
    let group = format!("{}.tokend.test", unique_name("crd"));
    let body = crd_body(&group, scope, status);
    let name = format!("widgets.{group}");
    crd_api(c)
        .create(&PostParams::default(), &obj(body)?)
        .await?;
    cleanup.add(format!(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    ));
    until("the CRD is Established", || async {
        let crd = crd_api(c).get(&name).await?;
        let established = crd.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        ensure!(established, "conditions {}", crd.data["status"]);
        Ok(())
    })
    .await?;
    until("discovery lists the resource", || async {
        let list = get_json(c, &format!("/apis/{group}/v1")).await?;
        let found = list["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"] == "widgets" && r["kind"] == "Widget");
        ensure!(found, "{list}");
        Ok(())
    })
    .await?;
    let gvk = GroupVersionKind::gvk(&group, "v1", "Widget");
    let crd = TestCrd {
        resource: ApiResource::from_gvk_with_plural(&gvk, "widgets"),
        group,
        plural: "widgets".into(),
        kind: "Widget".into(),
        namespaced: scope == "Namespaced",
    };
    // A real server installs the handler a moment after Established.
    until("the resource is served", || async {
        crd.api(c, "default").list(&ListParams::default()).await?;
        Ok(())
    })
    .await?;
    Ok(crd)
}

fn generation(o: &DynamicObject) -> Option<i64> {
    o.metadata.generation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_is_established_discovered_and_serves_namespaced_resources() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let crd = make_crd(&c, &cleanup, "Namespaced", false).await?;
    let stored = crd_api(&c).get(&format!("widgets.{}", crd.group)).await?;
    ensure!(
        stored.data["status"]["acceptedNames"]["kind"] == "Widget",
        "{}",
        stored.data["status"]
    );
    ensure!(stored.data["status"]["storedVersions"] == json!(["v1"]));
    let groups = get_json(&c, "/apis").await?;
    let listed = groups["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == crd.group.as_str())
        .cloned()
        .context("the group is not in /apis")?;
    ensure!(listed["preferredVersion"]["version"] == "v1", "{listed}");
    let group_doc = get_json(&c, &format!("/apis/{}", crd.group)).await?;
    ensure!(group_doc["kind"] == "APIGroup", "{group_doc}");

    let ns = c.namespace("crd").await?;
    let api = crd.api(&c, &ns.name);
    let created = api
        .create(
            &PostParams::default(),
            &crd.object("one", json!({"size": 1}))?,
        )
        .await?;
    ensure!(created.metadata.namespace.as_deref() == Some(ns.name.as_str()));
    ensure!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    ensure!(generation(&created) == Some(1), "{:?}", created.metadata);
    ensure!(created.data["spec"]["size"] == 1);
    let again = api
        .create(&PostParams::default(), &crd.object("one", json!({}))?)
        .await;
    let status = api_error(again)?;
    ensure!(
        status.code == 409 && status.reason == "AlreadyExists",
        "{status:?}"
    );
    api.create(
        &PostParams::default(),
        &crd.object("two", json!({"size": 2}))?,
    )
    .await?;
    let list = api.list(&ListParams::default()).await?;
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    ensure!(names == ["one", "two"], "{names:?}");
    let all: Api<DynamicObject> = Api::all_with(c.client.clone(), &crd.resource);
    ensure!(all.list(&ListParams::default()).await?.items.len() == 2);
    let got = api.get("one").await?;
    ensure!(got.metadata.uid == created.metadata.uid);
    api.delete("two", &DeleteParams::default()).await?;
    let gone = api_error(api.get("two").await)?;
    ensure!(gone.code == 404, "{gone:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_generation_counts_spec_changes_only() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let crd = make_crd(&c, &cleanup, "Namespaced", true).await?;
    let ns = c.namespace("gen").await?;
    let api = crd.api(&c, &ns.name);
    api.create(
        &PostParams::default(),
        &crd.object("w", json!({"size": 1}))?,
    )
    .await?;
    let merged = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await?;
    ensure!(generation(&merged) == Some(2), "{:?}", merged.metadata);
    let labelled = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await?;
    ensure!(generation(&labelled) == Some(2), "{:?}", labelled.metadata);
    ensure!(labelled.metadata.resource_version != merged.metadata.resource_version);
    let json_patched = json_patch(
        &c,
        &format!("/apis/{}/v1/namespaces/{}/widgets/w", crd.group, ns.name),
        json!([{"op": "replace", "path": "/spec/size", "value": 3}]),
    )
    .await?;
    ensure!(
        json_patched["metadata"]["generation"] == 3,
        "{json_patched}"
    );
    let applied = api
        .patch(
            "w",
            &PatchParams::apply("contract-test").force(),
            &Patch::Apply(json!({
                "apiVersion": format!("{}/v1", crd.group), "kind": "Widget",
                "metadata": {"name": "w"}, "spec": {"size": 4},
            })),
        )
        .await?;
    ensure!(applied.data["spec"]["size"] == 4 && generation(&applied) == Some(4));
    let status = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await?;
    ensure!(generation(&status) == Some(4), "{:?}", status.metadata);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_subresource_changes_only_status() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let crd = make_crd(&c, &cleanup, "Namespaced", true).await?;
    let ns = c.namespace("status").await?;
    let api = crd.api(&c, &ns.name);
    let mut with_status = crd.object("s", json!({"size": 1}))?;
    with_status.data["status"] = json!({"phase": "Forged"});
    let created = api.create(&PostParams::default(), &with_status).await?;
    ensure!(
        created.data.get("status").is_none(),
        "status kept on create: {}",
        created.data
    );
    let patched = api
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"size": 9}})),
        )
        .await?;
    ensure!(
        patched.data["status"]["phase"] == "Ready",
        "{}",
        patched.data
    );
    ensure!(
        patched.data["spec"]["size"] == 1,
        "spec changed through status: {}",
        patched.data
    );
    // On the main resource, status is ignored.
    let main = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Forged"}, "spec": {"size": 2}})),
        )
        .await?;
    ensure!(main.data["status"]["phase"] == "Ready", "{}", main.data);
    ensure!(main.data["spec"]["size"] == 2);
    // PUT on status with the current resourceVersion; a stale one is a conflict.
    let mut current = api.get_status("s").await?;
    current.data["status"] = json!({"phase": "Replaced"});
    let replaced = api
        .replace_status("s", &PostParams::default(), &current)
        .await?;
    ensure!(replaced.data["status"]["phase"] == "Replaced");
    let stale = api
        .replace_status("s", &PostParams::default(), &current)
        .await;
    let status = api_error(stale)?;
    ensure!(
        status.code == 409 && status.reason == "Conflict",
        "{status:?}"
    );
    // Custom resources take no strategic merge patch and no unconditional update.
    let smp = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 3}})),
        )
        .await;
    let status = api_error(smp)?;
    ensure!(status.code == 415, "{status:?}");
    let mut unconditional = api.get("s").await?;
    unconditional.metadata.resource_version = None;
    let put = api
        .replace("s", &PostParams::default(), &unconditional)
        .await;
    let status = api_error(put)?;
    ensure!(
        status.code == 422 && status.reason == "Invalid",
        "{status:?}"
    );
    ensure!(
        status.message.contains("metadata.resourceVersion"),
        "{}",
        status.message
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scoped_custom_resources_have_no_namespace() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let crd = make_crd(&c, &cleanup, "Cluster", false).await?;
    let api = crd.api(&c, "");
    let created = api
        .create(&PostParams::default(), &crd.object("global", json!({}))?)
        .await?;
    ensure!(
        created.metadata.namespace.is_none(),
        "{:?}",
        created.metadata
    );
    let namespaced = get_json(
        &c,
        &format!("/apis/{}/v1/namespaces/default/{}", crd.group, crd.plural),
    )
    .await;
    ensure!(
        namespaced.is_err(),
        "a cluster-scoped type served in a namespace"
    );
    // Deleting the CRD deletes its resources.
    crd_api(&c)
        .delete(&format!("widgets.{}", crd.group), &DeleteParams::default())
        .await?;
    until("the resource type is gone", || async {
        let gone = api.get("global").await;
        ensure!(gone.is_err(), "still served: {gone:?}");
        Ok(())
    })
    .await?;
    Ok(())
}

/// The next event of a watch, or a failure when none comes within [`EVENT_WAIT`].
async fn next_event<K, S>(stream: &mut S) -> Result<WatchEvent<K>>
where
    S: Stream<Item = kube::Result<WatchEvent<K>>> + Unpin,
{
    loop {
        match tokio::time::timeout(EVENT_WAIT, stream.next()).await {
            Err(_) => bail!("no watch event within {EVENT_WAIT:?}"),
            Ok(None) => bail!("the watch ended"),
            Ok(Some(Ok(WatchEvent::Bookmark(_)))) => continue,
            Ok(Some(event)) => return Ok(event?),
        }
    }
}

fn describe<K: kube::Resource>(e: &WatchEvent<K>) -> (String, String) {
    match e {
        WatchEvent::Added(o) => ("ADDED".into(), o.meta().name.clone().unwrap_or_default()),
        WatchEvent::Modified(o) => ("MODIFIED".into(), o.meta().name.clone().unwrap_or_default()),
        WatchEvent::Deleted(o) => ("DELETED".into(), o.meta().name.clone().unwrap_or_default()),
        WatchEvent::Bookmark(_) => ("BOOKMARK".into(), String::new()),
        WatchEvent::Error(s) => ("ERROR".into(), s.code.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_list_resource_version_sees_each_change() -> Result<()> {
    let c = Cluster::connect().await?;
    let ns = c.namespace("watch").await?;
    let api: Api<Secret> = Api::namespaced(c.client.clone(), &ns.name);
    let before = api.list(&ListParams::default()).await?;
    let rv = before.metadata.resource_version.clone().unwrap_or_default();
    let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
    c.secret(&ns.name, "w1").await?;
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await?;
    api.delete("w1", &DeleteParams::default()).await?;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next_event(&mut stream).await?));
    }
    let want: Vec<(String, String)> = ["ADDED", "MODIFIED", "DELETED"]
        .iter()
        .map(|k| (k.to_string(), "w1".to_string()))
        .collect();
    ensure!(seen == want, "{seen:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_zero_starts_with_the_current_objects_and_honours_selectors() -> Result<()> {
    let c = Cluster::connect().await?;
    let ns = c.namespace("watch0").await?;
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &ns.name);
    for (name, team) in [("a", "red"), ("b", "blue")] {
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": name, "labels": {"team": team}}}))?,
        )
        .await?;
    }
    let mut stream = api
        .watch(&WatchParams::default().labels("team=red"), "0")
        .await?
        .boxed();
    let first = describe(&next_event(&mut stream).await?);
    ensure!(first == ("ADDED".into(), "a".into()), "{first:?}");
    api.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "c", "labels": {"team": "blue"}}}))?,
    )
    .await?;
    api.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "d", "labels": {"team": "red"}}}))?,
    )
    .await?;
    let next = describe(&next_event(&mut stream).await?);
    ensure!(next == ("ADDED".into(), "d".into()), "{next:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_custom_resources_sees_status_updates_and_finalized_deletion() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let crd = make_crd(&c, &cleanup, "Namespaced", true).await?;
    let ns = c.namespace("crwatch").await?;
    let api = crd.api(&c, &ns.name);
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
    let mut w = crd.object("w", json!({}))?;
    w.metadata.finalizers = Some(vec!["tokend.test/hold".into()]);
    api.create(&PostParams::default(), &w).await?;
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"ready": true}})),
    )
    .await?;
    api.delete("w", &DeleteParams::default()).await?;
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = next_event(&mut stream).await?;
        if let WatchEvent::Modified(o) = &event {
            seen.push((
                "MODIFIED".to_string(),
                format!(
                    "ready={} deleting={}",
                    o.data["status"]["ready"],
                    o.metadata.deletion_timestamp.is_some()
                ),
            ));
        } else {
            seen.push(describe(&event));
        }
    }
    let want = vec![
        ("ADDED".to_string(), "w".to_string()),
        ("MODIFIED".into(), "ready=true deleting=false".into()),
        ("MODIFIED".into(), "ready=true deleting=true".into()),
        ("DELETED".into(), "w".into()),
    ];
    ensure!(seen == want, "{seen:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_too_old_resource_version_is_410_expired() -> Result<()> {
    if common::skip_unless_emulator(
        "a_watch_from_a_too_old_resource_version_is_410_expired",
        "a real server answers 410 only for versions compacted away or older than its watch \
         cache's window, which a young test control plane may not have (it then waits for events)",
    ) {
        return Ok(());
    }
    let c = Cluster::connect().await?;
    let ns = c.namespace("old").await?;
    let api: Api<Secret> = Api::namespaced(c.client.clone(), &ns.name);
    let result = api.watch(&WatchParams::default(), "1").await;
    let status = match result {
        Err(kube::Error::Api(status)) => *status,
        Err(e) => bail!("{e}"),
        Ok(stream) => {
            let mut stream = stream.boxed();
            match next_event(&mut stream).await {
                Ok(WatchEvent::Error(status)) => *status,
                other => bail!("expected an ERROR event, got {other:?}"),
            }
        }
    };
    ensure!(status.code == 410, "{status:?}");
    ensure!(
        status.message.contains("too old resource version"),
        "{status:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_after_timeout_seconds() -> Result<()> {
    let c = Cluster::connect().await?;
    let ns = c.namespace("wtimeout").await?;
    let api: Api<Secret> = Api::namespaced(c.client.clone(), &ns.name);
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await?
        .boxed();
    loop {
        match tokio::time::timeout(EVENT_WAIT, stream.next()).await {
            Err(_) => bail!("the watch did not end"),
            Ok(None) => return Ok(()),
            Ok(Some(Ok(WatchEvent::Bookmark(_)))) => continue,
            Ok(Some(other)) => bail!("unexpected event {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion_until_the_last_is_removed() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let crd = make_crd(&c, &cleanup, "Namespaced", true).await?;
    let ns = c.namespace("fin").await?;
    let widgets = crd.api(&c, &ns.name);
    let mut w = crd.object("held", json!({}))?;
    w.metadata.finalizers = Some(vec!["tokend.test/a".into(), "tokend.test/b".into()]);
    widgets.create(&PostParams::default(), &w).await?;
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), &ns.name);
    secrets
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "held", "finalizers": ["tokend.test/a"]}}))?,
        )
        .await?;

    widgets.delete("held", &DeleteParams::default()).await?;
    secrets.delete("held", &DeleteParams::default()).await?;
    let pending = widgets.get("held").await?;
    ensure!(pending.metadata.deletion_timestamp.is_some());
    ensure!(
        pending.metadata.deletion_grace_period_seconds == Some(0),
        "{:?}",
        pending.metadata
    );
    ensure!(
        secrets
            .get("held")
            .await?
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let added = json_patch(
        &c,
        &format!("/apis/{}/v1/namespaces/{}/widgets/held", crd.group, ns.name),
        json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "tokend.test/new"}]),
    )
    .await;
    let status = api_error(added)?;
    ensure!(status.code == 422, "{status:?}");
    ensure!(
        status.message.contains("no new finalizers can be added"),
        "{}",
        status.message
    );

    let one_left = widgets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["tokend.test/b"]}})),
        )
        .await?;
    ensure!(one_left.metadata.deletion_timestamp.is_some());
    widgets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    secrets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    until("both objects are gone", || async {
        ensure!(api_error(widgets.get("held").await)?.code == 404);
        ensure!(api_error(secrets.get("held").await)?.code == 404);
        Ok(())
    })
    .await?;
    Ok(())
}

/// The namespace controller empties a deleted namespace, but an object with finalizers stays
/// (marked deleted) and so does the namespace (Terminating, refusing new content) until the last
/// finalizer is removed: what leaves namespaces stuck when nobody removes a finalizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_stays_terminating_while_its_content_has_finalizers() -> Result<()> {
    let c = Cluster::connect().await?;
    let ns = c.namespace("term").await?;
    let maps: Api<ConfigMap> = Api::namespaced(c.client.clone(), &ns.name);
    let held = json!({"metadata": {"name": "held", "finalizers": ["tokend.test/hold"]}});
    maps.create(&PostParams::default(), &obj(held)?).await?;
    maps.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "free"}}))?,
    )
    .await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.client.clone());
    namespaces
        .delete(&ns.name, &DeleteParams::default())
        .await?;

    until_collected(
        "the namespace is emptied but for the held object",
        || async {
            ensure!(api_error(maps.get("free").await)?.code == 404);
            ensure!(
                maps.get("held")
                    .await?
                    .metadata
                    .deletion_timestamp
                    .is_some()
            );
            let terminating = namespaces.get(&ns.name).await?;
            ensure!(terminating.metadata.deletion_timestamp.is_some());
            let phase = terminating.status.and_then(|s| s.phase);
            ensure!(phase.as_deref() == Some("Terminating"), "{phase:?}");
            Ok(())
        },
    )
    .await?;
    until("new content is refused", || async {
        let late = json!({"metadata": {"name": unique_name("late")}});
        let status = api_error(maps.create(&PostParams::default(), &obj(late)?).await)?;
        ensure!(status.code == 403, "{status:?}");
        ensure!(
            status.message.contains("because it is being terminated"),
            "{}",
            status.message
        );
        Ok(())
    })
    .await?;

    maps.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    until_collected("the namespace goes with its last object", || async {
        ensure!(api_error(namespaces.get(&ns.name).await)?.code == 404);
        Ok(())
    })
    .await?;
    Ok(())
}

fn owner_ref(o: &DynamicObject, api_version: &str, kind: &str) -> Value {
    json!([{
        "apiVersion": api_version, "kind": kind,
        "name": o.metadata.name, "uid": o.metadata.uid,
        "controller": true, "blockOwnerDeletion": true,
    }])
}

/// A Widget owning a Secret and a ServiceAccount, as tokend's controller makes them.
async fn owned_pair(
    c: &Cluster,
    crd: &TestCrd,
    ns: &str,
    name: &str,
) -> Result<(DynamicObject, Api<Secret>, Api<ServiceAccount>)> {
    let owner = crd
        .api(c, ns)
        .create(&PostParams::default(), &crd.object(name, json!({}))?)
        .await?;
    let refs = owner_ref(&owner, &format!("{}/v1", crd.group), &crd.kind);
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": name, "ownerReferences": refs}}))?,
        )
        .await?;
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), ns);
    sas.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": name, "ownerReferences": refs}}))?,
    )
    .await?;
    Ok((owner, secrets, sas))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_owner_deletes_its_dependents() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let crd = make_crd(&c, &cleanup, "Namespaced", true).await?;
    let ns = c.namespace("gc").await?;
    let (_, secrets, sas) = owned_pair(&c, &crd, &ns.name, "owner").await?;
    // A dependent with a second, living owner stays.
    let other = c.service_account(&ns.name, "other-owner").await?;
    let owner = crd.api(&c, &ns.name).get("owner").await?;
    let mut refs = owner_ref(&owner, &format!("{}/v1", crd.group), &crd.kind);
    if let Some(list) = refs.as_array_mut() {
        list.push(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "name": "other-owner", "uid": other.metadata.uid}));
    }
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), &ns.name);
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "shared", "ownerReferences": refs}}))?,
    )
    .await?;

    crd.api(&c, &ns.name)
        .delete("owner", &DeleteParams::default())
        .await?;
    until_collected("the dependents are deleted", || async {
        ensure!(api_error(secrets.get("owner").await)?.code == 404);
        ensure!(api_error(sas.get("owner").await)?.code == 404);
        Ok(())
    })
    .await?;
    ensure!(
        cms.get("shared").await.is_ok(),
        "a dependent with a living owner was deleted"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_and_foreground_propagation() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let crd = make_crd(&c, &cleanup, "Namespaced", true).await?;
    let ns = c.namespace("prop").await?;
    let widgets = crd.api(&c, &ns.name);

    let (_, secrets, _) = owned_pair(&c, &crd, &ns.name, "orphaner").await?;
    widgets.delete("orphaner", &DeleteParams::orphan()).await?;
    until_collected("the owner is gone and the dependent orphaned", || async {
        ensure!(api_error(widgets.get("orphaner").await)?.code == 404);
        let s = secrets.get("orphaner").await?;
        ensure!(
            s.metadata
                .owner_references
                .as_ref()
                .is_none_or(Vec::is_empty),
            "{:?}",
            s.metadata.owner_references
        );
        Ok(())
    })
    .await?;

    let (_, secrets, sas) = owned_pair(&c, &crd, &ns.name, "foreground").await?;
    // A finalizer on one dependent keeps the owner (deleting, in the foreground) until it goes.
    sas.patch(
        "foreground",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["tokend.test/hold"]}})),
    )
    .await?;
    widgets
        .delete("foreground", &DeleteParams::foreground())
        .await?;
    until_collected("the unheld dependent goes first", || async {
        ensure!(api_error(secrets.get("foreground").await)?.code == 404);
        let owner = widgets.get("foreground").await?;
        ensure!(owner.metadata.deletion_timestamp.is_some());
        ensure!(
            owner
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == "foregroundDeletion"),
            "{:?}",
            owner.metadata.finalizers
        );
        Ok(())
    })
    .await?;
    sas.patch(
        "foreground",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    until_collected("the owner follows its last dependent", || async {
        ensure!(api_error(sas.get("foreground").await)?.code == 404);
        ensure!(api_error(widgets.get("foreground").await)?.code == 404);
        Ok(())
    })
    .await?;
    Ok(())
}

/// A tiny HTTPS AdmissionReview server on loopback: it records each request, refuses objects
/// labelled `deny: "yes"` and labels every other object `mutated: "yes"` with a JSONPatch.
struct Webhook {
    url: String,
    ca_bundle: String,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn review_answer(review: &Value) -> Value {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let labels = &request["object"]["metadata"]["labels"];
    if labels["deny"] == "yes" {
        return json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": "denied by the test webhook"}}});
    }
    let patch = if labels.is_object() {
        json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}])
    } else {
        json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": true, "patchType": "JSONPatch",
            "patch": STANDARD.encode(patch.to_string())}})
}

async fn start_webhook() -> Result<Webhook> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&key, &issuer)?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let recorded = seen.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let recorded = recorded.clone();
        async move {
            let review: Value = serde_json::from_slice(&body).unwrap_or_default();
            let answer = review_answer(&review);
            recorded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(review);
            axum::Json(answer)
        }
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    Ok(Webhook {
        url: format!("https://{addr}/mutate"),
        ca_bundle: STANDARD.encode(ca_cert.pem()),
        seen,
        task,
    })
}

/// A webhook configuration for ConfigMaps in one namespace only (the real cluster is shared).
fn webhook_config(
    kind: &str,
    name: &str,
    ns: &str,
    url: &str,
    ca_bundle: &str,
    failure_policy: &str,
    object_selector: Value,
) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [{
            "name": format!("{name}.tokend.test"),
            "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["configmaps"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "objectSelector": object_selector,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": failure_policy,
            "timeoutSeconds": 5,
        }],
    })
}

async fn register(
    c: &Cluster,
    cleanup: &ClusterObjects,
    plural: &str,
    config: Value,
) -> Result<Value> {
    let name = config["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let path = format!("/apis/admissionregistration.k8s.io/v1/{plural}");
    let req = http::Request::post(path.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&config)?)?;
    let stored: Value = c.client.request(req).await?;
    cleanup.add(format!("{path}/{name}"));
    Ok(stored)
}

/// A client for a new ServiceAccount allowed to manage ConfigMaps in `ns`, and its uid.
async fn configmap_editor(c: &Cluster, ns: &str) -> Result<(kube::Client, String)> {
    let sa = c.service_account(ns, "editor").await?;
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(c.client.clone(), ns);
    roles
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "cm-editor"}, "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]}))?,
        )
        .await?;
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(c.client.clone(), ns);
    bindings
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "cm-editor"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-editor"},
                "subjects": [{"kind": "ServiceAccount", "name": "editor", "namespace": ns}]}))?,
        )
        .await?;
    let token = c
        .token_request(ns, "editor", json!({"expirationSeconds": 3600}))
        .await?;
    let client = c.client_with_token(&token.status.and_then(|s| s.token).unwrap_or_default())?;
    Ok((client, sa.metadata.uid.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutating_webhook_sees_the_caller_patches_and_refuses() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let ns = c.namespace("hook").await?;
    let hook = start_webhook().await?;
    let name = unique_name("mutate");
    let stored = register(
        &c,
        &cleanup,
        "mutatingwebhookconfigurations",
        webhook_config(
            "MutatingWebhookConfiguration",
            &name,
            &ns.name,
            &hook.url,
            &hook.ca_bundle,
            "Fail",
            json!({}),
        ),
    )
    .await?;
    ensure!(
        stored["webhooks"][0]["matchPolicy"] == "Equivalent"
            && stored["webhooks"][0]["reinvocationPolicy"] == "Never",
        "defaults: {stored}"
    );
    let (editor, editor_uid) = configmap_editor(&c, &ns.name).await?;
    let cms: Api<ConfigMap> = Api::namespaced(editor, &ns.name);
    // A real server starts calling a new webhook after its configuration reaches its cache.
    let created = eventually_some("the webhook mutates a create", || async {
        let name = unique_name("cm");
        let cm = cms
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": name}}))?,
            )
            .await?;
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        Ok((labels.get("mutated").map(String::as_str) == Some("yes")).then_some(cm))
    })
    .await?;
    let cm_name = created.metadata.name.clone().unwrap_or_default();
    let create_review = hook
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .find(|r| r["request"]["operation"] == "CREATE")
        .cloned()
        .context("no CREATE review recorded")?;
    let request = &create_review["request"];
    ensure!(
        request["userInfo"]["username"] == format!("system:serviceaccount:{}:editor", ns.name),
        "{}",
        request["userInfo"]
    );
    ensure!(
        request["userInfo"]["uid"] == editor_uid.as_str(),
        "{}",
        request["userInfo"]
    );
    ensure!(
        request["userInfo"]["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "system:serviceaccounts")),
        "{}",
        request["userInfo"]
    );
    ensure!(
        request["kind"] == json!({"group": "", "version": "v1", "kind": "ConfigMap"})
            && request["resource"]
                == json!({"group": "", "version": "v1", "resource": "configmaps"})
            && request["namespace"] == ns.name.as_str()
            && request["dryRun"] == false
            && request["oldObject"].is_null(),
        "{request}"
    );

    cms.patch(
        &cm_name,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await?;
    let update = hook
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .last()
        .cloned()
        .context("no review recorded")?;
    ensure!(update["request"]["operation"] == "UPDATE", "{update}");
    ensure!(
        update["request"]["oldObject"]["metadata"]["name"] == cm_name.as_str()
            && update["request"]["object"]["data"]["k"] == "v",
        "{update}"
    );

    let denied = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "denied", "labels": {"deny": "yes"}}}))?,
        )
        .await;
    let status = api_error(denied)?;
    ensure!(status.code == 403, "{status:?}");
    ensure!(
        status.message
            == format!(
                "admission webhook \"{name}.tokend.test\" denied the request: denied by the test webhook"
            ),
        "{}",
        status.message
    );
    ensure!(api_error(cms.get("denied").await)?.code == 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_failures_follow_the_failure_policy() -> Result<()> {
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let ns = c.namespace("hookfail").await?;
    // A port nothing listens on: bind one, then close it.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("https://{}/dead", l.local_addr()?)
    };
    let hook = start_webhook().await?; // only for a valid caBundle
    for (policy, label) in [("Fail", "fail"), ("Ignore", "ignore")] {
        register(
            &c,
            &cleanup,
            "validatingwebhookconfigurations",
            webhook_config(
                "ValidatingWebhookConfiguration",
                &unique_name(label),
                &ns.name,
                &dead,
                &hook.ca_bundle,
                policy,
                json!({"matchLabels": {"policy": label}}),
            ),
        )
        .await?;
    }
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), &ns.name);
    let status = eventually_some("a failing webhook with policy Fail refuses", || async {
        let name = unique_name("f");
        let result = cms
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": name, "labels": {"policy": "fail"}}}))?,
            )
            .await;
        Ok(match result {
            Err(kube::Error::Api(status)) => Some(*status),
            _ => None,
        })
    })
    .await?;
    ensure!(
        status.code == 500 && status.message.contains("failed calling webhook"),
        "{status:?}"
    );
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "ignored", "labels": {"policy": "ignore"}}}))?,
    )
    .await?;
    Ok(())
}

fn kubectl(bin: &Path, kubeconfig: &Path, cache: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .with_context(|| format!("running kubectl {args:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "kubectl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_and_gets_custom_resources() -> Result<()> {
    let Some(bin) = common::find_on_path("kubectl") else {
        skip(
            "kubectl_applies_and_gets_custom_resources",
            SkipKind::MissingTool,
            "kubectl is not on PATH",
        );
        return Ok(());
    };
    let c = Cluster::connect().await?;
    let cleanup = ClusterObjects::new(&c);
    let ns = c.namespace("kubectl-crd").await?;
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");
    let run = |args: &[&str]| kubectl(&bin, &c.admin_kubeconfig, &cache, args);
    let group = format!("{}.tokend.test", unique_name("kc"));
    let mut crd = crd_body(&group, "Namespaced", true);
    crd["spec"]["names"]["shortNames"] = json!(["wdg"]);
    let crd_file = dir.path().join("crd.yaml");
    std::fs::write(&crd_file, serde_yaml::to_string(&crd)?)?;
    let crd_name = format!("widgets.{group}");
    tokio::task::block_in_place(|| run(&["apply", "-f", &crd_file.to_string_lossy()]))?;
    cleanup.add(format!(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}"
    ));
    tokio::task::block_in_place(|| {
        run(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd_name}"),
        ])
    })?;
    let cr = |size: u32| -> Result<String> {
        Ok(serde_yaml::to_string(&json!({
            "apiVersion": format!("{group}/v1"), "kind": "Widget",
            "metadata": {"name": "sample", "namespace": ns.name},
            "spec": {"duration": "1h", "size": size},
        }))?)
    };
    let cr_file = dir.path().join("cr.yaml");
    std::fs::write(&cr_file, cr(1)?)?;
    let resource = format!("widgets.{group}");
    // kubectl's discovery may not see a just-established group at once on a real server.
    until("kubectl apply creates the resource", || async {
        tokio::task::block_in_place(|| run(&["apply", "-f", &cr_file.to_string_lossy()]))?;
        Ok(())
    })
    .await?;
    let listed = tokio::task::block_in_place(|| run(&["get", &resource, "-n", &ns.name]))?;
    ensure!(
        listed.contains("NAME") && listed.contains("sample"),
        "{listed}"
    );
    std::fs::write(&cr_file, cr(2)?)?;
    let applied =
        tokio::task::block_in_place(|| run(&["apply", "-f", &cr_file.to_string_lossy()]))?;
    ensure!(applied.contains("configured"), "{applied}");
    let size = tokio::task::block_in_place(|| {
        run(&[
            "get",
            "wdg",
            "sample",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.spec.size}",
        ])
    })?;
    ensure!(size == "2", "{size}");
    let deleted =
        tokio::task::block_in_place(|| run(&["delete", "-f", &cr_file.to_string_lossy()]))?;
    ensure!(deleted.contains("deleted"), "{deleted}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_ends_a_watch_that_falls_too_far_behind() -> Result<()> {
    if common::skip_unless_emulator(
        "the_emulator_ends_a_watch_that_falls_too_far_behind",
        "the buffer bound is the emulator's own; a real server's watch cache sizes differ",
    ) {
        return Ok(());
    }
    let c = Cluster::connect().await?;
    let ns = c.namespace("slow").await?;
    let rv = Api::<ConfigMap>::namespaced(c.client.clone(), &ns.name)
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let path = format!(
        "/api/v1/namespaces/{}/configmaps?watch=true&resourceVersion={rv}",
        ns.name
    );
    let reader = c
        .client
        .request_stream(http::Request::get(path.as_str()).body(Vec::new())?)
        .await?;
    let mut lines = Box::pin(futures::AsyncBufReadExt::lines(reader));
    // 64 KiB per object: the socket buffers fill long before the emulator's per-watch buffer
    // of 1024 changes, so the watch falls behind by more than that and is ended.
    let big = "x".repeat(64 * 1024);
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), &ns.name);
    for i in 0..1100 {
        let name = format!("cm-{i}");
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": name}, "data": {"big": big}}))?,
        )
        .await?;
        cms.delete(&name, &DeleteParams::default()).await?;
    }
    let mut added = 0;
    let mut last = Value::Null;
    while let Some(line) = tokio::time::timeout(EVENT_WAIT, lines.next()).await? {
        last = serde_json::from_str(&line?)?;
        if last["type"] == "ADDED" {
            added += 1;
        }
    }
    ensure!(
        last["type"] == "ERROR",
        "the watch ended with {}",
        last["type"]
    );
    ensure!(last["object"]["code"] == 410, "{last}");
    ensure!(added < 1100, "all {added} events were delivered");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_bounds_concurrent_watches() -> Result<()> {
    if common::skip_unless_emulator(
        "the_emulator_bounds_concurrent_watches",
        "the limit is the emulator's own; a real server bounds watches differently",
    ) {
        return Ok(());
    }
    let c = Cluster::connect().await?;
    // kube retries a 429 by default; this test wants to see it.
    let mut config = c.config.clone();
    config.default_retry = false;
    let api: Api<Secret> = Api::namespaced(kube::Client::try_from(config)?, "default");
    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..300 {
        match api.watch(&WatchParams::default(), "0").await {
            Ok(s) => open.push(s.boxed()),
            Err(kube::Error::Api(status)) => {
                refused = Some(*status);
                break;
            }
            Err(e) => bail!("{e}"),
        }
    }
    let status = refused.context("300 watches were all accepted")?;
    ensure!(status.code == 429, "{status:?}");
    ensure!(open.len() == 256, "{} watches were accepted", open.len());
    open.clear();
    until("a watch is accepted again", || async {
        drop(api.watch(&WatchParams::default(), "0").await?);
        Ok(())
    })
    .await?;
    Ok(())
}
