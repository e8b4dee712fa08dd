//! CertificateSigningRequests (certificates.k8s.io/v1): created for a caller's CSR, approved
//! through the `approval` subresource, read until the signer has written the certificate, and
//! deleted once it has been read.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestSpec,
    CertificateSigningRequestStatus,
};

use super::*;

/// What the signer did with a request.
#[derive(Debug)]
pub enum Signed {
    /// The certificate, PEM.
    Certificate(String),
    /// The request was denied or failed (a condition of that type), with the condition's message.
    Refused(String),
}

impl Cluster {
    fn csrs(&self) -> Api<CertificateSigningRequest> {
        Api::all(self.client.clone())
    }

    /// Creates a CertificateSigningRequest named `name` for `signer`; answers its uid.
    pub async fn create_csr(
        &self,
        name: &str,
        request_pem: &str,
        signer: &str,
        expiration_seconds: i32,
    ) -> Result<String> {
        let csr = CertificateSigningRequest {
            metadata: managed_meta(name, None),
            spec: CertificateSigningRequestSpec {
                request: k8s_openapi::ByteString(request_pem.as_bytes().to_vec()),
                signer_name: signer.to_owned(),
                expiration_seconds: Some(expiration_seconds),
                usages: Some(vec!["digital signature".into(), "client auth".into()]),
                ..Default::default()
            },
            status: None,
        };
        let created = self.csrs().create(&PostParams::default(), &csr).await?;
        Ok(created.metadata.uid.unwrap_or_default())
    }

    /// Adds the Approved condition through the `approval` subresource, as `kubectl certificate
    /// approve` does.
    pub async fn approve_csr(&self, name: &str, reason: &str, message: &str) -> Result<()> {
        let mut csr = self.csrs().get(name).await?;
        let status = csr
            .status
            .get_or_insert_with(CertificateSigningRequestStatus::default);
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some(reason.to_owned()),
                message: Some(message.to_owned()),
                last_update_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    Timestamp::now(),
                )),
                ..Default::default()
            });
        self.csrs()
            .replace_subresource("approval", name, &PostParams::default(), &csr)
            .await?;
        Ok(())
    }

    /// Reads the request every `every` until the signer answers or `limit` passes (then None).
    pub async fn wait_for_certificate(
        &self,
        name: &str,
        every: Duration,
        limit: Duration,
    ) -> Result<Option<Signed>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let csr = self.csrs().get(name).await?;
            let status = csr.status.unwrap_or_default();
            if let Some(refused) = status
                .conditions
                .iter()
                .flatten()
                .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
            {
                return Ok(Some(Signed::Refused(format!(
                    "{}: {}",
                    refused
                        .reason
                        .clone()
                        .unwrap_or_else(|| refused.type_.clone()),
                    refused.message.clone().unwrap_or_default()
                ))));
            }
            if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
                return Ok(Some(Signed::Certificate(
                    String::from_utf8_lossy(&cert.0).into_owned(),
                )));
            }
            if tokio::time::Instant::now() + every > deadline {
                return Ok(None);
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Deletes a request (only the one of this uid); gone already is fine.
    pub async fn delete_csr(&self, name: &str, uid: &str) -> Result<()> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        ignore_not_found(self.csrs().delete(name, &params).await.map(|_| ()))
    }
}
