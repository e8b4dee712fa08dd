//! RenewToken through the client crate: a replacement with the old token's parameters, a new
//! lifetime, the old token revoked, and the record naming the token it replaced.

use tokend_test_support as common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestEnv, assert_code, eventually, issue};
use tokend_client::v1;
use tonic::Code;

async fn validate(env: &TestEnv, token: &str) -> v1::ValidateTokenResponse {
    env.client()
        .await
        .validate_token(v1::ValidateTokenRequest {
            token: token.into(),
            audiences: vec![],
        })
        .await
        .expect("ValidateToken answers")
}

async fn record(env: &TestEnv, token_id: &str) -> v1::TokenRecord {
    env.client()
        .await
        .get_token(v1::GetTokenRequest {
            token_id: token_id.into(),
        })
        .await
        .expect("GetToken")
        .token
        .expect("a record")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[tokio::test]
async fn a_renewal_keeps_the_old_tokens_parameters_and_names_it() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let old = client
        .issue_token(v1::IssueTokenRequest {
            duration: "2h".into(),
            audiences: vec![
                "vault".into(),
                "https://kubernetes.default.svc.cluster.local".into(),
            ],
            labels: HashMap::from([("team".into(), "blue".into())]),
            cluster_role: "view".into(),
            ..issue(&ns, "ci")
        })
        .await
        .expect("IssueToken");

    let renewed = client
        .renew_token(v1::RenewTokenRequest {
            token_id: old.token_id.clone(),
            ..Default::default()
        })
        .await
        .expect("RenewToken");
    assert_ne!(renewed.token_id, old.token_id);
    assert_ne!(renewed.token, old.token);
    assert_eq!(renewed.replaced_token_id, old.token_id);
    assert!(renewed.old_revoked_at.is_none(), "nothing revoked unasked");

    let new_record = record(&env, &renewed.token_id).await;
    let old_record = record(&env, &old.token_id).await;
    assert_eq!(
        new_record.replaces, old.token_id,
        "the new record names the old"
    );
    assert_eq!(old_record.replaces, "", "an issued token replaces nothing");
    assert_eq!(new_record.service_account, "ci");
    assert_eq!(new_record.audiences, old_record.audiences);
    assert_eq!(new_record.labels, old_record.labels);
    assert_eq!(new_record.cluster_role, "view");
    assert_eq!(new_record.binding_scope, old_record.binding_scope);
    // No duration given: the server's default (1h), not the old token's 2h.
    let expires = renewed.expiration_time.expect("expiration").seconds;
    assert!(
        (expires - now() - 3600).abs() < 60,
        "expires in {} s",
        expires - now()
    );

    let review = env
        .client()
        .await
        .validate_token(v1::ValidateTokenRequest {
            token: renewed.token.clone(),
            audiences: vec!["vault".into()],
        })
        .await
        .expect("ValidateToken");
    assert!(review.authenticated, "{}", review.error);
    assert_eq!(review.username, format!("system:serviceaccount:{ns}:ci"));
    assert_eq!(review.token_id, renewed.token_id);
    let old_review = env
        .client()
        .await
        .validate_token(v1::ValidateTokenRequest {
            token: old.token.clone(),
            audiences: vec!["vault".into()],
        })
        .await
        .expect("ValidateToken");
    assert!(
        old_review.authenticated,
        "the old token still works: {}",
        old_review.error
    );
}

#[tokio::test]
async fn a_renewal_may_give_a_new_lifetime() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let old = client
        .issue_token(issue(&ns, "ci"))
        .await
        .expect("IssueToken");
    let renewed = client
        .renew_token(v1::RenewTokenRequest {
            token_id: old.token_id.clone(),
            duration: "3h".into(),
            ..Default::default()
        })
        .await
        .expect("RenewToken");
    let expires = renewed.expiration_time.expect("expiration").seconds;
    assert!(
        (expires - now() - 3 * 3600).abs() < 60,
        "expires in {} s",
        expires - now()
    );
    assert_eq!(
        record(&env, &renewed.token_id)
            .await
            .expiration_time
            .map(|t| t.seconds),
        Some(expires)
    );

    // A lifetime the policy refuses is refused by field, and nothing new is on record.
    let short = client
        .renew_token(v1::RenewTokenRequest {
            token_id: old.token_id.clone(),
            duration: "1m".into(),
            ..Default::default()
        })
        .await;
    assert_code(short, Code::InvalidArgument, "duration");
    let listed = client
        .list_tokens(v1::ListTokensRequest {
            namespace: ns.clone(),
            ..Default::default()
        })
        .await
        .expect("ListTokens");
    assert_eq!(listed.tokens.len(), 2, "the old token and one renewal");
    let granted = renewed.granted_lifetime.expect("granted_lifetime").seconds;
    assert!((granted - 3 * 3600).abs() < 60, "granted {granted} s");

    // The lifetime may be a google.protobuf.Duration instead, but not both at once.
    let by_duration = client
        .renew_token(v1::RenewTokenRequest {
            token_id: old.token_id.clone(),
            lifetime: Some(prost_types::Duration {
                seconds: 2 * 3600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .expect("RenewToken with lifetime");
    let granted = by_duration
        .granted_lifetime
        .expect("granted_lifetime")
        .seconds;
    assert!((granted - 2 * 3600).abs() < 60, "granted {granted} s");
    let both = client
        .renew_token(v1::RenewTokenRequest {
            token_id: old.token_id.clone(),
            duration: "1h".into(),
            lifetime: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await;
    assert_code(both, Code::InvalidArgument, "lifetime");
}

#[tokio::test]
async fn a_renewal_can_revoke_the_old_token() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let old = client
        .issue_token(issue(&ns, "ci"))
        .await
        .expect("IssueToken");
    let renewed = client
        .renew_token(v1::RenewTokenRequest {
            token_id: old.token_id.clone(),
            revoke_old: true,
            ..Default::default()
        })
        .await
        .expect("RenewToken");
    assert!(renewed.old_revoked_at.is_some());
    eventually("the old token stops authenticating", || async {
        !validate(&env, &old.token).await.authenticated
    })
    .await;
    assert!(validate(&env, &renewed.token).await.authenticated);
    let gone = client
        .get_token(v1::GetTokenRequest {
            token_id: old.token_id.clone(),
        })
        .await;
    assert_code(gone, Code::NotFound, &old.token_id);

    // A revoked token cannot be renewed, and bad requests name their field.
    let again = client
        .renew_token(v1::RenewTokenRequest {
            token_id: old.token_id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(again, Code::NotFound, &old.token_id);
    let grace_alone = client
        .renew_token(v1::RenewTokenRequest {
            token_id: renewed.token_id.clone(),
            revoke_grace: "10s".into(),
            ..Default::default()
        })
        .await;
    assert_code(grace_alone, Code::InvalidArgument, "revoke_grace");
    let long_grace = client
        .renew_token(v1::RenewTokenRequest {
            token_id: renewed.token_id.clone(),
            revoke_old: true,
            revoke_grace: "2h".into(),
            ..Default::default()
        })
        .await;
    assert_code(long_grace, Code::InvalidArgument, "revoke_grace");
    let no_id = client.renew_token(v1::RenewTokenRequest::default()).await;
    assert_code(no_id, Code::InvalidArgument, "token_id");
}

#[tokio::test]
async fn a_renewal_can_leave_the_old_token_a_grace_period() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let old = client
        .issue_token(issue(&ns, "ci"))
        .await
        .expect("IssueToken");
    let renewed = client
        .renew_token(v1::RenewTokenRequest {
            token_id: old.token_id.clone(),
            revoke_old: true,
            revoke_grace: "3s".into(),
            ..Default::default()
        })
        .await
        .expect("RenewToken");
    let at = renewed.old_revoked_at.expect("old_revoked_at").seconds;
    assert!((at - now() - 3).abs() <= 2, "revoked in {} s", at - now());
    // The old record goes once the grace has passed (polled: the grace is a lower bound).
    common::eventually_within(
        "the old record is revoked after the grace",
        Duration::from_secs(30),
        || async {
            let answer = client
                .get_token(v1::GetTokenRequest {
                    token_id: old.token_id.clone(),
                })
                .await;
            Ok(matches!(answer, Err(e) if e.code() == Code::NotFound))
        },
    )
    .await
    .expect("revoked");
    assert!(validate(&env, &renewed.token).await.authenticated);
}
