//! Background load on an API server, so the real-cluster stage of the suite runs against a busy
//! control plane (as CI machines and shared clusters are) rather than an idle one: workers keep
//! creating, listing and deleting ConfigMaps in a namespace of their own, and one keeps
//! creating and deleting whole namespaces (work for kube-controller-manager's namespace
//! controller and garbage collector). Everything it makes is labelled, and deleted (and waited
//! for) when it stops, so the suite's leak check sees nothing of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

/// Label on every namespace the load makes; its value names the run.
pub const LOAD_LABEL: &str = "tokend-test/load";

/// Workers churning ConfigMaps in the load's own namespace.
const CHURN_WORKERS: usize = 3;
/// ConfigMaps each churn round creates, lists and deletes.
const OBJECTS_PER_ROUND: usize = 10;
/// Pause between a worker's rounds.
const ROUND_PAUSE: Duration = Duration::from_millis(150);
/// Pause between namespaces created and deleted.
const NAMESPACE_PAUSE: Duration = Duration::from_secs(2);
/// How long the namespaces the load made may take to go once it stops.
const CLEANUP_WITHIN: Duration = Duration::from_secs(180);

/// What a load run did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// API calls that succeeded.
    pub calls: u64,
    /// API calls that failed (a busy server may refuse some; counted, not fatal).
    pub failures: u64,
    /// Namespaces created and deleted.
    pub namespaces: u64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    failures: AtomicU64,
    namespaces: AtomicU64,
}

impl Counters {
    fn count<T, E: std::fmt::Display>(&self, what: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                Some(value)
            }
            Err(e) => {
                if self.failures.fetch_add(1, Ordering::Relaxed) < 10 {
                    eprintln!("load: {what} failed: {e}");
                }
                None
            }
        }
    }
}

/// Loads the API server `client` reaches until `stop` resolves, then deletes what it made and
/// waits until it is gone.
pub async fn run(client: Client, stop: impl Future<Output = ()>) -> Result<LoadReport> {
    let run_id = crate::unique_name("load");
    let counters = Arc::new(Counters::default());
    let stopping = Arc::new(AtomicBool::new(false));
    let home = run_id.clone();
    create_namespace(&client, &home, &run_id).await?;

    let mut workers = Vec::new();
    for worker in 0..CHURN_WORKERS {
        workers.push(tokio::spawn(churn(
            Api::namespaced(client.clone(), &home),
            worker,
            counters.clone(),
            stopping.clone(),
        )));
    }
    workers.push(tokio::spawn(namespaces(
        client.clone(),
        run_id.clone(),
        counters.clone(),
        stopping.clone(),
    )));
    stop.await;
    stopping.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    cleanup(&client, &run_id).await?;
    Ok(LoadReport {
        calls: counters.calls.load(Ordering::Relaxed),
        failures: counters.failures.load(Ordering::Relaxed),
        namespaces: counters.namespaces.load(Ordering::Relaxed),
    })
}

async fn create_namespace(client: &Client, name: &str, run_id: &str) -> Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(LOAD_LABEL.to_owned(), run_id.to_owned())])),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}

/// Creates, lists (by label) and deletes ConfigMaps of 2 KiB, round after round.
async fn churn(
    api: Api<ConfigMap>,
    worker: usize,
    counters: Arc<Counters>,
    stopping: Arc<AtomicBool>,
) {
    let label = format!("worker={worker}");
    let mut round = 0u64;
    while !stopping.load(Ordering::Relaxed) {
        round += 1;
        let names: Vec<String> = (0..OBJECTS_PER_ROUND)
            .map(|i| format!("w{worker}-r{round}-{i}"))
            .collect();
        for name in &names {
            let object = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([("worker".to_owned(), worker.to_string())])),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([("filler".to_owned(), "x".repeat(2048))])),
                ..Default::default()
            };
            counters.count(
                "create ConfigMap",
                api.create(&PostParams::default(), &object).await,
            );
        }
        counters.count(
            "list ConfigMaps",
            api.list(&ListParams::default().labels(&label)).await,
        );
        for name in &names {
            counters.count(
                "delete ConfigMap",
                api.delete(name, &DeleteParams::default()).await,
            );
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}

/// Creates a namespace with a few objects in it and deletes it at once, over and over: the
/// namespace controller then empties it while the suite runs.
async fn namespaces(
    client: Client,
    run_id: String,
    counters: Arc<Counters>,
    stopping: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stopping.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("{run_id}-{n}");
        if counters
            .count(
                "create namespace",
                create_namespace(&client, &name, &run_id).await,
            )
            .is_some()
        {
            let meta = |object: &str| ObjectMeta {
                name: Some(object.into()),
                ..Default::default()
            };
            let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &name);
            for i in 0..3 {
                let object = ConfigMap {
                    metadata: meta(&format!("filler-{i}")),
                    ..Default::default()
                };
                counters.count(
                    "create ConfigMap",
                    configmaps.create(&PostParams::default(), &object).await,
                );
            }
            let secret = Secret {
                metadata: meta("filler"),
                ..Default::default()
            };
            counters.count(
                "create Secret",
                Api::<Secret>::namespaced(client.clone(), &name)
                    .create(&PostParams::default(), &secret)
                    .await,
            );
            let account = ServiceAccount {
                metadata: meta("filler"),
                ..Default::default()
            };
            counters.count(
                "create ServiceAccount",
                Api::<ServiceAccount>::namespaced(client.clone(), &name)
                    .create(&PostParams::default(), &account)
                    .await,
            );
            counters.count(
                "delete namespace",
                Api::<Namespace>::all(client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await,
            );
            counters.namespaces.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(NAMESPACE_PAUSE).await;
    }
}

/// Deletes every namespace of the run and waits until none is left, Terminating ones included.
async fn cleanup(client: &Client, run_id: &str) -> Result<()> {
    let namespaces = Api::<Namespace>::all(client.clone());
    let selector = ListParams::default().labels(&format!("{LOAD_LABEL}={run_id}"));
    let deadline = tokio::time::Instant::now() + CLEANUP_WITHIN;
    loop {
        let left = namespaces.list_metadata(&selector).await?;
        if left.items.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{} namespaces of the load still exist after {CLEANUP_WITHIN:?}",
                left.items.len()
            );
        }
        for namespace in left.items {
            if namespace.metadata.deletion_timestamp.is_none()
                && let Some(name) = namespace.metadata.name
            {
                namespaces.delete(&name, &DeleteParams::default()).await?;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
