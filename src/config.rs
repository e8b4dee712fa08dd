//! Command-line and environment configuration of the `tokend` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// tokend: issue, revoke, validate and list Kubernetes ServiceAccount tokens over gRPC.
#[derive(Debug, Parser)]
#[command(name = "tokend", version, long_version = crate::build_info::LONG_VERSION, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Log line format.
    #[arg(long, env = "TOKEND_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// The binary's modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API against a Kubernetes cluster.
    Serve(ServeArgs),
    /// Serve the gRPC API against an embedded Kubernetes API emulator, for trying tokend out.
    #[cfg(feature = "dev")]
    Dev(ServeArgs),
    /// Run only the Kubernetes API emulator and write its admin kubeconfig.
    #[cfg(feature = "dev")]
    Emulator(EmulatorArgs),
    /// Print the ServiceAccountToken CustomResourceDefinition (YAML), as deploy/ holds it.
    Crd,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `tokend serve` (and `tokend dev`).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "TOKEND_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Kubeconfig to reach Kubernetes with; default: $KUBECONFIG, ~/.kube/config, then in-cluster.
    #[arg(long, env = "TOKEND_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// API server URL written into kubeconfigs (the address users reach, not the in-cluster one).
    #[arg(long, env = "TOKEND_PUBLIC_SERVER")]
    pub public_server: Option<String>,
    /// CA bundle (PEM) written into kubeconfigs; default: kube-root-ca.crt, then tokend's own CA.
    #[arg(long, env = "TOKEND_KUBECONFIG_CA_FILE")]
    pub kubeconfig_ca_file: Option<PathBuf>,
    /// Lifetime of tokens whose request names none.
    #[arg(long, env = "TOKEND_DEFAULT_DURATION", default_value = "1h", value_parser = parse_duration)]
    pub default_duration: Duration,
    /// Longest lifetime a caller may ask for (like --service-account-max-token-expiration).
    #[arg(long, env = "TOKEND_MAX_DURATION", default_value = "8760h", value_parser = parse_duration)]
    pub max_duration: Duration,
    /// Namespaces tokens may be issued in, comma-separated; empty means all.
    #[arg(long, env = "TOKEND_ALLOWED_NAMESPACES", value_delimiter = ',')]
    pub allowed_namespaces: Vec<String>,
    /// ClusterRoles ServiceAccounts may be bound to through tokend, comma-separated; `*` for any.
    #[arg(
        long,
        env = "TOKEND_ALLOWED_CLUSTER_ROLES",
        value_delimiter = ',',
        default_value = crate::vocabulary::DEFAULT_ALLOWED_CLUSTER_ROLES
    )]
    pub allowed_cluster_roles: Vec<String>,
    /// Lifetime of bootstrap tokens whose request names none (kubeadm's default).
    #[arg(long, env = "TOKEND_BOOTSTRAP_TOKEN_DEFAULT_DURATION", default_value = "24h", value_parser = parse_duration)]
    pub bootstrap_token_default_duration: Duration,
    /// Longest lifetime of a bootstrap token.
    #[arg(long, env = "TOKEND_BOOTSTRAP_TOKEN_MAX_DURATION", default_value = "168h", value_parser = parse_duration)]
    pub bootstrap_token_max_duration: Duration,
    /// Longest lifetime of a client certificate, and the lifetime of one whose request names
    /// none: Kubernetes cannot revoke a client certificate before it expires.
    #[arg(long, env = "TOKEND_CLIENT_CERT_MAX_DURATION", default_value = "1h", value_parser = parse_duration)]
    pub client_cert_max_duration: Duration,
    /// `system:` users and groups client certificates may name, comma-separated (e.g.
    /// `system:kube-proxy`); none by default. `system:masters` is refused whatever this says.
    #[arg(
        long,
        env = "TOKEND_CLIENT_CERT_ALLOWED_SYSTEM_IDENTITIES",
        value_delimiter = ','
    )]
    pub client_cert_allowed_system_identities: Vec<String>,
    /// Serve BootstrapTokenService: issue, list and revoke bootstrap tokens, which are Secrets in
    /// kube-system whatever --allowed-namespaces says. Off unless set; needs the kube-system
    /// Secret rights deploy/ grants.
    #[arg(long, env = "TOKEND_ENABLE_BOOTSTRAP_TOKENS")]
    pub enable_bootstrap_tokens: bool,
    /// The extra groups a bootstrap token may carry, comma-separated (a request naming none
    /// asks for kubeadm's default, which must be listed for such requests to work).
    #[arg(
        long,
        env = "TOKEND_BOOTSTRAP_TOKEN_ALLOWED_GROUPS",
        value_delimiter = ',',
        default_value = crate::vocabulary::BOOTSTRAP_DEFAULT_EXTRA_GROUP
    )]
    pub bootstrap_token_allowed_groups: Vec<String>,
    /// Serve ClientCertificateService: sign callers' CSRs with the cluster's
    /// kube-apiserver-client signer (certificates cannot be revoked). Off unless set; needs the
    /// CertificateSigningRequest rights deploy/ grants.
    #[arg(long, env = "TOKEND_ENABLE_CLIENT_CERTIFICATES")]
    pub enable_client_certificates: bool,
    /// How callers authenticate: `kubernetes` (bearer token, TokenReview) or `none`.
    /// `serve` defaults to `kubernetes` and takes `none` only with --insecure-no-auth;
    /// `dev` defaults to `none`.
    #[arg(long, env = "TOKEND_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// Allow `--auth none` on `serve`: anyone reaching the port acts with tokend's rights.
    #[arg(long, env = "TOKEND_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Put before a client certificate's CN to make the caller's username (`--auth mtls`), as the
    /// API server's --oidc-username-prefix; bind RBAC to `User` `mtls:NAME`.
    #[arg(long, env = "TOKEND_MTLS_USERNAME_PREFIX", default_value = "mtls:")]
    pub mtls_username_prefix: String,
    /// Put before each client certificate O to make a group (`--auth mtls`).
    #[arg(long, env = "TOKEND_MTLS_GROUPS_PREFIX", default_value = "mtls:")]
    pub mtls_groups_prefix: String,
    /// Audiences callers' tokens must carry, comma-separated; empty means the API server's.
    #[arg(long, env = "TOKEND_AUTH_AUDIENCES", value_delimiter = ',')]
    pub auth_audiences: Vec<String>,
    /// How long a caller's TokenReview is reused, successful or failed (a failed one keyed by a
    /// hash of the token, so a repeated bad token costs one review).
    #[arg(long, env = "TOKEND_AUTH_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub auth_cache_ttl: Duration,
    /// Failed bearer-token authentications allowed per client address in each
    /// --auth-failure-window; past it the address is refused before any TokenReview. 0: no bound.
    #[arg(long, env = "TOKEND_AUTH_FAILURE_LIMIT", default_value_t = 20)]
    pub auth_failure_limit: u32,
    /// The window --auth-failure-limit counts in.
    #[arg(long, env = "TOKEND_AUTH_FAILURE_WINDOW", default_value = "1m", value_parser = parse_duration)]
    pub auth_failure_window: Duration,
    /// TLS certificate chain (PEM) for the gRPC port; re-read when the file changes.
    #[arg(long, env = "TOKEND_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the gRPC port.
    #[arg(long, env = "TOKEND_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) client certificates must chain to; makes client certificates mandatory.
    #[arg(long, env = "TOKEND_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// How often the TLS files are checked for changes.
    #[arg(long, env = "TOKEND_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
    /// Most gRPC connections open at once; further clients wait in the listen backlog.
    #[arg(long, env = "TOKEND_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Most gRPC connections open at once from one client address; further ones are closed.
    #[arg(long, env = "TOKEND_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 16)]
    pub max_connections_per_address: usize,
    /// Most streams (calls) in flight on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(long, env = "TOKEND_MAX_CONCURRENT_STREAMS", default_value_t = 100)]
    pub max_concurrent_streams: u32,
    /// Largest request header block accepted, in bytes (SETTINGS_MAX_HEADER_LIST_SIZE).
    #[arg(long, env = "TOKEND_MAX_HEADER_LIST_SIZE", default_value_t = 16 * 1024)]
    pub max_header_list_size: u32,
    /// Longest any call may take, reading its request included; then DEADLINE_EXCEEDED.
    #[arg(long, env = "TOKEND_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// How often an idle HTTP/2 connection is pinged; a peer that does not answer is dropped.
    #[arg(long, env = "TOKEND_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// How long a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "TOKEND_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,
    /// Longest a client may take over its TLS handshake (gRPC and webhook ports).
    #[arg(long, env = "TOKEND_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// Address of the Prometheus `/metrics` endpoint; none when unset.
    #[arg(long, env = "TOKEND_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Time between sweeps of expired records; `0` turns the sweeper off.
    #[arg(long, env = "TOKEND_SWEEP_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub sweep_interval: Duration,
    /// How long an expired record is kept (ListTokens shows it as EXPIRED) before it is swept.
    #[arg(long, env = "TOKEND_SWEEP_GRACE", default_value = "24h", value_parser = parse_duration)]
    pub sweep_grace: Duration,
    /// Records the sweeper reads per API call (one page of metadata).
    #[arg(long, env = "TOKEND_SWEEP_PAGE_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sweep_page_size: u32,
    /// Most record deletes the sweeper has in flight at once.
    #[arg(long, env = "TOKEND_SWEEP_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub sweep_concurrency: u64,
    /// Most record deletes per second the sweeper makes; 0 for no limit.
    #[arg(long, env = "TOKEND_SWEEP_DELETE_RATE", default_value_t = 50)]
    pub sweep_delete_rate: u32,
    /// How long a record may stay pending (written, its token not confirmed issued) before the
    /// sweeper deletes it: an issue whose undo could not run, e.g. during an API outage.
    #[arg(long, env = "TOKEND_PENDING_GRACE", default_value = "5m", value_parser = parse_duration)]
    pub pending_grace: Duration,
    /// tokend's own namespace: the sweeper's Lease, the Secret holding the key records are
    /// sealed with (unless --record-key-file), and the `kube-root-ca.crt` trusted for kubeconfigs.
    #[arg(long, env = "TOKEND_LEASE_NAMESPACE", default_value = "tokend")]
    pub lease_namespace: String,
    /// How long other replicas must see a Lease (sweeper, controller) unchanged before taking it.
    #[arg(long, env = "TOKEND_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long a Lease holder keeps acting without a successful renewal; shorter than
    /// --lease-duration, so it has stopped before another replica may take over.
    #[arg(long, env = "TOKEND_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub lease_renew_deadline: Duration,
    /// Time between attempts to take or renew a Lease.
    #[arg(long, env = "TOKEND_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub lease_retry_period: Duration,
    /// Longest tokend waits on the Kubernetes API: to connect, and for each read or write of a
    /// call; also the health check's budget, so a stalled API turns health NOT_SERVING.
    #[arg(long, env = "TOKEND_KUBE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub kube_timeout: Duration,
    /// File holding the key records are sealed with (at least 32 bytes), shared by every
    /// replica; default: the Secret tokend-record-key in --lease-namespace, made when missing.
    #[arg(long, env = "TOKEND_RECORD_KEY_FILE")]
    pub record_key_file: Option<PathBuf>,
    /// How often the Kubernetes API is checked for the health service.
    #[arg(long, env = "TOKEND_HEALTH_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub health_interval: Duration,
    /// Run the ServiceAccountToken controller (one replica at a time, through a Lease in
    /// --lease-namespace). Needs the CRD installed (`tokend crd`).
    #[arg(long, env = "TOKEND_CONTROLLER")]
    pub controller: bool,
    /// Reconcile only ServiceAccountTokens matching this label selector (sharding).
    #[arg(long, env = "TOKEND_CONTROLLER_LABEL_SELECTOR")]
    pub controller_label_selector: Option<String>,
    /// How long a token replaced by rotation stays valid before it is revoked.
    #[arg(long, env = "TOKEND_ROTATION_GRACE", default_value = "1m", value_parser = parse_duration)]
    pub rotation_grace: Duration,
    /// Address of the HTTPS admission webhook that stamps ServiceAccountTokens' requester;
    /// none when unset. Serves the certificate of --webhook-tls-cert/--webhook-tls-key.
    #[arg(long, env = "TOKEND_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) of the webhook; default: --tls-cert.
    #[arg(long, env = "TOKEND_WEBHOOK_TLS_CERT")]
    pub webhook_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the webhook; default: --tls-key.
    #[arg(long, env = "TOKEND_WEBHOOK_TLS_KEY")]
    pub webhook_tls_key: Option<PathBuf>,
    /// Most webhook connections open at once; further clients wait in the listen backlog.
    #[arg(long, env = "TOKEND_WEBHOOK_MAX_CONNECTIONS", default_value_t = 512)]
    pub webhook_max_connections: usize,
    /// Most webhook connections open at once from one address; further ones are closed.
    #[arg(
        long,
        env = "TOKEND_WEBHOOK_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 16
    )]
    pub webhook_max_connections_per_address: usize,
    /// Longest a webhook request's header may take to arrive, from its first byte.
    #[arg(long, env = "TOKEND_WEBHOOK_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub webhook_header_timeout: Duration,
    /// A webhook connection with no request in flight and nothing received is closed after this.
    #[arg(long, env = "TOKEND_WEBHOOK_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub webhook_idle_timeout: Duration,
}

/// How callers prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// `authorization: Bearer <Kubernetes token>`, checked with TokenReview, and every call
    /// authorised with SubjectAccessReview.
    Kubernetes,
    /// The verified client certificate (subject CN = user, O = groups, each under the
    /// --mtls-*-prefix), authorised with SubjectAccessReview; needs --tls-client-ca.
    Mtls,
    /// No authentication and no authorisation: for `tokend dev` and trusted test setups only.
    None,
}

/// Flags of `tokend emulator`.
#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Address the emulator's HTTPS server listens on.
    #[arg(long, env = "TOKEND_EMULATOR_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where to write the admin kubeconfig.
    #[arg(long, env = "TOKEND_EMULATOR_KUBECONFIG_OUT")]
    pub kubeconfig_out: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    tokend_api::duration::parse_duration(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_defaults_match_the_documented_ones() {
        let cli = Cli::try_parse_from(["tokend", "serve"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(args.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(args.default_duration, Duration::from_secs(3600));
        assert_eq!(args.max_duration, Duration::from_secs(8760 * 3600));
        assert_eq!(
            args.allowed_cluster_roles,
            vec!["view", "edit", "admin", "tokend-view", "tokend-admin"]
        );
        assert_eq!(
            args.allowed_cluster_roles,
            crate::service::policy::Policy::default().allowed_cluster_roles
        );
    }

    #[test]
    fn node_credentials_are_off_unless_switched_on() {
        let cli = Cli::try_parse_from(["tokend", "serve"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert!(!args.enable_bootstrap_tokens && !args.enable_client_certificates);
        assert_eq!(
            args.bootstrap_token_allowed_groups,
            [crate::vocabulary::BOOTSTRAP_DEFAULT_EXTRA_GROUP]
        );
        let cli = Cli::try_parse_from([
            "tokend",
            "serve",
            "--enable-bootstrap-tokens",
            "--enable-client-certificates",
            "--bootstrap-token-allowed-groups",
            "system:bootstrappers:a,system:bootstrappers:b",
        ])
        .expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert!(args.enable_bootstrap_tokens && args.enable_client_certificates);
        assert_eq!(
            args.bootstrap_token_allowed_groups,
            ["system:bootstrappers:a", "system:bootstrappers:b"]
        );
    }

    #[test]
    fn bad_durations_are_refused_at_start() {
        assert!(Cli::try_parse_from(["tokend", "serve", "--max-duration", "1.5h"]).is_err());
    }
}
