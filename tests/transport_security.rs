//! TLS on the gRPC port, certificate rotation without restart, and client certificates as the
//! caller's identity (CN = user, O = groups) authorised through Kubernetes RBAC.

use tokend_test_support as common;

use std::path::Path;
use std::time::Duration;

use common::{TestEnv, eventually, unique_name};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use tokend::config::AuthMode;
use tokend::server::ServerOptions;
use tokend::tls::TlsFiles;
use tokend_client::{TokendClient, v1};
use tonic::Code;

/// A CA that signs certificates for the test.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> TestCa {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed CA");
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate (PEM chain, PEM key) signed by `ca`.
fn leaf(ca: &TestCa, cn: &str, orgs: &[&str], server: bool) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    for org in orgs {
        params
            .distinguished_name
            .push(DnType::OrganizationName, *org);
    }
    if server {
        params.subject_alt_names = vec![
            SanType::IpAddress("127.0.0.1".parse().expect("ip")),
            SanType::DnsName("localhost".try_into().expect("dns")),
        ];
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

async fn tls_client(
    env: &TestEnv,
    ca: &TestCa,
    identity: Option<(String, String)>,
) -> Result<TokendClient, tokend_client::Error> {
    TokendClient::builder(format!("https://{}", env.addr))
        .tls(
            Some(ca.pem.clone().into_bytes()),
            identity.map(|(c, k)| (c.into_bytes(), k.into_bytes())),
        )
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
}

#[tokio::test]
async fn tls_is_served_and_a_rotated_certificate_is_used_without_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let first_ca = ca("first-ca");
    let (cert, key) = leaf(&first_ca, "tokend", &[], true);
    let files = TlsFiles {
        cert: write(dir.path(), "tls.crt", &cert),
        key: write(dir.path(), "tls.key", &key),
        client_ca: None,
    };
    let env = common::start_with(ServerOptions {
        auth: AuthMode::None,
        tls: Some(files),
        tls_reload_interval: Duration::from_millis(100),
        ..ServerOptions::default()
    })
    .await;
    let ns = env.fresh_namespace().await;
    let list = v1::ListTokensRequest {
        namespace: ns.clone(),
        ..Default::default()
    };

    let client = tls_client(&env, &first_ca, None)
        .await
        .expect("TLS connect");
    client
        .list_tokens(list.clone())
        .await
        .expect("a call over TLS");

    // cert-manager rotates by rewriting the files in place: here to a certificate of a new CA.
    let second_ca = ca("second-ca");
    let (cert, key) = leaf(&second_ca, "tokend", &[], true);
    write(dir.path(), "tls.key", &key);
    write(dir.path(), "tls.crt", &cert);
    eventually("new connections get the rotated certificate", || async {
        match tls_client(&env, &second_ca, None).await {
            Ok(client) => client.list_tokens(list.clone()).await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    let stale = match tls_client(&env, &first_ca, None).await {
        Ok(client) => client.list_tokens(list.clone()).await.is_ok(),
        Err(_) => false,
    };
    assert!(
        !stale,
        "a client trusting only the old CA no longer connects"
    );
}

#[tokio::test]
async fn client_certificates_name_the_caller_and_rbac_decides() {
    let dir = tempfile::tempdir().expect("dir");
    let server_ca = ca("server-ca");
    let client_ca = ca("client-ca");
    let (cert, key) = leaf(&server_ca, "tokend", &[], true);
    let files = TlsFiles {
        cert: write(dir.path(), "tls.crt", &cert),
        key: write(dir.path(), "tls.key", &key),
        client_ca: Some(write(dir.path(), "client-ca.crt", &client_ca.pem)),
    };
    let env = common::start_with(ServerOptions {
        auth: AuthMode::Mtls,
        tls: Some(files),
        ..ServerOptions::default()
    })
    .await;
    let ns = env.fresh_namespace().await;
    let user = unique_name("alice");
    let issue = v1::IssueTokenRequest {
        namespace: ns.clone(),
        service_account: "app".into(),
        create_service_account: true,
        ..Default::default()
    };

    // Without a client certificate the handshake (or the first call) fails.
    let anonymous = match tls_client(&env, &server_ca, None).await {
        Ok(client) => client.issue_token(issue.clone()).await.err(),
        Err(e) => Some(e),
    };
    assert!(
        anonymous.is_some(),
        "a client without a certificate is refused"
    );

    let client = tls_client(
        &env,
        &server_ca,
        Some(leaf(&client_ca, &user, &["platform"], false)),
    )
    .await
    .expect("mTLS connect");
    match client.issue_token(issue.clone()).await {
        Err(e) => {
            assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
            assert!(
                e.message().contains(&user),
                "the refusal names the certificate's user: {}",
                e.message()
            );
        }
        Ok(_) => panic!("a user without RBAC rights must not issue"),
    }

    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.clone()),
        ..Default::default()
    };
    let rules = vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec![
            "serviceaccounts".into(),
            "serviceaccounts/token".into(),
            "secrets".into(),
        ]),
        verbs: vec!["create".into(), "get".into()],
        ..Default::default()
    }];
    Api::<Role>::namespaced(env.kube.clone(), &ns)
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta("issuer"),
                rules: Some(rules),
            },
        )
        .await
        .expect("role");
    let binding = RoleBinding {
        metadata: meta("issuer"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "issuer".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }]),
    };
    Api::<RoleBinding>::namespaced(env.kube.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");

    eventually(
        "the certificate's user may issue once RBAC allows it",
        || async { client.issue_token(issue.clone()).await.is_ok() },
    )
    .await;
    let listed = client
        .get_token(v1::GetTokenRequest {
            token_id: client
                .issue_token(issue.clone())
                .await
                .expect("issue")
                .token_id,
        })
        .await
        .expect("GetToken")
        .token
        .expect("record");
    assert_eq!(listed.issued_by, user);
}
