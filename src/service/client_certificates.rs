//! Client-certificate kubeconfigs: a caller's PKCS#10 request signed by the cluster's
//! `kubernetes.io/kube-apiserver-client` signer through a CertificateSigningRequest that tokend
//! creates, approves (only if the caller could approve it itself), reads back and deletes.
//! Kubernetes cannot revoke a client certificate before it expires, so the lifetime is capped
//! (`--client-cert-max-duration`) and every certificate is audited with its serial number.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokend_api::duration::{format_duration, parse_duration};
use tokio::sync::oneshot;

use super::policy::over_maximum;
use super::{Error, Failure, Reason, Result, TokenService, Violations};
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
    /// Whether tokend signs client certificates at all (`--enable-client-certificates`): they
    /// cannot be revoked, so only an operator's explicit choice turns them on.
    pub enabled: bool,
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
            enabled: false,
            max_duration: Duration::from_secs(3600),
            allowed_system_identities: Vec::new(),
            signing_wait: Duration::from_secs(20),
        }
    }
}

/// The flag that switches client certificates on.
pub const ENABLE_CLIENT_CERTIFICATES_FLAG: &str = "--enable-client-certificates";
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
        super::policy::require_enabled(
            self.settings.certificates.enabled,
            "client certificates (signed by the cluster's kube-apiserver-client signer)",
            ENABLE_CLIENT_CERTIFICATES_FLAG,
        )?;
        // Every bad field at once; then this server's policy; then the caller's rights.
        let mut violations = Violations::default();
        let lifetime = self.certificate_lifetime(&request.duration, &mut violations);
        let groups = identity_violations(&request.user, &request.groups, &mut violations);
        let csr = check_csr(
            &request.csr,
            groups
                .as_deref()
                .map(|groups| (request.user.as_str(), groups)),
            &mut violations,
        );
        let server = violations.check(
            "server",
            Reason::ServerUrlInvalid,
            self.kubeconfig_server(&request.server),
        );
        let context = if request.context_name.is_empty() {
            format!("{}@{BOOTSTRAP_KUBECONFIG_CLUSTER}", request.user)
        } else {
            request.context_name.clone()
        };
        // A context made from a bad user would only repeat the user's violation.
        if !request.context_name.is_empty() || groups.is_some() {
            violations.check(
                "context_name",
                Reason::NameInvalid,
                crate::kubeconfig::check_name(&context),
            );
        }
        violations.into_result()?;
        let groups = groups.unwrap_or_default();
        let csr = csr.unwrap_or_default();
        let server = server.unwrap_or_default();
        let policy = &self.settings.certificates;
        check_system_identities(&policy.allowed_system_identities, &request.user, &groups)?;
        let lifetime = lifetime.unwrap_or(policy.max_duration);
        if lifetime > policy.max_duration {
            return Err(over_maximum(
                "duration",
                lifetime,
                policy.max_duration,
                "for client certificates, which cannot be revoked (--client-cert-max-duration)",
            ));
        }
        self.require_certificate_rights(caller).await?;
        let ca = self.kubeconfig_ca().await?;

        let (tx, rx) = oneshot::channel();
        let this = self.clone();
        let caller = caller.clone();
        let user = request.user.clone();
        // In a task of its own, so the request object is deleted even if the caller leaves.
        tokio::spawn(async move {
            let signed = this.sign(&csr, lifetime).await;
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
                .map_err(|e| Error::internal(e.to_string()))?;
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
            .map_err(|_| Error::internal("the signing task ended without an answer"))?
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
                Some(Signed::Refused(why)) => Err(Error::FailedPrecondition(
                    Failure::new(
                        Reason::SignerRefused,
                        format!("the cluster's signer refused the request: {why}"),
                    )
                    .with("signer", CLIENT_CERT_SIGNER),
                )),
                None => Err(Error::Unavailable(
                    Failure::new(
                        Reason::SignerTimedOut,
                        format!(
                            "the cluster's {CLIENT_CERT_SIGNER} signer did not sign within {} \
                             (is kube-controller-manager running with \
                             --cluster-signing-cert-file?)",
                            format_duration(self.settings.certificates.signing_wait)
                        ),
                    )
                    .with("signer", CLIENT_CERT_SIGNER)
                    .with(
                        "wait_seconds",
                        self.settings
                            .certificates
                            .signing_wait
                            .as_secs()
                            .to_string(),
                    ),
                )),
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

    /// The lifetime asked for (the maximum when `text` is empty), or None after recording why
    /// `text` breaks the grammar or the CSR API's minimum. The maximum is checked by the caller,
    /// as it is this server's policy rather than a rule of the field.
    fn certificate_lifetime(&self, text: &str, violations: &mut Violations) -> Option<Duration> {
        if text.is_empty() {
            return Some(self.settings.certificates.max_duration);
        }
        let duration = violations.check(
            "duration",
            Reason::DurationInvalid,
            parse_duration(text).map_err(|e| format!("{e} (e.g. 1h, 30m)")),
        )?;
        if duration.as_secs() < MIN_CERTIFICATE_SECONDS {
            violations.add(
                "duration",
                Reason::DurationUnderMinimum,
                format!(
                    "{} is shorter than the minimum of {} the CSR API accepts",
                    echo(text),
                    format_duration(Duration::from_secs(MIN_CERTIFICATE_SECONDS))
                ),
            );
            return None;
        }
        Some(duration)
    }
}

/// The rule a certificate's user or group breaks, if any: Kubernetes takes any string, but a
/// name kubectl and logs show must be bounded and printable.
fn identity_rule(value: &str) -> Option<&'static str> {
    (value.is_empty() || value.len() > 253 || value.chars().any(char::is_control))
        .then_some("must be 1 to 253 bytes, without control characters")
}

/// The groups, deduplicated, when the user and groups are well formed; else None after recording
/// every one that is not in `violations`. Policy on `system:` names is
/// [`check_system_identities`]'s.
fn identity_violations(
    user: &str,
    groups: &[String],
    violations: &mut Violations,
) -> Option<Vec<String>> {
    let before = violations.0.len();
    if user.is_empty() {
        violations.add("user", Reason::FieldRequired, "must not be empty");
    } else if let Some(rule) = identity_rule(user) {
        violations.add("user", Reason::NameInvalid, rule);
    } else {
        violations.check(
            "user",
            Reason::NameInvalid,
            crate::kubeconfig::check_name(user),
        );
    }
    let mut unique = Vec::new();
    if groups.len() > MAX_GROUPS {
        violations.add(
            "groups",
            Reason::TooManyValues,
            format!("at most {MAX_GROUPS} groups (got {})", groups.len()),
        );
    } else {
        for (i, group) in groups.iter().enumerate() {
            if let Some(rule) = identity_rule(group) {
                violations.add(format!("groups[{i}]"), Reason::NameInvalid, rule);
            } else if !unique.contains(group) {
                unique.push(group.clone());
            }
        }
    }
    (violations.0.len() == before).then_some(unique)
}

/// This server's policy on the identity a certificate names: never `system:masters`; other
/// `system:` names only when the operator listed them (`allowed`).
fn check_system_identities(allowed: &[String], user: &str, groups: &[String]) -> Result<()> {
    if groups.iter().any(|g| g == MASTERS_GROUP) || user == MASTERS_GROUP {
        let field = if user == MASTERS_GROUP {
            "user"
        } else {
            "groups"
        };
        return Err(Error::PermissionDenied(
            Failure::new(
                Reason::IdentityForbidden,
                format!(
                    "{field}: {MASTERS_GROUP} is never issued (it bypasses all authorisation, \
                     and a client certificate cannot be revoked)"
                ),
            )
            .with("field", field)
            .with("identity", MASTERS_GROUP),
        ));
    }
    for (field, name) in
        std::iter::once(("user", user)).chain(groups.iter().map(|g| ("groups", g.as_str())))
    {
        if name.starts_with("system:") && !allowed.iter().any(|a| a == name) {
            return Err(Error::FailedPrecondition(
                Failure::new(
                    Reason::SystemIdentityNotAllowed,
                    format!(
                        "{field}: {} is a system: identity this server does not issue \
                         (--client-cert-allowed-system-identities)",
                        echo(name)
                    ),
                )
                .with("field", field)
                .with("identity", name),
            ));
        }
    }
    Ok(())
}

/// The CSR as the API server will be sent it: the PEM of exactly the DER checked here, so no
/// difference between this PEM reader and Go's can make the API server read another request.
/// None after recording in `violations` a CSR that is missing, is not exactly one PEM block of
/// one PKCS#10 request, or (when `identity` is known to be well formed) whose subject is not
/// exactly its user (CN) and groups (O).
fn check_csr(
    pem_text: &str,
    identity: Option<(&str, &[String])>,
    violations: &mut Violations,
) -> Option<String> {
    use x509_parser::prelude::FromDer as _;
    if pem_text.is_empty() {
        violations.add("csr", Reason::FieldRequired, "must not be empty");
        return None;
    }
    if pem_text.len() > MAX_CSR_BYTES {
        violations.add(
            "csr",
            Reason::CsrInvalid,
            format!("must be at most {MAX_CSR_BYTES} bytes"),
        );
        return None;
    }
    let blocks = pem::parse_many(pem_text).unwrap_or_default();
    let [block] = blocks.as_slice() else {
        violations.add(
            "csr",
            Reason::CsrInvalid,
            "must be one PEM \"CERTIFICATE REQUEST\" block",
        );
        return None;
    };
    if block.tag() != "CERTIFICATE REQUEST" {
        violations.add(
            "csr",
            Reason::CsrInvalid,
            "must be one PEM \"CERTIFICATE REQUEST\" block",
        );
        return None;
    }
    let Ok(([], csr)) =
        x509_parser::certification_request::X509CertificationRequest::from_der(block.contents())
    else {
        violations.add(
            "csr",
            Reason::CsrInvalid,
            "must hold one PKCS#10 certificate request and nothing after it",
        );
        return None;
    };
    if let Some((user, groups)) = identity
        && let Err(rule) = check_subject(
            csr.certification_request_info.subject.as_raw(),
            user,
            groups,
        )
    {
        violations.add("csr", Reason::CsrIdentityMismatch, rule);
        return None;
    }
    Some(pem::encode_config(
        &pem::Pem::new("CERTIFICATE REQUEST", block.contents()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

/// Checks a subject (its DER) attribute by attribute, as the API server's x509 authenticator will
/// read the certificate signed from it (Go's crypto/x509: the last CN is the user, every O a
/// group, T61String, BMPString, IA5String and the rest decoded as strings too). Accepted are only
/// RDNs of one CN or O, each a UTF8String or PrintableString (which every reader decodes alike),
/// with exactly one CN equal to `user` and the O values equal to `groups`; anything else is the
/// rule broken, so that what tokend checked and audits is what the cluster authenticates. The
/// DER is walked here to its last byte rather than through x509-parser's Name, which stops at
/// the first RDN it cannot parse and keeps what came before, where Go would read on.
fn check_subject(
    subject_der: &[u8],
    user: &str,
    groups: &[String],
) -> std::result::Result<(), String> {
    use x509_parser::der_parser::asn1_rs::{Any, FromDer as _, Oid, Sequence, Set, Tag};
    use x509_parser::oid_registry::{OID_X509_COMMON_NAME, OID_X509_ORGANIZATION_NAME};
    const RULE: &str = "its subject must be exactly one CN (the user) and one O per group, each a \
                        UTF8String or PrintableString in an RDN of its own";
    let unreadable = |what: &str| format!("{RULE} (it has {what})");
    let name = match Sequence::from_der(subject_der) {
        Ok(([], name)) => name,
        _ => return Err(unreadable("a subject that is not one whole DER Name")),
    };
    let mut cns = Vec::new();
    let mut orgs = Vec::new();
    let mut rdns: &[u8] = &name.content;
    while !rdns.is_empty() {
        let Ok((next, rdn)) = Set::from_der(rdns) else {
            return Err(unreadable("an RDN that is not a DER SET"));
        };
        rdns = next;
        let Ok(([], attribute)) = Sequence::from_der(&rdn.content) else {
            return Err(unreadable("a multi-valued, empty or malformed RDN"));
        };
        let Ok((after_type, attribute_type)) = Oid::from_der(&attribute.content) else {
            return Err(unreadable("an attribute without a type"));
        };
        let Ok(([], value)) = Any::from_der(after_type) else {
            return Err(unreadable("an attribute without exactly one value"));
        };
        let text = match value.tag() {
            Tag::Utf8String => std::str::from_utf8(value.data).ok(),
            Tag::PrintableString => std::str::from_utf8(value.data)
                .ok()
                .filter(|t| t.bytes().all(printable)),
            _ => None,
        };
        let Some(text) = text else {
            return Err(unreadable(&format!(
                "a value of ASN.1 tag {} that Go may read otherwise",
                value.tag().0
            )));
        };
        if attribute_type == OID_X509_COMMON_NAME {
            cns.push(text.to_owned());
        } else if attribute_type == OID_X509_ORGANIZATION_NAME {
            orgs.push(text.to_owned());
        } else {
            return Err(unreadable(&format!("attribute {attribute_type} too")));
        }
    }
    if cns != [user] {
        return Err(format!(
            "{RULE}: the CN must be the user {} (it names {:?})",
            echo(user),
            cns.iter().map(|c| echo(c)).collect::<Vec<_>>()
        ));
    }
    orgs.sort_unstable();
    let mut wanted: Vec<&str> = groups.iter().map(String::as_str).collect();
    wanted.sort_unstable();
    if orgs != wanted {
        return Err(format!(
            "{RULE}: the O values must be exactly the groups asked for, each once"
        ));
    }
    Ok(())
}

/// X.680's PrintableString alphabet.
fn printable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

/// The serial number (hex) and expiry of a signed certificate.
fn certificate_facts(pem_text: &str) -> Result<(String, Timestamp)> {
    let block = pem::parse(pem_text)
        .map_err(|e| Error::internal(format!("the signer's certificate is not PEM: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents())
        .map_err(|e| Error::internal(format!("the signer's certificate does not parse: {e}")))?;
    let not_after = Timestamp::from_second(cert.validity().not_after.timestamp())
        .map_err(|e| Error::internal(format!("certificate expiry out of range: {e}")))?;
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

    /// A DER Name of the given RDNs, each a list of (OID arcs, raw DER of the value).
    fn name(rdns: &[&[(&[u64], Vec<u8>)]]) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                for rdn in rdns {
                    w.next().write_set(|w| {
                        for (oid, value) in *rdn {
                            w.next().write_sequence(|w| {
                                w.next()
                                    .write_oid(&yasna::models::ObjectIdentifier::from_slice(oid));
                                w.next().write_der(value);
                            });
                        }
                    });
                }
            });
        })
    }

    /// The DER of a string value of ASN.1 `tag`.
    fn string(tag: u8, text: &str) -> Vec<u8> {
        let mut der = vec![tag, u8::try_from(text.len()).expect("short")];
        der.extend_from_slice(text.as_bytes());
        der
    }

    const CN: &[u64] = &[2, 5, 4, 3];
    const O: &[u64] = &[2, 5, 4, 10];
    const OU: &[u64] = &[2, 5, 4, 11];
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const T61: u8 = 0x14;
    const IA5: u8 = 0x16;

    fn subject_check(der: &[u8], user: &str, groups: &[&str]) -> bool {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        check_subject(der, user, &groups).is_ok()
    }

    #[test]
    fn a_subject_is_read_attribute_by_attribute_as_go_reads_it() {
        use x509_parser::prelude::FromDer as _;
        let ok = name(&[
            &[(CN, string(UTF8, "alice"))],
            &[(O, string(PRINTABLE, "dev"))],
            &[(O, string(UTF8, "ops"))],
        ]);
        assert!(subject_check(&ok, "alice", &["ops", "dev"]));
        assert!(!subject_check(&ok, "alice", &["dev"]), "a group more");
        // What Go reads as strings too, and would take as the last CN or another group.
        for smuggled in [
            name(&[&[(CN, string(UTF8, "alice"))], &[(CN, string(T61, "root"))]]),
            name(&[
                &[(CN, string(UTF8, "alice"))],
                &[(O, string(T61, "system:nodes"))],
            ]),
            name(&[&[(CN, string(IA5, "alice"))]]),
            // Two CNs, a multi-valued RDN, another attribute type, an empty RDN.
            name(&[
                &[(CN, string(UTF8, "alice"))],
                &[(CN, string(UTF8, "alice"))],
            ]),
            name(&[&[(CN, string(UTF8, "alice")), (O, string(UTF8, "x"))]]),
            name(&[&[(CN, string(UTF8, "alice"))], &[(OU, string(UTF8, "x"))]]),
            name(&[
                &[(CN, string(UTF8, "alice"))],
                &[],
                &[(CN, string(UTF8, "root"))],
            ]),
            // A PrintableString outside its alphabet, a UTF8String that is not UTF-8.
            name(&[&[(CN, string(PRINTABLE, "al*ce"))]]),
            name(&[&[(CN, vec![UTF8, 2, 0xc3, 0x28])]]),
        ] {
            assert!(
                !subject_check(&smuggled, "alice", &[]),
                "{:?}",
                x509_parser::x509::X509Name::from_der(&smuggled).map(|(_, n)| n.to_string())
            );
        }
        // Nor does anything after the Name pass.
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(!subject_check(&trailing, "alice", &["ops", "dev"]));
    }

    #[test]
    fn the_csr_sent_on_is_exactly_the_request_checked() {
        let pem_text = csr("alice", &["dev"]);
        let mut violations = Violations::default();
        let sent = check_csr(&pem_text, Some(("alice", &["dev".into()])), &mut violations)
            .expect("accepted");
        assert_eq!(
            pem::parse(&sent).expect("PEM").contents(),
            pem::parse(&pem_text).expect("PEM").contents()
        );
        // Two blocks (Go's reader and this one might pick different ones) are refused.
        let twice = format!("{pem_text}{}", csr("root", &[]));
        let mut violations = Violations::default();
        assert!(check_csr(&twice, Some(("alice", &["dev".into()])), &mut violations).is_none());
        assert_eq!(reasons(&violations), [("csr", Reason::CsrInvalid)]);
    }

    fn reasons(violations: &Violations) -> Vec<(&str, Reason)> {
        violations
            .0
            .iter()
            .map(|v| (v.field.as_str(), v.reason))
            .collect()
    }

    #[test]
    fn masters_is_never_issued_and_system_names_only_when_listed() {
        let allowed = vec!["system:kube-proxy".to_owned(), "system:masters".to_owned()];
        assert!(matches!(
            check_system_identities(&allowed, "root", &["system:masters".into()]),
            Err(Error::PermissionDenied(Failure {
                reason: Reason::IdentityForbidden,
                ..
            }))
        ));
        assert!(check_system_identities(&allowed, "system:kube-proxy", &[]).is_ok());
        assert!(matches!(
            check_system_identities(&allowed, "system:node:a", &[]),
            Err(Error::FailedPrecondition(Failure {
                reason: Reason::SystemIdentityNotAllowed,
                ..
            }))
        ));
        assert!(matches!(
            check_system_identities(&[], "alice", &["system:nodes".into()]),
            Err(Error::FailedPrecondition(Failure {
                reason: Reason::SystemIdentityNotAllowed,
                ..
            }))
        ));
    }

    #[test]
    fn every_malformed_user_and_group_is_named() {
        let mut violations = Violations::default();
        assert_eq!(
            identity_violations("alice", &["dev".into(), "dev".into()], &mut violations),
            Some(vec!["dev".to_owned()])
        );
        assert!(violations.is_empty());
        assert_eq!(
            identity_violations("al\nice", &["ok".into(), String::new()], &mut violations),
            None
        );
        assert_eq!(
            reasons(&violations),
            [
                ("user", Reason::NameInvalid),
                ("groups[1]", Reason::NameInvalid)
            ]
        );
        let mut violations = Violations::default();
        identity_violations("", &[], &mut violations);
        assert_eq!(reasons(&violations), [("user", Reason::FieldRequired)]);
    }

    #[test]
    fn the_csr_must_name_exactly_the_identity_asked_for() {
        let check = |pem: &str, user: &str, groups: &[String]| {
            let mut violations = Violations::default();
            let _ = check_csr(pem, Some((user, groups)), &mut violations);
            violations
                .0
                .into_iter()
                .map(|v| (v.field, v.reason))
                .collect::<Vec<_>>()
        };
        let mismatch = [("csr".to_owned(), Reason::CsrIdentityMismatch)];
        assert!(check(&csr("alice", &["dev"]), "alice", &["dev".into()]).is_empty());
        assert_eq!(
            check(&csr("alice", &["dev"]), "bob", &["dev".into()]),
            mismatch
        );
        assert_eq!(check(&csr("alice", &["dev"]), "alice", &[]), mismatch);
        assert_eq!(
            check(&csr("alice", &[]), "alice", &["dev".into()]),
            mismatch
        );
        assert_eq!(
            check("not a csr", "alice", &[]),
            [("csr".to_owned(), Reason::CsrInvalid)]
        );
        assert_eq!(
            check("", "alice", &[]),
            [("csr".to_owned(), Reason::FieldRequired)]
        );
    }
}
