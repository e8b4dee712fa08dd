//! Wiring: builds the service from configuration and serves gRPC (TokenService, health,
//! reflection) on a listener until shutdown.

pub mod authn;
pub mod health;
pub mod listener;
pub mod peer_limit;
pub mod rpc_layer;
pub mod tls;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::TcpListener;

use crate::cluster::Cluster;
use crate::config::{AuthMode, ServeArgs};
use crate::controller::{Clock, ControllerOptions};
use crate::grpc::{BootstrapTokenServiceGrpc, ClientCertificateServiceGrpc, TokenServiceGrpc, v1};
use crate::leader_election::LeaseTiming;
use crate::metrics::{self, KubeMetricsLayer, Metrics};
use crate::server::authn::{
    AuthLayer, Authentication, CertificateIdentity, FailureLimit, TokenAuthenticator,
};
use crate::server::listener::{ConnectionBounds, HttpTimeouts};
use crate::server::rpc_layer::{KnownMethods, RpcLayer};
use crate::server::tls::{ReloadingTls, TlsError, TlsFiles};
use crate::service::policy::Policy;
use crate::service::{
    BootstrapPolicy, CertificatePolicy, KeySource, RecordKeys, Settings, TokenService,
};
use crate::sweeper::{self, SweeperOptions};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// What can stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The Kubernetes client could not be set up.
    #[error("Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    /// Reading the kubeconfig failed.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// No Kubernetes configuration could be found.
    #[error("Kubernetes configuration: {0}")]
    InferConfig(#[from] kube::config::InferConfigError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Server reflection could not be built.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The TLS files cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// A file or socket could not be used.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Bounds on what callers, authenticated or not, can make the server hold.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one client address.
    pub max_connections_per_address: usize,
    /// Most streams in flight per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Largest request header block, in bytes.
    pub max_header_list_size: u32,
    /// Longest any call may take, its request's arrival included.
    pub request_timeout: Duration,
    /// Interval of HTTP/2 keepalive pings.
    pub http2_keepalive_interval: Duration,
    /// How long a ping may go unanswered.
    pub http2_keepalive_timeout: Duration,
    /// Longest a TLS handshake may take (gRPC and webhook ports).
    pub tls_handshake_timeout: Duration,
}

impl ConnectionLimits {
    fn bounds(&self) -> ConnectionBounds {
        ConnectionBounds {
            total: self.max_connections,
            per_address: self.max_connections_per_address,
            setup_timeout: self.tls_handshake_timeout,
        }
    }
}

/// What the admission webhook's clients may hold. Its one legitimate client is the API server
/// (a few HTTP/2 connections per API server); the per-address bound is a small share of the
/// total, so many addresses are needed to take every slot, and the timeouts free what they take
/// within seconds.
#[derive(Debug, Clone)]
pub struct WebhookLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one client address.
    pub max_connections_per_address: usize,
    /// From a request's first byte to its complete header.
    pub header_timeout: Duration,
    /// A connection with no request in flight and nothing received is closed after this.
    pub idle_timeout: Duration,
    /// Longest one admission request may take, its body included.
    pub request_timeout: Duration,
}

impl Default for WebhookLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_address: 16,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl WebhookLimits {
    fn bounds(&self, tls_handshake_timeout: Duration) -> ConnectionBounds {
        ConnectionBounds {
            total: self.max_connections,
            per_address: self.max_connections_per_address,
            setup_timeout: tls_handshake_timeout,
        }
    }

    fn timeouts(&self) -> HttpTimeouts {
        HttpTimeouts {
            header: self.header_timeout,
            idle: self.idle_timeout,
            request: self.request_timeout,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_address: 16,
            max_concurrent_streams: 100,
            max_header_list_size: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything the server needs besides the Kubernetes connection.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Service settings (policy, kubeconfig rendering).
    pub settings: Settings,
    /// How often the Kubernetes API is checked for health.
    pub health_interval: Duration,
    /// Connect, read and write timeout of Kubernetes calls, and the health check's budget.
    pub kube_timeout: Duration,
    /// How callers authenticate.
    pub auth: AuthMode,
    /// Audiences callers' tokens must carry (empty: the API server's).
    pub auth_audiences: Vec<String>,
    /// How long a caller review, successful or failed, is reused.
    pub auth_cache_ttl: Duration,
    /// Failed authentications allowed per client address.
    pub auth_failure_limit: FailureLimit,
    /// How client certificates name callers (`--auth mtls`).
    pub certificate_identity: CertificateIdentity,
    /// TLS for the gRPC port; plaintext when None.
    pub tls: Option<TlsFiles>,
    /// How often the TLS files are checked for changes.
    pub tls_reload_interval: Duration,
    /// Where `/metrics` is served; nowhere when None.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// What one client may hold: connections, streams, header bytes, time.
    pub limits: ConnectionLimits,
    /// The sweeper of expired records; off when None.
    pub sweeper: Option<SweeperOptions>,
    /// The ServiceAccountToken controller; off when None.
    pub controller: Option<ControllerOptions>,
    /// The admission webhook; off when None.
    pub webhook: Option<WebhookOptions>,
    /// What the webhook's clients may hold.
    pub webhook_limits: WebhookLimits,
}

/// Where and with which certificate the admission webhook is served.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Serving certificate and key.
    pub tls: TlsFiles,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            health_interval: Duration::from_secs(5),
            kube_timeout: Duration::from_secs(10),
            auth: AuthMode::Kubernetes,
            auth_audiences: Vec::new(),
            auth_cache_ttl: Duration::from_secs(10),
            auth_failure_limit: FailureLimit {
                per_peer: 20,
                window: Duration::from_secs(60),
            },
            certificate_identity: CertificateIdentity {
                username_prefix: "mtls:".into(),
                groups_prefix: "mtls:".into(),
            },
            tls: None,
            tls_reload_interval: Duration::from_secs(10),
            metrics_listen: None,
            limits: ConnectionLimits::default(),
            sweeper: None,
            controller: None,
            webhook: None,
            webhook_limits: WebhookLimits::default(),
        }
    }
}

impl ServerOptions {
    /// Options from `serve` / `dev` flags; reads the kubeconfig CA file if one is named.
    /// `dev` says so, as it defaults to no authentication.
    pub fn from_args(args: &ServeArgs, dev: bool) -> Result<Self, ServerError> {
        let auth = match (args.auth, dev) {
            (Some(AuthMode::None), false) if !args.insecure_no_auth => {
                return Err(ServerError::Config(
                    "--auth none lets anyone reaching the port issue tokens with tokend's rights; \
                     add --insecure-no-auth to mean it"
                        .into(),
                ));
            }
            (Some(mode), _) => mode,
            (None, true) => AuthMode::None,
            // The flag only permits `--auth none`; alone it chooses nothing, so a stray
            // TOKEND_INSECURE_NO_AUTH cannot switch authentication off.
            (None, false) => AuthMode::Kubernetes,
        };
        if args.insecure_no_auth && auth != AuthMode::None {
            tracing::warn!(
                auth = ?auth,
                "--insecure-no-auth has no effect without --auth none: callers are authenticated"
            );
        }
        if auth == AuthMode::Mtls && args.tls_client_ca.is_none() {
            return Err(ServerError::Config(
                "--auth mtls needs --tls-client-ca".into(),
            ));
        }
        let certificate_identity = CertificateIdentity {
            username_prefix: args.mtls_username_prefix.clone(),
            groups_prefix: args.mtls_groups_prefix.clone(),
        };
        certificate_identity.check().map_err(ServerError::Config)?;
        let ca_pem = match &args.kubeconfig_ca_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                ServerError::Config(format!("--kubeconfig-ca-file {}: {e}", path.display()))
            })?),
            None => None,
        };
        if args.bootstrap_token_default_duration > args.bootstrap_token_max_duration {
            return Err(ServerError::Config(
                "--bootstrap-token-default-duration is longer than --bootstrap-token-max-duration"
                    .into(),
            ));
        }
        if args.client_cert_max_duration.as_secs() < crate::vocabulary::MIN_CERTIFICATE_SECONDS {
            return Err(ServerError::Config(
                "--client-cert-max-duration is shorter than the CSR API's minimum of 10m".into(),
            ));
        }
        if args
            .client_cert_allowed_system_identities
            .iter()
            .any(|n| n == crate::vocabulary::MASTERS_GROUP)
        {
            return Err(ServerError::Config(
                "--client-cert-allowed-system-identities may not name system:masters".into(),
            ));
        }
        if let Some(group) = args
            .bootstrap_token_allowed_groups
            .iter()
            .find(|g| !crate::service::is_bootstrap_group(g))
        {
            return Err(ServerError::Config(format!(
                "--bootstrap-token-allowed-groups: {group:?} is not a group a bootstrap token can \
                 carry (system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9])"
            )));
        }
        if args.enable_bootstrap_tokens
            && !args.allowed_namespaces.is_empty()
            && !args
                .allowed_namespaces
                .iter()
                .any(|n| n == crate::vocabulary::BOOTSTRAP_TOKEN_NAMESPACE)
        {
            // Deliberate: listing kube-system in --allowed-namespaces would open it to
            // ServiceAccount tokens too; --enable-bootstrap-tokens is the operator's say-so.
            tracing::info!(
                "bootstrap tokens are on: they are Secrets in kube-system, which \
                 --allowed-namespaces (ServiceAccount tokens only) does not list"
            );
        }
        let lease = LeaseTiming {
            lease_duration: args.lease_duration,
            renew_deadline: args.lease_renew_deadline,
            retry_period: args.lease_retry_period,
        };
        lease.check().map_err(|e| {
            ServerError::Config(format!(
                "--lease-duration, --lease-renew-deadline, --lease-retry-period: {e}"
            ))
        })?;
        if args.default_duration > args.max_duration {
            return Err(ServerError::Config(
                "--default-duration is longer than --max-duration".into(),
            ));
        }
        Ok(Self {
            settings: Settings {
                policy: Policy {
                    default_duration: args.default_duration,
                    max_duration: args.max_duration,
                    allowed_namespaces: args.allowed_namespaces.clone(),
                    allowed_cluster_roles: args.allowed_cluster_roles.clone(),
                },
                public_server: args.public_server.clone(),
                ca_pem,
                own_namespace: Some(args.lease_namespace.clone()),
                record_key: match &args.record_key_file {
                    Some(path) => KeySource::File(path.clone()),
                    None => KeySource::Secret {
                        namespace: args.lease_namespace.clone(),
                        name: crate::vocabulary::RECORD_KEY_SECRET.into(),
                    },
                },
                bootstrap: BootstrapPolicy {
                    enabled: args.enable_bootstrap_tokens,
                    default_duration: args.bootstrap_token_default_duration,
                    max_duration: args.bootstrap_token_max_duration,
                    allowed_groups: args.bootstrap_token_allowed_groups.clone(),
                },
                certificates: CertificatePolicy {
                    enabled: args.enable_client_certificates,
                    max_duration: args.client_cert_max_duration,
                    allowed_system_identities: args.client_cert_allowed_system_identities.clone(),
                    ..CertificatePolicy::default()
                },
                ..Settings::default()
            },
            health_interval: args.health_interval,
            kube_timeout: args.kube_timeout,
            auth,
            auth_audiences: args.auth_audiences.clone(),
            auth_cache_ttl: args.auth_cache_ttl,
            auth_failure_limit: FailureLimit {
                per_peer: args.auth_failure_limit,
                window: args.auth_failure_window,
            },
            certificate_identity,
            tls: match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: args.tls_client_ca.clone(),
                }),
                _ => None,
            },
            tls_reload_interval: args.tls_reload_interval,
            metrics_listen: args.metrics_listen,
            limits: ConnectionLimits {
                max_connections: args.max_connections,
                max_connections_per_address: args.max_connections_per_address,
                max_concurrent_streams: args.max_concurrent_streams,
                max_header_list_size: args.max_header_list_size,
                request_timeout: args.request_timeout,
                http2_keepalive_interval: args.http2_keepalive_interval,
                http2_keepalive_timeout: args.http2_keepalive_timeout,
                tls_handshake_timeout: args.tls_handshake_timeout,
            },
            webhook_limits: WebhookLimits {
                max_connections: args.webhook_max_connections,
                max_connections_per_address: args.webhook_max_connections_per_address,
                header_timeout: args.webhook_header_timeout,
                idle_timeout: args.webhook_idle_timeout,
                request_timeout: args.request_timeout,
            },
            sweeper: (!args.sweep_interval.is_zero()).then(|| SweeperOptions {
                interval: args.sweep_interval,
                grace: args.sweep_grace,
                lease_namespace: args.lease_namespace.clone(),
                identity: replica_identity(),
                lease,
                pending_grace: args.pending_grace,
                page_size: args.sweep_page_size,
                concurrency: usize::try_from(args.sweep_concurrency).unwrap_or(1),
                delete_rate: args.sweep_delete_rate,
            }),
            controller: args.controller.then(|| ControllerOptions {
                lease_namespace: args.lease_namespace.clone(),
                lease_name: crate::controller::LEASE_NAME.into(),
                identity: replica_identity(),
                lease,
                label_selector: args.controller_label_selector.clone(),
                rotation_grace: args.rotation_grace,
                clock: Clock::default(),
            }),
            webhook: match args.webhook_listen {
                None => None,
                Some(listen) => {
                    let cert = args
                        .webhook_tls_cert
                        .clone()
                        .or_else(|| args.tls_cert.clone());
                    let key = args
                        .webhook_tls_key
                        .clone()
                        .or_else(|| args.tls_key.clone());
                    let (Some(cert), Some(key)) = (cert, key) else {
                        return Err(ServerError::Config(
                            "--webhook-listen needs a certificate: --webhook-tls-cert and \
                             --webhook-tls-key (or --tls-cert and --tls-key)"
                                .into(),
                        ));
                    };
                    Some(WebhookOptions {
                        listen,
                        tls: TlsFiles {
                            cert,
                            key,
                            client_ca: None,
                        },
                    })
                }
            },
        })
    }
}

/// The Kubernetes client configuration: the named kubeconfig, else kube-rs' inference
/// ($KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn kube_config(kubeconfig: Option<&Path>) -> Result<kube::Config, ServerError> {
    Ok(match kubeconfig {
        Some(path) => {
            kube::Config::from_custom_kubeconfig(
                Kubeconfig::read_from(path)?,
                &KubeConfigOptions::default(),
            )
            .await?
        }
        None => kube::Config::infer().await?,
    })
}

/// Serves tokend on `listener` against the cluster `kube_config` reaches, until `shutdown`
/// resolves; in-flight RPCs then finish. Metrics go to `options.metrics_listen` when set.
pub async fn run(
    kube_config: kube::Config,
    options: ServerOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let metrics_listener = match options.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    run_with_metrics(kube_config, options, listener, metrics_listener, shutdown).await
}

/// [`run`], with the metrics endpoint on a listener the caller bound (tests bind port 0).
pub async fn run_with_metrics(
    mut kube_config: kube::Config,
    options: ServerOptions,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let api_server_url = kube_config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let client_ca_pem = kube_config.root_cert.as_ref().map(|certs| {
        pem::encode_many(
            &certs
                .iter()
                .map(|der| pem::Pem::new("CERTIFICATE", der.clone()))
                .collect::<Vec<_>>(),
        )
    });
    // Watches legitimately pause (up to the watch timeout, 290 s): the controller's client
    // bounds connects and writes like every call, and reads by more than the watch timeout.
    let mut watch_config = kube_config.clone();
    watch_config.connect_timeout = Some(options.kube_timeout);
    watch_config.write_timeout = Some(options.kube_timeout);
    watch_config.read_timeout = Some(Duration::from_secs(330));
    // A stalled API server (a proxy that accepts and never answers) must fail calls, not hang
    // them: each connect, read and write is bounded. No call tokend makes is a watch, so no
    // answer legitimately pauses this long.
    kube_config.connect_timeout = Some(options.kube_timeout);
    kube_config.read_timeout = Some(options.kube_timeout);
    kube_config.write_timeout = Some(options.kube_timeout);
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let client = kube::client::ClientBuilder::try_from(kube_config)?
        .with_layer(&KubeMetricsLayer::new(metrics.clone()))
        .build();
    // One record key for the service and the sweeper: read (or created) once.
    let keys = std::sync::Arc::new(RecordKeys::new(options.settings.record_key.clone()));
    let sweeper = options.sweeper.clone().map(|o| {
        tokio::spawn(sweeper::run_with(
            Cluster::new(client.clone()),
            o,
            metrics.sweeps.clone(),
            keys.clone(),
        ))
    });
    let cluster = Cluster::new(client);
    let authentication = match options.auth {
        AuthMode::Kubernetes => {
            Authentication::Kubernetes(std::sync::Arc::new(TokenAuthenticator::new(
                cluster.clone(),
                options.auth_audiences.clone(),
                options.auth_cache_ttl,
                options.auth_failure_limit,
                metrics.clone(),
            )))
        }
        AuthMode::Mtls => {
            options
                .certificate_identity
                .check()
                .map_err(ServerError::Config)?;
            Authentication::ClientCertificate(options.certificate_identity.clone())
        }
        AuthMode::None => {
            tracing::warn!(
                "callers are NOT authenticated (--auth none): anyone reaching this port can issue \
                 tokens with tokend's own Kubernetes rights"
            );
            Authentication::None
        }
    };
    // The service's settings, built once: the flags' settings completed with what only the
    // connection to Kubernetes and the auth mode tell.
    let settings = Settings {
        api_server_url,
        client_ca_pem,
        // Authorisation is delegated whenever callers are authenticated.
        authorize: options.auth != AuthMode::None,
        access_cache_ttl: options.auth_cache_ttl,
        ..options.settings.clone()
    };
    let service = TokenService::with_keys(cluster.clone(), settings, keys);
    let controller = match options.controller.clone() {
        Some(controller_options) => {
            let watch_client = kube::client::ClientBuilder::try_from(watch_config)?
                .with_layer(&KubeMetricsLayer::new(metrics.clone()))
                .build();
            Some(tokio::spawn(crate::controller::run(
                watch_client,
                cluster.clone(),
                service.clone(),
                controller_options,
                metrics.controller.clone(),
            )))
        }
        None => None,
    };
    let webhook = match options.webhook.clone() {
        Some(webhook) => {
            let tls = crate::controller::admission::load_tls(webhook.tls)?;
            let listener = TcpListener::bind(webhook.listen).await?;
            tracing::info!(listen = %listener.local_addr()?, "admission webhook serving");
            Some(tokio::spawn(crate::controller::admission::serve(
                service.clone(),
                listener,
                tls,
                options.tls_reload_interval,
                options
                    .webhook_limits
                    .bounds(options.limits.tls_handshake_timeout),
                options.webhook_limits.timeouts(),
                std::future::pending(),
            )))
        }
        None => None,
    };

    // tokend's own namespaces: without them every request would fail, so a server that finds
    // one missing stops with the message (at start, or once the API first answers).
    let mut own_namespaces: Vec<String> = options.settings.own_namespace.iter().cloned().collect();
    if let KeySource::Secret { namespace, .. } = &options.settings.record_key
        && !own_namespaces.contains(namespace)
    {
        own_namespaces.push(namespace.clone());
    }
    let (fatal_sender, fatal_receiver) = tokio::sync::oneshot::channel();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    health::starting(&reporter).await;
    let watcher = tokio::spawn(health::watch(
        reporter,
        cluster,
        options.health_interval,
        options.kube_timeout,
        metrics.kube_api_reachable.clone(),
        own_namespaces,
        fatal_sender,
    ));
    let fatal = Arc::new(std::sync::Mutex::new(None::<String>));
    let shutdown = {
        let fatal = fatal.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                Ok(message) = fatal_receiver => {
                    if let Ok(mut slot) = fatal.lock() {
                        *slot = Some(message);
                    }
                }
            }
        }
    };

    // grpcurl 1.8.6 speaks only v1alpha reflection; newer clients use v1.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let tls = options.tls.map(ReloadingTls::load).transpose()?;
    tracing::info!(listen = %listener.local_addr()?, tls = tls.is_some(), "tokend serving");
    let metrics_server = metrics_listener.map(|listener| {
        tokio::spawn(metrics::serve(
            listener,
            Arc::new(registry),
            std::future::pending(),
        ))
    });
    let methods = KnownMethods::from_descriptor_sets(&[
        v1::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ])
    .map_err(|e| ServerError::Config(format!("the compiled-in proto descriptors: {e}")))?;
    let layers = tower::ServiceBuilder::new()
        .layer(RpcLayer::new(
            metrics.clone(),
            methods,
            options.limits.request_timeout,
        ))
        .layer(AuthLayer::new(authentication))
        .into_inner();
    let limits = &options.limits;
    // An unauthenticated client reaches all of this: each bound keeps what it can make the
    // server hold (streams, header bytes, time, dead connections) small.
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_header_list_size(limits.max_header_list_size)
        .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout))
        .layer(layers)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(BootstrapTokenServiceGrpc::new(service.clone()).into_server())
        .add_service(ClientCertificateServiceGrpc::new(service.clone()).into_server())
        .add_service(TokenServiceGrpc::new(service, metrics).into_server());
    let result = match tls {
        Some(tls) => {
            let reloader = tokio::spawn(tls.clone().watch(options.tls_reload_interval));
            let incoming = tls.incoming(listener, options.limits.bounds());
            let result = router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
            reloader.abort();
            result
        }
        None => {
            let incoming =
                crate::server::listener::incoming(listener, options.limits.bounds(), |tcp, _| {
                    std::future::ready(Some(tcp))
                });
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    watcher.abort();
    for task in [sweeper, controller, webhook].into_iter().flatten() {
        task.abort();
    }
    if let Some(task) = metrics_server {
        task.abort();
    }
    if let Some(message) = fatal.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(ServerError::Config(message));
    }
    Ok(result?)
}

/// This replica's name in the sweeper Lease: the pod name (HOSTNAME) and a random suffix, so a
/// restarted pod is a new holder.
fn replica_identity() -> String {
    use rand::Rng as _;
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "tokend".into());
    format!("{host}-{:08x}", rand::rng().random::<u32>())
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
