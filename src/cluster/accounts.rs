//! ServiceAccounts and the tokens the API server issues for them (TokenRequest).

use super::*;

impl Cluster {
    /// The uid of a ServiceAccount, if it exists (a metadata-only GET).
    pub async fn service_account_uid(&self, ns: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .service_accounts(ns)
            .get_metadata_opt(name)
            .await?
            .map(|partial| partial.metadata.uid.unwrap_or_default()))
    }

    /// A ServiceAccount, if it exists.
    pub async fn service_account(&self, ns: &str, name: &str) -> Result<Option<ServiceAccount>> {
        Ok(self.service_accounts(ns).get_opt(name).await?)
    }

    /// Creates a ServiceAccount labelled as tokend's; one created meanwhile by someone else
    /// (another replica) counts as existing.
    pub async fn ensure_service_account(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<(ServiceAccount, Ensured)> {
        let sa = ServiceAccount {
            metadata: managed_meta(name, Some(ns)),
            ..Default::default()
        };
        match self
            .service_accounts(ns)
            .create(&PostParams::default(), &sa)
            .await
        {
            Ok(created) => Ok((created, Ensured::Created)),
            Err(e) if is_already_exists(&e) => {
                let existing = self.service_accounts(ns).get(name).await?;
                Ok((existing, Ensured::Existed))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a ServiceAccount this call created, only if it is still the same object.
    pub async fn delete_service_account(&self, ns: &str, name: &str, uid: &str) -> Result<()> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        ignore_not_found(
            self.service_accounts(ns)
                .delete(name, &params)
                .await
                .map(drop),
        )
    }

    /// TokenRequest for a ServiceAccount, bound to a Secret so deleting the Secret revokes it.
    pub async fn request_token(
        &self,
        ns: &str,
        sa: &str,
        expiration_seconds: i64,
        audiences: &[String],
        bound_secret: &Secret,
    ) -> Result<IssuedServiceAccountToken> {
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Secret".into()),
                    name: bound_secret.metadata.name.clone(),
                    uid: bound_secret.metadata.uid.clone(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let answer: TokenRequest = self
            .service_accounts(ns)
            .create_subresource("token", sa, &PostParams::default(), &request)
            .await?;
        let status = answer
            .status
            .ok_or_else(|| Error::Unexpected("TokenRequest answered without a status".into()))?;
        match (status.token, status.expiration_timestamp) {
            (Some(token), Some(expiration)) => Ok(IssuedServiceAccountToken {
                token,
                expiration: expiration.0,
            }),
            _ => Err(Error::Unexpected(
                "TokenRequest answered without token or expiry".into(),
            )),
        }
    }
}
