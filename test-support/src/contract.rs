//! What the emulator's contract tests do with a cluster beyond admin access: throwaway
//! namespaces, ServiceAccounts, Secrets and bound tokens, raw requests, reviews, and decoding
//! of API errors and JWTs, the same on the emulator and on a real API server.

use anyhow::{Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::backend::{Backend, Cluster};
use crate::cleanup::Cleanup;
use crate::names::unique_name;

impl Cluster {
    /// Creates a namespace with a unique name; it is deleted when the guard is dropped.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        let name = unique_name(prefix);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        api.create(&PostParams::default(), &ns).await?;
        let cleanup = match self.backend {
            Backend::Real => Cleanup::new(self.config.clone()),
            Backend::Emulator => Cleanup::discard(),
        };
        cleanup.namespace(&name);
        Ok(TestNamespace {
            name,
            _cleanup: cleanup,
        })
    }

    /// Creates a ServiceAccount and returns it as stored.
    pub async fn service_account(&self, ns: &str, name: &str) -> Result<ServiceAccount> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        Ok(api.create(&PostParams::default(), &sa).await?)
    }

    /// Creates an (Opaque) Secret and returns it as stored.
    pub async fn secret(&self, ns: &str, name: &str) -> Result<Secret> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let s: Secret = serde_json::from_value(
            json!({"metadata": {"name": name}, "type": "tokend.io/token-record"}),
        )?;
        Ok(api.create(&PostParams::default(), &s).await?)
    }

    /// Requests a token for a ServiceAccount with the given TokenRequest spec.
    pub async fn token_request(
        &self,
        ns: &str,
        sa: &str,
        spec: Value,
    ) -> kube::Result<TokenRequest> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let spec: TokenRequestSpec =
            serde_json::from_value(spec).map_err(kube::Error::SerdeError)?;
        let tr = TokenRequest {
            spec: Some(spec),
            ..TokenRequest::default()
        };
        api.create_subresource("token", sa, &PostParams::default(), &tr)
            .await
    }

    /// A ServiceAccount, a Secret, and a token bound to that Secret.
    pub async fn bound_token(&self, ns: &str, sa: &str, secret: &str) -> Result<BoundToken> {
        let account = self.service_account(ns, sa).await?;
        let record = self.secret(ns, secret).await?;
        let uid = record.metadata.uid.clone().unwrap_or_default();
        let tr = self
            .token_request(
                ns,
                sa,
                json!({"audiences": [], "expirationSeconds": 3600,
                       "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": secret, "uid": uid}}),
            )
            .await?;
        let token = tr.status.and_then(|s| s.token).unwrap_or_default();
        Ok(BoundToken {
            token,
            sa_uid: account.metadata.uid.unwrap_or_default(),
            secret_uid: uid,
        })
    }

    /// POSTs a JSON body and returns the decoded JSON answer (errors as `kube::Error::Api`).
    pub async fn post(&self, client: &Client, path: &str, body: Value) -> kube::Result<Value> {
        let req = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).map_err(kube::Error::SerdeError)?)
            .map_err(kube::Error::HttpError)?;
        client.request(req).await
    }

    /// Sends a request and returns the HTTP status and raw JSON body, whatever the status.
    pub async fn raw(&self, client: &Client, req: http::Request<Vec<u8>>) -> Result<(u16, Value)> {
        let resp = client.send(req.map(kube::client::Body::from)).await?;
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect_bytes().await?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((code, body))
    }

    /// Reviews a token with the admin client.
    pub async fn review(&self, token: &str, audiences: Option<&[&str]>) -> Result<Value> {
        let mut spec = json!({"token": token});
        if let Some(a) = audiences {
            spec["audiences"] = json!(a);
        }
        let body =
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec});
        Ok(self
            .post(
                &self.client,
                "/apis/authentication.k8s.io/v1/tokenreviews",
                body,
            )
            .await?)
    }

    /// Asks a SubjectAccessReview with the admin client; returns `status`.
    pub async fn access_review(&self, user: &str, groups: &[&str], attrs: Value) -> Result<Value> {
        let body = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": attrs},
        });
        let answer = self
            .post(
                &self.client,
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                body,
            )
            .await?;
        Ok(answer["status"].clone())
    }
}

/// A token bound to a Secret, with the uids it should carry.
pub struct BoundToken {
    /// The JWT.
    pub token: String,
    /// The ServiceAccount's uid.
    pub sa_uid: String,
    /// The bound Secret's uid.
    pub secret_uid: String,
}

/// A namespace created for one test, deleted (on a real cluster) when dropped.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    _cleanup: Cleanup,
}

/// The API error of a failed call, or a test failure when the call succeeded or failed otherwise.
pub fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> Result<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => Ok(*status),
        other => bail!("expected an API error, got {other:?}"),
    }
}

/// Decodes a JWT's header and claims without verifying it.
pub fn decode_jwt(token: &str) -> Result<(Value, Value)> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("not a JWT");
    };
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h)?)?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c)?)?;
    Ok((header, claims))
}

/// The details of a Status, or a test failure when it has none.
pub fn details(status: &kube::core::Status) -> Result<kube::core::response::StatusDetails> {
    status
        .details
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no details in {status:?}"))
}
