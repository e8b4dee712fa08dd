//! RevokeToken: by token_id, or by the token itself once the API server vouches for it.

use super::checks::{not_found_token, parse_token_id, secret_access};
use super::{Claims, Error, Reason, Result, TokenRecord, TokenService, audit};
use crate::caller::Caller;
use crate::token_id::TokenId;

/// Which token to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// By the id IssueToken returned.
    TokenId(String),
    /// By the token itself.
    Token(String),
}

impl TokenService {
    /// Revokes a token by deleting its record Secret; the second revoke of a token is NotFound.
    pub async fn revoke(&self, caller: &Caller, target: RevokeTarget) -> Result<TokenRecord> {
        let (id, token) = match target {
            RevokeTarget::TokenId(text) => (parse_token_id(&text)?, None),
            RevokeTarget::Token(token) => (claimed_token_id(&token)?, Some(token)),
        };
        let secret_name = id.secret_name();
        // The caller's rights are checked before tokend looks at anything for it, so a refused
        // caller learns nothing about which records exist.
        self.require(
            caller,
            secret_access("delete", id.namespace(), Some(&secret_name)),
        )
        .await?;
        if let Some(token) = token {
            self.confirm_token(&token).await?;
        }
        let Some(record) = self.record(&id).await? else {
            return Err(not_found_token(&id));
        };
        // Only the sealed record just read is deleted: not a Secret put in its place since.
        if !self
            .cluster
            .delete_secret_if_unchanged(
                id.namespace(),
                &id.secret_name(),
                &record.object_uid,
                &record.resource_version,
            )
            .await?
        {
            return Err(not_found_token(&id));
        }
        audit::revoked(caller, &record);
        Ok(record)
    }

    /// Only a token the API server still accepts is revoked by value: the claims of anything
    /// else are the sender's word, not the cluster's.
    async fn confirm_token(&self, token: &str) -> Result<()> {
        let audiences = Claims::read(token)
            .map(|c| c.audiences())
            .unwrap_or_default();
        let status = self.cluster.review_token(token, &audiences).await?;
        if status.authenticated == Some(true) {
            return Ok(());
        }
        Err(Error::invalid(
            "token",
            Reason::TokenNotAuthenticated,
            format!(
                "the API server rejects it ({}): a revoked, expired or foreign token cannot be \
                 revoked by value; use its token_id",
                status.error.unwrap_or_else(|| "not authenticated".into())
            ),
        ))
    }
}

/// The record a token's claims name; only a hint until the API server confirms the token.
fn claimed_token_id(token: &str) -> Result<TokenId> {
    if token.is_empty() {
        return Err(Error::invalid(
            "token",
            Reason::FieldRequired,
            "must not be empty",
        ));
    }
    let claims = Claims::read(token).ok_or_else(|| {
        Error::invalid(
            "token",
            Reason::TokenMalformed,
            "is not a ServiceAccount token (JWT)",
        )
    })?;
    claims.token_id().ok_or_else(|| {
        Error::invalid(
            "token",
            Reason::TokenMalformed,
            "is not bound to a tokend record, so tokend did not issue it",
        )
    })
}
