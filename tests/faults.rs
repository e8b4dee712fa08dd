//! What callers see, and what the cluster keeps, when the Kubernetes API fails under tokend: down at
//! start, 5xx mid-issue, slower than the caller's deadline, 409 races, and a storm of faults.
//! Faults are made by the fault proxy between tokend and its API server, so every test here runs
//! unchanged on the emulator and on a real kube-apiserver.

use tokend_test_support as common;

use common::issue;

use std::collections::BTreeSet;
use std::time::Duration;

use common::FailRule;
use common::{TestEnv, eventually};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::ListParams;
use tokend::config::AuthMode;
use tokend::server::ServerOptions;
use tokend::token_id::TokenId;
use tokend_client::v1;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// tokend without caller authentication, re-checking the Kubernetes API every 100 ms.
fn quick_health() -> ServerOptions {
    ServerOptions {
        auth: AuthMode::None,
        health_interval: Duration::from_millis(100),
        ..ServerOptions::default()
    }
}

fn revoke(token_id: &str) -> v1::RevokeTokenRequest {
    v1::RevokeTokenRequest {
        target: Some(v1::revoke_token_request::Target::TokenId(
            token_id.to_owned(),
        )),
    }
}

/// Names of the record Secrets tokend keeps in a namespace.
async fn record_names(env: &TestEnv, ns: &str) -> BTreeSet<String> {
    Api::<Secret>::namespaced(env.kube.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tokend"))
        .await
        .expect("list secrets")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

async fn service_account_names(env: &TestEnv, ns: &str) -> BTreeSet<String> {
    Api::<ServiceAccount>::namespaced(env.kube.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list serviceaccounts")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

async fn role_binding_names(env: &TestEnv, ns: &str) -> BTreeSet<String> {
    Api::<RoleBinding>::namespaced(env.kube.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list rolebindings")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

fn secret_name_of(token_id: &str) -> String {
    TokenId::parse(token_id)
        .expect("tokend returned a well-formed token_id")
        .secret_name()
}

async fn health_of(env: &TestEnv, service: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(env.endpoint.clone())
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut health = HealthClient::new(channel);
    let answer = health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(answer.into_inner().status).ok()
}

#[tokio::test]
async fn tokend_started_without_the_api_is_not_serving_until_the_api_returns() {
    // Given a Kubernetes API that is down before tokend starts.
    let env = common::start_with_api_down(quick_health()).await;
    let faults = env.faults();

    // Then tokend starts, says NOT_SERVING (yet alive), and answers RPCs UNAVAILABLE naming the
    // API.
    eventually("tokend reports NOT_SERVING", || async {
        health_of(&env, "").await == Some(ServingStatus::NotServing)
    })
    .await;
    assert_eq!(
        health_of(&env, "liveness").await,
        Some(ServingStatus::Serving),
        "a replica without its API is unready, not dead: the startup probe must pass"
    );
    let client = env.client().await;
    let err = client
        .issue_token(issue("default", "early"))
        .await
        .expect_err("IssueToken without a Kubernetes API");
    assert_eq!(err.code(), Code::Unavailable, "message: {}", err.message());
    assert!(
        err.message().contains("Kubernetes API"),
        "the message {:?} should name the Kubernetes API",
        err.message()
    );
    let err = client
        .list_tokens(v1::ListTokensRequest {
            namespace: "default".into(),
            ..Default::default()
        })
        .await
        .expect_err("ListTokens without a Kubernetes API");
    assert_eq!(err.code(), Code::Unavailable, "message: {}", err.message());

    // When the API comes back, health turns SERVING without a restart, and RPCs work.
    faults.set_down(false);
    eventually("tokend reports SERVING", || async {
        health_of(&env, "").await == Some(ServingStatus::Serving)
            && health_of(&env, "tokend.v1.TokenService").await == Some(ServingStatus::Serving)
    })
    .await;
    let ns = env.fresh_namespace().await;
    client
        .issue_token(issue(&ns, "late"))
        .await
        .expect("IssueToken once the API is back");
}

#[tokio::test]
async fn an_api_outage_makes_tokend_unready_but_never_not_live() {
    // Given a ready tokend.
    let env = common::start_with(quick_health()).await;
    let ready = |want: ServingStatus| {
        let env = &env;
        async move {
            health_of(env, "").await == Some(want)
                && health_of(env, "tokend.v1.TokenService").await == Some(want)
        }
    };
    eventually("tokend is ready", || ready(ServingStatus::Serving)).await;
    assert_eq!(
        health_of(&env, "liveness").await,
        Some(ServingStatus::Serving)
    );

    // When the Kubernetes API goes away, readiness turns NOT_SERVING, and liveness stays
    // SERVING the whole time (checked on every poll while readiness turns).
    env.faults().set_down(true);
    eventually("readiness turns NOT_SERVING", || async {
        assert_eq!(
            health_of(&env, "liveness").await,
            Some(ServingStatus::Serving),
            "liveness must not follow the API"
        );
        ready(ServingStatus::NotServing).await
    })
    .await;
    // Several health checks later, still live.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        health_of(&env, "liveness").await,
        Some(ServingStatus::Serving)
    );
    assert_eq!(health_of(&env, "").await, Some(ServingStatus::NotServing));

    // Then, when it returns, the replica is ready again without a restart.
    env.faults().set_down(false);
    eventually("readiness turns SERVING again", || {
        ready(ServingStatus::Serving)
    })
    .await;
}

#[tokio::test]
async fn a_failed_token_request_leaves_no_record_account_or_binding() {
    let env = common::start_with(quick_health()).await;
    let faults = env.faults();
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let accounts_before = service_account_names(&env, &ns).await;
    let bindings_before = role_binding_names(&env, &ns).await;

    // Given the API server fails the TokenRequest, after tokend made the account, binding and record.
    faults.fail_next(FailRule {
        method: Some(http::Method::POST),
        path_contains: "/serviceaccounts/builder/token".into(),
        count: 1,
        status: 500,
    });
    // When a caller asks for a token with a new ServiceAccount bound to `view`.
    let err = client
        .issue_token(v1::IssueTokenRequest {
            cluster_role: "view".into(),
            binding_scope: v1::BindingScope::Namespace as i32,
            ..issue(&ns, "builder")
        })
        .await
        .expect_err("IssueToken with a failing TokenRequest");

    // Then it is UNAVAILABLE and everything that call made is gone again.
    assert_eq!(err.code(), Code::Unavailable, "message: {}", err.message());
    assert!(
        err.message().contains("Kubernetes API"),
        "message: {}",
        err.message()
    );
    assert!(record_names(&env, &ns).await.is_empty(), "no record Secret");
    assert_eq!(
        service_account_names(&env, &ns).await,
        accounts_before,
        "the ServiceAccount this call created is gone"
    );
    assert_eq!(
        role_binding_names(&env, &ns).await,
        bindings_before,
        "the RoleBinding this call created is gone"
    );

    // And the same call succeeds once the API does.
    client
        .issue_token(v1::IssueTokenRequest {
            cluster_role: "view".into(),
            binding_scope: v1::BindingScope::Namespace as i32,
            ..issue(&ns, "builder")
        })
        .await
        .expect("IssueToken after the fault");
}

#[tokio::test]
async fn an_issue_the_caller_gave_up_on_is_finished_and_undone() {
    let env = common::start_with(quick_health()).await;
    let faults = env.faults();
    let ns = env.fresh_namespace().await;
    let client = env.client().await;

    // Given every API call takes longer than the caller is willing to wait for the whole RPC.
    faults.set_latency(Duration::from_millis(1500));
    let mut request = tonic::Request::new(issue(&ns, "impatient"));
    request.set_timeout(Duration::from_millis(500));
    let status = client
        .inner()
        .issue_token(request)
        .await
        .expect_err("IssueToken past its deadline");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "got {:?}: {}",
        status.code(),
        status.message()
    );

    // Then tokend carries on: the record appears although nobody waits for it...
    eventually("tokend writes the record of the abandoned call", || async {
        !record_names(&env, &ns).await.is_empty()
    })
    .await;
    faults.set_latency(Duration::ZERO);
    // ...and when the token arrives with no one to take it, the record and account go again.
    eventually(
        "the abandoned call's record and account are deleted",
        || async {
            record_names(&env, &ns).await.is_empty()
                && !service_account_names(&env, &ns).await.contains("impatient")
        },
    )
    .await;
}

#[tokio::test]
async fn two_callers_creating_the_same_account_and_binding_both_get_tokens() {
    // A 409 needs no fault knob: whichever create comes second gets AlreadyExists from any API
    // server, so this runs against a real cluster too.
    let env = common::start_with(quick_health()).await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let request = v1::IssueTokenRequest {
        cluster_role: "view".into(),
        binding_scope: v1::BindingScope::Namespace as i32,
        ..issue(&ns, "shared")
    };

    let (a, b) = tokio::join!(
        client.issue_token(request.clone()),
        client.issue_token(request.clone())
    );

    let a = a.expect("first concurrent IssueToken");
    let b = b.expect("second concurrent IssueToken");
    assert_ne!(a.token_id, b.token_id);
    assert_eq!(
        record_names(&env, &ns).await,
        BTreeSet::from([secret_name_of(&a.token_id), secret_name_of(&b.token_id)])
    );
    assert!(service_account_names(&env, &ns).await.contains("shared"));
    assert_eq!(
        role_binding_names(&env, &ns)
            .await
            .into_iter()
            .filter(|name| name.starts_with("tokend:"))
            .collect::<Vec<_>>(),
        vec!["tokend:shared:view".to_owned()],
        "one binding, shared by both"
    );
    for token in [&a.token, &b.token] {
        let review = client
            .validate_token(v1::ValidateTokenRequest {
                token: token.clone(),
                audiences: vec![],
            })
            .await
            .expect("ValidateToken");
        assert!(review.authenticated, "error: {}", review.error);
    }
}

/// What one Issue+Revoke pair of the storm reported.
#[derive(Debug, Default)]
struct PairOutcome {
    issued: Option<String>,
    revoked: bool,
}

/// The calls tokend makes for an Issue+Revoke pair on an existing account, as the fault proxy's
/// rules match them.
const STORM_TARGETS: [(http::Method, &str); 6] = [
    (http::Method::GET, "/serviceaccounts/worker"),
    (http::Method::POST, "/secrets"),
    (http::Method::POST, "/serviceaccounts/worker/token"),
    (http::Method::GET, "/secrets/"),
    (http::Method::DELETE, "/secrets/"),
    (http::Method::PATCH, "/secrets/"),
];

/// Arms one failure (500, 503 or 429) of a random call tokend makes in `ns`.
fn arm_one_fault(faults: &common::Faults, ns: &str) {
    let (method, path) = &STORM_TARGETS[rand::random_range(0..STORM_TARGETS.len())];
    faults.fail_next(FailRule {
        method: Some(method.clone()),
        path_contains: format!("/namespaces/{ns}{path}"),
        count: 1,
        status: [500, 503, 429][rand::random_range(0..3)],
    });
}

#[tokio::test]
async fn under_a_storm_of_faults_every_record_left_is_one_a_caller_holds() {
    const PAIRS: usize = 200;
    // An RPC of the storm makes about three API calls; arming one failure after each RPC with
    // this probability fails about 10% of them, spread over the run as the RPCs complete.
    const FAULT_PER_RPC: f64 = 0.3;
    let env = common::start_with(quick_health()).await;
    let faults = env.faults();
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    client
        .issue_token(issue(&ns, "worker"))
        .await
        .expect("the account exists before the storm");
    let before = record_names(&env, &ns).await;
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let arm = {
        let (faults, ns, armed) = (faults.clone(), ns.clone(), armed.clone());
        move || {
            if rand::random_bool(FAULT_PER_RPC) {
                arm_one_fault(&faults, &ns);
                armed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    for _ in 0..PAIRS / 10 {
        arm();
    }

    // When 200 callers each issue a token and revoke it, all at once, while faults are armed.
    let mut pairs = tokio::task::JoinSet::new();
    for _ in 0..PAIRS {
        let (client, ns, arm) = (client.clone(), ns.clone(), arm.clone());
        pairs.spawn(async move {
            let mut outcome = PairOutcome::default();
            let request = v1::IssueTokenRequest {
                create_service_account: false,
                ..issue(&ns, "worker")
            };
            let issued = client.issue_token(request).await;
            arm();
            let Ok(issued) = issued else {
                return outcome;
            };
            outcome.issued = Some(issued.token_id.clone());
            outcome.revoked = client.revoke_token(revoke(&issued.token_id)).await.is_ok();
            arm();
            outcome
        });
    }
    let outcomes = tokio::time::timeout(Duration::from_secs(60), pairs.join_all())
        .await
        .expect("the storm ends within 60 s");
    faults.clear();

    // Then every record left belongs to a token some caller was given and did not get revoked,
    // and every revoke that succeeded took its record away.
    let issued: BTreeSet<String> = outcomes
        .iter()
        .filter_map(|o| o.issued.as_deref().map(secret_name_of))
        .collect();
    let revoked: BTreeSet<String> = outcomes
        .iter()
        .filter(|o| o.revoked)
        .filter_map(|o| o.issued.as_deref().map(secret_name_of))
        .collect();
    let unrevoked: BTreeSet<String> = issued.difference(&revoked).cloned().collect();
    let left: BTreeSet<String> = record_names(&env, &ns)
        .await
        .difference(&before)
        .cloned()
        .collect();
    eprintln!(
        "storm: {} faults armed, {} issued, {} revoked, {} records left",
        armed.load(std::sync::atomic::Ordering::Relaxed),
        issued.len(),
        revoked.len(),
        left.len()
    );
    let strays: Vec<_> = left.difference(&unrevoked).collect();
    assert!(
        strays.is_empty(),
        "records no caller holds (a failed issue's record, or a revoked one): {strays:?}"
    );
    let lost: Vec<_> = unrevoked.difference(&left).collect();
    assert!(
        lost.is_empty(),
        "issued, never revoked, yet their records are gone: {lost:?}"
    );
    assert!(
        issued.len() > PAIRS / 2,
        "most pairs got a token ({} of {PAIRS})",
        issued.len()
    );
}

#[tokio::test]
async fn a_stalled_api_fails_calls_within_the_kube_timeout_and_health_turns_not_serving() {
    // Given tokend that waits at most 500 ms on the Kubernetes API.
    let env = common::start_with(ServerOptions {
        kube_timeout: Duration::from_millis(500),
        ..quick_health()
    })
    .await;
    let faults = env.faults();
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    eventually("tokend reports SERVING", || async {
        health_of(&env, "").await == Some(ServingStatus::Serving)
    })
    .await;

    // When the API accepts connections and requests but answers nothing.
    faults.set_stalled(true);
    let started = std::time::Instant::now();
    let err = client
        .list_tokens(v1::ListTokensRequest {
            namespace: ns.clone(),
            ..Default::default()
        })
        .await
        .expect_err("ListTokens against a stalled API");

    // Then the call fails UNAVAILABLE in about the timeout (two sequential API calls at most),
    // not after the caller's own deadline, and health turns NOT_SERVING.
    assert_eq!(err.code(), Code::Unavailable, "message: {}", err.message());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    eventually("a stalled API makes tokend NOT_SERVING", || async {
        health_of(&env, "").await == Some(ServingStatus::NotServing)
    })
    .await;

    // And when the API answers again, so does tokend.
    faults.set_stalled(false);
    eventually("tokend reports SERVING again", || async {
        health_of(&env, "").await == Some(ServingStatus::Serving)
    })
    .await;
    client
        .list_tokens(v1::ListTokensRequest {
            namespace: ns,
            ..Default::default()
        })
        .await
        .expect("ListTokens once the API answers");
}

#[tokio::test]
async fn a_kubeconfig_abandoned_at_any_point_leaves_only_tokens_someone_received() {
    // Given an API that takes 150 ms per call, and tokend that looks the CA up after minting.
    let env = common::start_with(ServerOptions {
        settings: tokend::service::Settings {
            own_namespace: Some("default".into()),
            ..Default::default()
        },
        ..quick_health()
    })
    .await;
    let faults = env.faults();
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    faults.set_latency(Duration::from_millis(150));

    // When callers give up after ever longer waits, some before and some after the token exists.
    let mut received = BTreeSet::new();
    for wait_ms in (100..=1_500).step_by(100) {
        let mut request = tonic::Request::new(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Issue(issue(&ns, "app"))),
            ..Default::default()
        });
        request.set_timeout(Duration::from_millis(wait_ms));
        if let Ok(answer) = client.inner().get_kubeconfig(request).await {
            received.insert(secret_name_of(&answer.into_inner().token_id));
        }
    }
    faults.set_latency(Duration::ZERO);

    // Then, once tokend has finished, every record left is one whose kubeconfig was delivered.
    eventually("only delivered tokens keep their records", || async {
        record_names(&env, &ns).await == received
    })
    .await;
}
