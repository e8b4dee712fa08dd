//! The sweeper deletes records whose tokens expired past the grace period, and nothing else:
//! not live records, not Secrets that merely look like tokend's.

use tokend_test_support as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::eventually;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use tokend::config::AuthMode;
use tokend::server::ServerOptions;
use tokend::sweeper::{LEASE_NAME, SweeperOptions};

/// A Secret shaped like a tokend record, expiring at `expiration`.
fn record(ns: &str, name: &str, expiration: &str, type_: &str, managed: bool) -> Secret {
    let mut labels = BTreeMap::from([("tokend.io/service-account".to_owned(), "app".to_owned())]);
    if managed {
        labels.insert("app.kubernetes.io/managed-by".into(), "tokend".into());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "tokend.io/expiration-time".to_owned(),
                expiration.to_owned(),
            )])),
            ..Default::default()
        },
        type_: Some(type_.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn expired_records_are_swept_and_look_alikes_are_left_alone() {
    let lease_ns = common::unique_name("tokend-lease");
    let env = common::start_with(ServerOptions {
        auth: AuthMode::None,
        sweeper: Some(SweeperOptions {
            interval: Duration::from_millis(200),
            grace: Duration::ZERO,
            lease_namespace: lease_ns.clone(),
            identity: "test-replica".into(),
            ..SweeperOptions::default()
        }),
        ..ServerOptions::default()
    })
    .await;
    let ns = env.fresh_namespace().await;
    // The lease lives in a namespace of its own, made after tokend started, as in a fresh cluster.
    let lease_namespace = k8s_openapi::api::core::v1::Namespace {
        metadata: ObjectMeta {
            name: Some(lease_ns.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<k8s_openapi::api::core::v1::Namespace>::all(env.kube.clone())
        .create(&PostParams::default(), &lease_namespace)
        .await
        .expect("lease namespace");
    let secrets = Api::<Secret>::namespaced(env.kube.clone(), &ns);
    let past = "2020-01-01T00:00:00Z";
    let future = "2099-01-01T00:00:00Z";
    let kept = [
        // Forged: shaped like a record, never sealed by tokend.
        record(
            &ns,
            "tokend-aaaaaaaaaaaaaaab",
            past,
            "tokend.io/token-record",
            true,
        ),
        record(&ns, "tokend-aaaaaaaaaaaaaaac", past, "Opaque", true),
        record(
            &ns,
            "tokend-aaaaaaaaaaaaaaad",
            past,
            "tokend.io/token-record",
            false,
        ),
        record(&ns, "not-a-record", past, "tokend.io/token-record", true),
    ];
    for secret in &kept {
        secrets
            .create(&PostParams::default(), secret)
            .await
            .expect("create kept secret");
    }
    // A record tokend sealed, expired long ago: the one thing to sweep,
    let expired = common::record_of(&ns, "app", past);
    let expired_uid = common::write_sealed_record(&env, &expired).await;
    // next to a sealed live record whose expiry someone with only `patch secrets` back-dated:
    // the seal no longer verifies, so the sweeper does not believe the new expiry.
    let live = common::record_of(&ns, "app", future);
    common::write_sealed_record(&env, &live).await;
    let back_date =
        serde_json::json!({"metadata": {"annotations": {"tokend.io/expiration-time": past}}});
    secrets
        .patch(
            &live.token_id.secret_name(),
            &PatchParams::default(),
            &Patch::Merge(&back_date),
        )
        .await
        .expect("back-date the live record");
    assert!(!expired_uid.is_empty());

    eventually("the expired record is swept", || async {
        secrets
            .get_opt(&expired.token_id.secret_name())
            .await
            .expect("get")
            .is_none()
    })
    .await;
    // The pass that deleted it saw every other Secret in the same listing: forged records
    // (unsealed, whatever their expiry), look-alikes and the back-dated one all survive.
    for name in kept
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .chain([live.token_id.secret_name()])
    {
        assert!(
            secrets.get_opt(&name).await.expect("get").is_some(),
            "{name} must survive"
        );
    }
    // With deploy/'s RBAC the lease lives where tokend's account may hold one.
    let holder_ns = env.tokend_namespace.clone().unwrap_or(lease_ns.clone());
    let lease = Api::<Lease>::namespaced(env.kube.clone(), &holder_ns)
        .get(LEASE_NAME)
        .await
        .expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("test-replica")
    );
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(env.kube.clone())
        .delete(&lease_ns, &Default::default())
        .await;
}

#[tokio::test]
async fn only_one_replica_holds_the_sweeper_lease() {
    let lease_ns = common::unique_name("tokend-lease");
    let env = common::start().await;
    let namespace = k8s_openapi::api::core::v1::Namespace {
        metadata: ObjectMeta {
            name: Some(lease_ns.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(env.kube.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("lease namespace");
    let options = |identity: &str| SweeperOptions {
        interval: Duration::from_millis(100),
        grace: Duration::from_secs(3600),
        lease_namespace: lease_ns.clone(),
        identity: identity.into(),
        ..SweeperOptions::default()
    };
    let first = tokio::spawn(tokend::sweeper::run(env.kube.clone(), options("replica-a")));
    let leases = Api::<Lease>::namespaced(env.kube.clone(), &lease_ns);
    let holder = || async {
        leases
            .get_opt(LEASE_NAME)
            .await
            .expect("get")
            .and_then(|l| l.spec?.holder_identity)
    };
    eventually("replica-a takes the lease", || async {
        holder().await.as_deref() == Some("replica-a")
    })
    .await;
    let second = tokio::spawn(tokend::sweeper::run(env.kube.clone(), options("replica-b")));
    // replica-a keeps renewing; over several of replica-b's attempts, b never takes over.
    let renewed_at = |l: Option<Lease>| l.and_then(|l| l.spec?.renew_time).map(|t| t.0);
    for _ in 0..5 {
        let before = renewed_at(leases.get_opt(LEASE_NAME).await.expect("get"));
        eventually("replica-a renews the lease", || async {
            renewed_at(leases.get_opt(LEASE_NAME).await.expect("get")) > before
        })
        .await;
        assert_eq!(holder().await.as_deref(), Some("replica-a"));
    }
    // When replica-a stops, replica-b takes over once it has seen the lease unchanged for the
    // lease duration (15 s) itself.
    first.abort();
    common::eventually_within(
        "replica-b takes over an expired lease",
        Duration::from_secs(45),
        || async { Ok(holder().await.as_deref() == Some("replica-b")) },
    )
    .await
    .expect("replica-b takes over");
    second.abort();
    let _ = namespaces.delete(&lease_ns, &Default::default()).await;
}

/// Plays a replica whose clock is an hour off: it writes the sweeper Lease as its holder, with
/// renewTime `skew` from the true time, every 300 ms until `stop` is set.
async fn skewed_holder(
    leases: Api<Lease>,
    skew: k8s_openapi::jiff::SignedDuration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::Timestamp;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let renew_time = Timestamp::now().checked_add(skew).expect("a time");
        let spec = serde_json::json!({"spec": {
            "holderIdentity": "skewed-replica",
            "leaseDurationSeconds": 10,
            "renewTime": MicroTime(renew_time),
        }});
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                ..Default::default()
            },
            spec: serde_json::from_value(spec["spec"].clone()).expect("a LeaseSpec"),
        };
        match leases.get_opt(LEASE_NAME).await.expect("get") {
            None => {
                let _ = leases.create(&PostParams::default(), &lease).await;
            }
            Some(_) => {
                let _ = leases
                    .patch(LEASE_NAME, &PatchParams::default(), &Patch::Merge(&spec))
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_holder_with_a_skewed_clock_keeps_the_lease_while_it_renews_and_loses_it_when_it_stops() {
    let lease_ns = common::unique_name("tokend-lease");
    let env = common::start().await;
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(env.kube.clone());
    let namespace = k8s_openapi::api::core::v1::Namespace {
        metadata: ObjectMeta {
            name: Some(lease_ns.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("lease namespace");
    let leases = Api::<Lease>::namespaced(env.kube.clone(), &lease_ns);
    let holder = || async {
        leases
            .get_opt(LEASE_NAME)
            .await
            .expect("get")
            .and_then(|l| l.spec?.holder_identity)
    };

    // Given a holder whose clock is an hour behind, renewing its 10 s lease all the time
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let behind = tokio::spawn(skewed_holder(
        leases.clone(),
        k8s_openapi::jiff::SignedDuration::from_hours(-1),
        stop.clone(),
    ));
    eventually("the skewed replica holds the lease", || async {
        holder().await.as_deref() == Some("skewed-replica")
    })
    .await;
    // When tokend's sweeper starts beside it
    let tokend = tokio::spawn(tokend::sweeper::run(
        env.kube.clone(),
        SweeperOptions {
            interval: Duration::from_millis(200),
            grace: Duration::from_secs(3600),
            lease_namespace: lease_ns.clone(),
            identity: "tokend-replica".into(),
            ..SweeperOptions::default()
        },
    ));
    // Then over several lease durations it does not take the lease from a holder that renews,
    // however old that holder's renewTime looks by tokend's clock
    let watched = tokio::time::Instant::now() + Duration::from_secs(12);
    while tokio::time::Instant::now() < watched {
        assert_eq!(
            holder().await.as_deref(),
            Some("skewed-replica"),
            "tokend took the lease from a holder that kept renewing it"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    behind.await.expect("the skewed holder stops");

    // And when a holder whose clock is an hour ahead stops renewing, tokend takes over once it
    // has itself seen the lease unchanged for its duration (not an hour later).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ahead = tokio::spawn(skewed_holder(
        leases.clone(),
        k8s_openapi::jiff::SignedDuration::from_hours(1),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ahead.await.expect("the skewed holder stops");
    common::eventually_within(
        "tokend takes over the lease its holder stopped renewing",
        Duration::from_secs(45),
        || async { Ok(holder().await.as_deref() == Some("tokend-replica")) },
    )
    .await
    .expect("tokend takes over");
    tokend.abort();
    let _ = namespaces.delete(&lease_ns, &Default::default()).await;
}
