//! How tokenctl prints tokend's answers for people: `validate`'s text and the `list` table
//! (`-o json|yaml|jsonpath` output is proto_json's).

use std::time::SystemTime;

use crate::duration::format_duration;
use crate::v1;

/// A timestamp as RFC 3339 (`2026-11-25T10:40:51Z`).
pub(crate) fn rfc3339(timestamp: Option<&prost_types::Timestamp>) -> Option<String> {
    timestamp.map(ToString::to_string)
}

/// Time from `now` until `expiration` in the duration grammar; `"0"` once it has passed.
pub(crate) fn time_left(expiration: Option<&prost_types::Timestamp>, now: SystemTime) -> String {
    let Some(expiration) = expiration.and_then(|t| SystemTime::try_from(*t).ok()) else {
        return "-".to_owned();
    };
    let left = expiration.duration_since(now).unwrap_or_default();
    // Round to the nearest second: a token issued for 10m a moment ago has "10m" left, not "9m59s".
    format_duration(left + std::time::Duration::from_millis(500))
}

/// A timestamp as RFC 3339 to the second, for the table where fractions are noise.
fn rfc3339_seconds(timestamp: Option<&prost_types::Timestamp>) -> Option<String> {
    rfc3339(
        timestamp
            .map(|t| prost_types::Timestamp {
                seconds: t.seconds,
                nanos: 0,
            })
            .as_ref(),
    )
}

/// A token state's short name (`ACTIVE`, `EXPIRED`, `ORPHANED`, `UNSPECIFIED`).
fn state_name(state: v1::TokenState) -> &'static str {
    let name = state.as_str_name();
    name.strip_prefix("TOKEN_STATE_").unwrap_or(name)
}

/// What `validate` prints: the API server's verdict on a token (never the token).
#[derive(Debug)]
pub(crate) struct ValidationView {
    pub(crate) authenticated: bool,
    user: String,
    groups: Vec<String>,
    audiences: Vec<String>,
    expiration_time: Option<String>,
    token_id: String,
    error: String,
}

impl From<v1::ValidateTokenResponse> for ValidationView {
    fn from(response: v1::ValidateTokenResponse) -> Self {
        ValidationView {
            authenticated: response.authenticated,
            expiration_time: rfc3339(response.expiration_time.as_ref()),
            user: response.username,
            groups: response.groups,
            audiences: response.audiences,
            token_id: response.token_id,
            error: response.error,
        }
    }
}

impl ValidationView {
    /// `key: value` lines for people.
    pub(crate) fn to_text(&self) -> String {
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        let mut out = format!("authenticated: {}\n", self.authenticated);
        out.push_str(&format!("user: {}\n", or_dash(&self.user)));
        out.push_str(&format!("groups: {}\n", or_dash(&self.groups.join(", "))));
        if !self.audiences.is_empty() {
            out.push_str(&format!("audiences: {}\n", self.audiences.join(", ")));
        }
        out.push_str(&format!(
            "expires: {}\n",
            self.expiration_time.as_deref().unwrap_or("-")
        ));
        out.push_str(&format!("token_id: {}\n", or_dash(&self.token_id)));
        if !self.error.is_empty() {
            out.push_str(&format!("error: {}\n", self.error));
        }
        out
    }
}

/// The `list` table: TOKEN_ID SERVICEACCOUNT STATE EXPIRES LEFT ISSUED_BY, columns padded to fit;
/// the header line only when `headers` is set (`--no-headers` clears it).
pub(crate) fn token_table(records: &[v1::TokenRecord], now: SystemTime, headers: bool) -> String {
    let header = [
        "TOKEN_ID",
        "SERVICEACCOUNT",
        "STATE",
        "EXPIRES",
        "LEFT",
        "ISSUED_BY",
    ]
    .map(str::to_owned);
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let rows: Vec<[String; 6]> = std::iter::once(header)
        .filter(|_| headers)
        .chain(records.iter().map(|record| {
            [
                record.token_id.clone(),
                record.service_account.clone(),
                state_name(record.state()).to_owned(),
                rfc3339_seconds(record.expiration_time.as_ref()).unwrap_or_else(|| "-".to_owned()),
                time_left(record.expiration_time.as_ref(), now),
                or_dash(&record.issued_by),
            ]
        }))
        .collect();
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(seconds: i64) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos: 0 }
    }

    fn record(id: &str, sa: &str, state: v1::TokenState, expires: i64) -> v1::TokenRecord {
        let expiration = prost_types::Timestamp {
            seconds: expires,
            nanos: 123_456_789,
        };
        v1::TokenRecord {
            token_id: id.into(),
            namespace: "team-a".into(),
            service_account: sa.into(),
            state: state.into(),
            issue_time: Some(at(1_000)),
            expiration_time: Some(expiration),
            issued_by: if sa == "ci" {
                "system:serviceaccount:ops:deployer".into()
            } else {
                String::new()
            },
            cluster_role: "view".into(),
            binding_scope: v1::BindingScope::Namespace.into(),
            ..Default::default()
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(
            rfc3339(Some(&at(0))).as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(
            rfc3339(Some(&at(1_764_067_251))).as_deref(),
            Some("2025-11-25T10:40:51Z")
        );
        assert_eq!(rfc3339(None), None);
    }

    #[test]
    fn time_left_uses_the_duration_grammar() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(time_left(Some(&at(1_000 + 9_900)), now), "2h45m");
        assert_eq!(time_left(Some(&at(999)), now), "0");
        let almost = prost_types::Timestamp {
            seconds: 1_000 + 599,
            nanos: 900_000_000,
        };
        assert_eq!(time_left(Some(&almost), now), "10m");
        assert_eq!(time_left(None, now), "-");
    }

    #[test]
    fn table_has_the_documented_columns_aligned() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let table = token_table(
            &[
                record("abc", "ci", v1::TokenState::Active, 4_600),
                record("defghi", "deployer", v1::TokenState::Expired, 500),
            ],
            now,
            true,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        let columns: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            columns,
            [
                "TOKEN_ID",
                "SERVICEACCOUNT",
                "STATE",
                "EXPIRES",
                "LEFT",
                "ISSUED_BY"
            ]
        );
        let first: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            first,
            [
                "abc",
                "ci",
                "ACTIVE",
                "1970-01-01T01:16:40Z",
                "1h",
                "system:serviceaccount:ops:deployer"
            ]
        );
        let second: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            second,
            [
                "defghi",
                "deployer",
                "EXPIRED",
                "1970-01-01T00:08:20Z",
                "0",
                "-"
            ]
        );
        let state_column = lines[0].find("STATE");
        assert_eq!(lines[1].find("ACTIVE"), state_column);
        assert_eq!(lines[2].find("EXPIRED"), state_column);
    }

    #[test]
    fn no_headers_leaves_only_the_rows() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let table = token_table(
            &[record("abc", "ci", v1::TokenState::Active, 4_600)],
            now,
            false,
        );
        assert_eq!(table.lines().count(), 1, "{table}");
        assert!(table.starts_with("abc   ci   ACTIVE"), "{table}");
    }

    #[test]
    fn validation_text_names_each_fact() {
        let view = ValidationView::from(v1::ValidateTokenResponse {
            authenticated: true,
            username: "system:serviceaccount:team-a:ci".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ],
            token_id: "abc".into(),
            expiration_time: Some(at(0)),
            ..Default::default()
        });
        let text = view.to_text();
        assert!(text.contains("authenticated: true\n"));
        assert!(text.contains("user: system:serviceaccount:team-a:ci\n"));
        assert!(text.contains("groups: system:serviceaccounts, system:authenticated\n"));
        assert!(text.contains("expires: 1970-01-01T00:00:00Z\n"));
        assert!(text.contains("token_id: abc\n"));
    }
}
