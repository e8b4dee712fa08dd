//! `tokend dev` and `tokend emulator`: tokend against the embedded Kubernetes API emulator, and
//! the emulator on its own.

use std::path::Path;

use kube_emulator::{Emulator, Options};
use tokio::net::TcpListener;

use crate::config::{EmulatorArgs, ServeArgs};
use crate::server::{self, ServerError, ServerOptions};

/// A failure of the dev modes.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The emulator would not start.
    #[error("emulator: {0}")]
    Emulator(#[from] kube_emulator::Error),
    /// The server would not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A file or socket could not be used.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the emulator and tokend against it until ctrl-c / SIGTERM.
pub async fn run_dev(args: ServeArgs) -> Result<(), DevError> {
    let emulator = Emulator::start().await?;
    let kubeconfig_path =
        std::env::temp_dir().join(format!("tokend-dev-{}.kubeconfig", std::process::id()));
    emulator.write_kubeconfig(&kubeconfig_path).await?;
    let options = ServerOptions::from_args(&args, true)?;
    // The namespace a deployment runs in, where the sweeper's Lease lives.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(emulator.client().await?);
    let tokend_ns = k8s_openapi::api::core::v1::Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(args.lease_namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    if let Err(e) = namespaces
        .create(&kube::api::PostParams::default(), &tokend_ns)
        .await
    {
        tracing::warn!(error = %e, "could not create the lease namespace in the emulator");
    }
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!("{}", banner(&addr.to_string(), &kubeconfig_path));
    let result = server::run(
        emulator.client_config().await?,
        options,
        listener,
        server::shutdown_signal(),
    )
    .await;
    let _ = std::fs::remove_file(&kubeconfig_path);
    emulator.shutdown().await;
    Ok(result?)
}

/// Runs only the emulator, writing its admin kubeconfig, until ctrl-c / SIGTERM.
pub async fn run_emulator(args: EmulatorArgs) -> Result<(), DevError> {
    let emulator = Emulator::start_with(Options {
        bind: args.listen,
        ..Options::default()
    })
    .await?;
    emulator.write_kubeconfig(&args.kubeconfig_out).await?;
    println!(
        "Kubernetes API emulator on {}; admin kubeconfig: {}",
        emulator.url(),
        args.kubeconfig_out.display()
    );
    server::shutdown_signal().await;
    emulator.shutdown().await;
    Ok(())
}

fn banner(addr: &str, kubeconfig: &Path) -> String {
    format!(
        r#"tokend dev: gRPC on {addr}, backed by an in-process Kubernetes API emulator.
Admin kubeconfig of the emulator: {kc}   (kubectl --kubeconfig {kc} get ns)

Try it (grpcurl; the server has reflection, so no .proto files are needed):
  grpcurl -plaintext {addr} list
  grpcurl -plaintext -d '{{"namespace":"default","service_account":"demo","duration":"2h","create_service_account":true}}' {addr} tokend.v1.TokenService/IssueToken
  grpcurl -plaintext -d '{{"token":"PASTE_TOKEN"}}' {addr} tokend.v1.TokenService/ValidateToken
  grpcurl -plaintext -d '{{"namespace":"default"}}' {addr} tokend.v1.TokenService/ListTokens
  grpcurl -plaintext -d '{{"issue":{{"namespace":"default","service_account":"demo","cluster_role":"view"}}}}' {addr} tokend.v1.TokenService/GetKubeconfig
  grpcurl -plaintext -d '{{"token_id":"PASTE_TOKEN_ID"}}' {addr} tokend.v1.TokenService/RevokeToken
Ctrl-C stops it."#,
        kc = kubeconfig.display()
    )
}
