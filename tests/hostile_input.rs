//! Hostile requests to every RPC are refused with the field named, and leave the cluster exactly as
//! it was; forged tokens neither validate nor revoke anything. Runs against the emulator or,
//! unchanged, a real cluster (`TOKEND_TEST_KUBECONFIG`): nothing here needs a fault knob.

use tokend_test_support as common;

use common::issue;

use std::collections::{BTreeMap, HashMap};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use common::TestEnv;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};
use tokend_client::{TokendClient, v1};
use tonic::Code;

/// One request to one RPC.
#[derive(Debug, Clone)]
enum Call {
    Issue(v1::IssueTokenRequest),
    Revoke(v1::RevokeTokenRequest),
    Get(v1::GetTokenRequest),
    List(v1::ListTokensRequest),
    Validate(v1::ValidateTokenRequest),
    Kubeconfig(v1::GetKubeconfigRequest),
}

/// What the caller must see.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// An error with this code whose message mentions this text (the field, usually).
    Refused(Code, &'static str),
    /// ValidateToken answers (no error) that the token is not authenticated.
    NotAuthenticated,
}

struct Case {
    what: String,
    call: Call,
    expect: Expect,
}

fn case(what: impl Into<String>, call: Call, expect: Expect) -> Case {
    Case {
        what: what.into(),
        call,
        expect,
    }
}

fn invalid(field: &'static str) -> Expect {
    Expect::Refused(Code::InvalidArgument, field)
}

/// What an RPC answered, reduced to what the table checks: the error, or whether a
/// ValidateToken said authenticated (None for the other RPCs' successes).
async fn run(client: &TokendClient, call: Call) -> Result<Option<bool>, tokend_client::Error> {
    Ok(match call {
        Call::Issue(r) => client.issue_token(r).await.map(|_| None)?,
        Call::Revoke(r) => client.revoke_token(r).await.map(|_| None)?,
        Call::Get(r) => client.get_token(r).await.map(|_| None)?,
        Call::List(r) => client.list_tokens(r).await.map(|_| None)?,
        Call::Validate(r) => Some(client.validate_token(r).await?.authenticated),
        Call::Kubeconfig(r) => client.get_kubeconfig(r).await.map(|_| None)?,
    })
}

async fn check(client: &TokendClient, case: Case) {
    let Case { what, call, expect } = case;
    let answer = run(client, call).await;
    match (expect, answer) {
        (Expect::Refused(code, mentions), Err(e)) => {
            assert_eq!(
                e.code(),
                code,
                "{what}: wrong code; message: {}",
                e.message()
            );
            assert!(
                e.message().contains(mentions),
                "{what}: message {:?} should mention {mentions:?}",
                e.message()
            );
        }
        (Expect::NotAuthenticated, Ok(Some(false))) => {}
        (expect, answer) => panic!("{what}: expected {expect:?}, got {answer:?}"),
    }
}

/// Every object a hostile request could have created or changed, by kind and name, with its
/// resourceVersion: the Secrets, ServiceAccounts and RoleBindings of `ns`, and the
/// ClusterRoleBindings tokend would name after `ns`.
async fn snapshot(env: &TestEnv, ns: &str) -> BTreeMap<String, String> {
    fn versions<K: Resource>(kind: &str, items: Vec<K>) -> Vec<(String, String)> {
        items
            .into_iter()
            .map(|o| {
                (
                    format!("{kind}/{}", o.meta().name.clone().unwrap_or_default()),
                    o.meta().resource_version.clone().unwrap_or_default(),
                )
            })
            .collect()
    }
    let lp = ListParams::default();
    let kube = env.kube.clone();
    let secrets = Api::<Secret>::namespaced(kube.clone(), ns)
        .list(&lp)
        .await
        .expect("list secrets")
        .items;
    let accounts = Api::<ServiceAccount>::namespaced(kube.clone(), ns)
        .list(&lp)
        .await
        .expect("list serviceaccounts")
        .items;
    let bindings = Api::<RoleBinding>::namespaced(kube.clone(), ns)
        .list(&lp)
        .await
        .expect("list rolebindings")
        .items;
    let cluster_bindings: Vec<_> = Api::<ClusterRoleBinding>::all(kube)
        .list(&lp)
        .await
        .expect("list clusterrolebindings")
        .items
        .into_iter()
        .filter(|b| b.name_any().starts_with(&format!("tokend:{ns}:")))
        .collect();
    let mut all = BTreeMap::new();
    all.extend(versions("secrets", secrets));
    all.extend(versions("serviceaccounts", accounts));
    all.extend(versions("rolebindings", bindings));
    all.extend(versions("clusterrolebindings", cluster_bindings));
    all
}

fn revoke_id(id: &str) -> Call {
    Call::Revoke(v1::RevokeTokenRequest {
        target: Some(v1::revoke_token_request::Target::TokenId(id.into())),
    })
}

fn revoke_token(token: &str) -> Call {
    Call::Revoke(v1::RevokeTokenRequest {
        target: Some(v1::revoke_token_request::Target::Token(token.into())),
    })
}

fn validate(token: &str) -> Call {
    Call::Validate(v1::ValidateTokenRequest {
        token: token.into(),
        audiences: vec![],
    })
}

fn wrap(token: &str) -> Call {
    Call::Kubeconfig(v1::GetKubeconfigRequest {
        source: Some(v1::get_kubeconfig_request::Source::Token(token.into())),
        ..Default::default()
    })
}

/// Names no Kubernetes object may have: uppercase, dots at the ends, 254 characters, unicode,
/// path traversal, control characters, empty.
fn hostile_names() -> Vec<(&'static str, String)> {
    vec![
        ("uppercase", "Deployer".into()),
        ("a leading dot", ".deployer".into()),
        ("a trailing dot", "deployer.".into()),
        ("254 characters", "a".repeat(254)),
        ("unicode", "déployeur".into()),
        ("a right-to-left override", "ci\u{202e}nimda".into()),
        ("path traversal", "../kube-system".into()),
        ("a slash", "a/b".into()),
        ("a NUL", "ci\0".into()),
        ("empty", String::new()),
    ]
}

/// A key pair nobody trusts, and a token signed with it carrying `claims`.
fn forge(claims: &serde_json::Value, kid: Option<String>) -> String {
    let key = KeyPair::generate(KeySize::Rsa2048).expect("RSA key");
    let der = key.as_der().expect("PKCS#8");
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("encoding key");
    let header = Header {
        kid,
        ..Header::new(Algorithm::RS256)
    };
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// An unsigned (`alg: none`) JWT carrying `claims`.
fn unsigned(claims: &serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

/// The claims of a JWT, read without checking its signature.
fn claims_of(token: &str) -> serde_json::Value {
    jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Value>(token).expect("a JWT")
}

fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token)
        .expect("a JWT header")
        .kid
}

#[tokio::test]
async fn hostile_issue_requests_are_refused_with_the_field_named_and_change_nothing() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    client
        .issue_token(issue(&ns, "holder"))
        .await
        .expect("a token on record before the hostile requests");
    let before = snapshot(&env, &ns).await;

    let mut cases = Vec::new();
    for (what, name) in hostile_names() {
        cases.push(case(
            format!("IssueToken, namespace with {what}"),
            Call::Issue(issue(&name, "ci")),
            invalid("namespace"),
        ));
        cases.push(case(
            format!("IssueToken, service_account with {what}"),
            Call::Issue(issue(&ns, &name)),
            invalid("service_account"),
        ));
        cases.push(case(
            format!("GetKubeconfig issuing, service_account with {what}"),
            Call::Kubeconfig(v1::GetKubeconfigRequest {
                source: Some(v1::get_kubeconfig_request::Source::Issue(issue(&ns, &name))),
                ..Default::default()
            }),
            invalid("service_account"),
        ));
    }
    for duration in [
        "0",
        "-1h",
        "1h1h",
        "999999999999y",
        "99999999999999999999999s",
        "1.5h",
        " 1h",
        "1h ",
        "1H",
        "1h30",
        "٣h",
    ] {
        cases.push(case(
            format!("IssueToken, duration {duration:?}"),
            Call::Issue(v1::IssueTokenRequest {
                duration: duration.into(),
                ..issue(&ns, "ci")
            }),
            invalid("duration"),
        ));
    }
    // Parses, but is over the server's maximum: policy, not grammar.
    cases.push(case(
        "IssueToken, duration \"99999999999y\"",
        Call::Issue(v1::IssueTokenRequest {
            duration: "99999999999y".into(),
            ..issue(&ns, "ci")
        }),
        Expect::Refused(Code::FailedPrecondition, "duration"),
    ));
    let audiences: [(&str, Vec<String>, &'static str); 5] = [
        (
            "1,000 audiences",
            (0..1000).map(|i| format!("aud-{i}")).collect(),
            "audiences",
        ),
        ("an empty audience", vec![String::new()], "audiences[0]"),
        (
            "an audience with a space",
            vec!["ok".into(), "a b".into()],
            "audiences[1]",
        ),
        (
            "a 10,000-character audience",
            vec!["a".repeat(10_000)],
            "audiences[0]",
        ),
        (
            "the same audience twice",
            vec!["vault".into(), "vault".into()],
            "audiences[1]",
        ),
    ];
    for (what, audiences, field) in audiences {
        cases.push(case(
            format!("IssueToken, {what}"),
            Call::Issue(v1::IssueTokenRequest {
                audiences: audiences.clone(),
                ..issue(&ns, "ci")
            }),
            invalid(field),
        ));
        cases.push(case(
            format!("ValidateToken, {what}"),
            Call::Validate(v1::ValidateTokenRequest {
                token: "x.y.z".into(),
                audiences,
            }),
            invalid(field),
        ));
    }
    let labels = [
        ("an empty key", "", "v"),
        ("a key with a space", "team name", "v"),
        ("a key starting with a dash", "-team", "v"),
        ("a key with two slashes", "a/b/c", "v"),
        ("an uppercase key prefix", "Example.COM/team", "v"),
        ("a 64-character key name", &*"k".repeat(64), "v"),
        ("a path-traversal key", "../team", "v"),
        ("a unicode key", "équipe", "v"),
        ("a value with a space", "team", "a b"),
        ("a 64-character value", "team", &*"v".repeat(64)),
        ("a value ending in a dash", "team", "a-"),
        ("a unicode value", "team", "bleu€"),
        ("a reserved key", "tokend.io/owner", "me"),
        (
            "tokend's managed-by key",
            "app.kubernetes.io/managed-by",
            "me",
        ),
    ];
    for (what, key, value) in labels {
        cases.push(case(
            format!("IssueToken, label with {what}"),
            Call::Issue(v1::IssueTokenRequest {
                labels: HashMap::from([(key.to_owned(), value.to_owned())]),
                ..issue(&ns, "ci")
            }),
            invalid("labels"),
        ));
    }
    cases.push(case(
        "IssueToken, 33 labels",
        Call::Issue(v1::IssueTokenRequest {
            labels: (0..33).map(|i| (format!("k{i}"), "v".to_owned())).collect(),
            ..issue(&ns, "ci")
        }),
        invalid("labels"),
    ));
    cases.push(case(
        "IssueToken, cluster_role with path traversal",
        Call::Issue(v1::IssueTokenRequest {
            cluster_role: "../admin".into(),
            ..issue(&ns, "ci")
        }),
        invalid("cluster_role"),
    ));
    cases.push(case(
        "IssueToken, an unknown binding_scope",
        Call::Issue(v1::IssueTokenRequest {
            cluster_role: "view".into(),
            binding_scope: 42,
            ..issue(&ns, "ci")
        }),
        invalid("binding_scope"),
    ));

    for c in cases {
        check(&client, c).await;
    }
    assert_eq!(
        snapshot(&env, &ns).await,
        before,
        "the namespace holds exactly what it held before"
    );
}

#[tokio::test]
async fn hostile_lookups_and_revokes_are_refused_with_the_field_named_and_change_nothing() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let held = client
        .issue_token(issue(&ns, "holder"))
        .await
        .expect("a token on record before the hostile requests");
    let before = snapshot(&env, &ns).await;

    let mut cases = Vec::new();
    for (what, name) in hostile_names() {
        cases.push(case(
            format!("ListTokens, namespace with {what}"),
            Call::List(v1::ListTokensRequest {
                namespace: name.clone(),
                ..Default::default()
            }),
            invalid("namespace"),
        ));
        if !name.is_empty() {
            cases.push(case(
                format!("ListTokens, service_account with {what}"),
                Call::List(v1::ListTokensRequest {
                    namespace: ns.clone(),
                    service_account: name.clone(),
                    include_expired: true,
                    ..Default::default()
                }),
                invalid("service_account"),
            ));
        }
    }
    let real_random = held
        .token_id
        .split_once('.')
        .map(|(_, r)| r.to_owned())
        .expect("NAMESPACE.ID");
    let token_ids = [
        ("empty", String::new()),
        ("no dot", real_random.clone()),
        ("a path", format!("../{real_random}")),
        (
            "the record's Secret name",
            format!("{ns}.tokend-{real_random}"),
        ),
        (
            "an uppercase id",
            format!("{ns}.{}", real_random.to_uppercase()),
        ),
        ("a short id", format!("{ns}.abc")),
        (
            "254 characters",
            format!("{ns}.{}", "a".repeat(254 - ns.len() - 1)),
        ),
        ("unicode", format!("{ns}.{}", "é".repeat(8))),
        (
            "an uppercase namespace",
            format!("{}.{real_random}", ns.to_uppercase()),
        ),
        ("a trailing dot", format!("{}.", held.token_id)),
    ];
    for (what, id) in token_ids {
        cases.push(case(
            format!("GetToken, token_id {what}"),
            Call::Get(v1::GetTokenRequest {
                token_id: id.clone(),
            }),
            invalid("token_id"),
        ));
        cases.push(case(
            format!("RevokeToken, token_id {what}"),
            revoke_id(&id),
            invalid("token_id"),
        ));
    }
    cases.push(case(
        "RevokeToken with no target",
        Call::Revoke(v1::RevokeTokenRequest { target: None }),
        invalid("target"),
    ));
    cases.push(case(
        "GetKubeconfig with no source",
        Call::Kubeconfig(v1::GetKubeconfigRequest::default()),
        invalid("source"),
    ));
    for server in [
        "http://k8s.example.com",
        "https://",
        "javascript:alert(1)",
        "k8s.example.com:6443",
        "https://exa mple.com",
    ] {
        cases.push(case(
            format!("GetKubeconfig, server {server:?}"),
            Call::Kubeconfig(v1::GetKubeconfigRequest {
                source: Some(v1::get_kubeconfig_request::Source::Issue(issue(&ns, "ci"))),
                server: server.into(),
                context_name: String::new(),
                exec: None,
            }),
            invalid("server"),
        ));
    }
    for context in ["../ctx", ".", "a/b", "ctx\u{7f}"] {
        cases.push(case(
            format!("GetKubeconfig, context_name {context:?}"),
            Call::Kubeconfig(v1::GetKubeconfigRequest {
                source: Some(v1::get_kubeconfig_request::Source::Issue(issue(&ns, "ci"))),
                server: String::new(),
                context_name: context.into(),
                exec: None,
            }),
            invalid("context_name"),
        ));
    }

    // Tokens holding garbage, and JWTs the API server never signed.
    let real_claims = claims_of(&held.token);
    let foreign_copy = forge(&real_claims, kid_of(&held.token));
    let foreign_unbound = forge(
        &serde_json::json!({
            "iss": "https://evil.example", "sub": "system:serviceaccount:default:x",
            "aud": ["https://kubernetes.default.svc"], "exp": 4_102_444_800_i64,
            "iat": 0, "nbf": 0,
        }),
        None,
    );
    let unsigned_copy = unsigned(&real_claims);
    let garbage = [
        ("empty", String::new(), "token"),
        ("not a JWT", "not-a-jwt".to_owned(), "token"),
        ("three dots of nothing", "a.b.c".to_owned(), "token"),
        ("unicode", "токен".to_owned(), "token"),
        ("64 KiB of x", "x".repeat(64 * 1024), "token"),
    ];
    for (what, token, field) in garbage {
        cases.push(case(
            format!("RevokeToken, token {what}"),
            revoke_token(&token),
            invalid(field),
        ));
        cases.push(case(
            format!("GetKubeconfig, token {what}"),
            wrap(&token),
            invalid(field),
        ));
        cases.push(case(
            format!("ValidateToken, token {what}"),
            validate(&token),
            if token.is_empty() {
                invalid("token")
            } else {
                Expect::NotAuthenticated
            },
        ));
    }
    let forged = [
        (
            "the held token's claims signed by another key",
            foreign_copy,
        ),
        ("an unbound token signed by another key", foreign_unbound),
        ("the held token's claims unsigned (alg none)", unsigned_copy),
    ];
    for (what, token) in forged {
        cases.push(case(
            format!("ValidateToken, {what}"),
            validate(&token),
            Expect::NotAuthenticated,
        ));
        cases.push(case(
            format!("RevokeToken, {what}"),
            revoke_token(&token),
            invalid("token"),
        ));
        cases.push(case(
            format!("GetKubeconfig, {what}"),
            wrap(&token),
            invalid("token"),
        ));
    }

    for c in cases {
        check(&client, c).await;
    }
    assert_eq!(
        snapshot(&env, &ns).await,
        before,
        "the namespace holds exactly what it held before"
    );
    // The forged tokens revoked nothing: the held token still authenticates.
    let review = client
        .validate_token(v1::ValidateTokenRequest {
            token: held.token.clone(),
            audiences: vec![],
        })
        .await
        .expect("ValidateToken");
    assert!(review.authenticated, "error: {}", review.error);
    assert_eq!(review.token_id, held.token_id);
}

#[tokio::test]
async fn a_forged_token_naming_no_record_is_invalid_not_already_revoked() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let held = client
        .issue_token(issue(&ns, "holder"))
        .await
        .expect("a token to copy the shape of");
    let before = snapshot(&env, &ns).await;
    let mut claims = claims_of(&held.token);
    claims["kubernetes.io"]["secret"]["name"] = "tokend-0000000000000000".into();
    let forged = forge(&claims, kid_of(&held.token));

    check(
        &client,
        case(
            "RevokeToken, a forged token bound to no record",
            revoke_token(&forged),
            invalid("token"),
        ),
    )
    .await;
    assert_eq!(snapshot(&env, &ns).await, before);
}

#[tokio::test]
async fn a_ten_megabyte_request_is_refused_before_it_is_read() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let before = snapshot(&env, &ns).await;

    let result = client
        .issue_token(v1::IssueTokenRequest {
            labels: HashMap::from([("note".to_owned(), "x".repeat(10 * 1024 * 1024))]),
            ..issue(&ns, "ci")
        })
        .await;

    // Over the 4 MiB decoding limit: RESOURCE_EXHAUSTED, and the request never reaches a handler.
    let e = result.expect_err("a 10 MB request");
    assert_eq!(
        e.code(),
        Code::ResourceExhausted,
        "message: {}",
        e.message()
    );
    assert!(
        e.message().contains("too large"),
        "message: {}",
        e.message()
    );
    assert_eq!(snapshot(&env, &ns).await, before);
}

#[tokio::test]
async fn error_messages_quote_at_most_a_short_piece_of_the_input() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let long_key = "k".repeat(1_000_000);
    let long_duration = format!("{}1s", "0".repeat(100_000));
    let cases = [
        (
            "a megabyte label key",
            v1::IssueTokenRequest {
                labels: HashMap::from([(long_key, "v".into())]),
                ..issue(&ns, "app")
            },
            "labels[",
        ),
        (
            "a 100 kB duration",
            v1::IssueTokenRequest {
                duration: long_duration,
                ..issue(&ns, "app")
            },
            "duration",
        ),
    ];
    for (what, request, field) in cases {
        let err = client.issue_token(request).await.expect_err("refused");
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{what}: {}",
            err.message()
        );
        assert!(err.message().contains(field), "{what}: {}", err.message());
        assert!(
            err.message().len() < 512 && err.message().contains('…'),
            "{what}: the message quotes a shortened input, {} bytes: {:.200}",
            err.message().len(),
            err.message()
        );
    }
}

#[tokio::test]
async fn a_kubeconfig_kubectl_could_not_load_is_refused_before_a_token_is_minted() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let before = snapshot(&env, &ns).await;
    // YAML 1.1, which kubectl reads kubeconfigs with, takes these for booleans and numbers.
    for name in ["yes", "no", "on", "Off", "1_000", "2024-01-01"] {
        let answer = client
            .get_kubeconfig(v1::GetKubeconfigRequest {
                source: Some(v1::get_kubeconfig_request::Source::Issue(issue(&ns, "app"))),
                context_name: name.into(),
                ..Default::default()
            })
            .await;
        common::assert_code(answer, Code::InvalidArgument, "context_name");
    }
    assert_eq!(
        snapshot(&env, &ns).await,
        before,
        "no ServiceAccount, record or token was made"
    );
}
