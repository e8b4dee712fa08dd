//! Records tokend shows as its own are ones it wrote and sealed (issue 12, item 9), and a record
//! whose token no caller received is never shown and is soon gone (item 17), also after an
//! API-server outage in the middle of a load.

use tokend_test_support as common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::FailRule;
use common::{assert_code, eventually, issue, start, start_with};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use tokend::config::AuthMode;
use tokend::server::ServerOptions;
use tokend::sweeper::SweeperOptions;
use tokend_client::{TokendClient, v1};
use tonic::Code;

async fn listed(client: &TokendClient, ns: &str) -> BTreeSet<String> {
    client
        .list_all_tokens(v1::ListTokensRequest {
            namespace: ns.into(),
            include_expired: true,
            ..Default::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .expect("ListTokens")
        .into_iter()
        .map(|t| t.token_id)
        .collect()
}

/// Every Secret in `ns` labelled as tokend's, as the API server holds them.
async fn record_secrets(env: &common::TestEnv, ns: &str) -> BTreeSet<String> {
    Api::<Secret>::namespaced(env.kube.clone(), ns)
        .list_metadata(&ListParams::default().labels("app.kubernetes.io/managed-by=tokend"))
        .await
        .expect("list Secrets")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

fn secret_name(token_id: &str) -> String {
    let (_, random) = token_id.split_once('.').expect("NAMESPACE.ID");
    format!("tokend-{random}")
}

#[tokio::test]
async fn forged_altered_and_replayed_records_are_not_shown_as_tokends() {
    let env = start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let secrets = Api::<Secret>::namespaced(env.kube.clone(), &ns);
    let genuine = client
        .issue_token(issue(&ns, "ci"))
        .await
        .expect("issue")
        .token_id;

    // Given a Secret made by someone who can only create Secrets, shaped like a record that a
    // powerful caller asked for,
    let forged_name = "tokend-forgedforged0001";
    let forged = Secret {
        metadata: ObjectMeta {
            name: Some(forged_name.into()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".into(), "tokend".into()),
                ("tokend.io/service-account".into(), "ci".into()),
            ])),
            annotations: Some(BTreeMap::from([
                ("tokend.io/issued-by".into(), "cluster-admin-bot".into()),
                ("tokend.io/cluster-role".into(), "cluster-admin".into()),
                ("tokend.io/binding-scope".into(), "cluster".into()),
                (
                    "tokend.io/expiration-time".into(),
                    "2099-01-01T00:00:00Z".into(),
                ),
                (
                    "tokend.io/seal".into(),
                    "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
                ),
            ])),
            ..Default::default()
        },
        type_: Some("tokend.io/token-record".into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &forged)
        .await
        .expect("forge a record");
    // then tokend lists and gets only the record it wrote.
    assert_eq!(
        listed(&client, &ns).await,
        BTreeSet::from([genuine.clone()])
    );
    assert_code(
        client
            .get_token(v1::GetTokenRequest {
                token_id: format!("{ns}.forgedforged0001"),
            })
            .await,
        Code::NotFound,
        "not found",
    );
    assert_code(
        client
            .revoke_token(v1::RevokeTokenRequest {
                target: Some(v1::revoke_token_request::Target::TokenId(format!(
                    "{ns}.forgedforged0001"
                ))),
            })
            .await,
        Code::NotFound,
        "not found",
    );

    // Given a second genuine record, revoked, and a copy of it (same name, labels and
    // annotations, seal included) put back in its place,
    let second = client
        .issue_token(issue(&ns, "ci"))
        .await
        .expect("issue")
        .token_id;
    let original = secrets
        .get(&secret_name(&second))
        .await
        .expect("read the record");
    client
        .revoke_token(v1::RevokeTokenRequest {
            target: Some(v1::revoke_token_request::Target::TokenId(second.clone())),
        })
        .await
        .expect("revoke");
    let replay = Secret {
        metadata: ObjectMeta {
            name: original.metadata.name.clone(),
            labels: original.metadata.labels.clone(),
            annotations: original.metadata.annotations.clone(),
            ..Default::default()
        },
        type_: original.type_.clone(),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &replay)
        .await
        .expect("replay the record");
    // then the copy is not tokend's: its seal belongs to the deleted object.
    assert_code(
        client
            .get_token(v1::GetTokenRequest {
                token_id: second.clone(),
            })
            .await,
        Code::NotFound,
        "not found",
    );

    // Given the genuine record altered by someone who can patch Secrets,
    let promote = serde_json::json!({"metadata": {"annotations": {"tokend.io/issued-by": "cluster-admin-bot"}}});
    secrets
        .patch(
            &secret_name(&genuine),
            &PatchParams::default(),
            &Patch::Merge(&promote),
        )
        .await
        .expect("alter the record");
    // then it is no longer presented as tokend's either.
    assert!(listed(&client, &ns).await.is_empty());
    assert_code(
        client
            .get_token(v1::GetTokenRequest {
                token_id: genuine.clone(),
            })
            .await,
        Code::NotFound,
        "not found",
    );
}

fn sweeping() -> ServerOptions {
    ServerOptions {
        auth: AuthMode::None,
        sweeper: Some(SweeperOptions {
            interval: Duration::from_millis(200),
            pending_grace: Duration::from_secs(2),
            // the harness moves it to tokend's own namespace when tokend runs with deploy/'s RBAC
            lease_namespace: "default".into(),
            identity: common::unique_name("ghost-sweeper"),
            ..SweeperOptions::default()
        }),
        ..ServerOptions::default()
    }
}

#[tokio::test]
async fn a_record_whose_undo_failed_is_never_shown_and_is_swept() {
    let env = start_with(sweeping()).await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let delivered = client
        .issue_token(issue(&ns, "ci"))
        .await
        .expect("issue")
        .token_id;

    // Given the TokenRequest fails after the record was written, and so does every delete the
    // undo tries (500s: kube-rs itself retries only 429, 503 and 504),
    let faults = env.faults();
    faults.fail_next(FailRule {
        method: Some(http::Method::POST),
        path_contains: format!("/namespaces/{ns}/serviceaccounts/ci/token"),
        count: 1,
        status: 500,
    });
    faults.fail_next(FailRule {
        method: Some(http::Method::DELETE),
        path_contains: format!("/namespaces/{ns}/secrets/tokend-"),
        count: 5,
        status: 500,
    });
    let failed = client.issue_token(issue(&ns, "ci")).await;
    assert!(failed.is_err(), "the issue fails");
    faults.clear();
    // the record no caller received is left behind,
    let left = record_secrets(&env, &ns).await;
    assert_eq!(
        left.len(),
        2,
        "the undo could not delete the record: {left:?}"
    );
    // but it is never shown as an issued token,
    assert_eq!(
        listed(&client, &ns).await,
        BTreeSet::from([delivered.clone()])
    );
    // and the sweeper removes it once it has been pending for --pending-grace.
    eventually("the abandoned record is swept", || async {
        record_secrets(&env, &ns).await == BTreeSet::from([secret_name(&delivered)])
    })
    .await;
}

#[tokio::test]
async fn after_an_outage_mid_load_every_listed_record_is_a_token_a_caller_received() {
    let env = start_with(sweeping()).await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let first = client
        .issue_token(issue(&ns, "ci"))
        .await
        .expect("the account exists before the load")
        .token_id;

    // Given 16 callers issuing tokens as fast as they can,
    let delivered = Arc::new(Mutex::new(BTreeSet::from([first])));
    let failures = Arc::new(Mutex::new(0usize));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut callers = Vec::new();
    for _ in 0..16 {
        let client = client.clone();
        let ns = ns.clone();
        let delivered = delivered.clone();
        let failures = failures.clone();
        let stop = stop_rx.clone();
        callers.push(tokio::spawn(async move {
            while !*stop.borrow() {
                match client.issue_token(issue(&ns, "ci")).await {
                    Ok(issued) => {
                        delivered.lock().expect("lock").insert(issued.token_id);
                    }
                    Err(_) => *failures.lock().expect("lock") += 1,
                }
            }
        }));
    }
    let count = || delivered.lock().expect("lock").len();
    eventually("the load is under way", || async { count() >= 50 }).await;
    // when the API server is gone for three seconds in the middle of it,
    env.faults().set_down(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.faults().set_down(false);
    let after_outage = count();
    eventually("issues succeed again", || async {
        count() >= after_outage + 50
    })
    .await;
    stop_tx.send_replace(true);
    for caller in callers {
        caller.await.expect("caller task");
    }
    assert!(
        *failures.lock().expect("lock") > 0,
        "the outage failed some issues"
    );
    let delivered: BTreeSet<String> = delivered.lock().expect("lock").clone();

    // then, soon after the API is back, every record ListTokens shows is a token a caller
    // received (a confirmation whose answer the outage swallowed can make a record look issued
    // until tokend's delayed undo deletes it),
    eventually("only received tokens are listed", || async {
        listed(&client, &ns).await.is_subset(&delivered)
    })
    .await;
    // and soon nothing else is left in the cluster either.
    let delivered_secrets: BTreeSet<String> = delivered.iter().map(|id| secret_name(id)).collect();
    eventually("only records of received tokens remain", || async {
        record_secrets(&env, &ns)
            .await
            .iter()
            .filter(|name| name.starts_with("tokend-"))
            .all(|name| delivered_secrets.contains(name))
    })
    .await;
}
