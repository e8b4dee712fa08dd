//! Throughput of the emulator's TokenRequest and TokenReview over HTTPS with a kube-rs client, at
//! concurrency 1 and 16, for a bounded number of requests. Prints requests per second.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use kube_emulator::Emulator;
use serde_json::{Value, json};

const REQUESTS: usize = 400;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn request_token(api: &Api<ServiceAccount>, secret_uid: &str) -> Result<String, BoxError> {
    let spec: TokenRequestSpec = serde_json::from_value(json!({
        "audiences": [],
        "expirationSeconds": 3600,
        "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "bench", "uid": secret_uid},
    }))?;
    let tr = TokenRequest {
        spec: Some(spec),
        ..TokenRequest::default()
    };
    let out: TokenRequest = api
        .create_subresource("token", "bench", &PostParams::default(), &tr)
        .await?;
    Ok(out.status.and_then(|s| s.token).unwrap_or_default())
}

async fn review(client: &kube::Client, token: &str) -> Result<(), BoxError> {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let req = http::Request::post("/apis/authentication.k8s.io/v1/tokenreviews")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)?;
    let answer: Value = client.request(req).await?;
    if answer["status"]["authenticated"] != true {
        return Err("a valid token was not authenticated".into());
    }
    Ok(())
}

async fn measure<F, Fut>(concurrency: usize, op: F) -> Result<f64, BoxError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    let start = Instant::now();
    let results: Vec<Result<(), BoxError>> = stream::iter(0..REQUESTS)
        .map(|_| op())
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = start.elapsed().max(Duration::from_micros(1));
    for r in results {
        r?;
    }
    Ok(REQUESTS as f64 / elapsed.as_secs_f64())
}

async fn run() -> Result<(), BoxError> {
    let emulator = Emulator::start().await?;
    let client = emulator.client().await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "bench"}}))?,
    )
    .await?;
    let secret = Api::<Secret>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "bench"}}))?,
        )
        .await?;
    let secret_uid = secret.metadata.uid.unwrap_or_default();
    let token = request_token(&sas, &secret_uid).await?;

    println!("kube-emulator throughput over HTTPS, kube-rs client, {REQUESTS} requests per run");
    for concurrency in [1, 16] {
        let rate = measure(concurrency, || async {
            request_token(&sas, &secret_uid).await.map(|_| ())
        })
        .await?;
        println!("TokenRequest  concurrency {concurrency:>2}: {rate:>8.0} req/s");
    }
    for concurrency in [1, 16] {
        let rate = measure(concurrency, || review(&client, &token)).await?;
        println!("TokenReview   concurrency {concurrency:>2}: {rate:>8.0} req/s");
    }
    emulator.shutdown().await;
    Ok(())
}

fn main() -> Result<(), BoxError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
