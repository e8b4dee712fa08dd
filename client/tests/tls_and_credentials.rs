//! TokendClient against a stand-in gRPC server: TLS and mutual TLS with its own CA, and the bearer
//! token (fixed, or re-read from a file on every call) arriving as `authorization` metadata.
//!
//! The stand-in serves only grpc.health.v1, so every tokend RPC answers UNIMPLEMENTED; a layer in
//! front of it records the `authorization` header of each request that reaches it.

use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokend_client::{Error, TokendClient, v1};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// PEM certificate and key.
struct Pem {
    cert: String,
    key: String,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all PEM.
struct Pki {
    ca: String,
    server: Pem,
    client: Pem,
}

fn pki() -> Result<Pki, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tokend-client test CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| -> Result<Pem, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    };
    Ok(Pki {
        ca: ca_cert.pem(),
        server: leaf("127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth)?,
        client: leaf("test-client", ExtendedKeyUsagePurpose::ClientAuth)?,
    })
}

/// The `authorization` values the stand-in server saw, in order (`None` when absent).
type Seen = Arc<Mutex<Vec<Option<String>>>>;

/// Starts the stand-in server on a loopback port and returns its port.
async fn serve(tls: Option<ServerTlsConfig>, seen: Seen) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("local address").port();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let record = move |request: tonic::Request<()>| {
        let value = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        seen.lock().expect("lock").push(value);
        Ok(request)
    };
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).expect("server TLS config");
    }
    let router = builder
        .layer(tonic::service::InterceptorLayer::new(record))
        .add_service(health);
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    port
}

fn get_token() -> v1::GetTokenRequest {
    v1::GetTokenRequest {
        token_id: "t-1".into(),
    }
}

fn assert_unimplemented<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::Status { code, .. }) => assert_eq!(code, tonic::Code::Unimplemented),
        other => panic!("expected UNIMPLEMENTED from the stand-in, got {other:?}"),
    }
}

fn last(seen: &Seen) -> Option<String> {
    seen.lock().expect("lock").last().cloned().flatten()
}

#[tokio::test]
async fn bearer_token_is_sent_as_authorization_metadata() {
    let seen = Seen::default();
    let port = serve(None, seen.clone()).await;
    let client = TokendClient::builder(format!("http://127.0.0.1:{port}"))
        .bearer_token("fixed.token.value\n")
        .connect()
        .await
        .expect("connect");

    assert_unimplemented(client.get_token(get_token()).await);
    assert_eq!(last(&seen).as_deref(), Some("Bearer fixed.token.value"));

    // The raw generated client shares the connection and the credentials.
    let raw = client
        .inner()
        .list_tokens(v1::ListTokensRequest::default())
        .await;
    assert_eq!(
        raw.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::Unimplemented)
    );
    assert_eq!(last(&seen).as_deref(), Some("Bearer fixed.token.value"));
    assert_eq!(seen.lock().expect("lock").len(), 2, "one header per call");
}

#[tokio::test]
async fn no_credentials_means_no_authorization_header() {
    let seen = Seen::default();
    let port = serve(None, seen.clone()).await;
    let client = TokendClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect");
    assert_unimplemented(client.list_tokens(v1::ListTokensRequest::default()).await);
    assert_eq!(seen.lock().expect("lock").as_slice(), [None]);
}

#[tokio::test]
async fn token_file_is_reread_on_every_call() {
    let seen = Seen::default();
    let port = serve(None, seen.clone()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("token");
    std::fs::write(&path, "first\n").expect("write token");
    let client = TokendClient::builder(format!("http://127.0.0.1:{port}"))
        .token_file(&path)
        .connect()
        .await
        .expect("connect");

    assert_unimplemented(
        client
            .validate_token(v1::ValidateTokenRequest::default())
            .await,
    );
    assert_eq!(last(&seen).as_deref(), Some("Bearer first"));

    // A rotated token (as the kubelet rewrites a projected token) is used from the next call on.
    std::fs::write(&path, "second").expect("rotate token");
    assert_unimplemented(client.revoke_token(v1::RevokeTokenRequest::default()).await);
    assert_eq!(last(&seen).as_deref(), Some("Bearer second"));

    // A token file that disappears is a credentials error, and nothing is sent.
    std::fs::remove_file(&path).expect("remove token");
    let calls_before = seen.lock().expect("lock").len();
    let result = client
        .get_kubeconfig(v1::GetKubeconfigRequest::default())
        .await;
    assert!(
        matches!(&result, Err(Error::Credentials { .. })),
        "{result:?}"
    );
    assert_eq!(
        result.map(|_| ()).map_err(|e| e.code()),
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(seen.lock().expect("lock").len(), calls_before);
}

#[tokio::test]
async fn mutual_tls_with_a_private_ca() {
    let pki = pki().expect("generate certificates");
    let seen = Seen::default();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&pki.server.cert, &pki.server.key))
        .client_ca_root(Certificate::from_pem(&pki.ca));
    let port = serve(Some(tls), seen.clone()).await;

    let client = TokendClient::builder(format!("https://127.0.0.1:{port}"))
        .tls(
            Some(pki.ca.clone().into_bytes()),
            Some((
                pki.client.cert.clone().into_bytes(),
                pki.client.key.clone().into_bytes(),
            )),
        )
        .bearer_token("over.tls")
        .connect()
        .await
        .expect("connect over mutual TLS");
    assert_unimplemented(client.issue_token(v1::IssueTokenRequest::default()).await);
    assert_eq!(last(&seen).as_deref(), Some("Bearer over.tls"));
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let pki = pki().expect("generate certificates");
    let other = pki_ca_only().expect("generate another CA");
    let tls =
        ServerTlsConfig::new().identity(Identity::from_pem(&pki.server.cert, &pki.server.key));
    let port = serve(Some(tls), Seen::default()).await;

    let result = TokendClient::builder(format!("https://127.0.0.1:{port}"))
        .tls(Some(other.into_bytes()), None)
        .connect()
        .await;
    match result {
        Err(error @ Error::Transport { .. }) => assert_eq!(error.code(), tonic::Code::Unavailable),
        // rustls may report the failed handshake on the first call rather than at connect.
        Ok(client) => match client.get_token(get_token()).await {
            Err(error) => assert_ne!(
                error.code(),
                tonic::Code::Unimplemented,
                "the call got through"
            ),
            Ok(response) => panic!("untrusted server answered: {response:?}"),
        },
        Err(other) => panic!("expected a transport error, got {other:?}"),
    }
}

/// A CA certificate that signed nothing the test servers use.
fn pki_ca_only() -> Result<String, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ok(params.self_signed(&key)?.pem())
}
