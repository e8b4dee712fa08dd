//! Lists namespaces with a `kube::Client` whose credentials come from tokend and stay fresh.
//!
//! ```sh
//! TOKEND_ADDR=http://127.0.0.1:50051 TOKEND_TARGET=team-a/reader \
//!   cargo run -p tokend-client --features kube --example list_namespaces
//! ```
//!
//! The ServiceAccount needs `list` on namespaces (e.g. `tokenctl issue team-a/reader --create-sa
//! --role view --scope cluster` once). The cluster and its CA come from the usual kubeconfig
//! ($KUBECONFIG or ~/.kube/config, or the in-cluster config); its credentials are not used.
//! `TOKEND_TOKEN` authenticates to tokend when set.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use tokend_client::{RenewalPolicy, TokenSource, TokendClient, v1};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("TOKEND_ADDR").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let target = std::env::var("TOKEND_TARGET").unwrap_or_else(|_| "default/reader".into());
    let (namespace, service_account) = target
        .split_once('/')
        .ok_or("TOKEND_TARGET must be NAMESPACE/SERVICEACCOUNT")?;
    let mut builder = TokendClient::builder(addr);
    if let Ok(token) = std::env::var("TOKEND_TOKEN") {
        builder = builder.bearer_token(token);
    }
    let source = TokenSource::start(
        builder.connect().await?,
        v1::IssueTokenRequest {
            namespace: namespace.into(),
            service_account: service_account.into(),
            duration: "10m".into(),
            ..Default::default()
        },
        RenewalPolicy {
            revoke_on_shutdown: true,
            ..Default::default()
        },
    )
    .await?;
    let client = source.kube_client(kube::Config::infer().await?)?;
    let page = Api::<Namespace>::all(client)
        .list(&ListParams::default().limit(500))
        .await?;
    for ns in page.items {
        println!("{}", ns.metadata.name.unwrap_or_default());
    }
    source.shutdown().await?;
    Ok(())
}
