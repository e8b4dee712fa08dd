//! Service-account JWTs: the RS256 signing key, issuing tokens, and verifying them as kube-apiserver does.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::status::go_quote_list;

/// A reference to an object by name and uid, as in the `kubernetes.io` claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectRef {
    /// Object name.
    pub name: String,
    /// Object uid.
    pub uid: String,
}

/// The private `kubernetes.io` claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubernetesClaim {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: ObjectRef,
    /// The bound Secret, when bound to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The bound Pod, when bound to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
}

/// The claims of a service-account token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Issuer.
    pub iss: String,
    /// Unique token id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// The Kubernetes-specific claim.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Subject, `system:serviceaccount:NS:NAME`.
    pub sub: String,
}

/// Why a token was not accepted, with the error strings kube-apiserver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not a JWT of this issuer at all.
    NotOurs,
    /// Issued by us but the signature does not verify.
    BadSignature,
    /// Past its expiry.
    Expired,
    /// Before its not-before time.
    NotYetValid,
    /// None of its audiences is among the wanted ones.
    Audience {
        /// The token's audiences.
        token: Vec<String>,
        /// The audiences asked for.
        wanted: Vec<String>,
    },
    /// Its ServiceAccount or bound object is gone or was recreated.
    Invalidated,
}

impl Rejection {
    /// The TokenReview `status.error` string.
    pub fn review_error(&self) -> String {
        let inner = match self {
            Rejection::NotOurs => return "invalid bearer token".into(),
            Rejection::BadSignature => "square/go-jose: error in cryptographic primitive".into(),
            Rejection::Expired => "Token has expired.".into(),
            Rejection::NotYetValid => "Token could not be validated.".into(),
            Rejection::Audience { token, wanted } => format!(
                "token audiences {} is invalid for the target audiences {}",
                go_quote_list(token),
                go_quote_list(wanted)
            ),
            Rejection::Invalidated => "Token has been invalidated".into(),
        };
        format!("[invalid bearer token, {inner}]")
    }
}

/// The issuer's RSA key pair, used to sign and verify tokens.
pub struct Signer {
    issuer: String,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl Signer {
    /// Generates a fresh RSA 2048 key for `issuer`.
    pub fn generate(issuer: &str) -> Result<Signer, Error> {
        let key =
            KeyPair::generate(KeySize::Rsa2048).map_err(|e| Error::SigningKey(e.to_string()))?;
        let pkcs8 = key.as_der().map_err(|e| Error::SigningKey(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())?;
        let public = key.public_key();
        let decoding = DecodingKey::from_rsa_der(public.as_ref());
        let spki = public
            .as_der()
            .map_err(|e| Error::SigningKey(e.to_string()))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki.as_ref());
        Ok(Signer {
            issuer: issuer.to_string(),
            kid: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            encoding,
            decoding,
        })
    }

    /// The issuer URL put into `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs the claims as an RS256 JWT with this key's `kid`.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// Checks issuer, signature, time and audiences; existence of the referenced objects is the caller's part.
    pub fn verify(&self, token: &str, wanted_audiences: &[String]) -> Result<Claims, Rejection> {
        let unverified = insecure_claims(token).ok_or(Rejection::NotOurs)?;
        if unverified.get("iss").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
            return Err(Rejection::NotOurs);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::BadSignature,
                _ => Rejection::NotOurs,
            })?;
        let claims: Claims = serde_json::from_value(data.claims).map_err(|_| Rejection::NotOurs)?;
        let now = crate::clock::now_unix();
        const LEEWAY: i64 = 60;
        if now > claims.exp + LEEWAY {
            return Err(Rejection::Expired);
        }
        if now + LEEWAY < claims.nbf || now + LEEWAY < claims.iat {
            return Err(Rejection::NotYetValid);
        }
        if !claims.aud.iter().any(|a| wanted_audiences.contains(a)) {
            return Err(Rejection::Audience {
                token: claims.aud.clone(),
                wanted: wanted_audiences.to_vec(),
            });
        }
        Ok(claims)
    }
}

/// The claims of a JWT-shaped string without checking anything, or None when it is not a JWT.
fn insecure_claims(token: &str) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (_, Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

    fn claims(aud: &[&str], exp_in: i64) -> Claims {
        let now = crate::clock::now_unix();
        Claims {
            aud: aud.iter().map(|s| s.to_string()).collect(),
            exp: now + exp_in,
            iat: now,
            iss: ISSUER.into(),
            jti: "j".into(),
            kubernetes: KubernetesClaim {
                namespace: "ns".into(),
                serviceaccount: ObjectRef {
                    name: "sa".into(),
                    uid: "u".into(),
                },
                secret: None,
                pod: None,
            },
            nbf: now,
            sub: "system:serviceaccount:ns:sa".into(),
        }
    }

    #[test]
    fn signs_and_verifies() -> Result<(), Error> {
        let s = Signer::generate(ISSUER)?;
        let c = claims(&[ISSUER], 600);
        let t = s.sign(&c)?;
        assert_eq!(s.verify(&t, &[ISSUER.to_string()]), Ok(c));
        assert!(matches!(
            s.verify(&t, &["other".to_string()]),
            Err(Rejection::Audience { .. })
        ));
        assert_eq!(s.verify("garbage", &[]), Err(Rejection::NotOurs));
        let expired = s.sign(&claims(&[ISSUER], -120))?;
        assert_eq!(
            s.verify(&expired, &[ISSUER.to_string()]),
            Err(Rejection::Expired)
        );
        let other = Signer::generate(ISSUER)?;
        assert_eq!(
            other.verify(&t, &[ISSUER.to_string()]),
            Err(Rejection::BadSignature)
        );
        Ok(())
    }

    #[test]
    fn review_errors_match_the_recordings() {
        assert_eq!(
            Rejection::Audience {
                token: vec!["https://kubernetes.default.svc".into()],
                wanted: vec!["other".into()]
            }
            .review_error(),
            "[invalid bearer token, token audiences [\"https://kubernetes.default.svc\"] is invalid for the target audiences [\"other\"]]"
        );
        assert_eq!(
            Rejection::Invalidated.review_error(),
            "[invalid bearer token, Token has been invalidated]"
        );
        assert_eq!(Rejection::NotOurs.review_error(), "invalid bearer token");
    }
}
