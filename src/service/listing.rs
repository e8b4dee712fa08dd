//! ListTokens in pages (AIP-158): each page is one bounded, metadata-only API call
//! (`limit`/`continue`), plus one metadata GET per distinct ServiceAccount on the page for its
//! state; nothing grows with the number of records.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::checks::secret_access;
use super::label_selector;
use super::record::{self, TokenRecord, TokenState};
use super::seal::RecordKey;
use super::{Caller, Error, Reason, Result, TokenService, Violations};
use crate::names;
use crate::vocabulary::{MANAGED_BY_LABEL, RESERVED_PREFIX};

/// Records examined for a page when the request names no size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Most records examined for one page; larger requests are lowered to it.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// ServiceAccounts looked up at once for a page's states.
const ACCOUNT_LOOKUPS_AT_ONCE: usize = 8;

/// Which records to list, and which page.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Namespace to list.
    pub namespace: String,
    /// Only this ServiceAccount's tokens, when set.
    pub service_account: Option<String>,
    /// Include expired tokens (when `states` is empty).
    pub include_expired: bool,
    /// Records examined for this page; 0 means the default.
    pub page_size: i32,
    /// The previous page's `next_page_token`; empty for the first.
    pub page_token: String,
    /// A label selector over the callers' labels.
    pub label_selector: String,
    /// Only these states, when not empty.
    pub states: Vec<TokenState>,
    /// Fields the gRPC layer could not translate (unknown states), reported together with every
    /// other bad field.
    pub untranslatable: Violations,
}

/// One page of records.
#[derive(Debug, Default)]
pub struct ListPage {
    /// The page's records with their states, in the API server's order (by record name).
    pub records: Vec<(TokenRecord, TokenState)>,
    /// Token for the next page; empty on the last.
    pub next_page_token: String,
}

/// What a page token holds: the API server's continue token and a fingerprint of the query it
/// continues, so a token replayed with another query is refused rather than misread. It travels
/// as `<base64url JSON>.<base64url tag>`, the tag the record key's HMAC over the JSON for one
/// list: only tokend's replicas mint page tokens, so a caller cannot hand the API server a
/// continue token of their own making, nor one of another list.
#[derive(Serialize, Deserialize)]
struct PageToken {
    /// Kubernetes' continue token.
    c: String,
    /// Fingerprint of the query.
    q: String,
}

/// What the tags of ListTokens' page tokens are made for.
pub(super) const LIST_TOKENS_PAGES: &str = "tokend.v1.ListTokens page token";

impl ListQuery {
    fn fingerprint(&self, selector: &str) -> String {
        let mut states: Vec<_> = self.states.iter().map(|s| format!("{s:?}")).collect();
        states.sort();
        let text = format!(
            "{}\0{}\0{}\0{selector}\0{}",
            self.namespace,
            self.service_account.as_deref().unwrap_or(""),
            self.include_expired,
            states.join(",")
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
        URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12])
    }

    fn wants(&self, state: TokenState) -> bool {
        if self.states.is_empty() {
            self.include_expired || state != TokenState::Expired
        } else {
            self.states.contains(&state)
        }
    }
}

impl TokenService {
    /// One page of the records of a namespace (or of one ServiceAccount), with their states.
    pub async fn list(&self, caller: &Caller, query: &ListQuery) -> Result<ListPage> {
        let mut violations = query.untranslatable.clone();
        violations.check(
            "namespace",
            Reason::NameInvalid,
            names::check_dns1123_label(&query.namespace),
        );
        if let Some(sa) = &query.service_account {
            violations.check(
                "service_account",
                Reason::NameInvalid,
                names::check_dns1123_subdomain(sa),
            );
        }
        let page_size = match query.page_size {
            n if n < 0 => {
                violations.add("page_size", Reason::ValueOutOfRange, "must not be negative");
                DEFAULT_PAGE_SIZE
            }
            0 => DEFAULT_PAGE_SIZE,
            n => u32::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
        };
        let callers_selector = violations
            .check(
                "label_selector",
                Reason::LabelSelectorInvalid,
                label_selector::parse(&query.label_selector, |key| {
                    key.starts_with(RESERVED_PREFIX) || key == MANAGED_BY_LABEL
                }),
            )
            .map(|selector| selector.to_string());
        // Page tokens are checked with the record key, read first only when there is one.
        let page_key = match query.page_token.as_str() {
            "" => None,
            _ => Some(self.key().await?),
        };
        let continue_token = match (query.page_token.as_str(), &callers_selector, page_key) {
            ("", _, _) | (_, None, _) | (_, _, None) => None,
            (text, Some(selector), Some(key)) => {
                match read_page_token(key, LIST_TOKENS_PAGES, text, &query.fingerprint(selector)) {
                    Ok(continue_token) => Some(continue_token),
                    Err(e) => {
                        violations.absorb(Err(e))?;
                        None
                    }
                }
            }
        };
        violations.into_result()?;
        let callers_selector = callers_selector.unwrap_or_default();
        let fingerprint = query.fingerprint(&callers_selector);
        self.require(caller, secret_access("list", &query.namespace, None))
            .await?;

        let mut selector = record::selector(query.service_account.as_deref());
        if !callers_selector.is_empty() {
            selector.push(',');
            selector.push_str(&callers_selector);
        }
        let page = self
            .cluster
            .record_page(
                Some(&query.namespace),
                &selector,
                page_size,
                continue_token.as_deref(),
            )
            .await
            .map_err(|e| match e {
                // A real server forgets continue tokens after etcd compaction (minutes).
                crate::cluster::Error::Api { code: 410, .. } => Error::invalid(
                    "page_token",
                    Reason::PageTokenInvalid,
                    "has expired; list again from the first page",
                ),
                other => other.into(),
            })?;
        let key = self.key().await?;
        // Only records tokend wrote and sealed: pending ones (no token issued yet, or never),
        // forged and altered ones are not tokend's to show.
        let records: Vec<TokenRecord> = page
            .items
            .iter()
            .filter_map(TokenRecord::from_metadata)
            .filter(|r| r.is_sealed_by(key))
            .filter(|r| {
                query
                    .service_account
                    .as_ref()
                    .is_none_or(|sa| &r.service_account == sa)
            })
            .collect();
        let accounts = self.account_uids(&query.namespace, &records).await?;
        let now = Timestamp::now();
        let records = records
            .into_iter()
            .map(|r| {
                let state = r.state(
                    now,
                    accounts.get(&r.service_account).and_then(Option::as_deref),
                );
                (r, state)
            })
            .filter(|(_, state)| query.wants(*state))
            .collect();
        let next_page_token = match page.continue_token {
            Some(c) => write_page_token(key, LIST_TOKENS_PAGES, c, fingerprint),
            None => String::new(),
        };
        Ok(ListPage {
            records,
            next_page_token,
        })
    }

    /// The current uid of each ServiceAccount the records name (None: gone): a metadata GET per
    /// distinct account, a few at a time, so the cost follows the page, not the namespace.
    async fn account_uids(
        &self,
        namespace: &str,
        records: &[TokenRecord],
    ) -> Result<BTreeMap<String, Option<String>>> {
        let names: BTreeSet<String> = records.iter().map(|r| r.service_account.clone()).collect();
        let cluster = &self.cluster;
        let found: Vec<(String, Option<String>)> = futures::stream::iter(names)
            .map(|name: String| async move {
                let uid = cluster.service_account_uid(namespace, &name).await?;
                Ok::<_, crate::cluster::Error>((name, uid))
            })
            .buffer_unordered(ACCOUNT_LOOKUPS_AT_ONCE)
            .try_collect()
            .await?;
        Ok(found.into_iter().collect())
    }
}

/// The page token continuing `continue_token` of the list `purpose` names, for the query with
/// `fingerprint`, tagged with `key`.
pub(super) fn write_page_token(
    key: &RecordKey,
    purpose: &str,
    continue_token: String,
    fingerprint: String,
) -> String {
    let json = serde_json::to_vec(&PageToken {
        c: continue_token,
        q: fingerprint,
    })
    .unwrap_or_default();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&json),
        URL_SAFE_NO_PAD.encode(key.tag(purpose, &json))
    )
}

/// The API server's continue token in `text`, when `text` is a page token `key` tagged for the
/// list `purpose` names and the query with `fingerprint`; else INVALID_ARGUMENT on `page_token`.
pub(super) fn read_page_token(
    key: &RecordKey,
    purpose: &str,
    text: &str,
    fingerprint: &str,
) -> Result<String> {
    let invalid = || {
        Error::invalid(
            "page_token",
            Reason::PageTokenInvalid,
            "is not a next_page_token this server returned for this list",
        )
    };
    let (payload, tag) = text.split_once('.').ok_or_else(invalid)?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
    // The tag first: nothing of a token tokend did not mint is read.
    if !key.verifies_tag(purpose, &json, &tag) {
        return Err(invalid());
    }
    let token: PageToken = serde_json::from_slice(&json).map_err(|_| invalid())?;
    if token.q != fingerprint {
        return Err(Error::invalid(
            "page_token",
            Reason::PageTokenInvalid,
            "belongs to a different query: keep namespace, service_account, include_expired, \
             label_selector and states as they were for the first page",
        ));
    }
    if token.c.is_empty() {
        return Err(invalid());
    }
    Ok(token.c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_only_continues_its_own_query_and_only_when_tokend_minted_it() {
        let key = RecordKey::new(&[7; 32]);
        let query = ListQuery {
            namespace: "a".into(),
            ..Default::default()
        };
        let read = |text: &str, fingerprint: &str| {
            read_page_token(&key, LIST_TOKENS_PAGES, text, fingerprint)
        };
        let token = write_page_token(
            &key,
            LIST_TOKENS_PAGES,
            "k8s-continue".into(),
            query.fingerprint(""),
        );
        assert_eq!(
            read(&token, &query.fingerprint("")).expect("same query"),
            "k8s-continue"
        );
        assert!(read(&token, &query.fingerprint("team=x")).is_err());
        assert!(read("garbage!", &query.fingerprint("")).is_err());
        // The same content, tagged by another key or for another list, or untagged.
        let foreign = write_page_token(
            &RecordKey::new(&[8; 32]),
            LIST_TOKENS_PAGES,
            "k8s-continue".into(),
            query.fingerprint(""),
        );
        assert!(read(&foreign, &query.fingerprint("")).is_err());
        let other_list = write_page_token(
            &key,
            "another list",
            "k8s-continue".into(),
            query.fingerprint(""),
        );
        assert!(read(&other_list, &query.fingerprint("")).is_err());
        let untagged = token.split('.').next().expect("payload");
        assert!(read(untagged, &query.fingerprint("")).is_err());
    }
}
