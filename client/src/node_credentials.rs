//! [`TokendClient`] methods for node and component credentials: bootstrap tokens
//! (`tokend.v1.BootstrapTokenService`) and client-certificate kubeconfigs
//! (`tokend.v1.ClientCertificateService`), on the same connection and credentials.

use crate::client::{BearerAuth, TokendClient};
use crate::error::Result;
use crate::v1;
use crate::v1::bootstrap_token_service_client::BootstrapTokenServiceClient;
use crate::v1::client_certificate_service_client::ClientCertificateServiceClient;

type Intercepted =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerAuth>;

impl TokendClient {
    fn bootstrap(&self) -> BootstrapTokenServiceClient<Intercepted> {
        BootstrapTokenServiceClient::with_interceptor(
            self.channel.clone(),
            BearerAuth {
                credentials: self.credentials.clone(),
            },
        )
    }

    fn certificates(&self) -> ClientCertificateServiceClient<Intercepted> {
        ClientCertificateServiceClient::with_interceptor(
            self.channel.clone(),
            BearerAuth {
                credentials: self.credentials.clone(),
            },
        )
    }

    /// Issues a bootstrap token with its bootstrap kubeconfig (`IssueBootstrapToken`).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Status`] with the server's code, or [`crate::Error::Credentials`].
    pub async fn issue_bootstrap_token(
        &self,
        request: v1::IssueBootstrapTokenRequest,
    ) -> Result<v1::IssueBootstrapTokenResponse> {
        let request = self.request(request)?;
        Ok(self
            .bootstrap()
            .issue_bootstrap_token(request)
            .await?
            .into_inner())
    }

    /// One page of bootstrap tokens, without their secrets (`ListBootstrapTokens`).
    ///
    /// # Errors
    ///
    /// As [`TokendClient::issue_bootstrap_token`].
    pub async fn list_bootstrap_tokens(
        &self,
        request: v1::ListBootstrapTokensRequest,
    ) -> Result<v1::ListBootstrapTokensResponse> {
        let request = self.request(request)?;
        Ok(self
            .bootstrap()
            .list_bootstrap_tokens(request)
            .await?
            .into_inner())
    }

    /// One bootstrap token, without its secret (`GetBootstrapToken`).
    ///
    /// # Errors
    ///
    /// As [`TokendClient::issue_bootstrap_token`].
    pub async fn get_bootstrap_token(
        &self,
        request: v1::GetBootstrapTokenRequest,
    ) -> Result<v1::GetBootstrapTokenResponse> {
        let request = self.request(request)?;
        Ok(self
            .bootstrap()
            .get_bootstrap_token(request)
            .await?
            .into_inner())
    }

    /// Revokes a bootstrap token (`RevokeBootstrapToken`).
    ///
    /// # Errors
    ///
    /// As [`TokendClient::issue_bootstrap_token`].
    pub async fn revoke_bootstrap_token(
        &self,
        request: v1::RevokeBootstrapTokenRequest,
    ) -> Result<v1::RevokeBootstrapTokenResponse> {
        let request = self.request(request)?;
        Ok(self
            .bootstrap()
            .revoke_bootstrap_token(request)
            .await?
            .into_inner())
    }

    /// Signs a CSR into a client-certificate kubeconfig without its key
    /// (`IssueClientCertificate`). The certificate cannot be revoked before it expires.
    ///
    /// # Errors
    ///
    /// As [`TokendClient::issue_bootstrap_token`].
    pub async fn issue_client_certificate(
        &self,
        request: v1::IssueClientCertificateRequest,
    ) -> Result<v1::IssueClientCertificateResponse> {
        let request = self.request(request)?;
        Ok(self
            .certificates()
            .issue_client_certificate(request)
            .await?
            .into_inner())
    }
}
