//! What an unauthenticated client can make tokend hold is bounded: HTTP/2 streams per connection
//! (advertised and enforced), half-open calls (answered when --request-timeout passes), and the
//! health service keeps answering meanwhile. Nothing here depends on the backend.

mod common;

use std::time::Duration;

use bytes::Bytes;
use tokend::config::AuthMode;
use tokend::server::{ConnectionLimits, ServerOptions};
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
