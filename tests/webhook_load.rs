//! Clients that are not the API server cannot take the admission webhook away from it: a few
//! source addresses opening hundreds of TLS connections to the webhook port, each with half a
//! request header sent and never finished (slow-loris), leave ServiceAccountTokens creatable
//! and deletable meanwhile, and tokend closes what they hold once the header timeout passes.
//! Against the emulator or, unchanged, a real control plane: both call the webhook over HTTPS
//! from 127.0.0.1, while the attacker's connections come from 127.0.0.2–5.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokend_test_support as common;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokend::controller::{ServiceAccountToken, ServiceAccountTokenSpec};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Source addresses the attacker connects from, and connections opened from each: what held
/// every one of the webhook's slots before it bounded connections per address and in time.
const ADDRESSES: u8 = 4;
const PER_ADDRESS: usize = 64;

/// How long one of the attacker's connection attempts may take (one queued behind full slots
/// never completes its handshake).
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// The webhook's address and CA, as the registration in the cluster names them.
async fn webhook_of(env: &common::TestEnv) -> (SocketAddr, Vec<u8>) {
    let env_id = &env.declarative.as_ref().expect("a declarative env").env_id;
    let registration = Api::<MutatingWebhookConfiguration>::all(env.kube.clone())
        .get(env_id)
        .await
        .expect("the webhook registration");
    let hook = registration
        .webhooks
        .and_then(|w| w.into_iter().next())
        .expect("one webhook");
    let url = hook.client_config.url.expect("a URL");
    let authority = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .expect("host:port");
    let ca = hook.client_config.ca_bundle.expect("a CA bundle").0;
    (authority.parse().expect("an address"), ca)
}

/// One TLS connection from `source` to `webhook` with an unfinished request header sent; None
/// when tokend refused or did not complete it.
async fn half_a_request(
    source: Ipv4Addr,
    webhook: SocketAddr,
    tls: TlsConnector,
) -> Option<TlsStream<tokio::net::TcpStream>> {
    let attempt = async {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).ok()?;
        let tcp = socket.connect(webhook).await.ok()?;
        let name = ServerName::IpAddress(webhook.ip().into());
        let mut stream = tls.connect(name, tcp).await.ok()?;
        stream
            .write_all(b"POST /mutate-serviceaccounttokens HTTP/1.1\r\nHost: tokend\r\nContent-Ty")
            .await
            .ok()?;
        stream.flush().await.ok()?;
        Some(stream)
    };
    tokio::time::timeout(CONNECT_WITHIN, attempt)
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serviceaccounttokens_are_admitted_while_others_hold_the_webhooks_connections_open() {
    let test = "serviceaccounttokens_are_admitted_while_others_hold_the_webhooks_connections_open";
    let Some(env) = common::start_declarative(test, Duration::from_secs(60)).await else {
        return;
    };
    let ns = env.fresh_sat_namespace().await;
    // Only a create that goes through the webhook proves anything.
    common::propagation::webhook_in_force(&env.kube, &ns, std::collections::BTreeMap::new())
        .await
        .expect("the webhook is in force");
    let (webhook, ca) = webhook_of(&env).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("a CA certificate")).expect("a root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = TlsConnector::from(Arc::new(config));

    // Given an attacker on 4 addresses opening 64 TLS connections from each, every one with
    // half a request header sent and held open.
    let attempts = (0..ADDRESSES).flat_map(|a| {
        let source = Ipv4Addr::new(127, 0, 0, 2 + a);
        let tls = tls.clone();
        (0..PER_ADDRESS).map(move |_| half_a_request(source, webhook, tls.clone()))
    });
    let held: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .flatten()
        .collect();
    eprintln!(
        "the webhook kept {} of the attacker's {} connections",
        held.len(),
        usize::from(ADDRESSES) * PER_ADDRESS
    );

    // When a user creates a ServiceAccountToken (the API server calls the webhook, failure
    // policy Fail, timeout 10 s) and deletes it, while those connections are held
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let name = common::unique_name("loris");
    let mut sat = ServiceAccountToken::new(&name, ServiceAccountTokenSpec::default());
    sat.metadata.labels = Some(env.sat_labels());
    let created = tokio::time::timeout(
        Duration::from_secs(30),
        api.create(&PostParams::default(), &sat),
    )
    .await;

    // Then the webhook admitted it
    match created {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("the ServiceAccountToken create was refused: {e}"),
        Err(_) => panic!("the ServiceAccountToken create did not return within 30 s"),
    }
    // and the object goes when deleted (whatever the controller still has to do with it goes
    // through the webhook too).
    api.delete(&name, &DeleteParams::default())
        .await
        .expect("delete the ServiceAccountToken");
    common::eventually_within(
        "the deleted ServiceAccountToken goes",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            let name = name.clone();
            async move { Ok(api.get_opt(&name).await?.is_none()) }
        },
    )
    .await
    .expect("the ServiceAccountToken is gone");

    // And tokend closes the connections that never finished their header (10 s after their
    // first byte, by default).
    let closed = held.into_iter().map(|mut stream| async move {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return true,
                // An answer (408) before the close is fine; read on until the close.
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    });
    let still_open = futures::future::join_all(closed)
        .await
        .into_iter()
        .filter(|closed| !closed)
        .count();
    assert_eq!(
        still_open, 0,
        "connections with an unfinished header still open 30 s later"
    );
}
