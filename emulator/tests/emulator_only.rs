//! Emulator-only behaviour: options, kubeconfig helpers, TLS and lifecycle. On the
//! real backend every test here is a counted skip of kind emulator-only.

use tokend_test_support as common;

use std::sync::Arc;

use anyhow::{Result, ensure};
use common::{Cluster, skip_unless_emulator};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, PostParams};
use kube::config::Kubeconfig;
use kube_emulator::{Emulator, Options};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

async fn emulator_cluster(test: &str) -> Result<Option<(Cluster, Emulator)>> {
    if skip_unless_emulator(test, "it checks the emulator itself") {
        return Ok(None);
    }
    let emulator = Emulator::start().await?;
    let config = emulator.client_config().await?;
    let handle = Cluster::from_config(common::Backend::Emulator, config)?;
    Ok(Some((handle, emulator)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_anonymous_auth_a_request_without_credentials_is_401() -> Result<()> {
    if skip_unless_emulator("anonymous_auth=false", "it checks an emulator option") {
        return Ok(());
    }
    let e = Emulator::start_with(Options {
        anonymous_auth: false,
        ..Options::default()
    })
    .await?;
    let mut config = e.client_config().await?;
    config.auth_info = kube::config::AuthInfo::default();
    let anonymous = kube::Client::try_from(config)?;
    let req = http::Request::get("/api/v1/namespaces/default/pods").body(Vec::new())?;
    let resp = anonymous.send(req.map(kube::client::Body::from)).await?;
    ensure!(resp.status().as_u16() == 401);
    let body: serde_json::Value = serde_json::from_slice(&resp.into_body().collect_bytes().await?)?;
    ensure!(
        body["reason"] == "Unauthorized" && body["message"] == "Unauthorized",
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubeconfig_embeds_the_ca_and_the_admin_token() -> Result<()> {
    let Some((_, e)) = emulator_cluster("kubeconfig").await? else {
        return Ok(());
    };
    ensure!(e.url() == format!("https://127.0.0.1:{}", e.addr().port()));
    ensure!(e.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    ensure!(e.issuer() == "https://kubernetes.default.svc.cluster.local");
    let parsed = Kubeconfig::from_yaml(&e.kubeconfig_yaml()?)?;
    let cluster = parsed.clusters[0].cluster.clone().unwrap_or_default();
    ensure!(cluster.server.as_deref() == Some(e.url().as_str()));
    ensure!(cluster.certificate_authority_data.is_some());
    ensure!(parsed.current_context.is_some());

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config");
    e.write_kubeconfig(&path).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "mode {mode:o}");
    }
    let from_file = Kubeconfig::read_from(&path)?;
    let config = kube::Config::from_custom_kubeconfig(from_file, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    Api::<Namespace>::all(client).get("kube-system").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_emulator_has_root_ca_config_maps_and_no_default_service_account() -> Result<()> {
    let Some((c, e)) = emulator_cluster("initial state").await? else {
        return Ok(());
    };
    for ns in ["default", "kube-system", "kube-public"] {
        let cm = Api::<ConfigMap>::namespaced(c.client.clone(), ns)
            .get("kube-root-ca.crt")
            .await?;
        let pem = cm
            .data
            .and_then(|d| d.get("ca.crt").cloned())
            .unwrap_or_default();
        ensure!(pem == e.ca_pem(), "{ns}");
        let sas = Api::<ServiceAccount>::namespaced(c.client.clone(), ns)
            .list(&ListParams::default())
            .await?;
        ensure!(sas.items.is_empty(), "{ns} has ServiceAccounts");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_negotiates_http2_and_http1_with_a_certificate_for_loopback() -> Result<()> {
    let Some((_, e)) = emulator_cluster("alpn").await? else {
        return Ok(());
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(e.ca_pem().as_bytes())?)?;
    for (alpn, host) in [
        (b"h2".as_slice(), "127.0.0.1"),
        (b"http/1.1".as_slice(), "localhost"),
    ] {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(e.addr()).await?;
        let tls = connector
            .connect(ServerName::try_from(host)?.to_owned(), tcp)
            .await?;
        ensure!(tls.get_ref().1.alpn_protocol() == Some(alpn));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_server() -> Result<()> {
    let Some((c, e)) = emulator_cluster("shutdown").await? else {
        return Ok(());
    };
    let addr = e.addr();
    Api::<Namespace>::all(c.client.clone())
        .get("default")
        .await?;
    e.shutdown().await;
    ensure!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_status_answers_not_crashes() -> Result<()> {
    let Some((c, _e)) = emulator_cluster("malformed bodies").await? else {
        return Ok(());
    };
    for (path, body) in [
        (
            "/api/v1/namespaces/default/serviceaccounts",
            b"{not json".to_vec(),
        ),
        (
            "/api/v1/namespaces/default/serviceaccounts",
            b"[1,2]".to_vec(),
        ),
        (
            "/api/v1/namespaces/default/serviceaccounts/x/token",
            b"nope".to_vec(),
        ),
        (
            "/apis/authentication.k8s.io/v1/tokenreviews",
            b"{}".to_vec(),
        ),
        (
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            b"{\"spec\": 5}".to_vec(),
        ),
    ] {
        let req = http::Request::post(path)
            .header("content-type", "application/json")
            .body(body)?;
        let (code, answer) = c.raw(&c.client, req).await?;
        ensure!((400..500).contains(&code), "{path}: {code} {answer}");
        ensure!(
            answer["kind"] == "Status" && answer["code"] == code,
            "{path}: {answer}"
        );
    }
    let req = http::Request::delete("/api/v1/namespaces/kube-system").body(Vec::new())?;
    let (code, answer) = c.raw(&c.client, req).await?;
    ensure!(
        code == 403
            && answer["message"]
                == "namespaces \"kube-system\" is forbidden: this namespace may not be deleted",
        "{answer}"
    );
    let req = http::Request::get("/api/v1/namespaces/default/nothings").body(Vec::new())?;
    let (code, answer) = c.raw(&c.client, req).await?;
    ensure!(code == 404 && answer["reason"] == "NotFound", "{answer}");
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"generateName": "gen-"}}))?,
        )
        .await?;
    ensure!(
        created
            .metadata
            .name
            .is_some_and(|n| n.starts_with("gen-") && n.len() == 9)
    );
    Ok(())
}
