//! GetToken: one record and its state.

use k8s_openapi::jiff::Timestamp;

use super::checks::{not_found_token, parse_token_id, secret_access};
use super::{Result, TokenRecord, TokenService, TokenState};
use crate::caller::Caller;

impl TokenService {
    /// One record and its state.
    pub async fn get(&self, caller: &Caller, token_id: &str) -> Result<(TokenRecord, TokenState)> {
        let id = parse_token_id(token_id)?;
        let secret_name = id.secret_name();
        self.require(
            caller,
            secret_access("get", id.namespace(), Some(&secret_name)),
        )
        .await?;
        let record = self
            .record(&id)
            .await?
            .ok_or_else(|| not_found_token(&id))?;
        let uid = self
            .cluster
            .service_account_uid(&record.namespace, &record.service_account)
            .await?;
        let state = record.state(Timestamp::now(), uid.as_deref());
        Ok((record, state))
    }
}
