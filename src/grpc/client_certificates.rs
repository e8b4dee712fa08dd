//! ClientCertificateService in tonic: proto ↔ the service's client-certificate call.

use tonic::{Request, Response, Status};

use super::{caller, convert, to_status, v1};
use crate::service::{self, CertificateIssue};

use v1::client_certificate_service_server::ClientCertificateService as ClientCertificateServiceRpc;

/// tonic's face of the service's client-certificate call.
#[derive(Clone)]
pub struct ClientCertificateServiceGrpc {
    service: service::TokenService,
}

impl ClientCertificateServiceGrpc {
    /// Serves `service`'s client-certificate call over gRPC.
    pub fn new(service: service::TokenService) -> Self {
        Self { service }
    }

    /// The tonic server to add to a router.
    pub fn into_server(
        self,
    ) -> v1::client_certificate_service_server::ClientCertificateServiceServer<Self> {
        v1::client_certificate_service_server::ClientCertificateServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl ClientCertificateServiceRpc for ClientCertificateServiceGrpc {
    async fn issue_client_certificate(
        &self,
        request: Request<v1::IssueClientCertificateRequest>,
    ) -> Result<Response<v1::IssueClientCertificateResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let issued = self
            .service
            .issue_client_certificate(
                &caller,
                CertificateIssue {
                    csr: r.csr,
                    user: r.user,
                    groups: r.groups,
                    duration: r.duration,
                    server: r.server,
                    context_name: r.context_name,
                },
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::IssueClientCertificateResponse {
            kubeconfig: issued.kubeconfig,
            certificate: issued.certificate,
            serial_number: issued.serial,
            not_after: Some(convert::timestamp(issued.not_after)),
        }))
    }
}
