//! The claims of a ServiceAccount token, read without verifying the signature: only ever used
//! to find which record a token points at, and trusted only after TokenReview accepted it.

use serde::Deserialize;

use crate::token_id::TokenId;

/// The claims tokend reads from a ServiceAccount JWT.
#[derive(Debug, Default, Deserialize)]
pub struct Claims {
    /// Audiences: a string or a list of strings.
    #[serde(default)]
    aud: Option<serde_json::Value>,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Issue time, seconds since the epoch.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Kubernetes' private claims.
    #[serde(rename = "kubernetes.io", default)]
    kubernetes: Option<KubernetesClaims>,
}

#[derive(Debug, Default, Deserialize)]
struct KubernetesClaims {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    serviceaccount: Option<NamedRef>,
    #[serde(default)]
    secret: Option<NamedRef>,
}

#[derive(Debug, Default, Deserialize)]
struct NamedRef {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

impl Claims {
    /// Decodes a JWT's payload; `None` when the text is not a JWT.
    pub fn read(token: &str) -> Option<Self> {
        jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(token).ok()
    }

    /// Audiences the token was issued for.
    pub fn audiences(&self) -> Vec<String> {
        match &self.aud {
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            Some(serde_json::Value::Array(many)) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Namespace of the ServiceAccount.
    pub fn namespace(&self) -> Option<&str> {
        self.kubernetes.as_ref()?.namespace.as_deref()
    }

    /// Name of the ServiceAccount.
    pub fn service_account(&self) -> Option<&str> {
        self.kubernetes
            .as_ref()?
            .serviceaccount
            .as_ref()?
            .name
            .as_deref()
    }

    /// Uid of the ServiceAccount the token was issued for.
    pub fn service_account_uid(&self) -> Option<&str> {
        self.kubernetes
            .as_ref()?
            .serviceaccount
            .as_ref()?
            .uid
            .as_deref()
    }

    /// The id of the tokend record the token is bound to, if it is bound to one.
    pub fn token_id(&self) -> Option<TokenId> {
        let k8s = self.kubernetes.as_ref()?;
        TokenId::from_secret(
            k8s.namespace.as_deref()?,
            k8s.secret.as_ref()?.name.as_deref()?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims as a real kube-apiserver writes them (shared/kube-api-samples/jwt-bound-secret-decoded.json).
    fn recorded_claims() -> serde_json::Value {
        serde_json::json!({
            "aud": ["https://kubernetes.default.svc.cluster.local"],
            "exp": 1_900_000_000, "iat": 1_899_996_400, "nbf": 1_899_996_400,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": "system:serviceaccount:team-a:deployer",
            "kubernetes.io": {
                "namespace": "team-a",
                "secret": {"name": "tokend-abcdefghij012345", "uid": "u2"},
                "serviceaccount": {"name": "deployer", "uid": "u1"}
            }
        })
    }

    fn jwt(claims: &serde_json::Value) -> String {
        use base64::Engine as _;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"RS256","kid":"k"}"#),
            b64(claims.to_string().as_bytes()),
            b64(b"sig")
        )
    }

    #[test]
    fn claims_of_a_bound_token_name_its_record() {
        let claims = Claims::read(&jwt(&recorded_claims())).expect("a JWT");
        assert_eq!(claims.namespace(), Some("team-a"));
        assert_eq!(claims.service_account(), Some("deployer"));
        assert_eq!(claims.exp, Some(1_900_000_000));
        assert_eq!(claims.iat, Some(1_899_996_400));
        assert_eq!(
            claims.audiences(),
            vec!["https://kubernetes.default.svc.cluster.local".to_owned()]
        );
        assert_eq!(
            claims.token_id().map(|id| id.to_string()).as_deref(),
            Some("team-a.abcdefghij012345")
        );
    }

    #[test]
    fn garbage_is_not_a_jwt_and_a_foreign_secret_is_not_a_record() {
        assert!(Claims::read("not-a-token").is_none());
        let mut claims = recorded_claims();
        claims["kubernetes.io"]["secret"]["name"] = "some-other-secret".into();
        assert!(
            Claims::read(&jwt(&claims))
                .expect("a JWT")
                .token_id()
                .is_none()
        );
    }
}
