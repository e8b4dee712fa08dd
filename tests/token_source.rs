//! tokend-client's TokenSource against a running tokend: it renews (seen twice, with the
//! renewal point set early in a 10-minute lifetime), its kube::Client lists namespaces with the
//! current token, and shutdown revokes the last token.

use tokend_test_support as common;

use std::time::{Duration, SystemTime};

use common::{TestEnv, assert_code, eventually, issue};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokend_client::{RenewalPolicy, TokenSource, v1};
use tonic::Code;

async fn authenticates(env: &TestEnv, token: &str) -> bool {
    env.client()
        .await
        .validate_token(v1::ValidateTokenRequest {
            token: token.into(),
            audiences: vec![],
        })
        .await
        .expect("ValidateToken")
        .authenticated
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_renews_and_its_kube_client_lists_namespaces() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    env.forget_cluster_binding_later(&format!("tokend:{ns}:lister:view"));
    let request = v1::IssueTokenRequest {
        duration: "10m".into(),
        cluster_role: "view".into(),
        binding_scope: v1::BindingScope::Cluster.into(),
        ..issue(&ns, "lister")
    };
    // Renew 0.3% into the 10-minute lifetime (about 2 s), so renewals are seen in a test.
    let policy = RenewalPolicy {
        fraction: 0.003,
        jitter: 0.0,
        revoke_on_shutdown: true,
        ..Default::default()
    };
    let source = TokenSource::start(env.client().await, request, policy)
        .await
        .expect("the first token");
    let first = source.current();
    let left = source
        .expires_at()
        .duration_since(SystemTime::now())
        .expect("expires in the future");
    assert!(
        left > Duration::from_secs(540) && left <= Duration::from_secs(600),
        "expires in {left:?}"
    );

    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&env.admin_kubeconfig).expect("admin kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let kube = source.kube_client(config).expect("kube client");
    let lists = || async {
        Api::<Namespace>::all(kube.clone())
            .list(&ListParams::default().limit(500))
            .await
            .is_ok_and(|page| {
                page.items
                    .iter()
                    .any(|n| n.metadata.name.as_deref() == Some(ns.as_str()))
            })
    };
    eventually("the kube client lists namespaces", lists).await;

    // Two renewals, each a different token that authenticates.
    let mut renewals = source.subscribe();
    let mut seen = vec![first.token_id.clone()];
    tokio::time::timeout(Duration::from_secs(60), async {
        while seen.len() < 3 {
            renewals.changed().await.expect("the source runs");
            let current = renewals.borrow_and_update().clone();
            seen.push(current.token_id.clone());
            let token = current.token().expect("a fresh token").to_owned();
            assert!(authenticates(&env, &token).await, "a renewed token works");
        }
    })
    .await
    .expect("two renewals within a minute");
    seen.dedup();
    assert_eq!(seen.len(), 3, "three distinct tokens: {seen:?}");
    eventually("the kube client still lists namespaces", lists).await;

    // Shutdown revokes the token current at that moment.
    let last = source.current().token_id;
    source.shutdown().await.expect("shutdown");
    let gone = env
        .client()
        .await
        .get_token(v1::GetTokenRequest {
            token_id: last.clone(),
        })
        .await;
    assert_code(gone, Code::NotFound, &last);
}
