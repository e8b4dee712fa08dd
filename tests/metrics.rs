//! The Prometheus endpoint: after a known number of RPCs, the counters say so.

use tokend_test_support as common;

use tokend_client::v1;

/// The value of the sample line that starts with `series` (name and labels, as exported).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line[series.len()..].trim().parse().ok())
}

#[tokio::test]
async fn counters_follow_the_rpcs_made() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let issue = v1::IssueTokenRequest {
        namespace: ns.clone(),
        service_account: "counted".into(),
        create_service_account: true,
        ..Default::default()
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            client
                .issue_token(issue.clone())
                .await
                .expect("issue")
                .token_id,
        );
    }
    client
        .revoke_token(v1::RevokeTokenRequest {
            target: Some(v1::revoke_token_request::Target::TokenId(ids[0].clone())),
        })
        .await
        .expect("revoke");
    let bad = v1::IssueTokenRequest {
        duration: "1.5h".into(),
        ..issue
    };
    assert!(client.issue_token(bad).await.is_err());

    let text = env.scrape_metrics().await;
    let issue_method = "/tokend.v1.TokenService/IssueToken";
    assert_eq!(
        value(&text, "tokend_tokens_issued_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "tokend_tokens_revoked_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("tokend_grpc_requests_total{{method=\"{issue_method}\",code=\"Ok\"}}")
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!(
                "tokend_grpc_requests_total{{method=\"{issue_method}\",code=\"InvalidArgument\"}}"
            )
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "tokend_kube_requests_total{verb=\"POST\",resource=\"serviceaccounts/token\",status=\"201\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("tokend_grpc_request_duration_seconds_count{{method=\"{issue_method}\"}}")
        ),
        Some(4.0),
        "{text}"
    );
}

#[tokio::test]
async fn every_response_carries_its_request_id() {
    let env = common::start().await;
    let client = env.client().await;
    let mut raw = client.inner();
    let mut request = tonic::Request::new(v1::ListTokensRequest {
        namespace: "default".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-42".parse().expect("ascii"));
    let response = raw.list_tokens(request).await.expect("ListTokens");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-42")
    );

    let failed = raw
        .get_token(v1::GetTokenRequest {
            token_id: "nonsense".into(),
        })
        .await
        .expect_err("bad id");
    let generated = failed
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(
        generated.len(),
        32,
        "a fresh id is made when the caller sends none: {generated:?}"
    );
}

/// Number of exported series of the metric family `family` (sample lines with labels).
fn series(text: &str, family: &str) -> usize {
    text.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")))
        .count()
}

/// One unary gRPC call to `path`, which tokend does not serve, as any gRPC client can make it.
async fn call_path(channel: tonic::transport::Channel, path: &str) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        panic!("channel not ready: {e}");
    }
    let path = http::uri::PathAndQuery::try_from(path).expect("a path");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(tonic::Request::new(()), path, codec).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn requests_to_unknown_paths_add_no_metric_series() {
    let env = common::start().await;
    let channel = tonic::transport::Endpoint::from_shared(env.endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    // Given every series a known method can have, and its scrape.
    assert_eq!(
        call_path(channel.clone(), "/grpc.health.v1.Health/Check").await,
        tonic::Code::Ok
    );
    assert_eq!(
        call_path(channel.clone(), "/tokend.v1.TokenService/Nope").await,
        tonic::Code::Unimplemented
    );
    let before = env.scrape_metrics().await;

    // When an unauthenticated client calls 500 paths tokend does not serve, some of them long.
    for i in 0..500 {
        let path = match i % 3 {
            0 => format!("/{}/{i}", common::unique_name("svc")),
            1 => format!("/tokend.v1.TokenService/{}", common::unique_name("m")),
            _ => format!("/{}", "x".repeat(2_000 + i)),
        };
        assert_eq!(
            call_path(channel.clone(), &path).await,
            tonic::Code::Unimplemented,
            "{path}"
        );
    }

    // Then no family has a series more than before, and they are all counted as `unknown`.
    let after = env.scrape_metrics().await;
    for family in [
        "tokend_grpc_requests_total",
        "tokend_grpc_request_duration_seconds_count",
        "tokend_grpc_request_duration_seconds_bucket",
    ] {
        assert_eq!(
            series(&after, family),
            series(&before, family),
            "{family}: {after}"
        );
    }
    assert_eq!(
        value(
            &after,
            "tokend_grpc_requests_total{method=\"unknown\",code=\"Unimplemented\"}"
        ),
        Some(501.0),
        "{after}"
    );
    // (Only the gRPC families: the health watcher's Kubernetes calls may add their own series
    // meanwhile, bounded by the resources tokend knows.)
    let grpc_bytes = |scrape: &str| -> usize {
        scrape
            .lines()
            .filter(|l| l.starts_with("tokend_grpc_"))
            .map(str::len)
            .sum()
    };
    assert!(
        grpc_bytes(&after) < grpc_bytes(&before) + 1_000,
        "the gRPC series stay the same size: {} → {} bytes",
        grpc_bytes(&before),
        grpc_bytes(&after)
    );
}
