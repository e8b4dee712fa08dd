//! The gRPC layer: tonic's TokenService, translating proto messages to the service layer and
//! its answers and errors back. It holds no logic of its own.

mod bootstrap_tokens;
mod client_certificates;
mod convert;
mod status;

pub use bootstrap_tokens::BootstrapTokenServiceGrpc;
pub use client_certificates::ClientCertificateServiceGrpc;
pub use status::{DOMAIN, auth_status, to_status};

use tonic::{Request, Response, Status};

use crate::metrics::Metrics;
use crate::service::policy::GivenLifetime;
use crate::service::{
    self, Caller, KubeconfigRequest, KubeconfigSource, ListQuery, RenewRequest, RevokeTarget,
};

/// The generated proto code (messages, server and client), compiled once in `tokend-api`.
pub use tokend_api::v1;

use v1::token_service_server::TokenService as TokenServiceRpc;

/// tonic's face of [`service::TokenService`].
#[derive(Clone)]
pub struct TokenServiceGrpc {
    service: service::TokenService,
    metrics: Metrics,
}

impl TokenServiceGrpc {
    /// Serves `service` over gRPC, counting tokens into `metrics`.
    pub fn new(service: service::TokenService, metrics: Metrics) -> Self {
        Self { service, metrics }
    }

    /// The tonic server to add to a router.
    pub fn into_server(self) -> v1::token_service_server::TokenServiceServer<Self> {
        v1::token_service_server::TokenServiceServer::new(self)
    }
}

/// The caller an authentication layer put in the request's extensions; anonymous otherwise.
fn caller<T>(request: &Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default()
}

#[tonic::async_trait]
impl TokenServiceRpc for TokenServiceGrpc {
    async fn issue_token(
        &self,
        request: Request<v1::IssueTokenRequest>,
    ) -> Result<Response<v1::IssueTokenResponse>, Status> {
        let caller = caller(&request);
        let issue = convert::issue_request(request.into_inner());
        let issued = self
            .service
            .issue(&caller, issue)
            .await
            .map_err(to_status)?;
        self.metrics.tokens_issued.inc();
        Ok(Response::new(v1::IssueTokenResponse {
            token: issued.token,
            token_id: issued.token_id.to_string(),
            expiration_time: Some(convert::timestamp(issued.expiration)),
            namespace: issued.namespace,
            service_account: issued.service_account,
            granted_lifetime: Some(convert::duration(issued.granted_lifetime)),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::RevokeTokenResponse>, Status> {
        let caller = caller(&request);
        let target = match request.into_inner().target {
            Some(v1::revoke_token_request::Target::TokenId(id)) => RevokeTarget::TokenId(id),
            Some(v1::revoke_token_request::Target::Token(token)) => RevokeTarget::Token(token),
            None => {
                return Err(to_status(service::Error::invalid(
                    "target",
                    service::Reason::FieldRequired,
                    "set token_id or token",
                )));
            }
        };
        let record = self
            .service
            .revoke(&caller, target)
            .await
            .map_err(to_status)?;
        self.metrics.tokens_revoked.inc();
        Ok(Response::new(v1::RevokeTokenResponse {
            token_id: record.token_id.to_string(),
            namespace: record.namespace,
            service_account: record.service_account,
        }))
    }

    async fn get_kubeconfig(
        &self,
        request: Request<v1::GetKubeconfigRequest>,
    ) -> Result<Response<v1::GetKubeconfigResponse>, Status> {
        let caller = caller(&request);
        let request = request.into_inner();
        let issuing = request.exec.is_none()
            && matches!(
                request.source,
                Some(v1::get_kubeconfig_request::Source::Issue(_))
            );
        let source = match request.source {
            Some(v1::get_kubeconfig_request::Source::Issue(issue)) => {
                KubeconfigSource::Issue(convert::issue_request(issue))
            }
            Some(v1::get_kubeconfig_request::Source::Token(token)) => {
                KubeconfigSource::Token(token)
            }
            None => {
                return Err(to_status(service::Error::invalid(
                    "source",
                    service::Reason::FieldRequired,
                    "set issue (to issue a fresh token) or token (to wrap one)",
                )));
            }
        };
        let rendered = self
            .service
            .kubeconfig(
                &caller,
                KubeconfigRequest {
                    source,
                    server: request.server,
                    context_name: request.context_name,
                    exec: request.exec.map(|exec| service::KubeconfigExec {
                        tokend_address: exec.tokend_address,
                        command: exec.command,
                        extra_args: exec.extra_args,
                    }),
                },
            )
            .await
            .map_err(to_status)?;
        if issuing {
            self.metrics.tokens_issued.inc();
        }
        Ok(Response::new(v1::GetKubeconfigResponse {
            kubeconfig: rendered.yaml,
            token_id: rendered
                .token_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            expiration_time: rendered.expiration.map(convert::timestamp),
            granted_lifetime: rendered.granted_lifetime.map(convert::duration),
        }))
    }

    async fn validate_token(
        &self,
        request: Request<v1::ValidateTokenRequest>,
    ) -> Result<Response<v1::ValidateTokenResponse>, Status> {
        let caller = caller(&request);
        let request = request.into_inner();
        let v = self
            .service
            .validate(&caller, &request.token, &request.audiences)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ValidateTokenResponse {
            authenticated: v.authenticated,
            username: v.username,
            uid: v.uid,
            groups: v.groups,
            audiences: v.audiences,
            error: v.error,
            token_id: v.token_id.map(|id| id.to_string()).unwrap_or_default(),
            expiration_time: v.expiration.map(convert::timestamp),
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        let caller = caller(&request);
        let request = request.into_inner();
        let mut untranslatable = service::Violations::default();
        let states = convert::state_filter(&request.states, &mut untranslatable);
        let query = ListQuery {
            namespace: request.namespace,
            service_account: (!request.service_account.is_empty())
                .then_some(request.service_account),
            include_expired: request.include_expired,
            page_size: request.page_size,
            page_token: request.page_token,
            label_selector: request.label_selector,
            states,
            untranslatable,
        };
        let page = self
            .service
            .list(&caller, &query)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ListTokensResponse {
            tokens: page
                .records
                .into_iter()
                .map(|(r, s)| convert::record(r, s))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_token(
        &self,
        request: Request<v1::GetTokenRequest>,
    ) -> Result<Response<v1::GetTokenResponse>, Status> {
        let caller = caller(&request);
        let (record, state) = self
            .service
            .get(&caller, &request.into_inner().token_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::GetTokenResponse {
            token: Some(convert::record(record, state)),
        }))
    }

    async fn renew_token(
        &self,
        request: Request<v1::RenewTokenRequest>,
    ) -> Result<Response<v1::RenewTokenResponse>, Status> {
        let caller = caller(&request);
        let request = request.into_inner();
        let renewed = self
            .service
            .renew(
                &caller,
                RenewRequest {
                    token_id: request.token_id,
                    duration: request.duration,
                    lifetime: request.lifetime.map(|d| GivenLifetime {
                        seconds: d.seconds,
                        nanos: d.nanos,
                    }),
                    revoke_old: request.revoke_old,
                    revoke_grace: request.revoke_grace,
                },
            )
            .await
            .map_err(to_status)?;
        self.metrics.tokens_issued.inc();
        // A revocation after a grace is counted by nobody: it may never happen (tokend stops).
        if renewed.old_revoked_now {
            self.metrics.tokens_revoked.inc();
        }
        let issued = renewed.issued;
        Ok(Response::new(v1::RenewTokenResponse {
            token: issued.token,
            token_id: issued.token_id.to_string(),
            expiration_time: Some(convert::timestamp(issued.expiration)),
            replaced_token_id: renewed.replaced.to_string(),
            old_revoked_at: renewed.old_revoked_at.map(convert::timestamp),
            granted_lifetime: Some(convert::duration(issued.granted_lifetime)),
        }))
    }
}
