//! Checks several use cases share: token ids, audiences, and the record-Secret access that
//! revoking, getting and listing amount to.

use super::{Error, Result};
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
        return Err(Error::invalid("token_id", "must not be empty"));
    }
    TokenId::parse(text).map_err(|rule| Error::invalid("token_id", rule))
}

pub(super) fn not_found_token(id: &TokenId) -> Error {
    Error::NotFound(format!(
        "token {id} not found: never issued, already revoked, or swept"
    ))
}

/// Audiences: at most [`vocabulary::MAX_AUDIENCES`], each non-empty, printable, without spaces.
pub(super) fn check_audiences(field: &str, audiences: &[String]) -> Result<()> {
    if audiences.len() > vocabulary::MAX_AUDIENCES {
        return Err(Error::invalid(
            field,
            format!(
                "at most {} audiences (got {})",
                vocabulary::MAX_AUDIENCES,
                audiences.len()
            ),
        ));
    }
    for (i, audience) in audiences.iter().enumerate() {
        if audience.is_empty() {
            return Err(Error::invalid(format!("{field}[{i}]"), "must not be empty"));
        }
        if audience.len() > vocabulary::MAX_AUDIENCE_LEN {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!(
                    "must be at most {} characters",
                    vocabulary::MAX_AUDIENCE_LEN
                ),
            ));
        }
        if !audience.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                "must be printable ASCII without spaces",
            ));
        }
        if audiences[..i].contains(audience) {
            return Err(Error::invalid(format!("{field}[{i}]"), "is listed twice"));
        }
    }
    Ok(())
}
