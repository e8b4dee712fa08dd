//! The certificates.k8s.io/v1 CertificateSigningRequest API as kube-apiserver v1.24 and
//! kube-controller-manager's csrsigning controller do it: create (validation, the requester's
//! identity written into the spec, `CertificateSubjectRestriction` refusing system:masters for
//! the kube-apiserver-client signer), the `approval` subresource (`CertificateApproval`: the
//! approver needs `approve` on the signer), and signers for `kubernetes.io/kube-apiserver-client`
//! and `kubernetes.io/kube-apiserver-client-kubelet` that sign from the cluster CA as soon as a
//! request is approved (the real controller does it moments later).

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{KeyPair, SigningKey as _};
use serde_json::{Value, json};
use x509_parser::prelude::FromDer as _;
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};

use crate::authn::UserInfo;
use crate::rbac;
use crate::resources::{self, ResourceType};
use crate::state::Shared;
use crate::status::{ApiError, FieldError, GroupResource};
use crate::store::meta_str;

/// The API group.
pub const GROUP: &str = "certificates.k8s.io";
/// The signer of client certificates for the API server.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The signer of kubelets' client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// kube-controller-manager's default `--cluster-signing-duration`.
const CLUSTER_SIGNING_SECONDS: i64 = 365 * 24 * 3600;
/// The signer never issues for less, whatever expirationSeconds says.
const MIN_SECONDS: i64 = 600;
/// How far back a certificate's notBefore is set (clock skew), as the real signer does.
const BACKDATE_SECONDS: i64 = 300;
/// Under this lifetime the backdate is not taken off the end.
const SHORT_SECONDS: i64 = 8 * 3600;

/// The usages the CSR API knows (certificates.k8s.io/v1 KeyUsage).
const KNOWN_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The cluster CA's certificate and key: signs what the signers issue.
pub struct ClusterCa {
    der: Vec<u8>,
    key: KeyPair,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// The CA of certificate `der` and key `key`.
    pub fn new(der: Vec<u8>, key: &KeyPair) -> Result<ClusterCa, rcgen::Error> {
        Ok(ClusterCa {
            der,
            key: KeyPair::try_from(key.serialize_der().as_slice())?,
        })
    }
}

fn csr_type() -> Option<&'static ResourceType> {
    resources::stored_type(GROUP, "certificatesigningrequests")
}

fn gr() -> GroupResource<'static> {
    GroupResource {
        group: GROUP,
        resource: "certificatesigningrequests",
    }
}

/// What the API server's authenticator says of a client certificate it verified: CN = user,
/// each O = a group, plus system:authenticated.
pub fn user_of_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    groups.push(crate::authn::AUTHENTICATED.into());
    Some(UserInfo {
        name,
        uid: String::new(),
        groups,
    })
}

/// A parsed PKCS#10 request: subject, public key, and the DER it came from.
struct Request {
    der: Vec<u8>,
}

impl Request {
    fn parse(pem_bytes: &[u8]) -> Result<Request, String> {
        let block = pem::parse(pem_bytes)
            .ok()
            .filter(|b| b.tag() == "CERTIFICATE REQUEST")
            .ok_or_else(|| "PEM block type must be CERTIFICATE REQUEST".to_owned())?;
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(
            block.contents(),
        )
        .map_err(|e| format!("asn1: structure error: {e}"))?;
        csr.verify_signature()
            .map_err(|_| "x509: ECDSA verification failure".to_owned())?;
        Ok(Request {
            der: block.contents().to_vec(),
        })
    }

    fn info(&self) -> Option<x509_parser::certification_request::X509CertificationRequest<'_>> {
        x509_parser::certification_request::X509CertificationRequest::from_der(&self.der)
            .ok()
            .map(|(_, csr)| csr)
    }

    fn organizations(&self) -> Vec<String> {
        self.info()
            .map(|csr| {
                csr.certification_request_info
                    .subject
                    .iter_organization()
                    .filter_map(|o| o.as_str().ok().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn request_pem(obj: &Value) -> Option<Vec<u8>> {
    STANDARD
        .decode(obj.pointer("/spec/request")?.as_str()?)
        .ok()
}

/// POST certificatesigningrequests: validates, writes the requester's identity into the spec,
/// and stores the request without a status.
pub fn create(shared: &Shared, user: &UserInfo, body: &[u8]) -> Result<Value, ApiError> {
    let rt = csr_type().ok_or_else(ApiError::no_such_path)?;
    let mut obj: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid CertificateSigningRequest: {e}")))?;
    let name = meta_str(&obj, "name").unwrap_or("").to_owned();
    let mut errors = Vec::new();
    let request = match request_pem(&obj) {
        None => {
            errors.push(FieldError::required("spec.request", ""));
            None
        }
        Some(pem_bytes) => match Request::parse(&pem_bytes) {
            Ok(r) => Some(r),
            Err(why) => {
                errors.push(FieldError::invalid("spec.request", "[]byte{...}", &why));
                None
            }
        },
    };
    let signer = obj
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if signer.is_empty() {
        errors.push(FieldError::required("spec.signerName", ""));
    }
    match obj.pointer("/spec/usages").and_then(Value::as_array) {
        None => errors.push(FieldError::required("spec.usages", "")),
        Some(usages) => {
            for (i, usage) in usages.iter().enumerate() {
                let text = usage.as_str().unwrap_or("");
                if !KNOWN_USAGES.contains(&text) {
                    errors.push(FieldError::invalid(
                        format!("spec.usages[{i}]"),
                        text,
                        "supported values are the certificates.k8s.io/v1 key usages",
                    ));
                }
            }
        }
    }
    if let Some(seconds) = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        && seconds < MIN_SECONDS
    {
        errors.push(FieldError::invalid_number(
            "spec.expirationSeconds",
            seconds,
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            GROUP,
            "CertificateSigningRequest",
            &name,
            &errors,
        ));
    }
    if signer == CLIENT_SIGNER
        && request
            .as_ref()
            .is_some_and(|r| r.organizations().iter().any(|o| o == crate::authn::MASTERS))
    {
        return Err(ApiError::forbidden(
            format!(
                "certificatesigningrequests.certificates.k8s.io {name:?} is forbidden: use of \
                 {CLIENT_SIGNER} signer with system:masters group is not allowed"
            ),
            json!({"name": name, "group": GROUP, "kind": "certificatesigningrequests"}),
        ));
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("username".into(), user.name.clone().into());
        if !user.uid.is_empty() {
            spec.insert("uid".into(), user.uid.clone().into());
        }
        spec.insert("groups".into(), json!(user.groups));
        spec.remove("extra");
    }
    if let Some(map) = obj.as_object_mut() {
        map.insert("status".into(), json!({}));
    }
    let mut store = shared.store();
    crate::rest::create(shared, &mut store, rt, "", obj)
}

/// PUT certificatesigningrequests/NAME/approval: the approver must be allowed to `approve` for
/// the request's signer; the conditions of the body replace the stored ones. An approved
/// request for a signer the emulator runs is signed at once.
pub fn approve(
    shared: &Shared,
    user: &UserInfo,
    name: &str,
    method: &http::Method,
    body: &[u8],
) -> Result<Value, ApiError> {
    let rt = csr_type().ok_or_else(ApiError::no_such_path)?;
    if *method != http::Method::PUT {
        return Err(ApiError::method_not_allowed(
            GROUP,
            "certificatesigningrequests/approval",
        ));
    }
    let update: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid CertificateSigningRequest: {e}")))?;
    let mut store = shared.store();
    let mut stored = store
        .get(rt, "", name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(gr(), name))?;
    if let Some(rv) = meta_str(&update, "resourceVersion")
        && !rv.is_empty()
        && Some(rv) != meta_str(&stored, "resourceVersion")
    {
        return Err(ApiError::stale(gr(), name));
    }
    let signer = stored
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !may_approve(&store, user, &signer) {
        return Err(ApiError::forbidden(
            format!(
                "certificatesigningrequests.certificates.k8s.io {name:?} is forbidden: user not \
                 permitted to approve requests with signerName {signer:?}"
            ),
            json!({"name": name, "group": GROUP, "kind": "certificatesigningrequests"}),
        ));
    }
    let now = crate::clock::now_rfc3339();
    let mut conditions: Vec<Value> = update
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut errors = Vec::new();
    let mut types = BTreeSet::new();
    for (i, c) in conditions.iter_mut().enumerate() {
        let kind = c
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if !matches!(kind.as_str(), "Approved" | "Denied" | "Failed") {
            errors.push(FieldError::required(
                format!("status.conditions[{i}].type"),
                "",
            ));
        }
        if !types.insert(kind) {
            errors.push(FieldError::invalid(
                format!("status.conditions[{i}].type"),
                "",
                "duplicate condition type",
            ));
        }
        if let Some(map) = c.as_object_mut() {
            map.entry("status").or_insert_with(|| "True".into());
            map.entry("lastUpdateTime")
                .or_insert_with(|| now.clone().into());
            map.entry("lastTransitionTime")
                .or_insert_with(|| now.clone().into());
        }
    }
    if types.contains("Approved") && types.contains("Denied") {
        errors.push(FieldError::invalid(
            "status.conditions",
            "",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            GROUP,
            "CertificateSigningRequest",
            name,
            &errors,
        ));
    }
    let approved = conditions.iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("Approved")
            && c.get("status").and_then(Value::as_str) == Some("True")
    });
    if let Some(status) = stored.as_object_mut().map(|m| {
        m.entry("status")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|s| s.insert("conditions".into(), Value::Array(conditions)))
    }) {
        let _ = status;
    }
    if approved && stored.pointer("/status/certificate").is_none() {
        sign_into(&shared.ca, &mut stored);
    }
    Ok(store.replace(rt, "", name, stored))
}

/// CertificateApproval admission: `approve` on `signers` named the signer, or its `domain/*`.
fn may_approve(store: &crate::store::Store, user: &UserInfo, signer: &str) -> bool {
    let domain = signer.split('/').next().unwrap_or("");
    [signer.to_owned(), format!("{domain}/*")]
        .iter()
        .any(|name| {
            rbac::authorize(
                store,
                &rbac::Attributes {
                    user: Some(user.clone()),
                    verb: "approve".into(),
                    resource_request: true,
                    namespace: String::new(),
                    api_group: GROUP.into(),
                    resource: "signers".into(),
                    subresource: String::new(),
                    name: name.clone(),
                    path: String::new(),
                },
            )
            .allowed
        })
}

/// The csrsigning controller's work for one approved request: the certificate, or a Failed
/// condition when the request breaks its signer's rules. Signers the emulator does not run
/// leave the request as it is.
fn sign_into(ca: &ClusterCa, csr: &mut Value) {
    let signer = csr
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if signer != CLIENT_SIGNER && signer != KUBELET_CLIENT_SIGNER {
        return;
    }
    let usages: Vec<String> = csr
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    let Some(request) = request_pem(csr).and_then(|p| Request::parse(&p).ok()) else {
        return;
    };
    let checked = if signer == CLIENT_SIGNER {
        client_usages(&usages)
    } else {
        kubelet_client(&request, &usages)
    };
    let now = crate::clock::now_unix();
    let result = checked.and_then(|()| {
        let seconds = csr
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64);
        issue(ca, &request, &usages, seconds, now).map_err(|e| e.to_string())
    });
    let Some(status) = csr
        .as_object_mut()
        .and_then(|m| m.get_mut("status"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    match result {
        Ok(pem) => {
            status.insert("certificate".into(), STANDARD.encode(pem).into());
        }
        Err(why) => {
            let when = crate::clock::rfc3339(now);
            if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
                conditions.push(json!({
                    "type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                    "message": why, "lastUpdateTime": when, "lastTransitionTime": when,
                }));
            }
        }
    }
}

/// The kube-apiserver-client signer's rule: client auth, and nothing beyond digital signature
/// and key encipherment.
fn client_usages(usages: &[String]) -> Result<(), String> {
    for u in usages {
        if !matches!(
            u.as_str(),
            "digital signature" | "key encipherment" | "client auth"
        ) {
            return Err(format!("invalid usage for client certificate: {u}"));
        }
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

/// The kube-apiserver-client-kubelet signer's rule (ValidateKubeletClientCSR): O exactly
/// system:nodes, CN `system:node:<name>`, no subject alternative names, and the kubelet's usages.
fn kubelet_client(request: &Request, usages: &[String]) -> Result<(), String> {
    let csr = request.info().ok_or("unparseable request")?;
    let subject = &csr.certification_request_info.subject;
    if request.organizations() != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("");
    if !cn.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    let has_sans = csr.requested_extensions().into_iter().flatten().any(|e| {
        matches!(
            e,
            x509_parser::extensions::ParsedExtension::SubjectAlternativeName(_)
        )
    });
    if has_sans {
        return Err("subject alternative names are not allowed".into());
    }
    for u in usages {
        if !matches!(
            u.as_str(),
            "digital signature" | "key encipherment" | "client auth"
        ) {
            return Err(format!(
                "usages did not match [client auth digital signature key encipherment]: {u}"
            ));
        }
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Err("usages did not include client auth".into());
    }
    Ok(())
}

/// The signer's lifetime: the cluster's signing duration, or expirationSeconds within
/// [10 minutes, that duration].
fn lifetime(expiration_seconds: Option<i64>) -> i64 {
    match expiration_seconds {
        None => CLUSTER_SIGNING_SECONDS,
        Some(s) => s.clamp(MIN_SECONDS, CLUSTER_SIGNING_SECONDS),
    }
}

const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const OID_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];

fn universal(number: u64) -> Tag {
    Tag {
        tag_class: yasna::TagClass::Universal,
        tag_number: number,
    }
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950–2049, as X.509 wants for them), else GeneralizedTime.
fn write_time(w: DERWriter<'_>, unix: i64) {
    let text = jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y%m%d%H%M%SZ").to_string())
        .unwrap_or_else(|_| "19700101000000Z".into());
    let year: i64 = text[..4].parse().unwrap_or(1970);
    if (1950..2050).contains(&year) {
        w.write_tagged_implicit(universal(23), |w| {
            w.write_bytes(&text.as_bytes()[2..]);
        });
    } else {
        w.write_tagged_implicit(universal(24), |w| {
            w.write_bytes(text.as_bytes());
        });
    }
}

/// Signs `request` as the real signer does: subject and public key from the request, a random
/// serial, notBefore backdated 5 minutes, the usages asked for, not a CA.
fn issue(
    ca: &ClusterCa,
    request: &Request,
    usages: &[String],
    expiration_seconds: Option<i64>,
    now: i64,
) -> Result<String, rcgen::Error> {
    let csr = request
        .info()
        .ok_or(rcgen::Error::CouldNotParseCertificationRequest)?;
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca.der)
        .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
    let ttl = lifetime(expiration_seconds);
    let not_before = now - BACKDATE_SECONDS;
    let not_after = if ttl < SHORT_SECONDS {
        now + ttl
    } else {
        now + ttl - BACKDATE_SECONDS
    }
    .min(ca_cert.validity().not_after.timestamp());
    // Positive and with a non-zero first byte, so its DER is these 16 bytes as they are.
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let mut serial_der = vec![0x02, 16];
    serial_der.extend_from_slice(&serial);
    let key_usage_bits: u8 = usages.iter().fold(0, |bits, u| match u.as_str() {
        "digital signature" | "signing" => bits | 0x80,
        "key encipherment" => bits | 0x20,
        _ => bits,
    });
    let ext_client_auth = usages.iter().any(|u| u == "client auth");
    let algorithm = |w: DERWriter<'_>| {
        w.write_sequence(|w| {
            w.next()
                .write_oid(&ObjectIdentifier::from_slice(OID_ECDSA_SHA256));
        });
    };
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_tagged(Tag::context(0), |w| w.write_u8(2));
            w.next().write_der(&serial_der);
            algorithm(w.next());
            w.next().write_der(ca_cert.subject().as_raw());
            w.next().write_sequence(|w| {
                write_time(w.next(), not_before);
                write_time(w.next(), not_after);
            });
            w.next()
                .write_der(csr.certification_request_info.subject.as_raw());
            w.next()
                .write_der(csr.certification_request_info.subject_pki.raw);
            w.next().write_tagged(Tag::context(3), |w| {
                w.write_sequence(|w| {
                    if key_usage_bits != 0 {
                        let len = 8 - key_usage_bits.trailing_zeros() as usize;
                        let value = yasna::construct_der(|w| {
                            w.write_bitvec_bytes(&[key_usage_bits], len);
                        });
                        extension(w.next(), OID_KEY_USAGE, true, &value);
                    }
                    if ext_client_auth {
                        let value = yasna::construct_der(|w| {
                            w.write_sequence(|w| {
                                w.next()
                                    .write_oid(&ObjectIdentifier::from_slice(OID_CLIENT_AUTH));
                            });
                        });
                        extension(w.next(), OID_EXT_KEY_USAGE, false, &value);
                    }
                    let value = yasna::construct_der(|w| w.write_sequence(|_| {}));
                    extension(w.next(), OID_BASIC_CONSTRAINTS, true, &value);
                });
            });
        });
    });
    let signature = ca.key.sign(&tbs)?;
    let der = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            algorithm(w.next());
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        });
    });
    Ok(pem::encode(&pem::Pem::new("CERTIFICATE", der)))
}

fn extension(w: DERWriter<'_>, oid: &[u64], critical: bool, value: &[u8]) {
    w.write_sequence(|w| {
        w.next().write_oid(&ObjectIdentifier::from_slice(oid));
        if critical {
            w.next().write_bool(true);
        }
        w.next().write_bytes(value);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifetime_is_clamped_like_the_real_signer() {
        assert_eq!(lifetime(None), CLUSTER_SIGNING_SECONDS);
        assert_eq!(lifetime(Some(60)), MIN_SECONDS);
        assert_eq!(lifetime(Some(3600)), 3600);
        assert_eq!(lifetime(Some(i64::MAX)), CLUSTER_SIGNING_SECONDS);
    }

    #[test]
    fn a_signed_certificate_carries_the_requests_subject_and_verifies_with_the_ca() {
        let ca_key = KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = params.self_signed(&ca_key).expect("ca");
        let ca = ClusterCa::new(ca_cert.der().to_vec(), &ca_key).expect("ca");
        let key = KeyPair::generate().expect("key");
        let mut req = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        req.distinguished_name = rcgen::DistinguishedName::new();
        req.distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        req.distinguished_name
            .push(rcgen::DnType::OrganizationName, "dev");
        let csr_pem = req
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem");
        let request = Request::parse(csr_pem.as_bytes()).expect("parses");
        let usages = vec!["digital signature".to_owned(), "client auth".to_owned()];
        let pem_text = issue(&ca, &request, &usages, Some(3600), 1_800_000_000).expect("signs");
        let block = pem::parse(pem_text).expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).expect("x509");
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(ca_cert.der()).expect("ca");
        cert.verify_signature(Some(ca_parsed.public_key()))
            .expect("signed by the CA");
        assert_eq!(
            user_of_certificate(block.contents()).expect("user").name,
            "alice"
        );
        assert_eq!(cert.validity().not_before.timestamp(), 1_800_000_000 - 300);
        assert_eq!(cert.validity().not_after.timestamp(), 1_800_000_000 + 3600);
    }
}
