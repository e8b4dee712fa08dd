//! The layer every gRPC request passes: it gives the request an id (the caller's `x-request-id`
//! or a fresh one), runs it inside a tracing span carrying that id, returns the id in the
//! response metadata, and records the RPC under go-grpc-prometheus' names and labels
//! (`grpc_server_started_total`, `grpc_server_handled_total`, `grpc_server_handling_seconds`) —
//! by name only for methods tokend serves, so unknown paths cannot grow the metric series.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prost::Message as _;

use futures::future::BoxFuture;
use http::HeaderValue;
use tracing::Instrument as _;

use crate::metrics::{Metrics, RpcMethod};

/// Header carrying the request id both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The tracing target of spans that are logged but not sent to OpenTelemetry (health probes).
pub const UNTRACED_TARGET: &str = "tokend::untraced";

/// grpc.health.v1's service, whose calls are probes.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// The gRPC methods of the services tokend serves, by request path (`/pkg.Service/Method`),
/// with their metric labels.
#[derive(Debug, Clone, Default)]
pub struct KnownMethods(Arc<HashMap<String, RpcMethod>>);

impl KnownMethods {
    /// Every method of every service in these encoded FileDescriptorSets (the ones reflection
    /// serves), so the list cannot drift from the proto.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Result<Self, prost::DecodeError> {
        let mut methods = HashMap::new();
        for set in sets {
            let set = prost_types::FileDescriptorSet::decode(*set)?;
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = service.name.unwrap_or_default();
                    let qualified = if package.is_empty() {
                        service_name.clone()
                    } else {
                        format!("{package}.{service_name}")
                    };
                    for method in service.method {
                        let name = method.name.unwrap_or_default();
                        let grpc_type = match (
                            method.client_streaming.unwrap_or(false),
                            method.server_streaming.unwrap_or(false),
                        ) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        methods.insert(
                            format!("/{qualified}/{name}"),
                            RpcMethod {
                                grpc_service: qualified.clone(),
                                grpc_method: name,
                                grpc_type,
                            },
                        );
                    }
                }
            }
        }
        Ok(Self(Arc::new(methods)))
    }

    /// The labels of the method at `path` when tokend serves it, else the one `unknown` set.
    pub fn labels(&self, path: &str) -> RpcMethod {
        self.0.get(path).cloned().unwrap_or_else(RpcMethod::unknown)
    }
}

/// Tower layer adding request ids, spans and RPC metrics.
#[derive(Clone)]
pub struct RpcLayer {
    metrics: Metrics,
    methods: KnownMethods,
    timeout: Duration,
}

impl RpcLayer {
    /// A layer recording into `metrics`, labelling only `methods` by name, and answering
    /// DEADLINE_EXCEEDED to a call not answered within `timeout`.
    pub fn new(metrics: Metrics, methods: KnownMethods, timeout: Duration) -> Self {
        Self {
            metrics,
            methods,
            timeout,
        }
    }
}

impl<S> tower::Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcService {
            inner,
            metrics: self.metrics.clone(),
            methods: self.methods.clone(),
            timeout: self.timeout,
        }
    }
}

/// The service [`RpcLayer`] wraps around the gRPC router.
#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    metrics: Metrics,
    methods: KnownMethods,
    timeout: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for RpcService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        let path = request.uri().path();
        let reflection = path.starts_with("/grpc.reflection.");
        let method = self.methods.labels(path);
        let request_id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned)
            .unwrap_or_else(new_request_id);
        // The span is the server span of the caller's trace (W3C `traceparent`), named as
        // OpenTelemetry names gRPC server spans; its trace id is in every log line inside it.
        let name = format!("{}/{}", method.grpc_service, method.grpc_method);
        macro_rules! rpc_span {
            ($target:expr) => {
                tracing::info_span!(
                    target: $target,
                    "rpc",
                    request_id = %request_id,
                    method = %name,
                    trace_id = tracing::field::Empty,
                    otel.name = %name,
                    otel.kind = "server",
                    otel.status_code = tracing::field::Empty,
                    rpc.system = "grpc",
                    rpc.grpc.status_code = tracing::field::Empty,
                )
            };
        }
        // Probes come every few seconds from every kubelet: logged like any call, not traced.
        let span = if method.grpc_service == HEALTH_SERVICE {
            rpc_span!(UNTRACED_TARGET)
        } else {
            rpc_span!(module_path!())
        };
        crate::telemetry::otel::adopt_remote_parent(&span, request.headers());
        let started = Instant::now();
        if !reflection {
            metrics.rpc_started(&method);
        }
        let timeout = self.timeout;
        Box::pin(
            async move {
                // The whole unary call, reading its request included, runs inside this future:
                // a client that sends headers and never finishes the body is answered and its
                // stream freed. (A streaming answer, like health Watch, is past this point once
                // its headers are out.)
                let mut response = match tokio::time::timeout(timeout, inner.call(request)).await {
                    Ok(response) => response?,
                    Err(_) => tonic::Status::deadline_exceeded(format!(
                        "the call was not answered within {} (--request-timeout)",
                        tokend_api::duration::format_duration(timeout)
                    ))
                    .into_http(),
                };
                // A unary call that failed answers trailers-only, with the status in the headers;
                // one that succeeded has none there.
                let mut code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from);
                if code == tonic::Code::OutOfRange && is_oversize(&response) {
                    // tonic says OUT_OF_RANGE for a message over its size limit; gRPC's
                    // convention (grpc-go, grpc-java) and what callers retry on is
                    // RESOURCE_EXHAUSTED.
                    code = tonic::Code::ResourceExhausted;
                    response
                        .headers_mut()
                        .insert("grpc-status", HeaderValue::from(code as i32));
                }
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert(REQUEST_ID_HEADER, value);
                }
                if !reflection {
                    metrics.rpc_handled(&method, code, started);
                }
                let span = tracing::Span::current();
                span.record("rpc.grpc.status_code", code as i32);
                if is_server_error(code) {
                    span.record("otel.status_code", "ERROR");
                }
                if code != tonic::Code::Ok {
                    tracing::info!(code = ?code, "rpc failed");
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// Whether `code` is the server's failure rather than an answer about the request (the
/// OpenTelemetry convention for gRPC server spans).
fn is_server_error(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// Whether a trailers-only error answer is tonic's "message too large" refusal.
fn is_oversize<B>(response: &http::Response<B>) -> bool {
    response
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        // grpc-message is percent-encoded on the wire.
        .is_some_and(|m| m.replace("%20", " ").contains("message length too large"))
}

fn new_request_id() -> String {
    use rand::Rng as _;
    format!("{:032x}", rand::rng().random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_served_methods_are_labelled_by_name() {
        let methods = KnownMethods::from_descriptor_sets(&[
            crate::grpc::v1::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ])
        .expect("descriptors decode");
        for (known, service, method, grpc_type) in [
            (
                "/tokend.v1.TokenService/IssueToken",
                "tokend.v1.TokenService",
                "IssueToken",
                "unary",
            ),
            (
                "/tokend.v1.TokenService/GetKubeconfig",
                "tokend.v1.TokenService",
                "GetKubeconfig",
                "unary",
            ),
            (
                "/grpc.health.v1.Health/Check",
                "grpc.health.v1.Health",
                "Check",
                "unary",
            ),
            (
                "/grpc.health.v1.Health/Watch",
                "grpc.health.v1.Health",
                "Watch",
                "server_stream",
            ),
        ] {
            let labels = methods.labels(known);
            assert_eq!(
                (
                    labels.grpc_service.as_str(),
                    labels.grpc_method.as_str(),
                    labels.grpc_type
                ),
                (service, method, grpc_type)
            );
        }
        for unknown in [
            "/tokend.v1.TokenService/Nope",
            "/x",
            "/",
            "/grpc.health.v1.Health/",
        ] {
            assert_eq!(methods.labels(unknown), RpcMethod::unknown());
        }
    }
}
