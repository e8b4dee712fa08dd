//! Checks several use cases share: token ids, audiences, and the record-Secret access that
//! revoking, getting and listing amount to.

use super::{Error, Failure, Reason, Result, Violations};
use crate::cluster::ResourceAccess;
use crate::token_id::TokenId;
use crate::vocabulary;

/// An action on record Secrets, which is what revoking, getting and listing tokens amounts to.
pub(super) fn secret_access<'a>(
    verb: &'a str,
    namespace: &'a str,
    name: Option<&'a str>,
) -> ResourceAccess<'a> {
    ResourceAccess {
        verb,
        group: "",
        resource: "secrets",
        subresource: None,
        namespace: Some(namespace),
        name,
    }
}

pub(super) fn parse_token_id(text: &str) -> Result<TokenId> {
    if text.is_empty() {
        return Err(Error::invalid(
            "token_id",
            Reason::FieldRequired,
            "must not be empty",
        ));
    }
    TokenId::parse(text).map_err(|rule| Error::invalid("token_id", Reason::TokenIdInvalid, rule))
}

pub(super) fn not_found_token(id: &TokenId) -> Error {
    Error::NotFound(
        Failure::new(
            Reason::TokenNotFound,
            format!("token {id} not found: never issued, already revoked, or swept"),
        )
        .with("token_id", id.to_string()),
    )
}

/// Audiences: at most [`vocabulary::MAX_AUDIENCES`], each non-empty, printable, without spaces.
/// Every bad audience is recorded in `violations`.
pub(super) fn check_audiences(field: &str, audiences: &[String], violations: &mut Violations) {
    if audiences.len() > vocabulary::MAX_AUDIENCES {
        violations.add(
            field,
            Reason::TooManyValues,
            format!(
                "at most {} audiences (got {})",
                vocabulary::MAX_AUDIENCES,
                audiences.len()
            ),
        );
        return;
    }
    for (i, audience) in audiences.iter().enumerate() {
        let rule = if audience.is_empty() {
            "must not be empty".to_owned()
        } else if audience.len() > vocabulary::MAX_AUDIENCE_LEN {
            format!(
                "must be at most {} characters",
                vocabulary::MAX_AUDIENCE_LEN
            )
        } else if !audience.chars().all(|c| c.is_ascii_graphic()) {
            "must be printable ASCII without spaces".to_owned()
        } else if audiences[..i].contains(audience) {
            "is listed twice".to_owned()
        } else {
            continue;
        };
        violations.add(format!("{field}[{i}]"), Reason::AudienceInvalid, rule);
    }
}
