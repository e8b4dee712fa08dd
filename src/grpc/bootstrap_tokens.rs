//! BootstrapTokenService in tonic: proto ↔ the service's bootstrap token calls.

use tonic::{Request, Response, Status};

use super::{caller, convert, to_status, v1};
use crate::service::{self, BootstrapIssue, BootstrapTokenInfo};

use v1::bootstrap_token_service_server::BootstrapTokenService as BootstrapTokenServiceRpc;

/// tonic's face of the service's bootstrap token calls.
#[derive(Clone)]
pub struct BootstrapTokenServiceGrpc {
    service: service::TokenService,
}

impl BootstrapTokenServiceGrpc {
    /// Serves `service`'s bootstrap token calls over gRPC.
    pub fn new(service: service::TokenService) -> Self {
        Self { service }
    }

    /// The tonic server to add to a router.
    pub fn into_server(
        self,
    ) -> v1::bootstrap_token_service_server::BootstrapTokenServiceServer<Self> {
        v1::bootstrap_token_service_server::BootstrapTokenServiceServer::new(self)
    }
}

fn token(info: BootstrapTokenInfo) -> v1::BootstrapToken {
    v1::BootstrapToken {
        token_id: info.token_id,
        expiration_time: info.expiration.map(convert::timestamp),
        usages: info.usages,
        extra_groups: info.extra_groups,
        description: info.description,
        issued_by: info.issued_by,
        expired: info.expired,
        create_time: info.created.map(convert::timestamp),
    }
}

#[tonic::async_trait]
impl BootstrapTokenServiceRpc for BootstrapTokenServiceGrpc {
    async fn issue_bootstrap_token(
        &self,
        request: Request<v1::IssueBootstrapTokenRequest>,
    ) -> Result<Response<v1::IssueBootstrapTokenResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let issued = self
            .service
            .issue_bootstrap_token(
                &caller,
                BootstrapIssue {
                    duration: r.duration,
                    extra_groups: r.extra_groups,
                    description: r.description,
                    usages: r.usages,
                    server: r.server,
                },
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::IssueBootstrapTokenResponse {
            token: issued.token,
            token_id: issued.info.token_id.clone(),
            expiration_time: issued.info.expiration.map(convert::timestamp),
            kubeconfig: issued.kubeconfig,
            server: issued.server,
            ca_cert_hashes: issued.ca_cert_hashes,
            bootstrap_token: Some(token(issued.info)),
        }))
    }

    async fn list_bootstrap_tokens(
        &self,
        request: Request<v1::ListBootstrapTokensRequest>,
    ) -> Result<Response<v1::ListBootstrapTokensResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let page = self
            .service
            .list_bootstrap_tokens(&caller, r.page_size, &r.page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ListBootstrapTokensResponse {
            bootstrap_tokens: page.tokens.into_iter().map(token).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_bootstrap_token(
        &self,
        request: Request<v1::GetBootstrapTokenRequest>,
    ) -> Result<Response<v1::GetBootstrapTokenResponse>, Status> {
        let caller = caller(&request);
        let info = self
            .service
            .get_bootstrap_token(&caller, &request.into_inner().token_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::GetBootstrapTokenResponse {
            bootstrap_token: Some(token(info)),
        }))
    }

    async fn revoke_bootstrap_token(
        &self,
        request: Request<v1::RevokeBootstrapTokenRequest>,
    ) -> Result<Response<v1::RevokeBootstrapTokenResponse>, Status> {
        let caller = caller(&request);
        let token_id = self
            .service
            .revoke_bootstrap_token(&caller, &request.into_inner().token_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::RevokeBootstrapTokenResponse { token_id }))
    }
}
