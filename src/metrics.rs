//! Prometheus metrics: RPCs under go-grpc-prometheus' names (`grpc_server_*`, so standard
//! dashboards and alerts work unchanged), Kubernetes API calls by verb, resource and status,
//! tokens issued and revoked, caller-review cache hits, the sweeper, whether the Kubernetes API
//! answers, `tokend_build_info` and the `process_*` family ([`process`]). The
//! families live in one [`Metrics`] value registered into a registry passed in, never in globals.

pub mod process;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::Instrument as _;

use crate::build_info;

/// The method labels of an RPC, as go-grpc-prometheus names them. Only methods tokend serves
/// get their own values; every other path is one `unknown` set ([`RpcMethod::unknown`]).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcMethod {
    /// Fully qualified service, e.g. `tokend.v1.TokenService`.
    pub grpc_service: String,
    /// Method name, e.g. `IssueToken`.
    pub grpc_method: String,
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub grpc_type: &'static str,
}

impl RpcMethod {
    /// The one label set of every path tokend does not serve.
    pub fn unknown() -> Self {
        Self {
            grpc_service: UNKNOWN.into(),
            grpc_method: UNKNOWN.into(),
            grpc_type: UNKNOWN,
        }
    }
}

/// The label value standing for any service, method or type tokend does not serve.
pub const UNKNOWN: &str = "unknown";

/// Labels of a finished RPC: its method and status code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcCodeLabels {
    /// Which method.
    #[prometheus(flatten)]
    pub method: RpcMethod,
    /// gRPC status code as grpc-go spells it: `OK`, `InvalidArgument`, `Unavailable`, ...
    pub grpc_code: &'static str,
}

/// Labels of `tokend_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    /// The crate version, e.g. `0.1.0`.
    version: &'static str,
    /// Whether the binary holds `tokend dev` and the emulator (`dev`) or not (`server`).
    build: &'static str,
    /// The commit built, or `unknown` (see build.rs).
    commit: &'static str,
    /// The compiler, as `rustc --version` printed it.
    rustc: &'static str,
    /// `debug` or `release`.
    profile: &'static str,
}

/// Labels of a Kubernetes API call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeLabels {
    /// HTTP verb.
    pub verb: String,
    /// Resource (with subresource), e.g. `serviceaccounts/token`.
    pub resource: String,
    /// HTTP status, or `error` when no answer came.
    pub status: String,
}

/// Every metric tokend exports.
#[derive(Clone)]
pub struct Metrics {
    rpcs_started: Family<RpcMethod, Counter>,
    rpcs_handled: Family<RpcCodeLabels, Counter>,
    rpc_seconds: Family<RpcMethod, Histogram>,
    /// 1 while the last health check reached the Kubernetes API, else 0.
    pub kube_api_reachable: Gauge,
    kube_calls: Family<KubeLabels, Counter>,
    kube_seconds: Family<KubeLabels, Histogram>,
    /// Tokens issued (IssueToken and GetKubeconfig).
    pub tokens_issued: Counter,
    /// Tokens revoked.
    pub tokens_revoked: Counter,
    /// Caller TokenReviews answered from the cache.
    pub review_cache_hits: Counter,
    /// Caller TokenReviews sent to the API server.
    pub review_cache_misses: Counter,
    /// What the sweeper examines, deletes, and how long a sweep takes.
    pub sweeps: SweepMetrics,
    /// The ServiceAccountToken controller's failures.
    pub controller: ControllerMetrics,
}

/// Failures of the ServiceAccountToken controller: a watch that cannot run (missing RBAC, API
/// trouble) or a reconciliation that failed and is retried.
#[derive(Clone, Default)]
pub struct ControllerMetrics {
    /// Errors of the controller's watches.
    pub watch_errors: Counter,
    /// Reconciliations that failed (retried with exponential backoff), by reason.
    pub reconcile_errors: Family<ReconcileFailure, Counter>,
}

/// Labels of a failed reconciliation: one of a fixed set of reasons (`kubernetes`, `service`,
/// `object`), so the series stay bounded.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileFailure {
    /// Which layer failed.
    pub reason: &'static str,
}

/// The sweeper's progress: records examined and deleted (in all, and by the last sweep) and
/// sweep durations (whose count is the number of sweeps).
#[derive(Clone, Default)]
pub struct SweepMetrics {
    /// Records examined, in all.
    pub examined: Counter,
    /// Records deleted, in all.
    pub deleted: Counter,
    /// Sweeps that failed (the record key or the API could not be read, a delete failed).
    pub failures: Counter,
    /// Records the last finished sweep examined.
    pub last_examined: Gauge,
    /// Records the last finished sweep deleted.
    pub last_deleted: Gauge,
    /// How long sweeps take, failed ones included.
    pub duration: SweepHistogram,
}

/// A histogram of sweep durations, from 10 ms to about 3 hours.
#[derive(Clone)]
pub struct SweepHistogram(pub Histogram);

impl Default for SweepHistogram {
    fn default() -> Self {
        Self(Histogram::new(exponential_buckets(0.01, 4.0, 10)))
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The buckets go-grpc-prometheus (and Prometheus' client libraries) use by default, so the
/// `le` values dashboards and alerts name exist here too, plus 1 ms and 2.5 ms.
fn rpc_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// gRPC's name of a status code, as grpc-go's `codes.Code.String()` writes it (and so as
/// go-grpc-prometheus labels it): `OK`, not tonic's `Ok`; `Canceled`, not `Cancelled`.
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            rpcs_started: Family::default(),
            rpcs_handled: Family::default(),
            rpc_seconds: Family::new_with_constructor(rpc_histogram),
            kube_api_reachable: Gauge::default(),
            kube_calls: Family::default(),
            kube_seconds: Family::new_with_constructor(latency_histogram),
            tokens_issued: Counter::default(),
            tokens_revoked: Counter::default(),
            review_cache_hits: Counter::default(),
            review_cache_misses: Counter::default(),
            sweeps: SweepMetrics::default(),
            controller: ControllerMetrics::default(),
        };
        // go-grpc-prometheus' names and labels, unprefixed: what Grafana's gRPC dashboards and
        // the usual alerting rules query.
        registry.register(
            "grpc_server_started",
            "RPCs started on the server",
            metrics.rpcs_started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "RPCs completed on the server, regardless of success or failure",
            metrics.rpcs_handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Response latency of RPCs handled by the server, in seconds",
            metrics.rpc_seconds.clone(),
        );
        process::register(registry);
        let r = registry.sub_registry_with_prefix("tokend");
        r.register(
            "build",
            "tokend's version and build",
            prometheus_client::metrics::info::Info::new(BuildLabels {
                version: build_info::VERSION,
                build: build_info::FLAVOUR,
                commit: build_info::COMMIT,
                rustc: build_info::RUSTC,
                profile: build_info::PROFILE,
            }),
        );
        r.register(
            "kube_api_reachable",
            "1 while the last health check reached the Kubernetes API, else 0",
            metrics.kube_api_reachable.clone(),
        );
        r.register(
            "kube_requests",
            "Kubernetes API requests by verb, resource and status",
            metrics.kube_calls.clone(),
        );
        r.register(
            "kube_request_duration_seconds",
            "Kubernetes API request latency",
            metrics.kube_seconds.clone(),
        );
        r.register(
            "tokens_issued",
            "Tokens issued",
            metrics.tokens_issued.clone(),
        );
        r.register(
            "tokens_revoked",
            "Tokens revoked",
            metrics.tokens_revoked.clone(),
        );
        r.register(
            "caller_review_cache_hits",
            "Caller TokenReviews answered from the cache",
            metrics.review_cache_hits.clone(),
        );
        r.register(
            "caller_review_cache_misses",
            "Caller TokenReviews sent to the API server",
            metrics.review_cache_misses.clone(),
        );
        r.register(
            "controller_watch_errors",
            "Errors of the ServiceAccountToken controller's watches",
            metrics.controller.watch_errors.clone(),
        );
        r.register(
            "controller_reconcile_errors",
            "Failed ServiceAccountToken reconciliations by reason (retried with exponential backoff)",
            metrics.controller.reconcile_errors.clone(),
        );
        r.register(
            "sweep_records_examined",
            "Token records the sweeper examined",
            metrics.sweeps.examined.clone(),
        );
        r.register(
            "sweep_records_deleted",
            "Token records the sweeper deleted",
            metrics.sweeps.deleted.clone(),
        );
        r.register(
            "sweep_failures",
            "Sweeps that failed",
            metrics.sweeps.failures.clone(),
        );
        r.register(
            "sweep_last_records_examined",
            "Token records the last finished sweep examined",
            metrics.sweeps.last_examined.clone(),
        );
        r.register(
            "sweep_last_records_deleted",
            "Token records the last finished sweep deleted",
            metrics.sweeps.last_deleted.clone(),
        );
        r.register(
            "sweep_duration_seconds",
            "How long one sweep of every record took",
            metrics.sweeps.duration.0.clone(),
        );
        metrics
    }

    /// Counts an RPC as started.
    pub fn rpc_started(&self, method: &RpcMethod) {
        self.rpcs_started.get_or_create(method).inc();
    }

    /// Records one finished RPC: its code and how long it took since `started`.
    pub fn rpc_handled(&self, method: &RpcMethod, code: tonic::Code, started: Instant) {
        self.rpcs_handled
            .get_or_create(&RpcCodeLabels {
                method: method.clone(),
                grpc_code: grpc_code_name(code),
            })
            .inc();
        self.rpc_seconds
            .get_or_create(method)
            .observe(started.elapsed().as_secs_f64());
    }

    fn record_kube(&self, labels: KubeLabels, started: Instant) {
        self.kube_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        self.kube_calls.get_or_create(&labels).inc();
    }
}

/// Serves `/metrics` in the OpenMetrics text format on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::response::IntoResponse as _;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
                    return (http::StatusCode::INTERNAL_SERVER_ERROR, "encoding failed")
                        .into_response();
                }
                let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                ([(http::header::CONTENT_TYPE, content_type)], text).into_response()
            }
        }),
    );
    tracing::info!(listen = %listener.local_addr()?, "metrics serving");
    // Bounded like every listener: a scraper needs one connection and one request at a time.
    let incoming = crate::server::listener::incoming(listener, METRICS_BOUNDS, |tcp, _| {
        std::future::ready(Some(tcp))
    });
    crate::server::listener::serve_http(incoming, app, METRICS_TIMEOUTS, shutdown).await;
    Ok(())
}

/// Connections the metrics port holds: a few scrapers (Prometheus replicas), each with one.
const METRICS_BOUNDS: crate::server::listener::ConnectionBounds =
    crate::server::listener::ConnectionBounds {
        total: 64,
        per_address: 8,
        setup_timeout: std::time::Duration::from_secs(10),
    };

/// A scrape's header arrives at once; Prometheus keeps a connection between scrapes (15 s to
/// 1 min apart), so idle ones may live a little longer than the longest usual interval.
const METRICS_TIMEOUTS: crate::server::listener::HttpTimeouts =
    crate::server::listener::HttpTimeouts {
        header: std::time::Duration::from_secs(10),
        idle: std::time::Duration::from_secs(90),
        request: std::time::Duration::from_secs(30),
    };

/// Tower layer counting the Kubernetes API calls of a kube-rs client, and tracing those made
/// inside a traced request.
#[derive(Clone)]
pub struct KubeMetricsLayer {
    metrics: Metrics,
}

impl KubeMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for KubeMetricsLayer {
    type Service = KubeMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KubeMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`KubeMetricsLayer`] wraps around kube-rs' HTTP stack.
#[derive(Clone)]
pub struct KubeMetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqB, ResB> tower::Service<http::Request<ReqB>> for KubeMetricsService<S>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqB>) -> Self::Future {
        let verb = request.method().as_str().to_owned();
        let resource = resource_of(request.uri().path());
        let metrics = self.metrics.clone();
        // A call made for something traced (an RPC) gets a client span, a child of that RPC's,
        // and carries its trace context to the API server. The health check's and the
        // sweeper's calls get none: they would be traces of their own every few seconds.
        let span = if tracing::Span::current().is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                "kube",
                otel.name = %format_args!("{verb} {resource}"),
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                http.request.method = %verb,
                k8s.resource = %resource,
                http.response.status_code = tracing::field::Empty,
            )
        };
        crate::telemetry::otel::inject(&span, request.headers_mut());
        let started = Instant::now();
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let result = future.await;
                let status = match &result {
                    Ok(response) => {
                        let status = response.status();
                        let span = tracing::Span::current();
                        span.record("http.response.status_code", status.as_u16());
                        if status.is_server_error() {
                            span.record("otel.status_code", "ERROR");
                        }
                        status.as_u16().to_string()
                    }
                    Err(_) => {
                        tracing::Span::current().record("otel.status_code", "ERROR");
                        "error".to_owned()
                    }
                };
                metrics.record_kube(
                    KubeLabels {
                        verb,
                        resource,
                        status,
                    },
                    started,
                );
                result
            }
            .instrument(span),
        )
    }
}

/// The resource (and subresource) an API path names, without namespaces or object names, so
/// label values stay few: `/api/v1/namespaces/a/serviceaccounts/b/token` → `serviceaccounts/token`.
fn resource_of(path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return "other".into(),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    match rest {
        [] => "discovery".into(),
        [resource] | [resource, _] => (*resource).to_owned(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
    }
}

#[cfg(test)]
mod tests {
    use super::resource_of;

    #[test]
    fn resources_are_named_without_namespaces_or_objects() {
        assert_eq!(
            resource_of("/api/v1/namespaces/a/serviceaccounts/b/token"),
            "serviceaccounts/token"
        );
        assert_eq!(resource_of("/api/v1/namespaces/a/secrets"), "secrets");
        assert_eq!(
            resource_of("/api/v1/namespaces/a/secrets/tokend-x"),
            "secrets"
        );
        assert_eq!(resource_of("/api/v1/namespaces/a"), "namespaces");
        assert_eq!(
            resource_of("/apis/authentication.k8s.io/v1/tokenreviews"),
            "tokenreviews"
        );
        assert_eq!(resource_of("/version"), "other");
    }
}
