//! Client-certificate kubeconfigs through tokend, against the emulator or, unchanged, a real
//! control plane (whose controller-manager signs): the kubeconfig works with kubectl and the API
//! server sees the certificate's CN and O; system:masters and un-allowed system: identities are
//! refused with nothing created; a caller who could not approve the request itself is refused
//! before any CertificateSigningRequest exists.

use tokend_test_support as common;

use base64::Engine as _;
use common::{TestEnv, assert_code, reason_of, unique_name, violations_of};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokend::config::AuthMode;
use tokend::server::ServerOptions;
use tokend_client::{TokendClient, v1};
use tonic::Code;

/// A fresh key and a PEM CSR naming `cn` and `orgs`; the key's PEM too.
fn csr(cn: &str, orgs: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    // rcgen keeps one value per attribute type; these tests ask for at most one group.
    for org in orgs {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *org);
    }
    let pem = params
        .serialize_request(&key)
        .expect("CSR")
        .pem()
        .expect("PEM");
    (pem, key.serialize_pem())
}

fn options(allowed: &[&str], auth: AuthMode) -> ServerOptions {
    let mut options = common::with_node_credentials(
        ServerOptions {
            auth,
            ..ServerOptions::default()
        },
        &[],
    );
    options.settings.certificates.allowed_system_identities =
        allowed.iter().map(|s| (*s).to_owned()).collect();
    options
}

/// How many CertificateSigningRequests hold this CSR (other tests' requests do not count),
/// compared by the request's DER, however its PEM text is laid out.
async fn csrs_for(env: &TestEnv, pem: &str) -> usize {
    let der = |text: &[u8]| pem::parse(text).map(|b| b.into_contents()).ok();
    let wanted = der(pem.as_bytes()).expect("the test's CSR is PEM");
    Api::<CertificateSigningRequest>::all(env.kube.clone())
        .list(&Default::default())
        .await
        .expect("list CSRs")
        .items
        .into_iter()
        .filter(|c| der(&c.spec.request.0).as_ref() == Some(&wanted))
        .count()
}

/// A fresh key's PEM CSR whose subject holds exactly `attributes`, in this order and string
/// encoding, one per RDN. Attributes of a type already present are written under the same OID
/// as a "custom" type, as rcgen keeps one value per type: a hostile CSR can hold both.
fn csr_with_subject(attributes: Vec<(rcgen::DnType, rcgen::DnValue)>) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    let mut seen = Vec::new();
    for (kind, value) in attributes {
        let kind = if seen.contains(&kind) {
            rcgen::DnType::CustomDnType(oid_of(&kind))
        } else {
            seen.push(kind.clone());
            kind
        };
        params.distinguished_name.push(kind, value);
    }
    params
        .serialize_request(&key)
        .expect("CSR")
        .pem()
        .expect("PEM")
}

fn oid_of(kind: &rcgen::DnType) -> Vec<u64> {
    match kind {
        rcgen::DnType::CommonName => vec![2, 5, 4, 3],
        rcgen::DnType::OrganizationName => vec![2, 5, 4, 10],
        rcgen::DnType::OrganizationalUnitName => vec![2, 5, 4, 11],
        other => panic!("no OID written down for {other:?}"),
    }
}

fn utf8(text: &str) -> rcgen::DnValue {
    rcgen::DnValue::Utf8String(text.to_owned())
}

async fn kubectl(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("kubectl")
        .args(args)
        .output()
        .await
        .expect("kubectl runs")
}

fn request(csr: &str, user: &str, groups: &[&str]) -> v1::IssueClientCertificateRequest {
    v1::IssueClientCertificateRequest {
        csr: csr.to_owned(),
        user: user.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        duration: "30m".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_kubeconfig_works_with_kubectl_and_carries_cn_and_o() {
    if common::find_on_path("kubectl").is_none() {
        common::skip(
            "a_client_certificate_kubeconfig_works_with_kubectl_and_carries_cn_and_o",
            common::SkipKind::MissingTool,
            "kubectl is not on PATH",
        );
        return;
    }
    let env = common::start_with(options(&[], AuthMode::None)).await;
    let client = env.client().await;
    let ns = env.fresh_namespace().await;
    let user = unique_name("alice");
    let group = unique_name("team");

    // Given a CSR made locally (the key never leaves this test).
    let (csr_pem, key_pem) = csr(&user, &[&group]);
    let issued = client
        .issue_client_certificate(request(&csr_pem, &user, &[&group]))
        .await
        .expect("issue a client certificate");

    // Then the certificate names CN = user, O = group, and lives at most the 30m asked for.
    let block = pem::parse(&issued.certificate).expect("PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).expect("X.509");
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .filter_map(|c| c.as_str().ok())
        .collect();
    let o: Vec<_> = cert
        .subject()
        .iter_organization()
        .filter_map(|c| c.as_str().ok())
        .collect();
    assert_eq!(cn, [user.as_str()]);
    assert_eq!(o, [group.as_str()]);
    let not_after = issued.not_after.expect("not_after").seconds;
    assert_eq!(not_after, cert.validity().not_after.timestamp());
    let left = not_after - k8s_openapi::jiff::Timestamp::now().as_second();
    assert!((1500..=1800).contains(&left), "{left}s left");
    assert_eq!(
        issued.serial_number,
        cert.raw_serial_as_string().replace(':', "")
    );
    // And no CertificateSigningRequest is left behind.
    assert_eq!(csrs_for(&env, &csr_pem).await, 0);

    // When the key is added to the kubeconfig, kubectl is the certificate's identity: allowed
    // what RBAC grants its group.
    let mut kubeconfig: serde_yaml::Value = serde_yaml::from_str(&issued.kubeconfig).expect("YAML");
    assert!(
        kubeconfig["users"][0]["user"]
            .get("client-key-data")
            .is_none()
    );
    kubeconfig["users"][0]["user"]["client-key-data"] =
        serde_yaml::Value::String(base64::engine::general_purpose::STANDARD.encode(&key_pem));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cert.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig).expect("YAML")).expect("write");
    let flag = format!("--kubeconfig={}", path.display());
    let can_i = |verb: &'static str| {
        let flag = flag.clone();
        let ns = ns.clone();
        async move {
            let out = kubectl(&[&flag, "auth", "can-i", verb, "configmaps", "-n", &ns]).await;
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        }
    };
    assert_eq!(can_i("list").await, "no", "nothing granted yet");
    common::grant(
        &env,
        &ns,
        Subject {
            kind: "Group".into(),
            name: group.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        },
        vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["list".into()],
            ..Default::default()
        }],
    )
    .await;
    common::eventually(
        "the group's grant reaches the certificate's user",
        || async { can_i("list").await == "yes" },
    )
    .await;
    let out = kubectl(&[&flag, "get", "configmaps", "-n", &ns]).await;
    assert!(
        out.status.success(),
        "kubectl get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_and_unlisted_system_identities_are_refused_with_nothing_created() {
    let env = common::start_with(options(&["system:kube-proxy"], AuthMode::None)).await;
    let client = env.client().await;
    let (masters, _) = csr("root", &["system:masters"]);
    let refused = client
        .issue_client_certificate(request(&masters, "root", &["system:masters"]))
        .await;
    assert_eq!(reason_of(&refused), Some("IDENTITY_FORBIDDEN"));
    assert_code(refused, Code::PermissionDenied, "system:masters");
    let (node, _) = csr("system:node:n1", &["system:nodes"]);
    let refused = client
        .issue_client_certificate(request(&node, "system:node:n1", &["system:nodes"]))
        .await;
    assert_eq!(reason_of(&refused), Some("SYSTEM_IDENTITY_NOT_ALLOWED"));
    assert_code(
        refused,
        Code::FailedPrecondition,
        "--client-cert-allowed-system-identities",
    );
    // A CSR that names someone else than the request.
    let (other, _) = csr("mallory", &[]);
    let refused = client
        .issue_client_certificate(request(&other, "alice", &[]))
        .await;
    assert_eq!(
        violations_of(&refused),
        [("csr".to_owned(), "CSR_IDENTITY_MISMATCH".to_owned())]
    );
    assert_code(refused, Code::InvalidArgument, "csr");
    // Every bad field at once: a CSR that does not parse, a bad group, a bad duration.
    let refused = client
        .issue_client_certificate(v1::IssueClientCertificateRequest {
            duration: "soon".into(),
            groups: vec!["dev".into(), "a\tb".into()],
            ..request("not a CSR", "alice", &[])
        })
        .await;
    assert_eq!(
        violations_of(&refused),
        [
            ("duration", "DURATION_INVALID"),
            ("groups[1]", "NAME_INVALID"),
            ("csr", "CSR_INVALID"),
        ]
        .map(|(f, r)| (f.to_owned(), r.to_owned()))
    );
    assert_code(refused, Code::InvalidArgument, "groups[1]");
    let refused = client
        .issue_client_certificate(v1::IssueClientCertificateRequest {
            duration: "2h".into(),
            ..request(&other, "mallory", &[])
        })
        .await;
    assert_eq!(reason_of(&refused), Some("DURATION_OVER_MAXIMUM"));
    assert_eq!(
        refused
            .as_ref()
            .err()
            .and_then(|e| e.metadata("maximum_seconds")),
        Some("3600")
    );
    assert_code(
        refused,
        Code::FailedPrecondition,
        "--client-cert-max-duration",
    );
    for pem in [&masters, &node, &other] {
        assert_eq!(csrs_for(&env, pem).await, 0, "nothing was created");
    }

    // The guide's kube-proxy identity, listed by the operator, is issued.
    let (proxy, _) = csr("system:kube-proxy", &[]);
    let issued = client
        .issue_client_certificate(request(&proxy, "system:kube-proxy", &[]))
        .await
        .expect("system:kube-proxy is allowed");
    assert!(issued.kubeconfig.contains("client-certificate-data"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_approve_rights_is_refused_before_any_csr_exists() {
    let env = common::start_with(options(&[], AuthMode::Kubernetes)).await;
    let ns = env.fresh_namespace().await;
    let name = unique_name("caller");
    Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("caller ServiceAccount");
    let token = common::least_privilege::service_account_token(&env.kube, &ns, &name).await;
    let client = TokendClient::builder(env.endpoint.clone())
        .bearer_token(token)
        .connect()
        .await
        .expect("connect");
    // Given a caller who may create CSRs and update their approval, but not approve for the
    // kube-apiserver-client signer.
    let role = unique_name("csr-creator");
    let rule = |resources: &[&str], verbs: &[&str], names: Option<&[&str]>| PolicyRule {
        api_groups: Some(vec!["certificates.k8s.io".into()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        resource_names: names.map(|n| n.iter().map(|r| (*r).to_owned()).collect()),
        ..Default::default()
    };
    let roles = Api::<ClusterRole>::all(env.kube.clone());
    let mut cluster_role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(role.clone()),
            ..Default::default()
        },
        rules: Some(vec![
            rule(&["certificatesigningrequests"], &["create"], None),
            rule(&["certificatesigningrequests/approval"], &["update"], None),
        ]),
        ..Default::default()
    };
    roles
        .create(&PostParams::default(), &cluster_role)
        .await
        .expect("ClusterRole");
    env.forget_cluster_role_later(&role);
    Api::<ClusterRoleBinding>::all(env.kube.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(role.clone()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: role.clone(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: name.clone(),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("ClusterRoleBinding");
    env.forget_cluster_binding_later(&role);

    // When it asks for a certificate, then it is refused, naming the missing right, and no
    // CertificateSigningRequest was ever created.
    let user = unique_name("bob");
    let (pem, _) = csr(&user, &[]);
    assert_code(
        client
            .issue_client_certificate(request(&pem, &user, &[]))
            .await,
        Code::PermissionDenied,
        "approve signers.certificates.k8s.io \"kubernetes.io/kube-apiserver-client\"",
    );
    assert_eq!(csrs_for(&env, &pem).await, 0, "no CSR was created");

    // Once it may approve for that signer, the same call succeeds.
    cluster_role.rules.get_or_insert_with(Vec::new).push(rule(
        &["signers"],
        &["approve"],
        Some(&["kubernetes.io/kube-apiserver-client"]),
    ));
    roles
        .patch(
            &role,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"rules": cluster_role.rules})),
        )
        .await
        .expect("grant approve");
    common::eventually_ok("the caller may now approve", || async {
        Ok(client
            .issue_client_certificate(request(&pem, &user, &[]))
            .await
            .is_ok())
    })
    .await
    .expect("issued once allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_naming_more_than_the_request_is_refused_with_nothing_created() {
    use rcgen::{DnType, DnValue};
    let env = common::start_with(options(&[], AuthMode::None)).await;
    let client = env.client().await;
    let user = unique_name("alice");
    let t61 = |text: &str| DnValue::TeletexString(text.try_into().expect("T.61 text"));
    // Each CSR asks for {user, groups: [dev]} and names something more, or names it in a way
    // Go (and so the API server's authenticator) may read differently.
    let hostile = [
        (
            "T61String CN and O after the UTF8String ones (Go keeps the last CN)",
            vec![
                (DnType::CommonName, utf8(&user)),
                (DnType::OrganizationName, utf8("dev")),
                (DnType::OrganizationName, t61("system:nodes")),
                (DnType::CommonName, t61("system:kube-controller-manager")),
            ],
        ),
        (
            "a second UTF8String CN",
            vec![
                (DnType::CommonName, utf8(&user)),
                (DnType::OrganizationName, utf8("dev")),
                (DnType::CommonName, utf8("mallory")),
            ],
        ),
        (
            "the group as a BMPString",
            vec![
                (DnType::CommonName, utf8(&user)),
                (
                    DnType::OrganizationName,
                    DnValue::BmpString("dev".try_into().expect("BMP text")),
                ),
            ],
        ),
        (
            "an OU beside CN and O",
            vec![
                (DnType::CommonName, utf8(&user)),
                (DnType::OrganizationName, utf8("dev")),
                (DnType::OrganizationalUnitName, utf8("system:masters")),
            ],
        ),
    ];
    for (what, subject) in hostile {
        let pem = csr_with_subject(subject);
        let answer = client
            .issue_client_certificate(request(&pem, &user, &["dev"]))
            .await;
        if let Ok(issued) = &answer {
            let block = pem::parse(&issued.certificate).expect("PEM");
            let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).expect("X.509");
            panic!(
                "{what}: a certificate was issued for {user}/dev whose subject is {}",
                cert.subject()
            );
        }
        assert_eq!(
            violations_of(&answer),
            [("csr".to_owned(), "CSR_IDENTITY_MISMATCH".to_owned())],
            "{what}"
        );
        assert_code(answer, Code::InvalidArgument, "csr");
        assert_eq!(csrs_for(&env, &pem).await, 0, "{what}: no CSR was created");
    }

    // A PrintableString CN and O (what openssl writes by default) read the same everywhere.
    let printable = |text: &str| DnValue::PrintableString(text.try_into().expect("printable"));
    let pem = csr_with_subject(vec![
        (DnType::CommonName, printable(&user)),
        (DnType::OrganizationName, printable("dev")),
    ]);
    client
        .issue_client_certificate(request(&pem, &user, &["dev"]))
        .await
        .expect("a PrintableString subject naming exactly the request is issued");
    assert_eq!(csrs_for(&env, &pem).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_refused_with_nothing_created_unless_the_operator_turns_them_on() {
    // Given tokend started without --enable-client-certificates.
    let env = common::start().await;
    let client = env.client().await;
    let user = unique_name("alice");
    let (pem, _) = csr(&user, &[]);
    let refused = client
        .issue_client_certificate(request(&pem, &user, &[]))
        .await;
    assert_eq!(reason_of(&refused), Some("FEATURE_DISABLED"));
    assert_code(
        refused,
        Code::FailedPrecondition,
        "--enable-client-certificates",
    );
    assert_eq!(csrs_for(&env, &pem).await, 0, "no CSR was created");
}
