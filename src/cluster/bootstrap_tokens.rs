//! Bootstrap token Secrets (`bootstrap-token-<id>`, type `bootstrap.kubernetes.io/token`) in
//! kube-system: created to issue a token, read to list or show one, deleted to revoke it.

use super::*;

use crate::vocabulary::{BOOTSTRAP_TOKEN_NAMESPACE, BOOTSTRAP_TOKEN_SECRET_TYPE};

/// One page of bootstrap token Secrets.
#[derive(Debug, Default)]
pub struct SecretPage {
    /// The Secrets, in the API server's order.
    pub items: Vec<Secret>,
    /// Where the next page starts; None on the last page.
    pub continue_token: Option<String>,
}

impl Cluster {
    fn bootstrap_secrets(&self) -> Api<Secret> {
        self.secrets(BOOTSTRAP_TOKEN_NAMESPACE)
    }

    /// Creates a bootstrap token Secret; 409 AlreadyExists when its id is taken.
    pub async fn create_bootstrap_token_secret(&self, secret: &Secret) -> Result<Secret> {
        Ok(self
            .bootstrap_secrets()
            .create(&PostParams::default(), secret)
            .await?)
    }

    /// The bootstrap token Secret of a name, if it exists and is of the bootstrap token type.
    pub async fn bootstrap_token_secret(&self, name: &str) -> Result<Option<Secret>> {
        Ok(self
            .bootstrap_secrets()
            .get_opt(name)
            .await?
            .filter(|s| s.type_.as_deref() == Some(BOOTSTRAP_TOKEN_SECRET_TYPE)))
    }

    /// One page of bootstrap token Secrets, selected by type on the server.
    pub async fn bootstrap_token_secrets(
        &self,
        limit: u32,
        continue_token: Option<&str>,
    ) -> Result<SecretPage> {
        let mut params = ListParams::default()
            .fields(&format!("type={BOOTSTRAP_TOKEN_SECRET_TYPE}"))
            .limit(limit);
        if let Some(token) = continue_token {
            params = params.continue_token(token);
        }
        let list = self.bootstrap_secrets().list(&params).await?;
        Ok(SecretPage {
            items: list.items,
            continue_token: list.metadata.continue_.filter(|c| !c.is_empty()),
        })
    }

    /// Deletes a bootstrap token Secret, only the one of this uid; false when it is gone.
    pub async fn delete_bootstrap_token_secret(&self, name: &str, uid: &str) -> Result<bool> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.bootstrap_secrets().delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
