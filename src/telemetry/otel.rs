//! OpenTelemetry tracing: the tracer provider (exporting over OTLP/gRPC when the standard
//! `OTEL_*` variables ask for it), and W3C Trace Context (`traceparent`) taken from incoming
//! gRPC requests and put on outgoing Kubernetes API requests.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Why spans are or are not exported, decided from the environment at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// No `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: spans are made
    /// (so logs carry trace ids) but go nowhere.
    Off,
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
    Disabled,
    /// OTLP over gRPC to the configured endpoint.
    Otlp,
    /// The configuration asks for something tokend cannot do; the reason is logged at start.
    Unusable(String),
}

/// The variables read here (the exporter itself reads the endpoint, headers, timeout and
/// compression; the SDK reads the sampler, batch and resource variables).
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// What the environment asks for.
pub fn export_from_env() -> Export {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Export::Disabled;
    }
    if let Some(exporter) = env("OTEL_TRACES_EXPORTER") {
        match exporter.as_str() {
            "none" => return Export::Disabled,
            "otlp" => {}
            other => {
                return Export::Unusable(format!(
                    "OTEL_TRACES_EXPORTER={other}: tokend exports traces over OTLP only"
                ));
            }
        }
    }
    if env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Export::Off;
    }
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "grpc".into());
    if protocol != "grpc" {
        return Export::Unusable(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: tokend speaks OTLP over gRPC only (grpc)"
        ));
    }
    Export::Otlp
}

/// The tracer provider: batching to an OTLP/gRPC exporter when `export` is [`Export::Otlp`]
/// (endpoint, headers, timeout from the `OTEL_EXPORTER_OTLP_*` variables; sampler from
/// `OTEL_TRACES_SAMPLER`; batching from `OTEL_BSP_*`; resource from `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`, with `service.name` `tokend` by default), else exporting nothing.
/// Must run inside the Tokio runtime: the exporter's channel lives on it. Also installs W3C
/// Trace Context as the global propagator.
pub fn tracer_provider(export: &Export) -> Result<SdkTracerProvider, String> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named_in_env = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    if !named_in_env {
        resource = resource.with_service_name("tokend");
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let builder = match export {
        Export::Otlp => {
            use opentelemetry_otlp::WithTonicConfig as _;
            let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if let Some(tls) = tls_config()? {
                exporter = exporter.with_tls_config(tls);
            }
            let exporter = exporter
                .build()
                .map_err(|e| format!("the OTLP exporter: {e}"))?;
            builder.with_batch_exporter(exporter)
        }
        Export::Off | Export::Disabled | Export::Unusable(_) => builder,
    };
    Ok(builder.build())
}

/// A traces setting: `OTEL_EXPORTER_OTLP_TRACES_<NAME>`, else `OTEL_EXPORTER_OTLP_<NAME>`.
fn traces_setting(name: &str) -> Option<String> {
    env(&format!("OTEL_EXPORTER_OTLP_TRACES_{name}"))
        .or_else(|| env(&format!("OTEL_EXPORTER_OTLP_{name}")))
}

/// TLS for an `https://` endpoint: trusting the CA file of `OTEL_EXPORTER_OTLP_CERTIFICATE`,
/// else the system's CA certificates, and presenting the client certificate of
/// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` / `_CLIENT_KEY` when both are set (each also as
/// `OTEL_EXPORTER_OTLP_TRACES_*`). None for a plaintext endpoint.
fn tls_config() -> Result<Option<tonic::transport::ClientTlsConfig>, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let https = traces_setting("ENDPOINT").is_some_and(|e| e.starts_with("https://"));
    if !https {
        return Ok(None);
    }
    let read = |what: &str, path: String| {
        std::fs::read(&path).map_err(|e| format!("OTEL_EXPORTER_OTLP_{what} {path}: {e}"))
    };
    let tls = match traces_setting("CERTIFICATE") {
        Some(path) => {
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("CERTIFICATE", path)?))
        }
        None => ClientTlsConfig::new().with_native_roots(),
    };
    match (
        traces_setting("CLIENT_CERTIFICATE"),
        traces_setting("CLIENT_KEY"),
    ) {
        (Some(cert), Some(key)) => Ok(Some(tls.identity(Identity::from_pem(
            read("CLIENT_CERTIFICATE", cert)?,
            read("CLIENT_KEY", key)?,
        )))),
        (None, None) => Ok(Some(tls)),
        _ => Err(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together"
                .into(),
        ),
    }
}

/// Makes the W3C trace context a caller sent (`traceparent`, `tracestate`) the parent of
/// `span`, and records the span's trace id in its `trace_id` field (so log lines inside it name
/// the trace). Without a valid `traceparent` the span starts a trace of its own.
pub fn adopt_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderMap(headers)));
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed (tests running the server
        // in-process) or the span is disabled: then there is no trace to join.
        let _ = span.set_parent(parent);
    }
    record_trace_id(span);
}

/// Records `span`'s OpenTelemetry trace id in its `trace_id` field, when it has one.
pub fn record_trace_id(span: &tracing::Span) {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
    }
}

/// Writes `span`'s trace context into `headers` as `traceparent` (and `tracestate`), so a
/// traced API server continues the trace.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    if context.span().span_context().is_valid() {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut HeaderMapMut(headers));
        });
    }
}

/// Reads propagation headers from an HTTP header map.
struct HeaderMap<'a>(&'a http::HeaderMap);

impl Extractor for HeaderMap<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes propagation headers into an HTTP header map.
struct HeaderMapMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderMapMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
