//! Shared setup for the contract tests: a cluster (the emulator, or a real one named by
//! `TOKEND_TEST_KUBECONFIG`), throwaway namespaces, clients for other credentials, raw requests and polling.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use kube_emulator::Emulator;
use serde_json::{Value, json};

/// The environment variable naming an admin kubeconfig of a real cluster to run against.
pub const REAL_CLUSTER_ENV: &str = "TOKEND_TEST_KUBECONFIG";

/// How long to wait for eventually consistent behaviour of a real cluster.
pub const EVENTUALLY: Duration = Duration::from_secs(15);

/// The cluster a test talks to.
pub struct Cluster {
    /// The emulator, when the test runs against it.
    pub emulator: Option<Emulator>,
    /// Admin client configuration.
    pub config: kube::Config,
    /// Admin client.
    pub client: Client,
}

/// Whether the tests run against a real cluster.
pub fn real_cluster() -> bool {
    std::env::var_os(REAL_CLUSTER_ENV).is_some_and(|v| !v.is_empty())
}

/// Prints why an emulator-only test is skipped, and says whether to skip.
pub fn skip_on_real_cluster(test: &str) -> bool {
    if real_cluster() {
        println!(
            "skipping {test}: it exercises an emulator-only feature and {REAL_CLUSTER_ENV} is set"
        );
        return true;
    }
    false
}

impl Cluster {
    /// Connects to the real cluster when `TOKEND_TEST_KUBECONFIG` is set, else starts an emulator.
    pub async fn connect() -> Result<Cluster> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        if let Some(path) = std::env::var_os(REAL_CLUSTER_ENV).filter(|v| !v.is_empty()) {
            let kubeconfig = Kubeconfig::read_from(&path)
                .with_context(|| format!("reading {}", path.to_string_lossy()))?;
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await?;
            let client = Client::try_from(config.clone())?;
            return Ok(Cluster {
                emulator: None,
                config,
                client,
            });
        }
        let emulator = Emulator::start().await?;
        let config = emulator.client_config().await?;
        let client = Client::try_from(config.clone())?;
        Ok(Cluster {
            emulator: Some(emulator),
            config,
            client,
        })
    }

    /// A client that authenticates with `token` instead of the admin credentials.
    pub fn client_with_token(&self, token: &str) -> Result<Client> {
        let mut config = self.config.clone();
        config.auth_info = AuthInfo {
            token: Some(token.to_string().into()),
            ..AuthInfo::default()
        };
        Ok(Client::try_from(config)?)
    }

    /// A client that sends no credentials.
    pub fn anonymous_client(&self) -> Result<Client> {
        let mut config = self.config.clone();
        config.auth_info = AuthInfo::default();
        Ok(Client::try_from(config)?)
    }

    /// Creates a namespace with a unique name; it is deleted when the guard is dropped.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        let name = unique(prefix);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        api.create(&PostParams::default(), &ns).await?;
        Ok(TestNamespace {
            name,
            client: self.client.clone(),
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

/// A namespace created for one test, deleted on drop.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    client: Client,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = self.name.clone();
        // Deleting needs the runtime; tests run on the multi-threaded one, so blocking here is allowed.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                })
            });
        }
    }
}

/// A name with a random suffix, unique per test run.
pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::random();
    format!("{prefix}-{n:08x}")
}

/// Polls `check` until it returns Ok(true) or `EVENTUALLY` passes; returns the last outcome.
pub async fn eventually<F, Fut>(what: &str, check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    eventually_within(what, EVENTUALLY, check).await
}

/// Polls `check` until it returns Ok(true) or `limit` passes.
pub async fn eventually_within<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = check().await;
        if let Ok(true) = last {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what} did not happen within {limit:?} (last outcome: {last:?})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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

/// Polls `check` until it returns Ok(Some(value)) or `EVENTUALLY` passes; returns the value.
pub async fn eventually_some<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let last = check().await;
        if let Ok(Some(value)) = last {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!(
                "{what} did not happen within {EVENTUALLY:?} (last outcome: {:?})",
                last.err()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
