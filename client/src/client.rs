//! [`TokendClient`]: a connection to tokend with bearer credentials and TLS, one method per RPC.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use crate::error::{Error, Result};
use crate::v1;
use crate::v1::token_service_client::TokenServiceClient;

/// The generated client with this crate's credentials interceptor, as [`TokendClient::inner`] returns it.
pub type RawClient = TokenServiceClient<InterceptedService<Channel, BearerAuth>>;

/// The metadata key the bearer token travels in.
const AUTHORIZATION: &str = "authorization";

/// How long [`TokendClientBuilder::connect`] waits for the connection by default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the bearer token comes from.
#[derive(Clone, Default)]
pub(crate) enum Credentials {
    /// No `authorization` metadata is sent.
    #[default]
    None,
    /// A fixed token, already rendered as `Bearer ...` and marked sensitive.
    Bearer(MetadataValue<Ascii>),
    /// A file re-read on every call, so a rotated token (e.g. a projected pod token) is picked up.
    File(Arc<PathBuf>),
}

impl Credentials {
    /// The `authorization` value to send now, if any.
    fn header(&self) -> Result<Option<MetadataValue<Ascii>>> {
        match self {
            Credentials::None => Ok(None),
            Credentials::Bearer(value) => Ok(Some(value.clone())),
            Credentials::File(path) => {
                let contents = std::fs::read_to_string(path.as_path())
                    .map_err(|e| Error::token_file(path, e))?;
                bearer_header(contents.trim())
                    .map(Some)
                    .map_err(|e| Error::token_file(path, e))
            }
        }
    }
}

/// Renders `Bearer TOKEN` as sensitive metadata, refusing an empty token or one a header cannot hold.
fn bearer_header(token: &str) -> std::io::Result<MetadataValue<Ascii>> {
    if token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the token is empty",
        ));
    }
    let mut value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the token holds characters a gRPC header cannot carry",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Interceptor that adds `authorization: Bearer ...` to every request that does not carry one yet.
///
/// A token file that cannot be read turns the call into an `UNAUTHENTICATED` status here; the
/// methods of [`TokendClient`] read it before the call instead and return [`Error::Credentials`].
#[derive(Clone, Default)]
pub struct BearerAuth {
    pub(crate) credentials: Credentials,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.debug_struct("BearerAuth").finish_non_exhaustive()
    }
}

impl Interceptor for BearerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if request.metadata().contains_key(AUTHORIZATION) {
            return Ok(request);
        }
        match self.credentials.header() {
            Ok(Some(value)) => {
                request.metadata_mut().insert(AUTHORIZATION, value);
                Ok(request)
            }
            Ok(None) => Ok(request),
            Err(error) => Err(tonic::Status::unauthenticated(error.to_string())),
        }
    }
}

/// TLS material for [`TokendClientBuilder::tls`].
#[derive(Clone, Default)]
struct TlsFiles {
    /// PEM CA bundle that signs the server's certificate; `None` trusts only tonic's enabled roots.
    ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and key, for mutual TLS.
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Settings for a [`TokendClient`], made by [`TokendClient::builder`].
#[must_use]
pub struct TokendClientBuilder {
    endpoint: String,
    bearer_token: Option<String>,
    token_file: Option<PathBuf>,
    tls: Option<TlsFiles>,
    connect_timeout: Duration,
    timeout: Option<Duration>,
}

impl TokendClientBuilder {
    /// Sends this bearer token with every call (replacing any [`token_file`](Self::token_file)).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self.token_file = None;
        self
    }

    /// Reads the bearer token from this file on every call (replacing any [`bearer_token`](Self::bearer_token)).
    ///
    /// The file is re-read each time so rotated tokens, such as a pod's projected
    /// ServiceAccount token, are used as soon as they are written. Surrounding whitespace is ignored.
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self.bearer_token = None;
        self
    }

    /// Uses TLS with this PEM CA bundle (or tonic's enabled roots when `None`) and, for mutual
    /// TLS, this PEM client certificate and key; the endpoint must be `https://`.
    pub fn tls(mut self, ca_pem: Option<Vec<u8>>, identity: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        self.tls = Some(TlsFiles { ca_pem, identity });
        self
    }

    /// How long [`connect`](Self::connect) waits for the connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// A deadline for every call (default: none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Connects to tokend now, failing early on a bad URI, an unreadable token or an unreachable server.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUri`] for an endpoint that is not a URI, [`Error::Credentials`] for a token
    /// that cannot be read or sent, [`Error::Transport`] when TLS cannot be set up or the server
    /// cannot be reached.
    pub async fn connect(self) -> Result<TokendClient> {
        let endpoint_text = self.endpoint;
        let uri: Uri = endpoint_text.parse().map_err(|source| Error::InvalidUri {
            endpoint: endpoint_text.clone(),
            source,
        })?;
        let credentials = match (self.bearer_token, self.token_file) {
            (Some(token), _) => Credentials::Bearer(
                bearer_header(token.trim())
                    .map_err(|e| Error::credentials("the bearer token given", e))?,
            ),
            (None, Some(path)) => Credentials::File(Arc::new(path)),
            (None, None) => Credentials::None,
        };
        // Read a token file once now so a wrong path fails at connect, not at the first call.
        credentials.header()?;

        let transport = |source| Error::Transport {
            endpoint: endpoint_text.clone(),
            source,
        };
        let https = uri.scheme_str() == Some("https");
        let mut endpoint = Endpoint::from(uri).connect_timeout(self.connect_timeout);
        if let Some(timeout) = self.timeout {
            endpoint = endpoint.timeout(timeout);
        }
        let tls = match self.tls {
            Some(files) => Some(files),
            None if https => Some(TlsFiles::default()),
            None => None,
        };
        if let Some(files) = tls {
            let mut config = ClientTlsConfig::new();
            config = match files.ca_pem {
                Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
                None => config.with_enabled_roots(),
            };
            if let Some((cert, key)) = files.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(config).map_err(transport)?;
        }
        let channel = endpoint.connect().await.map_err(transport)?;
        Ok(TokendClient::from_channel(channel, credentials))
    }
}

/// A connection to tokend: one method per RPC of `tokend.v1.TokenService`.
///
/// Cloning is cheap and clones share the connection. Each method sends the configured bearer
/// token and turns a gRPC error into [`Error::Status`] with the server's code and message.
#[derive(Clone)]
pub struct TokendClient {
    inner: RawClient,
    pub(crate) channel: Channel,
    pub(crate) credentials: Credentials,
}

impl std::fmt::Debug for TokendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credentials = match &self.credentials {
            Credentials::None => "none",
            Credentials::Bearer(_) => "bearer token",
            Credentials::File(_) => "token file",
        };
        f.debug_struct("TokendClient")
            .field("credentials", &credentials)
            .finish_non_exhaustive()
    }
}

impl TokendClient {
    /// Starts configuring a client for `endpoint`, e.g. `"http://127.0.0.1:50051"`.
    pub fn builder(endpoint: impl Into<String>) -> TokendClientBuilder {
        TokendClientBuilder {
            endpoint: endpoint.into(),
            bearer_token: None,
            token_file: None,
            tls: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: None,
        }
    }

    /// Connects to `endpoint` without credentials (TLS with tonic's enabled roots for `https://`).
    ///
    /// # Errors
    ///
    /// As [`TokendClientBuilder::connect`].
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self> {
        Self::builder(endpoint).connect().await
    }

    /// Wraps a channel made elsewhere, sending this bearer token (if any) with every call.
    ///
    /// # Errors
    ///
    /// [`Error::Credentials`] when the token is empty or cannot be sent in a header.
    pub fn with_channel(channel: Channel, bearer_token: Option<&str>) -> Result<Self> {
        let credentials = match bearer_token {
            Some(token) => Credentials::Bearer(
                bearer_header(token.trim())
                    .map_err(|e| Error::credentials("the bearer token given", e))?,
            ),
            None => Credentials::None,
        };
        Ok(Self::from_channel(channel, credentials))
    }

    fn from_channel(channel: Channel, credentials: Credentials) -> Self {
        let interceptor = BearerAuth {
            credentials: credentials.clone(),
        };
        TokendClient {
            inner: TokenServiceClient::with_interceptor(channel.clone(), interceptor),
            channel,
            credentials,
        }
    }

    /// The generated client, with the same connection and credentials, for anything this type lacks.
    pub fn inner(&self) -> RawClient {
        self.inner.clone()
    }

    /// Wraps a message in a request carrying the bearer token read now.
    pub(crate) fn request<T>(&self, message: T) -> Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = self.credentials.header()? {
            request.metadata_mut().insert(AUTHORIZATION, value);
        }
        Ok(request)
    }

    /// Issues a token for a ServiceAccount (`IssueToken`).
    ///
    /// # Errors
    ///
    /// [`Error::Status`] with the server's code (`InvalidArgument`, `NotFound`, `PermissionDenied`,
    /// `FailedPrecondition`, ...), or [`Error::Credentials`] when the token file cannot be read.
    pub async fn issue_token(
        &self,
        request: v1::IssueTokenRequest,
    ) -> Result<v1::IssueTokenResponse> {
        let request = self.request(request)?;
        Ok(self.inner().issue_token(request).await?.into_inner())
    }

    /// Revokes a token by its id or by the token itself (`RevokeToken`).
    ///
    /// # Errors
    ///
    /// As [`issue_token`](Self::issue_token); `NotFound` when there is no such record.
    pub async fn revoke_token(
        &self,
        request: v1::RevokeTokenRequest,
    ) -> Result<v1::RevokeTokenResponse> {
        let request = self.request(request)?;
        Ok(self.inner().revoke_token(request).await?.into_inner())
    }

    /// Issues a replacement for a token on record, optionally revoking the old one after a
    /// grace period (`RenewToken`).
    ///
    /// # Errors
    ///
    /// As [`issue_token`](Self::issue_token); `NotFound` when the old token is not on record.
    pub async fn renew_token(
        &self,
        request: v1::RenewTokenRequest,
    ) -> Result<v1::RenewTokenResponse> {
        let request = self.request(request)?;
        Ok(self.inner().renew_token(request).await?.into_inner())
    }

    /// Issues a token (or wraps a given one) and renders a kubeconfig for it (`GetKubeconfig`).
    ///
    /// # Errors
    ///
    /// As [`issue_token`](Self::issue_token).
    pub async fn get_kubeconfig(
        &self,
        request: v1::GetKubeconfigRequest,
    ) -> Result<v1::GetKubeconfigResponse> {
        let request = self.request(request)?;
        Ok(self.inner().get_kubeconfig(request).await?.into_inner())
    }

    /// Asks the API server whether a token is valid now (`ValidateToken`).
    ///
    /// An invalid or revoked token is not an error: the response says `authenticated: false`.
    ///
    /// # Errors
    ///
    /// As [`issue_token`](Self::issue_token).
    pub async fn validate_token(
        &self,
        request: v1::ValidateTokenRequest,
    ) -> Result<v1::ValidateTokenResponse> {
        let request = self.request(request)?;
        Ok(self.inner().validate_token(request).await?.into_inner())
    }

    /// Lists the tokens on record in a namespace, optionally for one ServiceAccount (`ListTokens`).
    ///
    /// # Errors
    ///
    /// As [`issue_token`](Self::issue_token).
    pub async fn list_tokens(
        &self,
        request: v1::ListTokensRequest,
    ) -> Result<v1::ListTokensResponse> {
        let request = self.request(request)?;
        Ok(self.inner().list_tokens(request).await?.into_inner())
    }

    /// Every token record a `ListTokens` query selects, following `next_page_token` page by
    /// page (one call per page, made when the stream reaches it). `request.page_token` is the
    /// place to start; `page_size` is passed on.
    ///
    /// ```no_run
    /// # async fn f(client: tokend_client::TokendClient) -> tokend_client::Result<()> {
    /// use futures::TryStreamExt;
    /// let request = tokend_client::v1::ListTokensRequest { namespace: "team-a".into(), ..Default::default() };
    /// let all: Vec<_> = client.list_all_tokens(request).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn list_all_tokens(
        &self,
        request: v1::ListTokensRequest,
    ) -> impl futures::Stream<Item = Result<v1::TokenRecord>> + Send + 'static {
        use futures::TryStreamExt;
        let client = self.clone();
        let pages = futures::stream::try_unfold(Some(request), move |next| {
            let client = client.clone();
            async move {
                let Some(request) = next else {
                    return Ok::<_, Error>(None);
                };
                let mut following = request.clone();
                let page = client.list_tokens(request).await?;
                following.page_token = page.next_page_token.clone();
                let next = (!page.next_page_token.is_empty()).then_some(following);
                Ok(Some((page.tokens, next)))
            }
        });
        pages
            .map_ok(|tokens| futures::stream::iter(tokens.into_iter().map(Ok)))
            .try_flatten()
    }

    /// Returns one token record by its id (`GetToken`).
    ///
    /// # Errors
    ///
    /// As [`issue_token`](Self::issue_token); `NotFound` when there is no such record.
    pub async fn get_token(&self, request: v1::GetTokenRequest) -> Result<v1::GetTokenResponse> {
        let request = self.request(request)?;
        Ok(self.inner().get_token(request).await?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_is_sensitive_and_prefixed() {
        let value = bearer_header("abc.def").map_err(|e| e.to_string());
        let value = value.as_ref().map(|v| (v.to_str().ok(), v.is_sensitive()));
        assert_eq!(value, Ok((Some("Bearer abc.def"), true)));
    }

    #[test]
    fn bearer_header_rejects_empty_and_unprintable_tokens() {
        assert!(bearer_header("").is_err());
        assert!(bearer_header("a\nb").is_err());
    }

    #[test]
    fn token_file_is_reread_on_every_call() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n")?;
        let credentials = Credentials::File(Arc::new(path.clone()));
        let header = |c: &Credentials| {
            c.header()
                .ok()
                .flatten()
                .and_then(|v| v.to_str().ok().map(str::to_owned))
        };
        assert_eq!(header(&credentials).as_deref(), Some("Bearer first"));
        std::fs::write(&path, "second")?;
        assert_eq!(header(&credentials).as_deref(), Some("Bearer second"));
        std::fs::remove_file(&path)?;
        assert!(matches!(
            credentials.header(),
            Err(Error::Credentials { .. })
        ));
        Ok(())
    }

    #[test]
    fn interceptor_adds_authorization_unless_present() {
        let mut auth = BearerAuth {
            credentials: Credentials::Bearer(MetadataValue::from_static("Bearer x")),
        };
        let request = auth
            .call(tonic::Request::new(()))
            .map_err(|s| s.to_string());
        let sent = request
            .as_ref()
            .ok()
            .and_then(|r| r.metadata().get(AUTHORIZATION))
            .and_then(|v| v.to_str().ok());
        assert_eq!(sent, Some("Bearer x"));

        let mut preset = tonic::Request::new(());
        preset
            .metadata_mut()
            .insert(AUTHORIZATION, MetadataValue::from_static("Bearer y"));
        let request = auth.call(preset).map_err(|s| s.to_string());
        let sent = request
            .as_ref()
            .ok()
            .and_then(|r| r.metadata().get(AUTHORIZATION))
            .and_then(|v| v.to_str().ok());
        assert_eq!(sent, Some("Bearer y"));
    }

    #[tokio::test]
    async fn connect_rejects_bad_uri_and_missing_token_file() {
        let bad = TokendClient::connect("not a uri").await;
        assert!(matches!(bad, Err(Error::InvalidUri { .. })));

        let missing = TokendClient::builder("http://127.0.0.1:1")
            .token_file("/nonexistent/tokend/token")
            .connect()
            .await;
        assert!(matches!(missing, Err(Error::Credentials { .. })));
    }

    #[tokio::test]
    async fn connect_reports_unreachable_server_as_transport_error() {
        // Port 1 on loopback is as good as guaranteed closed.
        let result = TokendClient::builder("http://127.0.0.1:1")
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await;
        match result {
            Err(error @ Error::Transport { .. }) => {
                assert_eq!(error.code(), tonic::Code::Unavailable)
            }
            other => panic!("expected a transport error, got {other:?}"),
        }
    }
}
