//! ListTokens in pages (AIP-158) and its filters, through the client crate: pages that together
//! hold every record once, a label selector over the callers' labels, state filtering, and page
//! tokens that only continue the query they came from and that only tokend can mint (ListTokens'
//! and ListBootstrapTokens').

use tokend_test_support as common;

use std::collections::{BTreeMap, BTreeSet};

use common::{assert_code, issue, reason_of, start, unique_name, violations_of};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::DeleteParams;
use tokend_client::TokendClient;
use tokend_client::v1;
use tonic::Code;

async fn issue_labelled(
    client: &TokendClient,
    ns: &str,
    sa: &str,
    labels: &[(&str, &str)],
) -> String {
    let mut request = issue(ns, sa);
    request.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    client
        .issue_token(request)
        .await
        .expect("IssueToken")
        .token_id
}

fn ids(tokens: &[v1::TokenRecord]) -> BTreeSet<String> {
    tokens.iter().map(|t| t.token_id.clone()).collect()
}

#[tokio::test]
async fn pages_hold_every_record_once_while_records_are_added() {
    // Given 23 records,
    let env = start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let mut before = BTreeSet::new();
    for i in 0..23 {
        before.insert(issue_labelled(&client, &ns, &format!("sa-{}", i % 3), &[]).await);
    }

    // when they are listed 5 at a time while two more are issued after every page,
    let mut seen: Vec<String> = Vec::new();
    let mut added = BTreeSet::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_tokens(v1::ListTokensRequest {
                namespace: ns.clone(),
                page_size: 5,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("ListTokens page");
        pages += 1;
        assert!(page.tokens.len() <= 5, "a page holds at most page_size");
        seen.extend(page.tokens.iter().map(|t| t.token_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        for _ in 0..2 {
            added.insert(issue_labelled(&client, &ns, "late", &[]).await);
        }
        assert!(pages < 100, "paging ends");
    }

    // then every record that existed throughout is on exactly one page, and nothing twice.
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no record on two pages");
    assert!(
        before.is_subset(&unique),
        "every record that existed before the listing is listed"
    );
    assert!(
        unique.difference(&before).all(|id| added.contains(id)),
        "nothing listed that was never issued"
    );
    assert!(pages >= 5, "23 records at 5 a page take at least 5 pages");

    // And the client crate's stream follows the pages to the same set.
    let all: Vec<v1::TokenRecord> = client
        .list_all_tokens(v1::ListTokensRequest {
            namespace: ns.clone(),
            page_size: 4,
            ..Default::default()
        })
        .try_collect()
        .await
        .expect("every page");
    let expected: BTreeSet<String> = before.union(&added).cloned().collect();
    assert_eq!(ids(&all), expected);
    assert_eq!(all.len(), expected.len());
}

#[tokio::test]
async fn label_selector_selects_on_callers_labels() {
    let env = start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let blue = issue_labelled(&client, &ns, "ci", &[("team", "blue"), ("env", "dev")]).await;
    let red = issue_labelled(&client, &ns, "ci", &[("team", "red"), ("env", "qa")]).await;
    let plain = issue_labelled(&client, &ns, "ci", &[]).await;

    let select = |selector: &str| {
        let client = client.clone();
        let request = v1::ListTokensRequest {
            namespace: ns.clone(),
            label_selector: selector.to_owned(),
            ..Default::default()
        };
        async move {
            ids(&client
                .list_all_tokens(request)
                .try_collect::<Vec<_>>()
                .await
                .expect("ListTokens"))
        }
    };
    assert_eq!(select("team=blue").await, BTreeSet::from([blue.clone()]));
    assert_eq!(
        select("team in (blue, red)").await,
        BTreeSet::from([blue.clone(), red.clone()])
    );
    assert_eq!(select("!team").await, BTreeSet::from([plain.clone()]));
    assert_eq!(
        select("team,env notin (dev)").await,
        BTreeSet::from([red.clone()])
    );
    assert_eq!(select("").await, BTreeSet::from([blue, red, plain]));
}

#[tokio::test]
async fn a_bad_selector_or_foreign_page_token_is_invalid_argument_naming_the_field() {
    let env = start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    for _ in 0..3 {
        issue_labelled(&client, &ns, "ci", &[("team", "blue")]).await;
    }
    let list = |selector: &str, page_size: i32, page_token: &str| {
        client.list_tokens(v1::ListTokensRequest {
            namespace: ns.clone(),
            label_selector: selector.to_owned(),
            page_size,
            page_token: page_token.to_owned(),
            ..Default::default()
        })
    };
    for bad in [
        "team in (blue",
        "team=blue,",
        "Bad Key=x",
        "team=a b",
        "tokend.io/service-account=ci",
        "app.kubernetes.io/managed-by=someone",
    ] {
        assert_code(
            list(bad, 0, "").await,
            Code::InvalidArgument,
            "label_selector",
        );
    }
    assert_code(list("", -1, "").await, Code::InvalidArgument, "page_size");
    assert_code(
        list("", 1, "not-a-token").await,
        Code::InvalidArgument,
        "page_token",
    );

    // A page token continues only the query it was issued for.
    let first = list("team=blue", 1, "").await.expect("first page");
    assert!(!first.next_page_token.is_empty(), "3 records, 1 a page");
    assert_code(
        list("team=red", 1, &first.next_page_token).await,
        Code::InvalidArgument,
        "page_token",
    );
    let second = list("team=blue", 2, &first.next_page_token)
        .await
        .expect("the same query may change its page size");
    assert_eq!(second.tokens.len(), 2);
    assert!(ids(&second.tokens).is_disjoint(&ids(&first.tokens)));
}

#[tokio::test]
async fn states_filter_orphaned_and_active_records() {
    // Given records of two ServiceAccounts, one of which is then deleted,
    let env = start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let kept = issue_labelled(&client, &ns, "kept", &[]).await;
    let gone = issue_labelled(&client, &ns, "gone", &[]).await;
    Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns)
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete the ServiceAccount");

    let by_state = |states: Vec<v1::TokenState>| {
        let client = client.clone();
        let request = v1::ListTokensRequest {
            namespace: ns.clone(),
            states: states.into_iter().map(|s| s as i32).collect(),
            page_size: 1,
            ..Default::default()
        };
        async move {
            client
                .list_all_tokens(request)
                .try_collect::<Vec<_>>()
                .await
                .expect("ListTokens")
                .into_iter()
                .map(|t| (t.token_id, t.state))
                .collect::<BTreeMap<_, _>>()
        }
    };
    // then each state filter lists exactly the records in that state.
    assert_eq!(
        by_state(vec![v1::TokenState::Orphaned]).await,
        BTreeMap::from([(gone.clone(), v1::TokenState::Orphaned as i32)])
    );
    assert_eq!(
        by_state(vec![v1::TokenState::Active]).await,
        BTreeMap::from([(kept.clone(), v1::TokenState::Active as i32)])
    );
    assert!(by_state(vec![v1::TokenState::Expired]).await.is_empty());
    assert_eq!(by_state(vec![]).await.len(), 2);
    assert_code(
        client
            .list_tokens(v1::ListTokensRequest {
                namespace: ns.clone(),
                states: vec![0],
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "states",
    );
}

/// A page token with the same meaning as `genuine` that tokend never wrote: its base64 JSON
/// payload (the part before any `.`) re-serialised with other whitespace and re-encoded, as
/// someone who read the format would mint one. Page tokens, like the API server's continue
/// tokens, are unpadded URL-safe base64.
fn minted_like(genuine: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = genuine.split('.').next().unwrap_or(genuine);
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("a page token is base64");
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("of JSON");
    URL_SAFE_NO_PAD.encode(serde_json::to_vec_pretty(&value).expect("JSON"))
}

/// `genuine` with one character of its end changed.
fn altered(genuine: &str) -> String {
    let mut text = genuine.to_owned();
    let last = text.pop().expect("not empty");
    text.push(if last == 'A' { 'B' } else { 'A' });
    text
}

fn assert_page_token_refused<T: std::fmt::Debug>(answer: Result<T, tokend_client::Error>) {
    assert_eq!(reason_of(&answer), Some("INVALID_FIELDS"), "{answer:?}");
    assert_eq!(
        violations_of(&answer),
        [("page_token".to_owned(), "PAGE_TOKEN_INVALID".to_owned())]
    );
    assert_code(answer, Code::InvalidArgument, "page_token");
}

#[tokio::test]
async fn a_list_tokens_page_token_tokend_did_not_mint_is_refused() {
    // Given three records listed one a page,
    let env = start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    for _ in 0..3 {
        issue_labelled(&client, &ns, "sa", &[]).await;
    }
    let page = |page_token: String| {
        client.list_tokens(v1::ListTokensRequest {
            namespace: ns.clone(),
            page_size: 1,
            page_token,
            ..Default::default()
        })
    };
    let genuine = page(String::new())
        .await
        .expect("first page")
        .next_page_token;
    assert!(!genuine.is_empty());

    // when the next page is asked for with a token minted outside tokend or altered, then it is
    // refused, naming page_token;
    assert_page_token_refused(page(minted_like(&genuine)).await);
    assert_page_token_refused(page(altered(&genuine)).await);
    // and tokend's own token still continues the listing.
    let second = page(genuine).await.expect("second page");
    assert_eq!(second.tokens.len(), 1);
}

#[tokio::test]
async fn a_list_bootstrap_tokens_page_token_tokend_did_not_mint_is_refused() {
    // Given two bootstrap tokens (at least: other tests make theirs) listed one a page,
    let env = common::start_with_node_credentials(&[]).await;
    let client = env.client().await;
    let description = unique_name("paged");
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(
            client
                .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
                    description: description.clone(),
                    ..Default::default()
                })
                .await
                .expect("issue a bootstrap token")
                .token_id,
        );
    }
    let page = |page_token: String| {
        client.list_bootstrap_tokens(v1::ListBootstrapTokensRequest {
            page_size: 1,
            page_token,
        })
    };
    let genuine = page(String::new())
        .await
        .expect("first page")
        .next_page_token;
    assert!(!genuine.is_empty());

    // when the next page is asked for with a token minted outside tokend (the API server's own
    // continue tokens are not signed) or altered, then it is refused, naming page_token;
    let minted = page(minted_like(&genuine)).await;
    let altered = page(altered(&genuine)).await;
    // and tokend's own token still continues the listing.
    let second = page(genuine).await;
    for id in ids {
        client
            .revoke_bootstrap_token(v1::RevokeBootstrapTokenRequest { token_id: id })
            .await
            .expect("revoke");
    }
    assert_page_token_refused(minted);
    assert_page_token_refused(altered);
    assert_eq!(second.expect("second page").bootstrap_tokens.len(), 1);
}
