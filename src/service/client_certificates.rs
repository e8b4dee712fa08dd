//! Client-certificate kubeconfigs: a caller's PKCS#10 request signed by the cluster's
//! `kubernetes.io/kube-apiserver-client` signer through a CertificateSigningRequest that tokend
//! creates, approves (only if the caller could approve it itself), reads back and deletes.
//! Kubernetes cannot revoke a client certificate before it expires, so the lifetime is capped
//! (`--client-cert-max-duration`) and every certificate is audited with its serial number.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokend_api::duration::{format_duration, parse_duration};
use tokio::sync::oneshot;

use super::{Error, Result, TokenService};
use crate::caller::Caller;
use crate::cluster::{ResourceAccess, Signed};
use crate::credential_kubeconfig::{self, Credential, Entries};
use crate::names::echo;
use crate::vocabulary::{
    BOOTSTRAP_KUBECONFIG_CLUSTER, CLIENT_CERT_SIGNER, CSR_NAME_PREFIX, MASTERS_GROUP,
    MIN_CERTIFICATE_SECONDS,
};

/// Limits on client certificates, set by the operator.
#[derive(Debug, Clone)]
pub struct CertificatePolicy {
    /// Longest lifetime, and the lifetime of a request that names none.
    pub max_duration: Duration,
    /// `system:` users and groups a certificate may name (never `system:masters`).
    pub allowed_system_identities: Vec<String>,
    /// How long tokend waits for the signer.
    pub signing_wait: Duration,
}

impl Default for CertificatePolicy {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(3600),
            allowed_system_identities: Vec::new(),
            signing_wait: Duration::from_secs(20),
        }
    }
}

/// Largest CSR accepted, PEM bytes.
const MAX_CSR_BYTES: usize = 16 * 1024;
/// Most groups one certificate may name.
const MAX_GROUPS: usize = 32;
/// How often the request is read while waiting for the signer.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// What to sign.
#[derive(Debug, Clone, Default)]
pub struct CertificateIssue {
    /// The PKCS#10 request, PEM.
    pub csr: String,
    /// The user (must equal the CSR's CN).
    pub user: String,
    /// The groups (must equal the CSR's O values).
    pub groups: Vec<String>,
    /// Lifetime text; empty for the cap.
    pub duration: String,
    /// Server URL override.
    pub server: String,
    /// Context name override.
    pub context_name: String,
}

/// A certificate signed, in a kubeconfig without its key.
#[derive(Debug)]
pub struct IssuedCertificate {
    /// The kubeconfig YAML.
    pub kubeconfig: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// Serial number, hex.
    pub serial: String,
    /// Expiry.
    pub not_after: Timestamp,
}

impl TokenService {
    /// Signs a caller's CSR through the CSR API and renders a kubeconfig with the certificate.
    /// Everything is checked, and the caller's right to create and approve the request asked,
    /// before any CertificateSigningRequest exists; the request is deleted whatever happens.
    pub async fn issue_client_certificate(
        &self,
        caller: &Caller,
        request: CertificateIssue,
    ) -> Result<IssuedCertificate> {
        let lifetime = self.certificate_lifetime(&request.duration)?;
        let groups = check_identity(
            &self.settings.certificates.allowed_system_identities,
            &request.user,
            &request.groups,
        )?;
        check_csr(&request.csr, &request.user, &groups)?;
        let server = self.kubeconfig_server(&request.server)?;
        let context = if request.context_name.is_empty() {
            format!("{}@{BOOTSTRAP_KUBECONFIG_CLUSTER}", request.user)
        } else {
            request.context_name.clone()
        };
        crate::kubeconfig::check_name(&request.user)
            .map_err(|rule| Error::invalid("user", rule))?;
        crate::kubeconfig::check_name(&context)
            .map_err(|rule| Error::invalid("context_name", rule))?;
        self.require_certificate_rights(caller).await?;
        let ca = self.kubeconfig_ca().await?;

        let (tx, rx) = oneshot::channel();
        let this = self.clone();
        let caller = caller.clone();
        let user = request.user.clone();
        // In a task of its own, so the request object is deleted even if the caller leaves.
        tokio::spawn(async move {
            let signed = this.sign(&request.csr, lifetime).await;
            let answer = signed.and_then(|pem| {
                let (serial, not_after) = certificate_facts(&pem)?;
                let kubeconfig = credential_kubeconfig::render(
                    &Entries {
                        server: &server,
                        ca_pem: ca.as_deref(),
                        cluster: BOOTSTRAP_KUBECONFIG_CLUSTER,
                        user: &user,
                        context: &context,
                    },
                    &Credential::Certificate(&pem),
                )
                .map_err(|e| Error::Internal(e.to_string()))?;
                Ok(IssuedCertificate {
                    kubeconfig,
                    certificate: pem,
                    serial,
                    not_after,
                })
            });
            match &answer {
                Ok(issued) => super::audit::certificate_issued(
                    &caller,
                    &user,
                    &groups,
                    &issued.serial,
                    &issued.not_after.to_string(),
                ),
                Err(e) => super::audit::certificate_issue_failed(&caller, &user, e),
            }
            let _ = tx.send(answer);
        });
        rx.await
            .map_err(|_| Error::Internal("the signing task ended without an answer".into()))?
    }

    /// Creates, approves and reads back a CertificateSigningRequest, then deletes it.
    async fn sign(&self, csr: &str, lifetime: Duration) -> Result<String> {
        let name = format!("{CSR_NAME_PREFIX}{}", random_suffix());
        let seconds = i32::try_from(lifetime.as_secs()).unwrap_or(i32::MAX);
        let uid = self
            .cluster
            .create_csr(&name, csr, CLIENT_CERT_SIGNER, seconds)
            .await?;
        let result = async {
            self.cluster
                .approve_csr(
                    &name,
                    "TokendApproved",
                    "approved by tokend for a caller allowed to approve it",
                )
                .await?;
            match self
                .cluster
                .wait_for_certificate(&name, POLL_EVERY, self.settings.certificates.signing_wait)
                .await?
            {
                Some(Signed::Certificate(pem)) => Ok(pem),
                Some(Signed::Refused(why)) => Err(Error::FailedPrecondition(format!(
                    "the cluster's signer refused the request: {why}"
                ))),
                None => Err(Error::Unavailable(format!(
                    "the cluster's {CLIENT_CERT_SIGNER} signer did not sign within {} (is \
                     kube-controller-manager running with --cluster-signing-cert-file?)",
                    format_duration(self.settings.certificates.signing_wait)
                ))),
            }
        }
        .await;
        if let Err(e) = self.cluster.delete_csr(&name, &uid).await {
            tracing::warn!(csr = %name, error = %e, "could not delete the CertificateSigningRequest");
        }
        result
    }

    /// What `kubectl create -f csr.yaml && kubectl certificate approve` would need: create the
    /// request, update its approval, and approve for the signer (by name or `kubernetes.io/*`,
    /// as the API server's CertificateApproval admission accepts either).
    async fn require_certificate_rights(&self, caller: &Caller) -> Result<()> {
        for (verb, resource, subresource) in [
            ("create", "certificatesigningrequests", None),
            ("update", "certificatesigningrequests", Some("approval")),
        ] {
            self.require(
                caller,
                ResourceAccess {
                    verb,
                    group: "certificates.k8s.io",
                    resource,
                    subresource,
                    namespace: None,
                    name: None,
                },
            )
            .await?;
        }
        let signer = |name| ResourceAccess {
            verb: "approve",
            group: "certificates.k8s.io",
            resource: "signers",
            subresource: None,
            namespace: None,
            name: Some(name),
        };
        match self.require(caller, signer(CLIENT_CERT_SIGNER)).await {
            Err(Error::PermissionDenied(denied)) => self
                .require(caller, signer("kubernetes.io/*"))
                .await
                .map_err(|_| Error::PermissionDenied(denied)),
            other => other,
        }
    }

    fn certificate_lifetime(&self, text: &str) -> Result<Duration> {
        let max = self.settings.certificates.max_duration;
        if text.is_empty() {
            return Ok(max);
        }
        let duration = parse_duration(text)
            .map_err(|e| Error::invalid("duration", format!("{e} (e.g. 1h, 30m)")))?;
        if duration.as_secs() < MIN_CERTIFICATE_SECONDS {
            return Err(Error::invalid(
                "duration",
                format!(
                    "{} is shorter than the minimum of {} the CSR API accepts",
                    echo(text),
                    format_duration(Duration::from_secs(MIN_CERTIFICATE_SECONDS))
                ),
            ));
        }
        if duration > max {
            return Err(Error::FailedPrecondition(format!(
                "duration {} exceeds the maximum of {} this server allows for client certificates, \
                 which cannot be revoked (--client-cert-max-duration)",
                echo(text),
                format_duration(max)
            )));
        }
        Ok(duration)
    }
}

/// The groups, deduplicated, once the user and groups pass policy: never `system:masters`;
/// other `system:` names only when the operator listed them (`allowed`).
fn check_identity(allowed: &[String], user: &str, groups: &[String]) -> Result<Vec<String>> {
    let plain = |field: &str, value: &str| -> Result<()> {
        if value.is_empty() || value.len() > 253 || value.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                "1 to 253 bytes, without control characters",
            ));
        }
        Ok(())
    };
    plain("user", user)?;
    if groups.len() > MAX_GROUPS {
        return Err(Error::invalid("groups", format!("at most {MAX_GROUPS}")));
    }
    let mut unique = Vec::new();
    for group in groups {
        plain("groups", group)?;
        if !unique.contains(group) {
            unique.push(group.clone());
        }
    }
    if unique.iter().any(|g| g == MASTERS_GROUP) || user == MASTERS_GROUP {
        return Err(Error::PermissionDenied(format!(
            "groups: {MASTERS_GROUP} is never issued (it bypasses all authorisation, and a \
             client certificate cannot be revoked)"
        )));
    }
    for (field, name) in
        std::iter::once(("user", user)).chain(unique.iter().map(|g| ("groups", g.as_str())))
    {
        if name.starts_with("system:") && !allowed.iter().any(|a| a == name) {
            return Err(Error::FailedPrecondition(format!(
                "{field}: {} is a system: identity this server does not issue \
                 (--client-cert-allowed-system-identities)",
                echo(name)
            )));
        }
    }
    Ok(unique)
}

/// Refuses a CSR that does not parse or does not name exactly `user` and `groups`.
fn check_csr(pem_text: &str, user: &str, groups: &[String]) -> Result<()> {
    use x509_parser::prelude::FromDer as _;
    if pem_text.len() > MAX_CSR_BYTES {
        return Err(Error::invalid(
            "csr",
            format!("larger than {MAX_CSR_BYTES} bytes"),
        ));
    }
    let block = pem::parse(pem_text)
        .ok()
        .filter(|b| b.tag() == "CERTIFICATE REQUEST")
        .ok_or_else(|| Error::invalid("csr", "must be one PEM \"CERTIFICATE REQUEST\" block"))?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(block.contents())
            .map_err(|_| Error::invalid("csr", "not a PKCS#10 certificate request"))?;
    let subject = &csr.certification_request_info.subject;
    let cns: Vec<&str> = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    if cns != [user] {
        return Err(Error::invalid(
            "csr",
            format!(
                "its subject CN must be exactly the user {} (it names {:?})",
                echo(user),
                cns.iter().map(|c| echo(c)).collect::<Vec<_>>()
            ),
        ));
    }
    let orgs: BTreeSet<&str> = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let wanted: BTreeSet<&str> = groups.iter().map(String::as_str).collect();
    if orgs != wanted {
        return Err(Error::invalid(
            "csr",
            "its subject O values must be exactly the groups asked for",
        ));
    }
    Ok(())
}

/// The serial number (hex) and expiry of a signed certificate.
fn certificate_facts(pem_text: &str) -> Result<(String, Timestamp)> {
    let block = pem::parse(pem_text)
        .map_err(|e| Error::Internal(format!("the signer's certificate is not PEM: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents())
        .map_err(|e| Error::Internal(format!("the signer's certificate does not parse: {e}")))?;
    let not_after = Timestamp::from_second(cert.validity().not_after.timestamp())
        .map_err(|e| Error::Internal(format!("certificate expiry out of range: {e}")))?;
    Ok((cert.raw_serial_as_string().replace(':', ""), not_after))
}

fn random_suffix() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(cn: &str, orgs: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for org in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *org);
        }
        params
            .serialize_request(&key)
            .expect("CSR")
            .pem()
            .expect("PEM")
    }

    #[test]
    fn masters_is_never_issued_and_system_names_only_when_listed() {
        let allowed = vec!["system:kube-proxy".to_owned(), "system:masters".to_owned()];
        assert!(matches!(
            check_identity(&allowed, "root", &["system:masters".into()]),
            Err(Error::PermissionDenied(_))
        ));
        assert!(check_identity(&allowed, "system:kube-proxy", &[]).is_ok());
        assert!(matches!(
            check_identity(&allowed, "system:node:a", &[]),
            Err(Error::FailedPrecondition(_))
        ));
        assert!(matches!(
            check_identity(&[], "alice", &["system:nodes".into()]),
            Err(Error::FailedPrecondition(_))
        ));
        assert_eq!(
            check_identity(&[], "alice", &["dev".into(), "dev".into()]).expect("ok"),
            ["dev"]
        );
        assert!(check_identity(&[], "al\nice", &[]).is_err());
    }

    #[test]
    fn the_csr_must_name_exactly_the_identity_asked_for() {
        assert!(check_csr(&csr("alice", &["dev"]), "alice", &["dev".into()]).is_ok());
        assert!(check_csr(&csr("alice", &["dev"]), "bob", &["dev".into()]).is_err());
        assert!(check_csr(&csr("alice", &["dev"]), "alice", &[]).is_err());
        assert!(check_csr(&csr("alice", &[]), "alice", &["dev".into()]).is_err());
        assert!(check_csr("not a csr", "alice", &[]).is_err());
    }
}
