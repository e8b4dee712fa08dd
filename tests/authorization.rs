//! Who may ask: callers authenticate with their own Kubernetes token and tokend asks Kubernetes
//! (SubjectAccessReview) whether they could do the same with kubectl. Against the emulator or,
//! unchanged, a real cluster.

use tokend_test_support as common;

use common::{assert_code, issue};

use common::{TestEnv, eventually, unique_name};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use tokend::server::ServerOptions;
use tokend_client::{TokendClient, v1};
use tonic::Code;

/// A caller: a ServiceAccount of the backend, its token, and a tokend client using it.
struct CallerAccount {
    username: String,
    token: String,
    secret: String,
}

fn meta(name: &str, ns: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    }
}

/// Makes a ServiceAccount in `ns` and a token for it, bound to a Secret so it can be revoked.
async fn caller_account(env: &TestEnv, ns: &str, audiences: Option<Vec<String>>) -> CallerAccount {
    let name = unique_name("caller");
    let sa_api = Api::<ServiceAccount>::namespaced(env.kube.clone(), ns);
    sa_api
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta(&name, ns),
                ..Default::default()
            },
        )
        .await
        .expect("create caller SA");
    let secret_name = format!("{name}-token-anchor");
    let secret = Api::<Secret>::namespaced(env.kube.clone(), ns)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: meta(&secret_name, ns),
                ..Default::default()
            },
        )
        .await
        .expect("create anchor secret");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences,
            expiration_seconds: Some(3600),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
                name: secret.metadata.name.clone(),
                uid: secret.metadata.uid.clone(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer: TokenRequest = sa_api
        .create_subresource("token", &name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    CallerAccount {
        username: format!("system:serviceaccount:{ns}:{name}"),
        token: answer.status.and_then(|s| s.token).expect("token"),
        secret: secret_name,
    }
}

/// Grants `rules` to the caller in `ns` through a Role and RoleBinding.
async fn grant(
    env: &TestEnv,
    ns: &str,
    caller_ns: &str,
    caller: &CallerAccount,
    rules: Vec<PolicyRule>,
) {
    let name = unique_name("grant");
    Api::<Role>::namespaced(env.kube.clone(), ns)
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta(&name, ns),
                rules: Some(rules),
            },
        )
        .await
        .expect("create role");
    let sa = caller
        .username
        .rsplit(':')
        .next()
        .expect("sa name")
        .to_owned();
    let binding = RoleBinding {
        metadata: meta(&name, ns),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa,
            namespace: Some(caller_ns.into()),
            api_group: None,
        }]),
    };
    Api::<RoleBinding>::namespaced(env.kube.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create rolebinding");
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

async fn as_caller(env: &TestEnv, caller: &CallerAccount) -> TokendClient {
    TokendClient::builder(env.endpoint.clone())
        .bearer_token(caller.token.clone())
        .connect()
        .await
        .expect("connect")
}

async fn start_authenticated() -> TestEnv {
    // The cache is off so that a revoked caller token is noticed as soon as the API server does.
    common::start_with(ServerOptions {
        auth_cache_ttl: std::time::Duration::ZERO,
        ..ServerOptions::default()
    })
    .await
}

async fn nothing_created(env: &TestEnv, ns: &str, sa: &str) {
    let records = Api::<Secret>::namespaced(env.kube.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tokend"))
        .await
        .expect("list");
    assert!(records.items.is_empty(), "no record in {ns}");
    let account = Api::<ServiceAccount>::namespaced(env.kube.clone(), ns)
        .get_opt(sa)
        .await
        .expect("get");
    assert!(account.is_none(), "no ServiceAccount {sa} in {ns}");
    let bindings = Api::<RoleBinding>::namespaced(env.kube.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tokend"))
        .await
        .expect("list");
    assert!(bindings.items.is_empty(), "no binding in {ns}");
}

// Runs external processes synchronously: a second worker keeps the in-process servers going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_valid_credentials_are_unauthenticated() {
    let env = start_authenticated().await;
    let ns = env.fresh_namespace().await;

    let anonymous = env.client().await;
    assert_code(
        anonymous.issue_token(issue(&ns, "x")).await,
        Code::Unauthenticated,
        "no credentials",
    );

    let garbage = TokendClient::builder(env.endpoint.clone())
        .bearer_token("garbage")
        .connect()
        .await
        .expect("connect");
    assert_code(
        garbage
            .list_tokens(v1::ListTokensRequest {
                namespace: ns.clone(),
                ..Default::default()
            })
            .await,
        Code::Unauthenticated,
        "rejected",
    );

    let wrong_audience = caller_account(&env, &ns, Some(vec!["not-kubernetes".into()])).await;
    assert_code(
        as_caller(&env, &wrong_audience)
            .await
            .issue_token(issue(&ns, "x"))
            .await,
        Code::Unauthenticated,
        "rejected",
    );

    let revoked = caller_account(&env, &ns, None).await;
    Api::<Secret>::namespaced(env.kube.clone(), &ns)
        .delete(&revoked.secret, &DeleteParams::default())
        .await
        .expect("revoke caller token");
    let client = as_caller(&env, &revoked).await;
    eventually("a revoked caller token is refused", || async {
        matches!(client.list_tokens(v1::ListTokensRequest { namespace: ns.clone(), ..Default::default() }).await, Err(e) if e.code() == Code::Unauthenticated)
    })
    .await;
    nothing_created(&env, &ns, "x").await;

    // Health and reflection stay open for probes and discovery.
    let health = std::process::Command::new("grpcurl")
        .args(["-plaintext", &env.addr, "list"])
        .output();
    if let Ok(out) = health {
        assert!(String::from_utf8_lossy(&out.stdout).contains("tokend.v1.TokenService"));
    }
}

#[tokio::test]
async fn a_caller_may_issue_only_where_kubernetes_lets_it_create_tokens() {
    let env = start_authenticated().await;
    let home = env.fresh_namespace().await;
    let allowed = env.fresh_namespace().await;
    let other = env.fresh_namespace().await;
    let caller = caller_account(&env, &home, None).await;
    grant(
        &env,
        &allowed,
        &home,
        &caller,
        vec![
            rule(
                "",
                &["serviceaccounts", "serviceaccounts/token"],
                &["create"],
            ),
            rule("", &["secrets"], &["get", "list", "delete"]),
        ],
    )
    .await;
    let client = as_caller(&env, &caller).await;

    let mut issued = None;
    for _ in 0..75 {
        // A real cluster's RBAC cache takes a moment to see the new binding.
        match client.issue_token(issue(&allowed, "app")).await {
            Ok(answer) => {
                issued = Some(answer);
                break;
            }
            Err(e) if e.code() == Code::PermissionDenied => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            Err(e) => panic!("IssueToken: {e}"),
        }
    }
    let issued = issued.expect("the caller may issue where it may create tokens");
    let record = client
        .get_token(v1::GetTokenRequest {
            token_id: issued.token_id.clone(),
        })
        .await
        .expect("GetToken")
        .token
        .expect("record");
    assert_eq!(
        record.issued_by, caller.username,
        "the record names the caller"
    );

    assert_code(
        client.issue_token(issue(&other, "app")).await,
        Code::PermissionDenied,
        "serviceaccounts/token",
    );
    nothing_created(&env, &other, "app").await;
    assert_code(
        client
            .list_tokens(v1::ListTokensRequest {
                namespace: other.clone(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "list secrets",
    );
    client
        .revoke_token(v1::RevokeTokenRequest {
            target: Some(v1::revoke_token_request::Target::TokenId(issued.token_id)),
        })
        .await
        .expect("the caller may revoke what it may delete");
}

#[tokio::test]
async fn a_view_only_caller_cannot_issue_revoke_or_list() {
    let env = start_authenticated().await;
    let ns = env.fresh_namespace().await;
    let caller = caller_account(&env, &ns, None).await;
    grant(
        &env,
        &ns,
        &ns,
        &caller,
        vec![rule(
            "",
            &["pods", "serviceaccounts"],
            &["get", "list", "watch"],
        )],
    )
    .await;
    let client = as_caller(&env, &caller).await;

    assert_code(
        client.issue_token(issue(&ns, "app")).await,
        Code::PermissionDenied,
        "create serviceaccounts/token",
    );
    nothing_created(&env, &ns, "app").await;
    assert_code(
        client
            .list_tokens(v1::ListTokensRequest {
                namespace: ns.clone(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "list secrets",
    );
    let some_id = format!("{ns}.aaaaaaaaaaaaaaaa");
    assert_code(
        client
            .revoke_token(v1::RevokeTokenRequest {
                target: Some(v1::revoke_token_request::Target::TokenId(some_id)),
            })
            .await,
        Code::PermissionDenied,
        "delete secrets",
    );
}

#[tokio::test]
async fn a_caller_that_may_not_bind_admin_gets_no_admin_token() {
    let env = start_authenticated().await;
    let ns = env.fresh_namespace().await;
    let caller = caller_account(&env, &ns, None).await;
    grant(
        &env,
        &ns,
        &ns,
        &caller,
        vec![
            rule(
                "",
                &["serviceaccounts", "serviceaccounts/token"],
                &["create"],
            ),
            rule("rbac.authorization.k8s.io", &["rolebindings"], &["create"]),
        ],
    )
    .await;
    let client = as_caller(&env, &caller).await;
    let request = v1::IssueTokenRequest {
        cluster_role: "admin".into(),
        binding_scope: v1::BindingScope::Namespace as i32,
        ..issue(&ns, "escalator")
    };
    // Wait until the grant is visible (the plain issue succeeds), then try the escalation.
    let plain = issue(&ns, "plain");
    eventually("the grant takes effect", || async {
        client.issue_token(plain.clone()).await.is_ok()
    })
    .await;
    assert_code(
        client.issue_token(request).await,
        Code::PermissionDenied,
        "bind clusterroles",
    );
    let account = Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns)
        .get_opt("escalator")
        .await
        .expect("get");
    assert!(
        account.is_none(),
        "no ServiceAccount was made for the refused call"
    );
    let bindings = Api::<RoleBinding>::namespaced(env.kube.clone(), &ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tokend"))
        .await
        .expect("list");
    assert!(bindings.items.is_empty(), "no binding was made");
}

/// A free loopback port for a tokend started as a process.
#[tokio::test]
async fn insecure_no_auth_alone_does_not_turn_authentication_off() {
    let env = common::start().await;
    let port = common::free_port();
    // Given `tokend serve` started with the permission flag but no --auth.
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["serve", "--insecure-no-auth", "--sweep-interval", "0"])
        // Its record key in a namespace every backend has.
        .args(["--lease-namespace", "default"])
        .arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("TOKEND_AUTH")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start tokend");

    // Then a call without credentials is UNAUTHENTICATED, not served.
    let endpoint = format!("http://127.0.0.1:{port}");
    eventually(
        "tokend answers an anonymous call UNAUTHENTICATED",
        || async {
            let Ok(client) = TokendClient::connect(endpoint.clone()).await else {
                return false;
            };
            let answer = client
                .list_tokens(v1::ListTokensRequest {
                    namespace: "default".into(),
                    ..Default::default()
                })
                .await;
            match answer {
                Err(e) if e.code() == Code::Unauthenticated => true,
                Err(e) if e.code() == Code::Unavailable => false,
                other => panic!("an anonymous call must be refused, got {other:?}"),
            }
        },
    )
    .await;
    let _ = server.kill().await;
}

/// RenewToken needs what issuing needs and what revoking the old token needs, even when the
/// old token is kept: a caller without `delete` on the record gets no replacement.
#[tokio::test]
async fn renewing_needs_the_rights_to_issue_and_to_revoke() {
    let env = start_authenticated().await;
    let home = env.fresh_namespace().await;
    let target = env.fresh_namespace().await;
    Api::<ServiceAccount>::namespaced(env.kube.clone(), &target)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("app", &target),
                ..Default::default()
            },
        )
        .await
        .expect("create app");
    let caller = caller_account(&env, &home, None).await;
    grant(
        &env,
        &target,
        &home,
        &caller,
        vec![
            rule("", &["serviceaccounts/token"], &["create"]),
            rule("", &["secrets"], &["get", "list"]),
        ],
    )
    .await;
    let client = as_caller(&env, &caller).await;
    let mut old = None;
    for _ in 0..75 {
        // A real cluster's RBAC cache takes a moment to see the new binding.
        match client
            .issue_token(v1::IssueTokenRequest {
                create_service_account: false,
                ..issue(&target, "app")
            })
            .await
        {
            Ok(answer) => {
                old = Some(answer);
                break;
            }
            Err(e) if e.code() == Code::PermissionDenied => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            Err(e) => panic!("IssueToken: {e}"),
        }
    }
    let old = old.expect("the caller may issue");
    let renew = || {
        client.renew_token(v1::RenewTokenRequest {
            token_id: old.token_id.clone(),
            ..Default::default()
        })
    };
    assert_code(renew().await, Code::PermissionDenied, "secrets");
    let records = || async {
        Api::<Secret>::namespaced(env.kube.clone(), &target)
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tokend"))
            .await
            .expect("list")
            .items
            .len()
    };
    assert_eq!(records().await, 1, "no replacement was issued");

    grant(
        &env,
        &target,
        &home,
        &caller,
        vec![rule("", &["secrets"], &["delete"])],
    )
    .await;
    let mut renewed = None;
    for _ in 0..75 {
        match renew().await {
            Ok(answer) => {
                renewed = Some(answer);
                break;
            }
            Err(e) if e.code() == Code::PermissionDenied => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            Err(e) => panic!("RenewToken: {e}"),
        }
    }
    let renewed = renewed.expect("with issue and revoke rights the caller may renew");
    let record = client
        .get_token(v1::GetTokenRequest {
            token_id: renewed.token_id,
        })
        .await
        .expect("GetToken")
        .token
        .expect("record");
    assert_eq!(
        record.issued_by, caller.username,
        "the renewal is the caller's"
    );
    assert_eq!(record.replaces, old.token_id);
}
