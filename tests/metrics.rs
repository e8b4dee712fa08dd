//! The Prometheus endpoint: after a known number of RPCs, the counters say so, under
//! go-grpc-prometheus' names; `tokend_build_info` and the `process_*` family are there.

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
    let issue_method =
        "grpc_service=\"tokend.v1.TokenService\",grpc_method=\"IssueToken\",grpc_type=\"unary\"";
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
            &format!("grpc_server_handled_total{{{issue_method},grpc_code=\"OK\"}}")
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("grpc_server_handled_total{{{issue_method},grpc_code=\"InvalidArgument\"}}")
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
            &format!("grpc_server_handling_seconds_count{{{issue_method}}}")
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("grpc_server_started_total{{{issue_method}}}")
        ),
        Some(4.0),
        "{text}"
    );
    // The standard buckets dashboards name exist.
    assert!(
        text.contains(&format!(
            "grpc_server_handling_seconds_bucket{{le=\"0.5\",{issue_method}}}"
        )) || text.contains(&format!(
            "grpc_server_handling_seconds_bucket{{{issue_method},le=\"0.5\"}}"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn build_info_and_process_metrics_are_exported() {
    let env = common::start().await;
    let text = env.scrape_metrics().await;
    // What build.rs recorded: the compiler that built this very test, the profile, and the
    // commit the builder named (none here: `unknown`).
    let build = format!(
        "tokend_build_info{{version=\"{}\",build=\"dev\",commit=\"{}\",rustc=\"{}\",profile=\"debug\"}}",
        env!("CARGO_PKG_VERSION"),
        env!("TOKEND_BUILD_COMMIT"),
        rustc_version(),
    );
    assert_eq!(value(&text, &build), Some(1.0), "{text}");
    // tokend runs in this test's process here, so its figures are this process's.
    for (series, at_least) in [
        ("process_cpu_seconds_total", 0.0),
        ("process_resident_memory_bytes", 1_000_000.0),
        ("process_virtual_memory_bytes", 1_000_000.0),
        ("process_open_fds", 3.0),
        ("process_max_fds", 3.0),
        ("process_threads", 1.0),
        ("process_start_time_seconds", 1.0e9),
    ] {
        let got = value(&text, series).unwrap_or_else(|| panic!("{series} missing: {text}"));
        assert!(got >= at_least, "{series} = {got}");
    }
    let started = value(&text, "process_start_time_seconds").unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && started > now - 3_600.0,
        "the process started within the hour: {started} vs now {now}"
    );
    // And the Kubernetes API reachability the health watcher measures.
    common::eventually("the health check reaches the API", || async {
        value(&env.scrape_metrics().await, "tokend_kube_api_reachable") == Some(1.0)
    })
    .await;
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
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_count",
        "grpc_server_handling_seconds_bucket",
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
            "grpc_server_handled_total{grpc_service=\"unknown\",grpc_method=\"unknown\",grpc_type=\"unknown\",grpc_code=\"Unimplemented\"}"
        ),
        Some(501.0),
        "{after}"
    );
    // (Only the gRPC families: the health watcher's Kubernetes calls may add their own series
    // meanwhile, bounded by the resources tokend knows.)
    let grpc_bytes = |scrape: &str| -> usize {
        scrape
            .lines()
            .filter(|l| l.starts_with("grpc_server_"))
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

/// `rustc --version` of the compiler cargo uses, as build.rs asks it.
fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .expect("run rustc --version");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}
