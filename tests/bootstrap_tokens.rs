//! Bootstrap tokens through tokend, against the emulator or, unchanged, a real control plane:
//! the token authenticates as `system:bootstrap:<id>` in the bootstrappers' groups until it is
//! revoked or expires, its kubeconfig is the one the kubeconfig guide's four kubectl commands
//! write and works with kubectl, and a kubelet's TLS bootstrap (a CSR for the kubelet client
//! signer, made with the token) is signed once approved.

use std::collections::BTreeSet;
use std::time::Duration;

use tokend_test_support as common;

use base64::Engine as _;
use common::{
    TestEnv, assert_code, eventually_some, eventually_within, reason_of, unique_name, violations_of,
};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestSpec,
    CertificateSigningRequestStatus,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::Api;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use tokend::config::AuthMode;
use tokend::server::ServerOptions;
use tokend::service::Settings;
use tokend::service::policy::Policy;
use tokend_client::v1;
use tonic::Code;

/// What the API server's authenticator makes of `token` now.
async fn review(env: &TestEnv, token: &str) -> Option<(String, BTreeSet<String>)> {
    let review = Api::<TokenReview>::all(env.kube.clone())
        .create(
            &PostParams::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token: token.to_owned(),
                    audiences: None,
                },
                ..Default::default()
            },
        )
        .await
        .expect("TokenReview");
    let status = review.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user.unwrap_or_default();
    Some((
        user.username.unwrap_or_default(),
        user.groups.unwrap_or_default().into_iter().collect(),
    ))
}

fn groups(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|g| (*g).to_owned()).collect()
}

/// How many bootstrap token Secrets in kube-system carry `description` (a test's own, so other
/// tests' tokens do not count).
async fn bootstrap_secrets_described(env: &TestEnv, description: &str) -> usize {
    Api::<Secret>::namespaced(env.kube.clone(), "kube-system")
        .list(&ListParams::default().fields("type=bootstrap.kubernetes.io/token"))
        .await
        .expect("list bootstrap Secrets")
        .items
        .into_iter()
        .filter(|s| {
            s.data
                .as_ref()
                .and_then(|d| d.get("description"))
                .is_some_and(|v| v.0 == description.as_bytes())
        })
        .count()
}

/// Revokes what a call that should have been refused issued anyway, so a failing test leaves
/// no working token behind.
async fn take_back(client: &tokend_client::TokendClient, issued: &v1::IssueBootstrapTokenResponse) {
    let _ = client
        .revoke_bootstrap_token(v1::RevokeBootstrapTokenRequest {
            token_id: issued.token_id.clone(),
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_tokens_are_refused_with_nothing_created_unless_the_operator_turns_them_on() {
    // Given tokend as `tokend serve --allowed-namespaces team-a` starts it: no
    // --enable-bootstrap-tokens.
    let env = common::start_with(ServerOptions {
        auth: AuthMode::None,
        settings: Settings {
            policy: Policy {
                allowed_namespaces: vec!["team-a".into()],
                ..Policy::default()
            },
            ..Settings::default()
        },
        ..ServerOptions::default()
    })
    .await;
    let client = env.client().await;
    let description = unique_name("switched-off");

    // When a caller asks for a bootstrap token, then it is refused, naming the flag,
    let refused = client
        .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
            description: description.clone(),
            ..Default::default()
        })
        .await;
    if let Ok(issued) = &refused {
        take_back(&client, issued).await;
    }
    assert_eq!(reason_of(&refused), Some("FEATURE_DISABLED"));
    assert_code(
        refused,
        Code::FailedPrecondition,
        "--enable-bootstrap-tokens",
    );
    // and nothing was written into kube-system.
    assert_eq!(bootstrap_secrets_described(&env, &description).await, 0);

    // Nor does tokend list, read or delete bootstrap tokens while they are off.
    let listed = client
        .list_bootstrap_tokens(v1::ListBootstrapTokensRequest::default())
        .await;
    assert_eq!(reason_of(&listed), Some("FEATURE_DISABLED"));
    let got = client
        .get_bootstrap_token(v1::GetBootstrapTokenRequest {
            token_id: "abcdef".into(),
        })
        .await;
    assert_eq!(reason_of(&got), Some("FEATURE_DISABLED"));
    let revoked = client
        .revoke_bootstrap_token(v1::RevokeBootstrapTokenRequest {
            token_id: "abcdef".into(),
        })
        .await;
    assert_eq!(reason_of(&revoked), Some("FEATURE_DISABLED"));
    assert_code(
        revoked,
        Code::FailedPrecondition,
        "--enable-bootstrap-tokens",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_group_the_operator_did_not_list_is_refused_with_nothing_created() {
    // Given bootstrap tokens on, allowed kubeadm's default group and one more.
    let listed = format!("system:bootstrappers:{}", unique_name("listed"));
    let env = common::start_with_node_credentials(&[&listed]).await;
    let client = env.client().await;
    let unlisted = format!("system:bootstrappers:{}", unique_name("unlisted"));
    let description = unique_name("unlisted-group");

    // When a well-formed bootstrappers group the operator did not list is asked for, alone or
    // beside a listed one, then the call is refused naming the group and the flag.
    for groups in [
        vec![unlisted.clone()],
        vec![listed.clone(), unlisted.clone()],
    ] {
        let refused = client
            .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
                extra_groups: groups,
                description: description.clone(),
                ..Default::default()
            })
            .await;
        if let Ok(issued) = &refused {
            take_back(&client, issued).await;
        }
        assert_eq!(reason_of(&refused), Some("GROUP_NOT_ALLOWED"));
        assert_eq!(
            refused.as_ref().err().and_then(|e| e.metadata("group")),
            Some(unlisted.as_str())
        );
        assert_code(
            refused,
            Code::FailedPrecondition,
            "--bootstrap-token-allowed-groups",
        );
    }
    assert_eq!(bootstrap_secrets_described(&env, &description).await, 0);

    // The listed group, and kubeadm's default (asked for by naming none), are issued.
    for groups in [vec![listed.clone()], vec![]] {
        let issued = client
            .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
                extra_groups: groups,
                description: description.clone(),
                ..Default::default()
            })
            .await
            .expect("a listed group is issued");
        take_back(&client, &issued).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_token_authenticates_as_its_node_identity_until_revoked() {
    let extra = format!("system:bootstrappers:{}", unique_name("nodes"));
    let env = common::start_with_node_credentials(&[&extra]).await;
    let client = env.client().await;

    // Given a bootstrap token issued through tokend.
    let issued = client
        .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
            duration: "1h".into(),
            extra_groups: vec![extra.clone()],
            description: "test node join".into(),
            ..Default::default()
        })
        .await
        .expect("issue bootstrap token");
    let (id, secret) = issued.token.split_once('.').expect("<id>.<secret>");
    assert_eq!(id, issued.token_id);
    assert!(id.len() == 6 && secret.len() == 16, "kubeadm's form");
    assert!(
        issued
            .ca_cert_hashes
            .iter()
            .all(|h| h.starts_with("sha256:") && h.len() == 71),
        "{:?}",
        issued.ca_cert_hashes
    );
    assert!(!issued.ca_cert_hashes.is_empty());

    // Then the API server authenticates it as system:bootstrap:<id> in the bootstrappers' groups.
    let (user, user_groups) = eventually_some("the bootstrap token authenticates", || async {
        Ok(review(&env, &issued.token).await)
    })
    .await
    .expect("authenticated");
    assert_eq!(user, format!("system:bootstrap:{id}"));
    assert_eq!(
        user_groups,
        groups(&["system:bootstrappers", &extra, "system:authenticated"])
    );
    // And the Secret is kubeadm's, labelled as tokend's.
    let stored = Api::<Secret>::namespaced(env.kube.clone(), "kube-system")
        .get(&format!("bootstrap-token-{id}"))
        .await
        .expect("the Secret");
    assert_eq!(
        stored.type_.as_deref(),
        Some("bootstrap.kubernetes.io/token")
    );
    let data = stored.data.unwrap_or_default();
    let text = |k: &str| String::from_utf8(data.get(k).map(|v| v.0.clone()).unwrap_or_default());
    assert_eq!(
        text("usage-bootstrap-authentication").ok().as_deref(),
        Some("true")
    );
    assert_eq!(
        text("usage-bootstrap-signing").ok().as_deref(),
        Some("true")
    );
    assert_eq!(
        text("auth-extra-groups").ok().as_deref(),
        Some(extra.as_str())
    );
    assert_eq!(text("description").ok().as_deref(), Some("test node join"));

    // Listing and getting show it, never its secret.
    let listed = client
        .list_bootstrap_tokens(v1::ListBootstrapTokensRequest::default())
        .await
        .expect("list");
    let mine = listed
        .bootstrap_tokens
        .iter()
        .find(|t| t.token_id == id)
        .expect("listed");
    assert_eq!(mine.extra_groups, std::slice::from_ref(&extra));
    assert!(!mine.expired);
    assert!(
        !format!("{listed:?}").contains(secret),
        "the list leaks the secret"
    );
    let got = client
        .get_bootstrap_token(v1::GetBootstrapTokenRequest {
            token_id: id.into(),
        })
        .await
        .expect("get");
    assert!(!format!("{got:?}").contains(secret));

    // When it is revoked, then it stops authenticating and its Secret is gone.
    client
        .revoke_bootstrap_token(v1::RevokeBootstrapTokenRequest {
            token_id: id.into(),
        })
        .await
        .expect("revoke");
    eventually_within(
        "the revoked bootstrap token is refused",
        Duration::from_secs(20),
        || async { Ok(review(&env, &issued.token).await.is_none()) },
    )
    .await
    .expect("refused after revoke");
    let again = client
        .revoke_bootstrap_token(v1::RevokeBootstrapTokenRequest {
            token_id: id.into(),
        })
        .await;
    assert_eq!(reason_of(&again), Some("TOKEN_NOT_FOUND"));
    assert_code(again, Code::NotFound, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_bootstrap_token_does_not_authenticate() {
    let env = common::start_with_node_credentials(&[]).await;
    let client = env.client().await;
    let issued = client
        .issue_bootstrap_token(v1::IssueBootstrapTokenRequest::default())
        .await
        .expect("issue");
    eventually_some("the fresh token authenticates", || async {
        Ok(review(&env, &issued.token).await)
    })
    .await
    .expect("authenticated");
    // Given its Secret's expiry moved into the past (as time would).
    let name = format!("bootstrap-token-{}", issued.token_id);
    let secrets = Api::<Secret>::namespaced(env.kube.clone(), "kube-system");
    secrets
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"stringData": {"expiration": "2020-01-01T00:00:00Z"}}),
            ),
        )
        .await
        .expect("expire the Secret");
    // Then the API server no longer accepts it (and tokend shows it expired, unless the
    // controller-manager's tokencleaner has deleted it already).
    eventually_within(
        "the expired bootstrap token is refused",
        Duration::from_secs(20),
        || async { Ok(review(&env, &issued.token).await.is_none()) },
    )
    .await
    .expect("refused once expired");
    match client
        .get_bootstrap_token(v1::GetBootstrapTokenRequest {
            token_id: issued.token_id.clone(),
        })
        .await
    {
        Ok(got) => assert!(got.bootstrap_token.expect("token").expired),
        Err(e) => assert_eq!(e.code(), Code::NotFound, "{}", e.message()),
    }
    let _ = secrets.delete(&name, &Default::default()).await;
}

async fn kubectl(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("kubectl")
        .args(args)
        .output()
        .await
        .expect("kubectl runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_kubeconfig_equals_what_kubectl_writes_and_works_with_kubectl() {
    if common::find_on_path("kubectl").is_none() {
        common::skip(
            "the_bootstrap_kubeconfig_equals_what_kubectl_writes_and_works_with_kubectl",
            common::SkipKind::MissingTool,
            "kubectl is not on PATH",
        );
        return;
    }
    let env = common::start_with_node_credentials(&[]).await;
    let client = env.client().await;
    let issued = client
        .issue_bootstrap_token(v1::IssueBootstrapTokenRequest::default())
        .await
        .expect("issue");
    let dir = tempfile::tempdir().expect("temp dir");
    let ours = dir.path().join("tokend.kubeconfig");
    std::fs::write(&ours, &issued.kubeconfig).expect("write");

    // Given the guide's four commands, with the CA tokend embedded, its server and the token.
    let parsed: serde_yaml::Value = serde_yaml::from_str(&issued.kubeconfig).expect("YAML");
    let ca_data = parsed["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("CA embedded");
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        base64::engine::general_purpose::STANDARD
            .decode(ca_data)
            .expect("base64"),
    )
    .expect("write CA");
    let theirs = dir.path().join("kubectl.kubeconfig");
    let file = format!("--kubeconfig={}", theirs.display());
    let ca_flag = format!("--certificate-authority={}", ca.display());
    let server_flag = format!("--server={}", issued.server);
    let token_flag = format!("--token={}", issued.token);
    for args in [
        vec![
            "config",
            "set-cluster",
            "kubernetes",
            &ca_flag,
            "--embed-certs=true",
            &server_flag,
            &file,
        ],
        vec![
            "config",
            "set-credentials",
            "kubelet-bootstrap",
            &token_flag,
            &file,
        ],
        vec![
            "config",
            "set-context",
            "default",
            "--cluster=kubernetes",
            "--user=kubelet-bootstrap",
            &file,
        ],
        vec!["config", "use-context", "default", &file],
    ] {
        let out = kubectl(&args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Then tokend's kubeconfig is the same document, field by field.
    let written: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&theirs).expect("read")).expect("YAML");
    assert_eq!(
        parsed,
        written,
        "tokend:\n{}\nkubectl:\n{}",
        issued.kubeconfig,
        serde_yaml::to_string(&written).unwrap_or_default()
    );

    // And kubectl authenticates with it (a SelfSubjectAccessReview every authenticated user may make).
    let ours_flag = format!("--kubeconfig={}", ours.display());
    let can_i = ["auth", "can-i", "create", "selfsubjectaccessreviews"];
    eventually_within(
        "kubectl works with the bootstrap kubeconfig",
        Duration::from_secs(20),
        || async {
            let out = kubectl(&[&[ours_flag.as_str()][..], &can_i[..]].concat()).await;
            let said = String::from_utf8_lossy(&out.stdout);
            eprintln!(
                "kubectl auth can-i: {said}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(out.status.success() && said.trim() == "yes")
        },
    )
    .await
    .expect("kubectl authenticates with the bootstrap kubeconfig");
    client
        .revoke_bootstrap_token(v1::RevokeBootstrapTokenRequest {
            token_id: issued.token_id.clone(),
        })
        .await
        .expect("revoke");
    eventually_within(
        "kubectl is refused after revoke",
        Duration::from_secs(20),
        || async {
            let out = kubectl(&[&[ours_flag.as_str()][..], &can_i[..]].concat()).await;
            Ok(!out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains("Unauthorized"))
        },
    )
    .await
    .expect("refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_outside_the_bootstrappers_are_refused_with_nothing_created() {
    let env = common::start_with_node_credentials(&[]).await;
    let client = env.client().await;
    // Every request carries this test's own description, so tokens other tests issue meanwhile
    // do not count (the bad-fields request's description is itself one of its bad fields).
    let description = unique_name("refused");
    for group in [
        "system:masters",
        "system:bootstrappers",
        "system:nodes",
        "system:bootstrappers:Bad",
    ] {
        let refused = client
            .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
                extra_groups: vec![group.into()],
                description: description.clone(),
                ..Default::default()
            })
            .await;
        assert_eq!(
            violations_of(&refused),
            [("extra_groups[0]".to_owned(), "NAME_INVALID".to_owned())]
        );
        assert_code(refused, Code::InvalidArgument, "extra_groups");
    }
    let too_long = client
        .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
            duration: "1000h".into(),
            description: description.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(reason_of(&too_long), Some("DURATION_OVER_MAXIMUM"));
    assert_eq!(
        too_long
            .as_ref()
            .err()
            .and_then(|e| e.metadata("maximum_seconds")),
        Some("604800")
    );
    assert_code(
        too_long,
        Code::FailedPrecondition,
        "--bootstrap-token-max-duration",
    );
    let unknown = client
        .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
            usages: vec!["everything".into()],
            description: description.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        violations_of(&unknown),
        [("usages[0]".to_owned(), "VALUE_UNKNOWN".to_owned())]
    );
    assert_code(unknown, Code::InvalidArgument, "usages");
    // Every bad field of one request is reported together, each with its reason.
    let many = client
        .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
            duration: "1.5h".into(),
            extra_groups: vec!["system:bootstrappers:ok".into(), "system:masters".into()],
            description: "two\nlines".into(),
            usages: vec!["signing".into(), "everything".into()],
            server: "http://plain.example".into(),
        })
        .await;
    assert_eq!(reason_of(&many), Some("INVALID_FIELDS"));
    assert_eq!(
        violations_of(&many),
        [
            ("duration", "DURATION_INVALID"),
            ("extra_groups[1]", "NAME_INVALID"),
            ("usages[1]", "VALUE_UNKNOWN"),
            ("description", "TEXT_INVALID"),
            ("server", "SERVER_URL_INVALID"),
        ]
        .map(|(f, r)| (f.to_owned(), r.to_owned()))
    );
    assert_code(many, Code::InvalidArgument, "description");
    for marker in [description.as_str(), "two\nlines"] {
        assert_eq!(
            bootstrap_secrets_described(&env, marker).await,
            0,
            "nothing was created"
        );
    }
}

/// The kubelet's TLS bootstrap as the kubeconfig guide describes it: with the bootstrap token,
/// create a CSR for the kubelet client signer (CN `system:node:<name>`, O `system:nodes`); once
/// approved, the controller-manager (or the emulator) signs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_csr_made_with_a_bootstrap_token_is_signed_once_approved() {
    let group = format!("system:bootstrappers:{}", unique_name("kubelets"));
    let env = common::start_with_node_credentials(&[&group]).await;
    let client = env.client().await;
    let issued = client
        .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
            extra_groups: vec![group.clone()],
            ..Default::default()
        })
        .await
        .expect("issue");
    // Given the bootstrappers may create and read CSRs (what kubeadm's
    // system:node-bootstrapper binding grants), bound to this token's group only.
    let role = unique_name("node-bootstrapper");
    let meta = ObjectMeta {
        name: Some(role.clone()),
        ..Default::default()
    };
    Api::<ClusterRole>::all(env.kube.clone())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: meta.clone(),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["certificates.k8s.io".into()]),
                    resources: Some(vec!["certificatesigningrequests".into()]),
                    verbs: vec!["create".into(), "get".into()],
                    ..Default::default()
                }]),
                ..Default::default()
            },
        )
        .await
        .expect("ClusterRole");
    env.forget_cluster_role_later(&role);
    Api::<ClusterRoleBinding>::all(env.kube.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: meta,
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: role.clone(),
                },
                subjects: Some(vec![Subject {
                    kind: "Group".into(),
                    name: group.clone(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("ClusterRoleBinding");
    env.forget_cluster_binding_later(&role);

    // When the "kubelet" creates its CSR with the bootstrap token.
    let node = unique_name("node");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let csr_pem = params
        .serialize_request(&key)
        .expect("CSR")
        .pem()
        .expect("PEM");
    let as_node = common::client_with_token(&env, &issued.token).await;
    let name = unique_name("kubelet-csr");
    let csrs_as_node = Api::<CertificateSigningRequest>::all(as_node);
    let created = eventually_some("the bootstrap token may create a CSR", || async {
        Ok(csrs_as_node
            .create(
                &PostParams::default(),
                &CertificateSigningRequest {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    spec: CertificateSigningRequestSpec {
                        request: k8s_openapi::ByteString(csr_pem.clone().into_bytes()),
                        signer_name: "kubernetes.io/kube-apiserver-client-kubelet".into(),
                        usages: Some(vec![
                            "digital signature".into(),
                            "key encipherment".into(),
                            "client auth".into(),
                        ]),
                        ..Default::default()
                    },
                    status: None,
                },
            )
            .await
            .ok())
    })
    .await
    .expect("created");
    let spec = &created.spec;
    assert_eq!(
        spec.username.as_deref(),
        Some(format!("system:bootstrap:{}", issued.token_id).as_str())
    );
    assert!(spec.groups.iter().flatten().any(|g| g == &group));

    // And an admin approves it.
    let admin_csrs = Api::<CertificateSigningRequest>::all(env.kube.clone());
    let mut approval = admin_csrs.get(&name).await.expect("get");
    approval.status = Some(CertificateSigningRequestStatus {
        conditions: Some(vec![CertificateSigningRequestCondition {
            type_: "Approved".into(),
            status: "True".into(),
            reason: Some("TestApproved".into()),
            message: Some("approved by the test".into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    admin_csrs
        .replace_subresource("approval", &name, &PostParams::default(), &approval)
        .await
        .expect("approve");

    // Then the certificate appears, for the node, signed by the cluster CA.
    let certificate = eventually_some("the kubelet CSR is signed", || async {
        Ok(csrs_as_node
            .get(&name)
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.certificate)
            .filter(|c| !c.0.is_empty()))
    })
    .await
    .expect("signed");
    let block = pem::parse(&certificate.0).expect("PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).expect("X.509");
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok());
    assert_eq!(cn, Some(format!("system:node:{node}").as_str()));
    admin_csrs
        .delete(&name, &Default::default())
        .await
        .expect("delete CSR");
    client
        .revoke_bootstrap_token(v1::RevokeBootstrapTokenRequest {
            token_id: issued.token_id,
        })
        .await
        .expect("revoke");
}

/// The new services are served like TokenService: listed by reflection (grpcurl needs no
/// .proto), callable with grpcurl, and counted per method in the RPC metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_discovers_and_calls_the_bootstrap_service_and_metrics_name_it() {
    let Some(grpcurl) = common::find_on_path("grpcurl") else {
        common::skip(
            "grpcurl_discovers_and_calls_the_bootstrap_service_and_metrics_name_it",
            common::SkipKind::MissingTool,
            "grpcurl is not on PATH",
        );
        return;
    };
    let env = common::start_with_node_credentials(&[]).await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&grpcurl)
            .arg("-plaintext")
            .args(args)
            .output()
            .expect("grpcurl runs");
        assert!(
            out.status.success(),
            "grpcurl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let services = run(&[&env.addr, "list"]);
    assert!(
        services.contains("tokend.v1.BootstrapTokenService"),
        "{services}"
    );
    assert!(
        services.contains("tokend.v1.ClientCertificateService"),
        "{services}"
    );
    let issued: serde_json::Value = serde_json::from_str(&run(&[
        "-d",
        r#"{"duration":"15m"}"#,
        &env.addr,
        "tokend.v1.BootstrapTokenService/IssueBootstrapToken",
    ]))
    .expect("JSON");
    let id = issued["tokenId"].as_str().expect("tokenId").to_owned();
    run(&[
        "-d",
        &serde_json::json!({ "token_id": id }).to_string(),
        &env.addr,
        "tokend.v1.BootstrapTokenService/RevokeBootstrapToken",
    ]);
    let metrics = env.scrape_metrics().await;
    for method in ["IssueBootstrapToken", "RevokeBootstrapToken"] {
        let label =
            format!("grpc_service=\"tokend.v1.BootstrapTokenService\",grpc_method=\"{method}\"");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("grpc_server_handled_total")
                    && l.contains(&label)
                    && l.contains("grpc_code=\"OK\"")),
            "no {label} series"
        );
    }
}
