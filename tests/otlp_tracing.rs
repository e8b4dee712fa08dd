//! OpenTelemetry tracing end to end: `tokend serve` started as its own process with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a small OTLP/gRPC collector run by this test, called
//! through the client crate with a W3C `traceparent`. The spans the collector receives join the
//! caller's trace, the Kubernetes calls are children of the request's span, and tokend's JSON
//! log lines name the trace.

use tokend_test_support as common;

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::io::AsyncBufReadExt as _;

/// An OTLP trace collector keeping every span it is sent, with its service name.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self
            .spans
            .lock()
            .map_err(|_| tonic::Status::internal("poisoned"))?;
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    kept.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves the collector on a loopback port, over TLS with `identity` (certificate and key
    /// PEM) when given; answers its address.
    async fn start(&self, identity: Option<(String, String)>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let service = TraceServiceServer::new(self.clone());
        let mut server = tonic::transport::Server::builder();
        if let Some((cert, key)) = identity {
            server = server
                .tls_config(
                    tonic::transport::ServerTlsConfig::new()
                        .identity(tonic::transport::Identity::from_pem(cert, key)),
                )
                .expect("TLS config");
        }
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = server
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        addr
    }

    /// Every span name received so far.
    fn names(&self) -> Vec<String> {
        self.spans
            .lock()
            .map(|spans| spans.iter().map(|(_, s)| s.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The spans of trace `trace_id` received so far.
    fn trace(&self, trace_id: &[u8]) -> Vec<(String, Span)> {
        self.spans
            .lock()
            .map(|spans| {
                spans
                    .iter()
                    .filter(|(_, s)| s.trace_id == trace_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_callers_trace_continues_through_tokend_into_its_kubernetes_calls() {
    // Given an OTLP collector, and tokend exporting to it, as its own process.
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let collector = Collector::default();
    let collector_addr = collector.start(None).await;
    let (mut server, endpoint, logs) = spawn_tokend(
        &env,
        &[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        )],
    )
    .await;
    let client = connect(&endpoint).await;

    // (A health probe first: probes are logged, not traced.)
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health answers");

    // When a caller in trace T, span P, issues a token.
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let parent_id = format!("{:016x}", rand::random::<u64>() | 1);
    let mut request = tonic::Request::new(common::issue(&ns, "traced"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01")
            .parse()
            .expect("ascii"),
    );
    client
        .inner()
        .issue_token(request)
        .await
        .expect("IssueToken");

    // Then the collector receives tokend's server span in T under P, and the Kubernetes calls'
    // spans as its children (the TokenRequest among them).
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let received = || {
        let spans = collector.trace(&trace_bytes);
        let rpc = spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.name == "tokend.v1.TokenService/IssueToken")?
            .clone();
        let children: Vec<Span> = spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.parent_span_id == rpc.span_id)
            .cloned()
            .collect();
        children
            .iter()
            .any(|s| s.name == "POST serviceaccounts/token")
            .then_some((rpc, children))
    };
    let (rpc, children) =
        common::eventually_some("the spans reach the collector", || async { Ok(received()) })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{e}; received: {:?}",
                    collector
                        .trace(&trace_bytes)
                        .iter()
                        .map(|(_, s)| (&s.name, hex(&s.span_id), hex(&s.parent_span_id)))
                        .collect::<Vec<_>>()
                )
            });
    assert_eq!(
        hex(&rpc.parent_span_id),
        parent_id,
        "the caller's span is the parent"
    );
    assert_eq!(rpc.kind, SpanKind::Server as i32);
    for child in &children {
        assert_eq!(child.kind, SpanKind::Client as i32, "{}", child.name);
        assert!(
            child.start_time_unix_nano >= rpc.start_time_unix_nano
                && child.end_time_unix_nano <= rpc.end_time_unix_nano,
            "{} lies within the request",
            child.name
        );
    }
    let all = collector.names();
    assert!(
        !all.iter()
            .any(|name| name.starts_with("grpc.health.v1.Health/")),
        "the health probe, which ended before the issue began, was not traced: {all:?}"
    );
    let services: Vec<String> = collector
        .trace(&trace_bytes)
        .into_iter()
        .map(|(service, _)| service)
        .collect();
    assert!(
        services.iter().all(|s| s == "tokend-under-test"),
        "OTEL_SERVICE_NAME names the service: {services:?}"
    );

    // And tokend's JSON log lines of that call carry the trace id; none holds an escape code.
    common::eventually("a log line names the trace", || async {
        logs.lock()
            .map(|l| {
                l.iter().any(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .is_ok_and(|event| event["trace_id"] == trace_id.as_str())
                })
            })
            .unwrap_or(false)
    })
    .await;
    let logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
    for line in &logs {
        assert!(!line.contains('\u{1b}'), "an ANSI escape in {line:?}");
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
    let _ = server.kill().await;
}

/// Starts `tokend serve` as its own process against the test backend, exporting traces as the
/// `otel` variables say; answers the process, its gRPC endpoint and its stderr lines so far.
async fn spawn_tokend(
    env: &common::TestEnv,
    otel: &[(&str, String)],
) -> (tokio::process::Child, String, Arc<Mutex<Vec<String>>>) {
    let port = {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokend"));
    command
        .args(["serve", "--auth", "none", "--insecure-no-auth"])
        .args(["--sweep-interval", "0", "--log-format", "json"])
        // Its record key in a namespace every backend has.
        .args(["--lease-namespace", "default"])
        .arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("OTEL_SERVICE_NAME", "tokend-under-test")
        // Batches go out every 100 ms instead of every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    for (name, value) in otel {
        command.env(name, value);
    }
    let mut server = command.spawn().expect("start tokend");
    let logs = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut lines = tokio::io::BufReader::new(server.stderr.take().expect("stderr")).lines();
    let kept = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut kept) = kept.lock() {
                kept.push(line);
            }
        }
    });
    (server, format!("http://127.0.0.1:{port}"), logs)
}

/// A client of the tokend at `endpoint`, once it accepts connections.
async fn connect(endpoint: &str) -> tokend_client::TokendClient {
    common::eventually_some("tokend accepts connections", || async {
        Ok(tokend_client::TokendClient::connect(endpoint.to_owned())
            .await
            .ok())
    })
    .await
    .expect("tokend starts")
}

#[tokio::test]
async fn spans_go_to_an_https_collector_trusted_through_otel_exporter_otlp_certificate() {
    // Given a collector serving TLS with a certificate from a CA of its own, and tokend told to
    // trust that CA through OTEL_EXPORTER_OTLP_CERTIFICATE.
    let env = common::start().await;
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("leaf");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("collector-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).expect("write CA");
    let collector = Collector::default();
    let addr = collector
        .start(Some((leaf.pem(), key.serialize_pem())))
        .await;
    let port = addr.rsplit(':').next().expect("port");
    let (mut server, endpoint, _logs) = spawn_tokend(
        &env,
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("https://localhost:{port}"),
            ),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                ca_file.display().to_string(),
            ),
        ],
    )
    .await;

    // When a call is made, then its span arrives over TLS.
    let client = connect(&endpoint).await;
    client
        .list_tokens(tokend_client::v1::ListTokensRequest {
            namespace: "default".into(),
            ..Default::default()
        })
        .await
        .expect("ListTokens");
    common::eventually("the span arrives over TLS", || async {
        collector
            .names()
            .iter()
            .any(|n| n == "tokend.v1.TokenService/ListTokens")
    })
    .await;
    let _ = server.kill().await;
}
