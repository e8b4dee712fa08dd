//! Black-box tests of every RPC through the generated client crate, against the emulator or,
//! unchanged, a real cluster (`TOKEND_TEST_KUBECONFIG`).

use tokend_test_support as common;

use common::{assert_code, issue};

use std::collections::HashMap;

use common::{TestEnv, client_with_token, eventually, unique_name};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use tokend_client::v1;
use tonic::Code;

async fn validate(env: &TestEnv, token: &str) -> v1::ValidateTokenResponse {
    let client = env.client().await;
    client
        .validate_token(v1::ValidateTokenRequest {
            token: token.into(),
            audiences: vec![],
        })
        .await
        .expect("ValidateToken answers")
}

/// The Secrets tokend keeps in a namespace.
async fn records_in(env: &TestEnv, ns: &str) -> Vec<Secret> {
    Api::<Secret>::namespaced(env.kube.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tokend"))
        .await
        .expect("list secrets")
        .items
}

async fn service_account_exists(env: &TestEnv, ns: &str, name: &str) -> bool {
    Api::<ServiceAccount>::namespaced(env.kube.clone(), ns)
        .get_opt(name)
        .await
        .expect("get serviceaccount")
        .is_some()
}

#[tokio::test]
async fn issued_token_authenticates_as_the_service_account() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;

    let issued = client
        .issue_token(v1::IssueTokenRequest {
            duration: "2h45m".into(),
            ..issue(&ns, "deployer")
        })
        .await
        .expect("IssueToken");

    assert!(!issued.token.is_empty());
    assert_eq!(issued.namespace, ns);
    assert_eq!(issued.service_account, "deployer");
    let expires = issued.expiration_time.expect("expiration_time").seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(
        (expires - now - 9900).abs() < 60,
        "expires in {} s, asked 9900",
        expires - now
    );

    let review = validate(&env, &issued.token).await;
    assert!(review.authenticated, "error: {}", review.error);
    assert_eq!(
        review.username,
        format!("system:serviceaccount:{ns}:deployer")
    );
    assert!(
        review
            .groups
            .contains(&format!("system:serviceaccounts:{ns}"))
    );
    assert_eq!(review.token_id, issued.token_id);
    assert_eq!(review.expiration_time.map(|t| t.seconds), Some(expires));
}

#[tokio::test]
async fn a_token_the_api_server_shortens_is_reported_with_the_servers_expiry() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let issued = client
        .issue_token(v1::IssueTokenRequest {
            duration: "72h".into(),
            ..issue(&ns, "long")
        })
        .await
        .expect("IssueToken over the server's cap still succeeds");
    let expires = issued.expiration_time.expect("expiration_time").seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(expires - now <= 72 * 3600 + 60, "never longer than asked");
    if env.emulator().is_some() {
        // The suite's emulator caps tokens at 48h, as --service-account-max-token-expiration does.
        assert!(
            (expires - now - 48 * 3600).abs() < 60,
            "shortened to the cap: {}",
            expires - now
        );
    }
    // Every view of the token agrees with what the API server set.
    let record = client
        .get_token(v1::GetTokenRequest {
            token_id: issued.token_id.clone(),
        })
        .await
        .expect("GetToken")
        .token
        .expect("record");
    assert_eq!(record.expiration_time.map(|t| t.seconds), Some(expires));
    let review = validate(&env, &issued.token).await;
    assert_eq!(review.expiration_time.map(|t| t.seconds), Some(expires));
}

#[tokio::test]
async fn the_record_holds_no_token_and_names_the_service_account() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let issued = client
        .issue_token(issue(&ns, "app"))
        .await
        .expect("IssueToken");

    let records = records_in(&env, &ns).await;
    assert_eq!(records.len(), 1);
    let secret = &records[0];
    assert_eq!(secret.type_.as_deref(), Some("tokend.io/token-record"));
    let stored = serde_json::to_string(secret).expect("json");
    assert!(
        !stored.contains(&issued.token),
        "the record must not hold the token"
    );
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("tokend.io/service-account").map(String::as_str),
        Some("app")
    );
}

#[tokio::test]
async fn revoked_token_is_rejected_by_the_api_server() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let issued = client
        .issue_token(issue(&ns, "ci"))
        .await
        .expect("IssueToken");
    assert!(validate(&env, &issued.token).await.authenticated);

    let revoked = client
        .revoke_token(v1::RevokeTokenRequest {
            target: Some(v1::revoke_token_request::Target::TokenId(
                issued.token_id.clone(),
            )),
        })
        .await
        .expect("RevokeToken");
    assert_eq!(revoked.token_id, issued.token_id);
    assert_eq!(revoked.service_account, "ci");

    eventually("the revoked token stops authenticating", || async {
        let review = validate(&env, &issued.token).await;
        !review.authenticated && !review.error.is_empty()
    })
    .await;
    assert!(records_in(&env, &ns).await.is_empty(), "the record is gone");

    // Revoking twice is NOT_FOUND: the record is gone, and the caller learns so.
    let again = client
        .revoke_token(v1::RevokeTokenRequest {
            target: Some(v1::revoke_token_request::Target::TokenId(
                issued.token_id.clone(),
            )),
        })
        .await;
    assert_code(again, Code::NotFound, &issued.token_id);
}

#[tokio::test]
async fn a_token_can_be_revoked_by_its_value() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let issued = client
        .issue_token(v1::IssueTokenRequest {
            audiences: vec!["vault".into()],
            ..issue(&ns, "web")
        })
        .await
        .expect("IssueToken");

    let revoked = client
        .revoke_token(v1::RevokeTokenRequest {
            target: Some(v1::revoke_token_request::Target::Token(
                issued.token.clone(),
            )),
        })
        .await
        .expect("RevokeToken by token");
    assert_eq!(revoked.token_id, issued.token_id);
    assert!(records_in(&env, &ns).await.is_empty());

    let garbage = client
        .revoke_token(v1::RevokeTokenRequest {
            target: Some(v1::revoke_token_request::Target::Token("not-a-jwt".into())),
        })
        .await;
    assert_code(garbage, Code::InvalidArgument, "token");
}

#[tokio::test]
async fn bad_requests_name_the_field_and_leave_nothing_behind() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let labels = |k: &str, v: &str| HashMap::from([(k.to_owned(), v.to_owned())]);
    let cases: Vec<(&str, v1::IssueTokenRequest, Code, &str)> = vec![
        (
            "uppercase namespace",
            v1::IssueTokenRequest {
                namespace: "Team".into(),
                ..issue(&ns, "a")
            },
            Code::InvalidArgument,
            "namespace",
        ),
        (
            "empty namespace",
            v1::IssueTokenRequest {
                namespace: String::new(),
                ..issue(&ns, "a")
            },
            Code::InvalidArgument,
            "namespace",
        ),
        (
            "bad account name",
            issue(&ns, "Bad_Name"),
            Code::InvalidArgument,
            "service_account",
        ),
        (
            "path traversal",
            issue(&ns, "../etc"),
            Code::InvalidArgument,
            "service_account",
        ),
        (
            "bad duration",
            v1::IssueTokenRequest {
                duration: "1.5h".into(),
                ..issue(&ns, "a")
            },
            Code::InvalidArgument,
            "duration",
        ),
        (
            "repeated unit",
            v1::IssueTokenRequest {
                duration: "1h1h".into(),
                ..issue(&ns, "a")
            },
            Code::InvalidArgument,
            "duration",
        ),
        (
            "under 10m",
            v1::IssueTokenRequest {
                duration: "5m".into(),
                ..issue(&ns, "a")
            },
            Code::InvalidArgument,
            "10m",
        ),
        (
            "over the maximum",
            v1::IssueTokenRequest {
                duration: "8761h".into(),
                ..issue(&ns, "a")
            },
            Code::FailedPrecondition,
            "8760h",
        ),
        (
            "empty audience",
            v1::IssueTokenRequest {
                audiences: vec![String::new()],
                ..issue(&ns, "a")
            },
            Code::InvalidArgument,
            "audiences[0]",
        ),
        (
            "bad label",
            v1::IssueTokenRequest {
                labels: labels("team", "not valid!"),
                ..issue(&ns, "a")
            },
            Code::InvalidArgument,
            "labels",
        ),
        (
            "reserved label",
            v1::IssueTokenRequest {
                labels: labels("tokend.io/x", "y"),
                ..issue(&ns, "a")
            },
            Code::InvalidArgument,
            "reserved",
        ),
        (
            "role not allowed",
            v1::IssueTokenRequest {
                cluster_role: "cluster-admin".into(),
                ..issue(&ns, "a")
            },
            Code::FailedPrecondition,
            "cluster_role",
        ),
        (
            "scope without role",
            v1::IssueTokenRequest {
                binding_scope: v1::BindingScope::Cluster as i32,
                ..issue(&ns, "a")
            },
            Code::InvalidArgument,
            "binding_scope",
        ),
        (
            "missing account",
            v1::IssueTokenRequest {
                create_service_account: false,
                ..issue(&ns, "ghost")
            },
            Code::NotFound,
            "ghost",
        ),
        (
            "missing namespace",
            issue(&unique_name("ghostns"), "a"),
            Code::NotFound,
            "ghostns",
        ),
    ];
    for (what, request, code, mentions) in cases {
        let result = client.issue_token(request).await;
        match result {
            Err(e) => {
                assert_eq!(e.code(), code, "{what}: {}", e.message());
                assert!(
                    e.message().contains(mentions),
                    "{what}: {:?} should mention {mentions:?}",
                    e.message()
                );
            }
            Ok(_) => panic!("{what}: expected {code:?}"),
        }
    }
    assert!(
        records_in(&env, &ns).await.is_empty(),
        "no record was left behind"
    );
    assert!(
        !service_account_exists(&env, &ns, "a").await,
        "no ServiceAccount was left behind"
    );
}

#[tokio::test]
async fn a_missing_cluster_role_is_not_found_and_undoes_the_service_account() {
    let env = common::start_with(tokend::server::ServerOptions {
        settings: tokend::service::Settings {
            policy: tokend::service::policy::Policy {
                allowed_cluster_roles: vec!["*".into()],
                ..Default::default()
            },
            ..Default::default()
        },
        auth: tokend::config::AuthMode::None,
        ..Default::default()
    })
    .await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let role = unique_name("no-such-role");
    let result = client
        .issue_token(v1::IssueTokenRequest {
            cluster_role: role.clone(),
            ..issue(&ns, "fresh")
        })
        .await;
    assert_code(result, Code::NotFound, &role);
    assert!(
        !service_account_exists(&env, &ns, "fresh").await,
        "the ServiceAccount this call made is gone"
    );
    assert!(records_in(&env, &ns).await.is_empty());
}

#[tokio::test]
async fn binding_to_view_grants_read_and_nothing_more() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let request = v1::IssueTokenRequest {
        cluster_role: "view".into(),
        binding_scope: v1::BindingScope::Namespace as i32,
        ..issue(&ns, "reader")
    };
    let issued = client
        .issue_token(request.clone())
        .await
        .expect("IssueToken with a binding");
    // Asking again reuses the binding instead of failing on it.
    client
        .issue_token(request)
        .await
        .expect("a second IssueToken with the same binding");

    let binding = Api::<RoleBinding>::namespaced(env.kube.clone(), &ns)
        .get("tokend:reader:view")
        .await
        .expect("the RoleBinding exists");
    assert_eq!(binding.role_ref.name, "view");

    let as_reader = client_with_token(&env, &issued.token).await;
    // RBAC in a real cluster takes a moment to see a new binding.
    eventually("view allows listing ServiceAccounts", || async {
        Api::<ServiceAccount>::namespaced(as_reader.clone(), &ns)
            .list(&ListParams::default())
            .await
            .is_ok()
    })
    .await;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(unique_name("s")),
            ..Default::default()
        },
        ..Default::default()
    };
    let denied = Api::<Secret>::namespaced(as_reader, &ns)
        .create(&PostParams::default(), &secret)
        .await;
    match denied {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!("view must not create secrets: {other:?}"),
    }
}

#[tokio::test]
async fn a_cluster_scoped_binding_is_a_cluster_role_binding() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let name = format!("tokend:{ns}:auditor:view");
    env.forget_cluster_binding_later(&name);
    client
        .issue_token(v1::IssueTokenRequest {
            cluster_role: "view".into(),
            binding_scope: v1::BindingScope::Cluster as i32,
            ..issue(&ns, "auditor")
        })
        .await
        .expect("IssueToken with a cluster binding");
    let crb = Api::<ClusterRoleBinding>::all(env.kube.clone())
        .get(&name)
        .await
        .expect("binding exists");
    let subject = &crb.subjects.expect("subjects")[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        ("auditor", Some(ns.as_str()))
    );
    let _ = Api::<ClusterRoleBinding>::all(env.kube.clone())
        .delete(&name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn list_and_get_show_records_with_their_state() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let labelled = v1::IssueTokenRequest {
        labels: HashMap::from([("team".to_owned(), "blue".to_owned())]),
        audiences: vec!["vault".into()],
        ..issue(&ns, "alpha")
    };
    let first = client.issue_token(labelled).await.expect("issue 1");
    let second = client
        .issue_token(issue(&ns, "alpha"))
        .await
        .expect("issue 2");
    let other = client
        .issue_token(issue(&ns, "beta"))
        .await
        .expect("issue 3");

    let all = client
        .list_tokens(v1::ListTokensRequest {
            namespace: ns.clone(),
            ..Default::default()
        })
        .await
        .expect("ListTokens")
        .tokens;
    let mut ids: Vec<_> = all.iter().map(|t| t.token_id.clone()).collect();
    ids.sort();
    let mut expected = vec![
        first.token_id.clone(),
        second.token_id.clone(),
        other.token_id.clone(),
    ];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(all.iter().all(|t| t.state == v1::TokenState::Active as i32));

    let alpha = client
        .list_tokens(v1::ListTokensRequest {
            namespace: ns.clone(),
            service_account: "alpha".into(),
            include_expired: false,
            ..Default::default()
        })
        .await
        .expect("ListTokens for one account")
        .tokens;
    assert_eq!(alpha.len(), 2);

    let got = client
        .get_token(v1::GetTokenRequest {
            token_id: first.token_id.clone(),
        })
        .await
        .expect("GetToken")
        .token
        .expect("record");
    assert_eq!(got.labels.get("team").map(String::as_str), Some("blue"));
    assert_eq!(got.audiences, vec!["vault".to_owned()]);
    assert_eq!(got.expiration_time, first.expiration_time);
    assert!(got.issue_time.is_some());
    // The deprecated name still carries the same time for callers that read it.
    #[allow(deprecated)]
    let old_name = got.issued_at;
    assert_eq!(old_name, got.issue_time);

    // Deleting the ServiceAccount orphans its tokens.
    Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns)
        .delete("beta", &DeleteParams::default())
        .await
        .expect("delete beta");
    let orphan = client
        .get_token(v1::GetTokenRequest {
            token_id: other.token_id.clone(),
        })
        .await
        .expect("GetToken")
        .token
        .expect("record");
    assert_eq!(orphan.state, v1::TokenState::Orphaned as i32);

    assert_code(
        client
            .get_token(v1::GetTokenRequest {
                token_id: "nonsense".into(),
            })
            .await,
        Code::InvalidArgument,
        "token_id",
    );
    let unknown = format!("{ns}.aaaaaaaaaaaaaaaa");
    assert_code(
        client
            .get_token(v1::GetTokenRequest {
                token_id: unknown.clone(),
            })
            .await,
        Code::NotFound,
        &unknown,
    );
    assert_code(
        client
            .list_tokens(v1::ListTokensRequest {
                namespace: "Bad".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "namespace",
    );
}

#[tokio::test]
async fn validate_reports_garbage_and_wrong_audiences_as_unauthenticated() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let garbage = validate(&env, "garbage").await;
    assert!(!garbage.authenticated);
    assert!(!garbage.error.is_empty());

    let issued = client
        .issue_token(v1::IssueTokenRequest {
            audiences: vec!["vault".into()],
            ..issue(&ns, "svc")
        })
        .await
        .expect("IssueToken");
    let for_vault = client
        .validate_token(v1::ValidateTokenRequest {
            token: issued.token.clone(),
            audiences: vec!["vault".into()],
        })
        .await
        .expect("ValidateToken");
    assert!(for_vault.authenticated, "{}", for_vault.error);
    assert_eq!(for_vault.audiences, vec!["vault".to_owned()]);
    let for_other = client
        .validate_token(v1::ValidateTokenRequest {
            token: issued.token,
            audiences: vec!["other".into()],
        })
        .await
        .expect("ValidateToken");
    assert!(!for_other.authenticated);

    assert_code(
        client
            .validate_token(v1::ValidateTokenRequest {
                token: String::new(),
                audiences: vec![],
            })
            .await,
        Code::InvalidArgument,
        "token",
    );
}

// Runs external processes synchronously: a second worker keeps the in-process servers going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_works_against_the_api_server_as_it_is() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let answer = client
        .get_kubeconfig(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Issue(
                v1::IssueTokenRequest {
                    cluster_role: "view".into(),
                    ..issue(&ns, "laptop")
                },
            )),
            context_name: "my-context".into(),
            ..Default::default()
        })
        .await
        .expect("GetKubeconfig");
    assert!(!answer.token_id.is_empty());
    assert!(answer.expiration_time.is_some());

    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&answer.kubeconfig).expect("valid kubeconfig");
    assert_eq!(kubeconfig.current_context.as_deref(), Some("my-context"));
    let cluster = kubeconfig.clusters[0].cluster.clone().expect("cluster");
    assert!(cluster.certificate_authority_data.is_some(), "CA embedded");
    let context = kubeconfig.contexts[0].context.clone().expect("context");
    assert_eq!(context.namespace.as_deref(), Some(ns.as_str()));

    // The kubeconfig alone is enough for a client to reach the API server as the ServiceAccount.
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let as_laptop = kube::Client::try_from(config).expect("client");
    // RBAC in a real cluster takes a moment to see a new binding.
    eventually("the kubeconfig's user can list ServiceAccounts", || async {
        Api::<ServiceAccount>::namespaced(as_laptop.clone(), &ns)
            .list(&ListParams::default())
            .await
            .is_ok()
    })
    .await;

    if let Some(kubectl) = common::find_on_path("kubectl") {
        let path = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(path.path(), &answer.kubeconfig).expect("write kubeconfig");
        let out = std::process::Command::new(kubectl)
            .args(["--kubeconfig"])
            .arg(path.path())
            .args(["get", "serviceaccounts", "-o", "name"])
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("serviceaccount/laptop"));
    } else {
        eprintln!("skipped the kubectl step: kubectl is not on PATH");
    }
}

#[tokio::test]
async fn kubeconfig_wraps_an_existing_token_and_refuses_a_bad_one() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let issued = client
        .issue_token(issue(&ns, "wrapped"))
        .await
        .expect("IssueToken");
    let answer = client
        .get_kubeconfig(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Token(
                issued.token.clone(),
            )),
            server: "https://k8s.example.com:6443".into(),
            ..Default::default()
        })
        .await
        .expect("GetKubeconfig for a token");
    assert_eq!(answer.token_id, issued.token_id);
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&answer.kubeconfig).expect("valid kubeconfig");
    let server = kubeconfig.clusters[0]
        .cluster
        .clone()
        .and_then(|c| c.server);
    assert_eq!(server.as_deref(), Some("https://k8s.example.com:6443"));
    assert_eq!(kubeconfig.current_context, Some(format!("{ns}-wrapped")));

    let bad = client
        .get_kubeconfig(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Token("garbage".into())),
            ..Default::default()
        })
        .await;
    assert_code(bad, Code::InvalidArgument, "token");
    let bad_server = client
        .get_kubeconfig(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Token(issued.token)),
            server: "ftp://nope".into(),
            ..Default::default()
        })
        .await;
    assert_code(bad_server, Code::InvalidArgument, "server");
}

/// The ClusterRoles of deploy/base/preset-roles.yaml, created in the backend where missing.
async fn ensure_preset_roles(env: &TestEnv) -> Vec<String> {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    use serde::Deserialize as _;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/preset-roles.yaml");
    let text = std::fs::read_to_string(path).expect("preset roles");
    let api = Api::<ClusterRole>::all(env.kube.clone());
    let mut names = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::Value::deserialize(doc).expect("YAML document");
        if value.is_null() {
            continue;
        }
        let role: ClusterRole = serde_json::from_value(value).expect("a ClusterRole");
        let name = role.metadata.name.clone().expect("named");
        if api.get_opt(&name).await.expect("get role").is_none() {
            api.create(&PostParams::default(), &role)
                .await
                .expect("create preset role");
            // Made for this test: not left in a cluster that did not have it.
            env.forget_cluster_role_later(&name);
        }
        names.push(name);
    }
    names
}

#[tokio::test]
async fn the_preset_roles_can_be_bound_under_the_default_policy() {
    // Given tokend with the default --allowed-cluster-roles and deploy/'s presets installed.
    let env = common::start().await;
    let presets = ensure_preset_roles(&env).await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;

    // When a token is asked for with each preset a caller is meant to be bound to, it is issued
    // with its binding.
    for role in ["tokend-view", "tokend-admin"] {
        assert!(presets.iter().any(|p| p == role), "{role} is a preset");
        let sa = unique_name("preset");
        client
            .issue_token(v1::IssueTokenRequest {
                cluster_role: role.into(),
                binding_scope: v1::BindingScope::Namespace as i32,
                ..issue(&ns, &sa)
            })
            .await
            .unwrap_or_else(|e| panic!("a token bound to {role}: {}", e.message()));
        let binding = Api::<RoleBinding>::namespaced(env.kube.clone(), &ns)
            .get(&format!("tokend:{sa}:{role}"))
            .await
            .expect("the binding tokend made");
        assert_eq!(binding.role_ref.name, role);
    }
}

#[tokio::test]
async fn a_kubeconfig_ca_is_never_taken_from_the_target_namespace() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    // Given a namespace editor who put their own CA into the namespace's kube-root-ca.crt (on a
    // real cluster the controller-manager made one; it is replaced).
    let forged = "-----BEGIN CERTIFICATE-----\nMALLORYSCA\n-----END CERTIFICATE-----\n";
    let maps = Api::<ConfigMap>::namespaced(env.kube.clone(), &ns);
    let mut map = maps
        .get_opt("kube-root-ca.crt")
        .await
        .expect("get")
        .unwrap_or_default();
    map.metadata.name = Some("kube-root-ca.crt".into());
    map.metadata.namespace = Some(ns.clone());
    map.data = Some(std::collections::BTreeMap::from([(
        "ca.crt".to_owned(),
        forged.to_owned(),
    )]));
    if map.metadata.resource_version.is_some() {
        maps.replace("kube-root-ca.crt", &PostParams::default(), &map)
            .await
            .expect("replace the CA");
    } else {
        maps.create(&PostParams::default(), &map)
            .await
            .expect("create the CA");
    }

    // When a kubeconfig is rendered for a token in that namespace.
    let answer = client
        .get_kubeconfig(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Issue(issue(&ns, "app"))),
            ..Default::default()
        })
        .await
        .expect("GetKubeconfig");

    // Then the CA it embeds is not the forged one.
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&answer.kubeconfig).expect("kubeconfig parses");
    let ca = kubeconfig.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.certificate_authority_data.clone())
        .unwrap_or_default();
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca)
        .expect("base64 CA");
    assert!(
        !String::from_utf8_lossy(&ca).contains("MALLORY"),
        "the kubeconfig trusts the namespace editor's CA"
    );
}
