//! `tokend dev` and `tokend emulator`: tokend against the embedded Kubernetes API emulator, and
//! the emulator on its own.

use std::path::{Path, PathBuf};

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
    let mut options = ServerOptions::from_args(&args, true)?;
    // The emulator is a playground: every kind of credential is on, as the banner shows.
    options.settings.bootstrap.enabled = true;
    options.settings.certificates.enabled = true;
    // ServiceAccountTokens: the CRD, the controller and the webhook, when the emulator serves
    // custom resources and calls webhooks.
    let webhook_dir = tempfile_dir()?;
    let declarative = declarative_setup(&emulator, &mut options, &args, &webhook_dir).await;
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
    match declarative {
        Ok(()) => println!("{}", sat_banner(&kubeconfig_path)),
        Err(e) => println!("ServiceAccountTokens are off: the emulator cannot serve them ({e})"),
    }
    let result = server::run(
        emulator.client_config().await?,
        options,
        listener,
        server::shutdown_signal(),
    )
    .await;
    let _ = std::fs::remove_file(&kubeconfig_path);
    let _ = std::fs::remove_dir_all(&webhook_dir);
    emulator.shutdown().await;
    Ok(result?)
}

/// A private folder for the webhook's certificate.
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tokend-dev-{}-webhook", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Installs the ServiceAccountToken CRD in the emulator, serves the admission webhook on a
/// loopback port with a fresh certificate, registers it, and turns the controller on. Any
/// failure leaves all three off (the gRPC API works regardless).
async fn declarative_setup(
    emulator: &Emulator,
    options: &mut ServerOptions,
    args: &ServeArgs,
    dir: &Path,
) -> Result<(), String> {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, WebhookClientConfig,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt as _;
    use kube::api::{Patch, PatchParams};

    let client = emulator.client().await.map_err(|e| e.to_string())?;
    let crd = crate::controller::ServiceAccountToken::crd();
    kube::Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            "serviceaccounttokens.tokend.io",
            &PatchParams::apply("tokend-dev").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|e| format!("the CRD: {e}"))?;
    let (cert, key, ca) = loopback_certificate().map_err(|e| format!("a certificate: {e}"))?;
    let (cert_path, key_path) = (dir.join("webhook.crt"), dir.join("webhook.key"));
    std::fs::write(&cert_path, cert).map_err(|e| e.to_string())?;
    std::fs::write(&key_path, key).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let webhook = MutatingWebhookConfiguration {
        metadata: kube::api::ObjectMeta {
            name: Some("tokend".into()),
            ..Default::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: "serviceaccounttokens.tokend.io".into(),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(10),
            client_config: WebhookClientConfig {
                url: Some(format!(
                    "https://127.0.0.1:{port}{}",
                    crate::controller::admission::PATH
                )),
                ca_bundle: Some(k8s_openapi::ByteString(ca.into_bytes())),
                service: None,
            },
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["tokend.io".into()]),
                api_versions: Some(vec!["v1alpha1".into()]),
                resources: Some(vec!["serviceaccounttokens".into()]),
                operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                scope: Some("Namespaced".into()),
            }]),
            ..Default::default()
        }]),
    };
    kube::Api::<MutatingWebhookConfiguration>::all(client)
        .patch(
            "tokend",
            &PatchParams::apply("tokend-dev").force(),
            &Patch::Apply(&webhook),
        )
        .await
        .map_err(|e| format!("the webhook registration: {e}"))?;
    options.webhook = Some(crate::server::WebhookOptions {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        tls: crate::server::tls::TlsFiles {
            cert: cert_path,
            key: key_path,
            client_ca: None,
        },
    });
    if options.controller.is_none() {
        options.controller = Some(crate::controller::ControllerOptions {
            lease_namespace: args.lease_namespace.clone(),
            rotation_grace: args.rotation_grace,
            label_selector: args.controller_label_selector.clone(),
            ..Default::default()
        });
    }
    Ok(())
}

/// A serving certificate for 127.0.0.1 from a fresh CA: (cert PEM, key PEM, CA PEM).
fn loopback_certificate() -> Result<(String, String, String), rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem(), ca_cert.pem()))
}

fn sat_banner(kubeconfig: &Path) -> String {
    format!(
        r#"ServiceAccountTokens (CRD, controller, admission webhook) are on:
  printf 'apiVersion: tokend.io/v1alpha1\nkind: ServiceAccountToken\nmetadata: {{name: sat-sample, namespace: default}}\nspec: {{duration: 1h, clusterRole: view}}\n' | kubectl --kubeconfig {kc} apply -f -
  kubectl --kubeconfig {kc} get sat
  kubectl --kubeconfig {kc} get secret "$(kubectl --kubeconfig {kc} get sat sat-sample -o jsonpath='{{.status.secretRef.name}}')" -o jsonpath='{{.data.kubeconfig}}' | base64 -d > kc
  kubectl --kubeconfig kc get pods"#,
        kc = kubeconfig.display()
    )
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
