//! TLS on the gRPC port, certificate rotation without restart, and client certificates as the
//! caller's identity (CN = user, O = groups, under the `mtls:` prefix) authorised through
//! Kubernetes RBAC; certificates that claim `system:` identities, are not client certificates or
//! name several users are refused. A certificate's user is logged as one field, whatever it
//! holds, in the text log format of `tokend serve` run as its own process.

use tokend_test_support as common;

use std::path::Path;
use std::time::Duration;

use common::{TestEnv, eventually, unique_name};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType, SigningKey as _,
};
use tokend::config::AuthMode;
use tokend::server::ServerOptions;
use tokend::server::tls::TlsFiles;
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
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}

/// One attribute of a certificate subject, in the order written.
#[derive(Clone, Copy)]
enum Rdn<'a> {
    Cn(&'a str),
    O(&'a str),
}

/// A certificate signed by `ca` whose subject is exactly `subject`, which may repeat CN or O
/// (rcgen keeps one value per attribute type, so its subject is rewritten and re-signed), with
/// the given extended key usages.
fn leaf_with_subject(
    ca: &TestCa,
    subject: &[Rdn<'_>],
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> (String, String) {
    use yasna::models::ObjectIdentifier;
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "rewritten");
    params.extended_key_usages = usages;
    let key = KeyPair::generate().expect("key");
    let der = params
        .signed_by(&key, &ca.issuer)
        .expect("signed")
        .der()
        .to_vec();
    let (tbs, algorithm) = yasna::parse_der(&der, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_der()?;
            let algorithm = r.next().read_der()?;
            r.next().read_bitvec_bytes()?;
            Ok((tbs, algorithm))
        })
    })
    .expect("rcgen's certificate parses");
    let mut fields = yasna::parse_der(&tbs, |r| {
        r.read_sequence(|r| {
            let mut fields = Vec::new();
            while let Some(field) = r.read_optional(|r| r.read_der())? {
                fields.push(field);
            }
            Ok(fields)
        })
    })
    .expect("TBSCertificate parses");
    // version, serialNumber, signature, issuer, validity, subject, ...
    fields[5] = yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            for rdn in subject {
                let (oid, value): (&[u64], &str) = match rdn {
                    Rdn::Cn(v) => (&[2, 5, 4, 3], v),
                    Rdn::O(v) => (&[2, 5, 4, 10], v),
                };
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(oid));
                        w.next().write_utf8_string(value);
                    })
                });
            }
        })
    });
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for field in &fields {
                w.next().write_der(field);
            }
        })
    });
    let signature = ca.issuer.key().sign(&tbs).expect("sign");
    let cert = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_der(&algorithm);
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    });
    (
        pem::encode(&pem::Pem::new("CERTIFICATE", cert)),
        key.serialize_pem(),
    )
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
    // Certificate users are bound under the prefix, as `kubectl create rolebinding --user=mtls:NAME`.
    let binding = RoleBinding {
        metadata: meta("issuer"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "issuer".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: format!("mtls:{user}"),
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
    assert_eq!(listed.issued_by, format!("mtls:{user}"));
}

/// tokend serving mTLS with `--auth mtls` (default prefixes), and the CAs of both sides.
struct MtlsSetup {
    env: TestEnv,
    server_ca: TestCa,
    client_ca: TestCa,
    _dir: tempfile::TempDir,
}

async fn mtls_setup() -> MtlsSetup {
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
    MtlsSetup {
        env,
        server_ca,
        client_ca,
        _dir: dir,
    }
}

/// IssueToken in `ns` as the holder of `identity`; a refused handshake counts as UNAVAILABLE.
async fn issue_as(
    setup: &MtlsSetup,
    identity: (String, String),
    ns: &str,
) -> Result<v1::IssueTokenResponse, tokend_client::Error> {
    let client = tls_client(&setup.env, &setup.server_ca, Some(identity)).await?;
    client.issue_token(common::issue(ns, "app")).await
}

#[tokio::test]
async fn certificates_cannot_claim_system_identities_or_name_several_users() {
    let setup = mtls_setup().await;
    let ns = setup.env.fresh_namespace().await;
    let client_ca = &setup.client_ca;
    let tokend_sa = format!(
        "system:serviceaccount:{}:tokend",
        setup
            .env
            .tokend_namespace
            .clone()
            .unwrap_or_else(|| "tokend".into())
    );
    let client_auth = || vec![ExtendedKeyUsagePurpose::ClientAuth];

    // A certificate from the client CA claiming the cluster's superuser group.
    common::assert_code(
        issue_as(
            &setup,
            leaf(client_ca, "mallory", &["system:masters"], false),
            &ns,
        )
        .await,
        Code::PermissionDenied,
        "system:",
    );
    // ...also behind an ordinary group.
    common::assert_code(
        issue_as(
            &setup,
            leaf_with_subject(
                client_ca,
                &[Rdn::Cn("carol"), Rdn::O("team"), Rdn::O("system:masters")],
                client_auth(),
            ),
            &ns,
        )
        .await,
        Code::PermissionDenied,
        "system:masters",
    );
    // ...or naming a ServiceAccount (here tokend's own) or a system user.
    common::assert_code(
        issue_as(&setup, leaf(client_ca, &tokend_sa, &[], false), &ns).await,
        Code::PermissionDenied,
        "system:",
    );
    common::assert_code(
        issue_as(
            &setup,
            leaf(client_ca, "system:admin", &["team"], false),
            &ns,
        )
        .await,
        Code::PermissionDenied,
        "system:",
    );
    // A certificate of the same CA that is not a client certificate (no clientAuth usage).
    common::assert_code(
        issue_as(
            &setup,
            leaf_with_subject(client_ca, &[Rdn::Cn("alice")], Vec::new()),
            &ns,
        )
        .await,
        Code::Unauthenticated,
        "clientAuth",
    );
    // Two CNs: which user would it be?
    common::assert_code(
        issue_as(
            &setup,
            leaf_with_subject(
                client_ca,
                &[Rdn::Cn("alice"), Rdn::Cn("system:admin")],
                client_auth(),
            ),
            &ns,
        )
        .await,
        Code::Unauthenticated,
        "exactly one CN",
    );
    // A CN that would write a second, forged log line.
    common::assert_code(
        issue_as(
            &setup,
            leaf_with_subject(
                client_ca,
                &[Rdn::Cn("eve\naudit action=revoke caller=admin")],
                client_auth(),
            ),
            &ns,
        )
        .await,
        Code::Unauthenticated,
        "control characters",
    );
    // An ordinary certificate names a prefixed user, who has no rights until RBAC names them so.
    let user = unique_name("bob");
    common::assert_code(
        issue_as(&setup, leaf(client_ca, &user, &["platform"], false), &ns).await,
        Code::PermissionDenied,
        &format!("mtls:{user}"),
    );
    // Nothing was created by any of these calls.
    let records =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(setup.env.kube.clone(), &ns)
            .list(&kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=tokend"))
            .await
            .expect("list records");
    assert!(records.items.is_empty(), "no record was written");
}

/// Grants `subject` (a User or Group) what IssueToken with create_service_account needs in `ns`.
async fn grant_issue(env: &TestEnv, ns: &str, kind: &str, subject: &str) {
    let subject = Subject {
        kind: kind.into(),
        name: subject.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        namespace: None,
    };
    common::grant(env, ns, subject, vec![common::issue_rule()]).await;
}

#[tokio::test]
async fn an_allowed_decision_for_two_groups_is_not_reused_for_one_group_holding_a_comma() {
    let setup = mtls_setup().await;
    let ns = setup.env.fresh_namespace().await;
    let user = unique_name("dana");
    // Given RBAC that lets group mtls:b issue, and a caller in groups mtls:a and mtls:b.
    grant_issue(&setup.env, &ns, "Group", "mtls:b").await;
    let member = leaf_with_subject(
        &setup.client_ca,
        &[Rdn::Cn(&user), Rdn::O("a"), Rdn::O("b")],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    // The same user in the single group "mtls:a,mtls:b", which is not mtls:b: joined with
    // commas, both group lists read "mtls:a,mtls:b,system:authenticated".
    let impostor = leaf_with_subject(
        &setup.client_ca,
        &[Rdn::Cn(&user), Rdn::O("a,mtls:b")],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    eventually("the member of mtls:b may issue", || async {
        issue_as(&setup, member.clone(), &ns).await.is_ok()
    })
    .await;

    // When the other caller asks at once, while the member's allow is cached, it is refused.
    common::assert_code(
        issue_as(&setup, impostor, &ns).await,
        Code::PermissionDenied,
        &format!("mtls:{user}"),
    );
}

/// The `key=value` pairs of a logfmt line, in order: a value is bare up to the next space, or
/// quoted with `\\` escaping the next character. Words without `=` are keys with no value.
fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ').is_some() {}
        if chars.peek().is_none() {
            return pairs;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != ' ' && *c != '=') {
            key.push(c);
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| *c != ' ') {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[tokio::test]
async fn a_certificate_user_cannot_forge_a_field_in_text_log_lines() {
    // Given `tokend serve --auth mtls --log-format text`, as its own process.
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let dir = tempfile::tempdir().expect("dir");
    let server_ca = ca("server-ca");
    let client_ca = ca("client-ca");
    let (cert, key) = leaf(&server_ca, "tokend", &[], true);
    let port = {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["serve", "--auth", "mtls", "--log-format", "text"])
        .args(["--sweep-interval", "0", "--lease-namespace", "default"])
        .arg("--tls-cert")
        .arg(write(dir.path(), "tls.crt", &cert))
        .arg("--tls-key")
        .arg(write(dir.path(), "tls.key", &key))
        .arg("--tls-client-ca")
        .arg(write(dir.path(), "client-ca.crt", &client_ca.pem))
        .arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start tokend");
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        server.stderr.take().expect("stderr"),
    ));
    let kept = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut kept) = kept.lock() {
                kept.push(line);
            }
        }
    });

    // When a caller whose certificate CN is `eve-... caller=admin`, allowed to issue, does so.
    let cn = format!("{} caller=admin", unique_name("eve"));
    let user = format!("mtls:{cn}");
    grant_issue(&env, &ns, "User", &user).await;
    let identity = leaf(&client_ca, &cn, &[], false);
    let issued = common::eventually_some("tokend serves the caller", || async {
        let client = TokendClient::builder(format!("https://127.0.0.1:{port}"))
            .tls(
                Some(server_ca.pem.clone().into_bytes()),
                Some((
                    identity.0.clone().into_bytes(),
                    identity.1.clone().into_bytes(),
                )),
            )
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await;
        let Ok(client) = client else {
            return Ok(None);
        };
        Ok(client.issue_token(common::issue(&ns, "app")).await.ok())
    })
    .await
    .expect("the caller may issue");

    // Then its audit line, read as logfmt, has one caller: the certificate's whole user.
    let line = common::eventually_some("the audit line is written", || async {
        Ok(logs.lock().ok().and_then(|lines| {
            lines
                .iter()
                .find(|l| l.contains("tokend::service::audit") && l.contains(&issued.token_id))
                .cloned()
        }))
    })
    .await
    .expect("an audit line for the token");
    let callers: Vec<String> = logfmt(&line)
        .into_iter()
        .filter(|(key, _)| key == "caller")
        .map(|(_, value)| value)
        .collect();
    assert_eq!(callers, [user], "one caller field, the real one: {line}");
    let _ = server.kill().await;
}
