//! What an unauthenticated client can make tokend hold or spend is bounded: HTTP/2 streams per
//! connection (advertised and enforced), half-open calls (answered when --request-timeout
//! passes), TokenReviews caused by garbage bearer tokens; health and legitimate callers keep
//! being answered meanwhile. Runs against the emulator or, unchanged, a real cluster.

use tokend_test_support as common;

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::Subject;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokend::config::AuthMode;
use tokend::server::{ConnectionLimits, ServerOptions};
use tokend_client::TokendClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The health check, asked on a connection of its own.
async fn health(env: &common::TestEnv) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(env.endpoint.clone())
        .ok()?
        .connect()
        .await
        .ok()?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .ok()?;
    ServingStatus::try_from(answer.into_inner().status).ok()
}

/// A gRPC health Check whose headers are sent and whose body never is.
fn half_open_check(addr: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request")
}

#[tokio::test]
async fn streams_beyond_the_advertised_limit_are_refused_and_half_open_calls_time_out() {
    const LIMIT: u32 = 16;
    let env = common::start_with(ServerOptions {
        auth: AuthMode::None,
        limits: ConnectionLimits {
            max_concurrent_streams: LIMIT,
            request_timeout: Duration::from_secs(2),
            ..ConnectionLimits::default()
        },
        ..ServerOptions::default()
    })
    .await;
    common::eventually("tokend serves", || async {
        health(&env).await == Some(ServingStatus::Serving)
    })
    .await;

    // Given a raw HTTP/2 client that, before it has read the server's SETTINGS, opens 3 × the
    // limit of streams, sending only their headers.
    let tcp = tokio::net::TcpStream::connect(&env.addr)
        .await
        .expect("connect");
    let (mut h2, connection) = h2::client::Builder::new()
        .initial_max_send_streams(1_000)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("HTTP/2 handshake");
    let mut responses = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..3 * LIMIT {
        let (response, body) = h2
            .send_request(half_open_check(&env.addr), false)
            .expect("stream opened on the client side");
        responses.push(response);
        bodies.push(body);
    }
    tokio::spawn(async move {
        let _ = connection.await;
    });

    // Then the server advertises its limit...
    common::eventually("SETTINGS_MAX_CONCURRENT_STREAMS is advertised", || {
        let advertised = h2.current_max_send_streams();
        async move { advertised == LIMIT as usize }
    })
    .await;
    // ...health still answers on another connection while these streams are held...
    assert_eq!(health(&env).await, Some(ServingStatus::Serving));
    // ...the streams over the limit are refused, and the held ones are answered
    // DEADLINE_EXCEEDED once --request-timeout passes, not kept for ever.
    let answers = tokio::time::timeout(
        Duration::from_secs(10),
        futures::future::join_all(responses),
    )
    .await
    .expect("every stream is answered or refused within the request timeout");
    let mut refused = 0;
    let mut timed_out = 0;
    for answer in answers {
        match answer {
            Err(e) if e.reason() == Some(h2::Reason::REFUSED_STREAM) => refused += 1,
            Ok(response) => {
                let status = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                assert_eq!(status.as_deref(), Some("4"), "DEADLINE_EXCEEDED");
                timed_out += 1;
            }
            Err(e) => panic!("unexpected stream error: {e}"),
        }
    }
    assert_eq!(refused, 2 * LIMIT, "streams over the limit are refused");
    assert_eq!(
        timed_out, LIMIT,
        "the held streams are answered at the timeout"
    );
    drop(bodies);
    assert_eq!(health(&env).await, Some(ServingStatus::Serving));
}

/// TokenReviews tokend has sent, whatever their answer.
async fn token_reviews(env: &common::TestEnv) -> f64 {
    env.scrape_metrics()
        .await
        .lines()
        .filter(|line| {
            line.starts_with("tokend_kube_requests_total{")
                && line.contains("resource=\"tokenreviews\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A ServiceAccount of the backend allowed to issue tokens in `ns`, and a token of it.
async fn legitimate_caller(env: &common::TestEnv, ns: &str) -> String {
    let name = common::unique_name("caller");
    let accounts = Api::<ServiceAccount>::namespaced(env.kube.clone(), ns);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("caller account");
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: name.clone(),
        namespace: Some(ns.into()),
        api_group: None,
    };
    common::grant(env, ns, subject, vec![common::issue_rule()]).await;
    let answer: TokenRequest = accounts
        .create_subresource(
            "token",
            &name,
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .expect("TokenRequest");
    answer.status.and_then(|s| s.token).expect("token")
}

#[tokio::test]
async fn a_garbage_token_flood_costs_a_bounded_number_of_token_reviews() {
    const LIMIT: u32 = 20;
    let env = common::start_with(ServerOptions {
        auth: AuthMode::Kubernetes,
        auth_failure_limit: tokend::server::authn::FailureLimit {
            per_peer: LIMIT,
            window: Duration::from_secs(60),
        },
        ..ServerOptions::default()
    })
    .await;
    let ns = env.fresh_namespace().await;
    // Given a legitimate caller that has been answered lately.
    let token = legitimate_caller(&env, &ns).await;
    let legitimate = TokendClient::builder(env.endpoint.clone())
        .bearer_token(token)
        .connect()
        .await
        .expect("connect");
    common::eventually("the legitimate caller may issue", || async {
        legitimate
            .issue_token(common::issue(&ns, "app"))
            .await
            .is_ok()
    })
    .await;
    let reviews_before = token_reviews(&env).await;

    // When a client sends one garbage token 100 times...
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "garbage-0").expect("write token");
    let flooder = TokendClient::builder(env.endpoint.clone())
        .token_file(&token_file)
        .connect()
        .await
        .expect("connect");
    for _ in 0..100 {
        common::assert_code(
            flooder.issue_token(common::issue(&ns, "app")).await,
            Code::Unauthenticated,
            "rejected",
        );
    }
    // ...it costs one review, the answer being reused.
    assert_eq!(token_reviews(&env).await - reviews_before, 1.0);

    // And when it sends 300 different garbage tokens, it is refused after the limit, before any
    // review.
    let mut throttled = 0;
    for i in 1..=300 {
        std::fs::write(
            &token_file,
            format!("garbage-{i}-{}", common::unique_name("t")),
        )
        .expect("write token");
        match flooder.issue_token(common::issue(&ns, "app")).await {
            Err(e) if e.code() == Code::Unauthenticated => {}
            Err(e) if e.code() == Code::ResourceExhausted => {
                assert!(e.message().contains("too many failed"), "{}", e.message());
                throttled += 1;
            }
            other => panic!("a garbage token must be refused, got {other:?}"),
        }
    }
    let reviews = token_reviews(&env).await - reviews_before;
    assert!(
        reviews <= f64::from(LIMIT),
        "{reviews} TokenReviews for 400 garbage calls; at most {LIMIT} expected"
    );
    assert!(throttled >= 300 - LIMIT as usize, "{throttled} throttled");

    // Then health and the legitimate caller are still answered.
    assert_eq!(health(&env).await, Some(ServingStatus::Serving));
    legitimate
        .issue_token(common::issue(&ns, "app"))
        .await
        .expect("the legitimate caller still issues");
}

/// A free loopback port.
/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmHWM")
}

/// `count` unary calls to paths tokend does not serve, on one connection from 127.0.0.4.
async fn unknown_paths(endpoint: String, count: usize) {
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .expect("endpoint")
        .local_address(Some([127, 0, 0, 4].into()))
        .connect()
        .await
        .expect("connect");
    for i in 0..count {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("ready");
        let path = format!("/{}/{i}", common::unique_name("svc"));
        let path = http::uri::PathAndQuery::try_from(path.as_str()).expect("path");
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let answer = grpc.unary(tonic::Request::new(()), path, codec).await;
        assert_eq!(
            answer.map(drop).map_err(|s| s.code()),
            Err(Code::Unimplemented)
        );
    }
}

/// `streams` half-open health checks on a connection of their own from 127.0.0.3, held until
/// tokend answers them at its request timeout; a connection tokend refuses (too many from this
/// address) ends early. Answers how many streams tokend took.
async fn half_open_streams(addr: String, streams: usize) -> usize {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.3:0".parse().expect("addr"))
        .expect("bind 127.0.0.3");
    let Ok(tcp) = socket.connect(addr.parse().expect("addr")).await else {
        return 0;
    };
    let Ok((mut h2, connection)) = h2::client::Builder::new()
        .initial_max_send_streams(streams)
        .handshake::<_, Bytes>(tcp)
        .await
    else {
        return 0;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut held = Vec::new();
    for _ in 0..streams {
        match h2.send_request(half_open_check(&addr), false) {
            Ok(stream) => held.push(stream),
            Err(_) => break,
        }
    }
    let mut answered = 0;
    for (response, _body) in held {
        if response.await.is_ok() {
            answered += 1;
        }
    }
    answered
}

/// `count` calls, each with a garbage token of its own, from another loopback address than the
/// legitimate caller's (127.0.0.2), as an attacker elsewhere would call.
async fn garbage_tokens(endpoint: String, count: usize) {
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .expect("endpoint")
        .local_address(Some([127, 0, 0, 2].into()))
        .connect()
        .await
        .expect("connect from 127.0.0.2");
    for i in 0..count {
        let client = TokendClient::with_channel(channel.clone(), Some(&format!("garbage-{i}")))
            .expect("client");
        let answer = client
            .list_tokens(tokend_client::v1::ListTokensRequest {
                namespace: "default".into(),
                ..Default::default()
            })
            .await;
        let code = answer.map(drop).map_err(|e| e.code());
        assert!(
            matches!(code, Err(Code::Unauthenticated | Code::ResourceExhausted)),
            "{code:?}"
        );
    }
}

#[tokio::test]
async fn under_hostile_load_tokend_answers_health_and_callers_and_stays_under_64_mib() {
    // Given tokend running as its own process (so its memory can be read), with a legitimate
    // caller it has answered.
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let port = common::free_port();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["serve", "--sweep-interval", "0", "--request-timeout", "5s"])
        // Its record key in a namespace every backend has.
        .args(["--lease-namespace", "default"])
        .arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start tokend");
    let pid = server.id().expect("pid");
    let endpoint = format!("http://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    let token = legitimate_caller(&env, &ns).await;
    common::eventually("tokend accepts connections", || async {
        tokio::net::TcpStream::connect(&addr).await.is_ok()
    })
    .await;
    let legitimate = TokendClient::builder(endpoint.clone())
        .bearer_token(token)
        .connect()
        .await
        .expect("connect");
    common::eventually("the legitimate caller may issue", || async {
        legitimate
            .issue_token(common::issue(&ns, "app"))
            .await
            .is_ok()
    })
    .await;

    // When, at once, 20,000 calls go to unknown paths, 100 connections hold 100 half-open
    // streams each, and 2,000 calls carry garbage tokens.
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let endpoint = endpoint.clone();
        load.spawn(async move {
            unknown_paths(endpoint, 5_000).await;
            0
        });
    }
    for _ in 0..100 {
        load.spawn(half_open_streams(addr.clone(), 100));
    }
    let flood_endpoint = endpoint.clone();
    load.spawn(async move {
        garbage_tokens(flood_endpoint, 2_000).await;
        0
    });
    let health_channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    // Then, meanwhile, health and the legitimate caller are answered...
    let answered = HealthClient::new(health_channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("health during the load")
        .into_inner()
        .status;
    assert_eq!(
        ServingStatus::try_from(answered),
        Ok(ServingStatus::Serving)
    );
    legitimate
        .issue_token(common::issue(&ns, "app"))
        .await
        .expect("the legitimate caller issues during the load");
    let mut held = 0;
    while let Some(done) = load.join_next().await {
        held += done.expect("a load task");
    }
    eprintln!("half-open streams tokend took (and answered at its timeout): {held} of 10000");
    let per_address = ConnectionLimits::default();
    assert!(
        held <= per_address.max_connections_per_address
            * per_address.max_concurrent_streams as usize,
        "one address held {held} streams"
    );
    legitimate
        .issue_token(common::issue(&ns, "app"))
        .await
        .expect("the legitimate caller issues after the load");

    // ...and tokend's memory stayed small throughout.
    let peak = peak_rss(pid);
    eprintln!(
        "tokend peak RSS under hostile load: {:.1} MiB",
        peak as f64 / 1048576.0
    );
    assert!(
        peak < 64 * 1024 * 1024,
        "peak RSS {:.1} MiB is over 64 MiB",
        peak as f64 / 1048576.0
    );
    let _ = server.kill().await;
}
