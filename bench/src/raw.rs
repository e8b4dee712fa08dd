//! The floor: the Kubernetes calls tokend makes for one IssueToken (GET the ServiceAccount,
//! create the record Secret, TokenRequest bound to it, PATCH to confirm the record) and for one
//! RevokeToken (delete the Secret), made directly with kube-rs, with no tokend in between.

use anyhow::Context;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokend::service::TokenRecord;
use tokend::token_id::TokenId;

use crate::TOKEN_SECONDS;
use crate::backend::SERVICE_ACCOUNT;

/// Issues tokens the way tokend does, straight against the API server.
#[derive(Clone)]
pub struct RawIssuer {
    service_accounts: Api<ServiceAccount>,
    secrets: Api<Secret>,
    namespace: String,
}

impl RawIssuer {
    /// An issuer for ServiceAccount [`SERVICE_ACCOUNT`] in `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            service_accounts: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// One token: the same three requests, with the same bodies, as tokend's IssueToken.
    /// Returns the record Secret's name, for [`revoke`](Self::revoke).
    pub async fn issue(&self) -> anyhow::Result<String> {
        let sa = self
            .service_accounts
            .get_opt(SERVICE_ACCOUNT)
            .await
            .context("GET serviceaccount")?
            .context("the ServiceAccount is missing")?;
        let now = Timestamp::now();
        let record = TokenRecord {
            token_id: TokenId::generate(&self.namespace),
            namespace: self.namespace.clone(),
            service_account: SERVICE_ACCOUNT.to_owned(),
            service_account_uid: sa.metadata.uid.clone().unwrap_or_default(),
            issued_at: Some(now),
            expiration: Timestamp::from_second(now.as_second() + TOKEN_SECONDS).ok(),
            audiences: Vec::new(),
            labels: Default::default(),
            issued_by: String::new(),
            cluster_role: None,
            binding_scope: None,
            object_uid: String::new(),
            resource_version: String::new(),
            seal: None,
            pending: true,
            replaces: None,
            owner_uid: None,
        };
        let secret = self
            .secrets
            .create(&PostParams::default(), &record.to_secret())
            .await
            .context("POST secret")?;
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: None,
                expiration_seconds: Some(TOKEN_SECONDS),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Secret".into()),
                    name: secret.metadata.name.clone(),
                    uid: secret.metadata.uid.clone(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let answer: TokenRequest = self
            .service_accounts
            .create_subresource("token", SERVICE_ACCOUNT, &PostParams::default(), &request)
            .await
            .context("POST serviceaccounts/token")?;
        answer
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .context("TokenRequest answered without a token")?;
        let name = secret.metadata.name.context("the Secret has no name")?;
        // tokend confirms every record once its token is issued: seal, pending label off,
        // immutable; the same PATCH, with a seal of the same length.
        let confirm = serde_json::json!({
            "metadata": {
                "annotations": { "tokend.io/seal": format!("v1.{}", "A".repeat(43)) },
                "labels": { "tokend.io/pending": null },
            },
            "immutable": true,
        });
        self.secrets
            .patch(&name, &PatchParams::default(), &Patch::Merge(&confirm))
            .await
            .context("PATCH secret")?;
        Ok(name)
    }

    /// Revokes a token by deleting its record Secret, as tokend's RevokeToken ends.
    pub async fn revoke(&self, secret_name: &str) -> anyhow::Result<()> {
        self.secrets
            .delete(secret_name, &DeleteParams::default())
            .await
            .context("DELETE secret")?;
        Ok(())
    }
}
