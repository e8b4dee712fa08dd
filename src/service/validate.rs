//! ValidateToken: what the API server (TokenReview) makes of a token, and which record it has.

use k8s_openapi::jiff::Timestamp;

use super::checks::check_audiences;
use super::{Claims, Reason, Result, TokenService, Violations};
use crate::caller::Caller;
use crate::cluster::ResourceAccess;
use crate::token_id::TokenId;

/// What the API server made of a token.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Whether the token authenticates now.
    pub authenticated: bool,
    /// The user it authenticates as.
    pub username: String,
    /// That user's uid.
    pub uid: String,
    /// That user's groups.
    pub groups: Vec<String>,
    /// Audiences the token is valid for, of those asked.
    pub audiences: Vec<String>,
    /// The API server's reason for rejecting it.
    pub error: String,
    /// Set when tokend issued the token.
    pub token_id: Option<TokenId>,
    /// Expiry from the token's claims.
    pub expiration: Option<Timestamp>,
}

impl TokenService {
    /// Asks the API server (TokenReview) about a token; a rejected token is an answer, not an error.
    pub async fn validate(
        &self,
        caller: &Caller,
        token: &str,
        audiences: &[String],
    ) -> Result<Validation> {
        let mut violations = Violations::default();
        if token.is_empty() {
            violations.add("token", Reason::FieldRequired, "must not be empty");
        }
        check_audiences("audiences", audiences, &mut violations);
        violations.into_result()?;
        let review = ResourceAccess {
            verb: "create",
            group: "authentication.k8s.io",
            resource: "tokenreviews",
            subresource: None,
            namespace: None,
            name: None,
        };
        self.require(caller, review).await?;
        let status = self.cluster.review_token(token, audiences).await?;
        if status.authenticated != Some(true) {
            return Ok(Validation {
                error: status
                    .error
                    .unwrap_or_else(|| "token not authenticated".into()),
                ..Default::default()
            });
        }
        let user = status.user.unwrap_or_default();
        let claims = Claims::read(token).unwrap_or_default();
        let token_id = match claims.token_id() {
            Some(id) => self.record(&id).await?.map(|r| r.token_id),
            None => None,
        };
        Ok(Validation {
            authenticated: true,
            username: user.username.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            audiences: status.audiences.unwrap_or_default(),
            error: String::new(),
            token_id,
            expiration: claims.exp.and_then(|s| Timestamp::from_second(s).ok()),
        })
    }
}
