//! Contract tests of the node and component credentials tokend relies on: bootstrap-token
//! authentication (`--enable-bootstrap-token-auth`) and the certificates.k8s.io/v1 CSR API with
//! its approval subresource and the kube-apiserver-client signer (kube-controller-manager's
//! csrsigning on a real plane). Each runs against the emulator or, unchanged, a real cluster.

use tokend_test_support as common;

use anyhow::{Context as _, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::contract::api_error;
use common::{Backend, Cluster, eventually_some, unique_name};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    Ok(serde_json::from_value(v)?)
}

fn random_lower(n: usize) -> String {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..n)
        .map(|_| char::from(CHARS[usize::from(rand::random::<u8>()) % CHARS.len()]))
        .collect()
}

async fn connect() -> Result<Cluster> {
    Cluster::connect_with(kube_emulator::Options::default()).await
}

/// Creates `bootstrap-token-<id>` in kube-system with `data`; answers the token.
async fn bootstrap_secret(c: &Cluster, data: Value) -> Result<(String, String)> {
    let id = random_lower(6);
    let secret = random_lower(16);
    let mut string_data = json!({"token-id": id, "token-secret": secret});
    if let (Some(m), Some(extra)) = (string_data.as_object_mut(), data.as_object()) {
        m.extend(extra.clone());
    }
    Api::<Secret>::namespaced(c.client.clone(), "kube-system")
        .create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": format!("bootstrap-token-{id}")},
                "type": "bootstrap.kubernetes.io/token",
                "stringData": string_data,
            }))?,
        )
        .await?;
    Ok((id.clone(), format!("{id}.{secret}")))
}

async fn review(c: &Cluster, token: &str) -> Result<Value> {
    let answer = Api::<TokenReview>::all(c.client.clone())
        .create(
            &PostParams::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token: token.into(),
                    audiences: None,
                },
                ..Default::default()
            },
        )
        .await?;
    Ok(serde_json::to_value(answer.status)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_token_is_its_node_identity_in_sorted_groups() -> Result<()> {
    let c = connect().await?;
    let (id, token) = bootstrap_secret(
        &c,
        json!({
            "usage-bootstrap-authentication": "true",
            "expiration": "2099-01-01T00:00:00Z",
            "auth-extra-groups": "system:bootstrappers:z-last,system:bootstrappers:a-first",
        }),
    )
    .await?;
    let status = eventually_some("the bootstrap token authenticates", || async {
        let s = review(&c, &token).await?;
        Ok((s["authenticated"] == true).then_some(s))
    })
    .await?;
    ensure!(status["user"]["username"] == format!("system:bootstrap:{id}"));
    ensure!(
        status["user"]["groups"]
            == json!([
                "system:bootstrappers",
                "system:bootstrappers:a-first",
                "system:bootstrappers:z-last",
                "system:authenticated"
            ]),
        "{status}"
    );
    // A request with it is that user: a forbidden one says so.
    let as_node = c.client_with_token(&token)?;
    let denied = api_error(
        Api::<Secret>::namespaced(as_node, "kube-system")
            .list(&Default::default())
            .await,
    )?;
    ensure!(denied.code == 403, "{denied:?}");
    ensure!(
        denied.message.contains(&format!(
            "User \"system:bootstrap:{id}\" cannot list resource \"secrets\""
        )),
        "{}",
        denied.message
    );
    Api::<Secret>::namespaced(c.client.clone(), "kube-system")
        .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_unmarked_or_misgrouped_bootstrap_tokens_do_not_authenticate() -> Result<()> {
    let c = connect().await?;
    let cases = [
        json!({"usage-bootstrap-authentication": "true", "expiration": "2020-01-01T00:00:00Z"}),
        json!({"usage-bootstrap-authentication": "true", "expiration": "not a time"}),
        json!({"usage-bootstrap-signing": "true"}),
        json!({"usage-bootstrap-authentication": "true", "auth-extra-groups": "system:masters"}),
    ];
    // A control, valid, so a refusal below is not merely a cache not yet filled.
    let (control_id, control) =
        bootstrap_secret(&c, json!({"usage-bootstrap-authentication": "true"})).await?;
    eventually_some("the control token authenticates", || async {
        Ok((review(&c, &control).await?["authenticated"] == true).then_some(()))
    })
    .await?;
    let mut ids = vec![control_id];
    for data in cases {
        let (id, token) = bootstrap_secret(&c, data.clone()).await?;
        ids.push(id.clone());
        // Made after the control authenticated; give the server's Secret cache the same time.
        let (_, probe) =
            bootstrap_secret(&c, json!({"usage-bootstrap-authentication": "true"})).await?;
        ids.push(probe.split('.').next().unwrap_or_default().to_owned());
        eventually_some("a token made after it authenticates", || async {
            Ok((review(&c, &probe).await?["authenticated"] == true).then_some(()))
        })
        .await?;
        let status = review(&c, &token).await?;
        ensure!(
            status["authenticated"] != true,
            "{data} authenticated: {status}"
        );
        let wrong_secret = format!("{id}.{}", random_lower(16));
        ensure!(review(&c, &wrong_secret).await?["authenticated"] != true);
    }
    let secrets = Api::<Secret>::namespaced(c.client.clone(), "kube-system");
    for id in ids {
        let _ = secrets
            .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
            .await;
    }
    Ok(())
}

/// A PEM CSR for `cn` / `o`, and its key's PEM.
fn csr_pem(cn: &str, o: Option<&str>) -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    if let Some(o) = o {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, o);
    }
    Ok((params.serialize_request(&key)?.pem()?, key.serialize_pem()))
}

fn csr_object(
    name: &str,
    pem: &str,
    signer: &str,
    seconds: Option<i64>,
) -> Result<CertificateSigningRequest> {
    let mut spec = json!({
        "request": STANDARD.encode(pem),
        "signerName": signer,
        "usages": ["digital signature", "client auth"],
    });
    if let Some(s) = seconds {
        spec["expirationSeconds"] = json!(s);
    }
    obj(json!({"metadata": {"name": name}, "spec": spec}))
}

fn approved(mut csr: CertificateSigningRequest) -> Result<CertificateSigningRequest> {
    let mut value = serde_json::to_value(&csr)?;
    value["status"] = json!({"conditions": [{
        "type": "Approved", "status": "True", "reason": "ContractTest", "message": "approved",
    }]});
    csr = obj(value)?;
    Ok(csr)
}

const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_client_csr_is_signed_with_the_lifetime_asked_for() -> Result<()> {
    let c = connect().await?;
    let csrs = Api::<CertificateSigningRequest>::all(c.client.clone());
    let user = unique_name("contract-user");
    let group = unique_name("contract-group");
    let (pem, key) = csr_pem(&user, Some(&group))?;
    let name = unique_name("contract-csr");
    let created = csrs
        .create(
            &PostParams::default(),
            &csr_object(&name, &pem, CLIENT_SIGNER, Some(3600))?,
        )
        .await?;
    // The API server writes the requester's identity; no status yet.
    ensure!(
        created
            .spec
            .username
            .as_deref()
            .is_some_and(|u| !u.is_empty())
    );
    ensure!(
        created
            .spec
            .groups
            .iter()
            .flatten()
            .any(|g| g == "system:authenticated")
    );
    ensure!(
        created
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_none()
    );
    csrs.replace_subresource(
        "approval",
        &name,
        &PostParams::default(),
        &approved(created)?,
    )
    .await?;
    let cert = eventually_some("the approved CSR is signed", || async {
        Ok(csrs
            .get(&name)
            .await?
            .status
            .and_then(|s| s.certificate)
            .filter(|c| !c.0.is_empty()))
    })
    .await?;
    let block = pem::parse(&cert.0)?;
    let (_, x509) = x509_parser::parse_x509_certificate(block.contents())?;
    let subject = x509.subject();
    ensure!(
        subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            == Some(user.as_str())
    );
    ensure!(
        subject
            .iter_organization()
            .next()
            .and_then(|a| a.as_str().ok())
            == Some(group.as_str())
    );
    // notBefore is backdated 5 minutes; notAfter is expirationSeconds after signing.
    let validity = x509.validity();
    let span = validity.not_after.timestamp() - validity.not_before.timestamp();
    ensure!(span == 3600 + 300, "validity span {span}s");
    ensure!(x509.is_ca() == false);

    // A client with the certificate is that user and group.
    let mut config = c.config.clone();
    config.auth_info = kube::config::AuthInfo {
        client_certificate_data: Some(STANDARD.encode(&cert.0)),
        client_key_data: Some(STANDARD.encode(key).into()),
        ..Default::default()
    };
    let as_user = kube::Client::try_from(config)?;
    let denied = api_error(
        Api::<Secret>::namespaced(as_user, "kube-system")
            .list(&Default::default())
            .await,
    )?;
    ensure!(denied.code == 403, "{denied:?}");
    ensure!(
        denied
            .message
            .contains(&format!("User \"{user}\" cannot list resource \"secrets\"")),
        "{}",
        denied.message
    );
    csrs.delete(&name, &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csr_api_refuses_short_lifetimes_and_system_masters() -> Result<()> {
    let c = connect().await?;
    let csrs = Api::<CertificateSigningRequest>::all(c.client.clone());
    let (pem, _) = csr_pem("short", None)?;
    let short = api_error(
        csrs.create(
            &PostParams::default(),
            &csr_object(&unique_name("short"), &pem, CLIENT_SIGNER, Some(599))?,
        )
        .await,
    )?;
    ensure!(short.code == 422, "{short:?}");
    ensure!(
        short.message.contains(
            "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)"
        ),
        "{}",
        short.message
    );
    let (masters, _) = csr_pem("root", Some("system:masters"))?;
    let name = unique_name("masters");
    let refused = api_error(
        csrs.create(
            &PostParams::default(),
            &csr_object(&name, &masters, CLIENT_SIGNER, None)?,
        )
        .await,
    )?;
    ensure!(refused.code == 403, "{refused:?}");
    ensure!(
        refused.message.contains(
            "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
        ),
        "{}",
        refused.message
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_needs_approve_on_the_signer() -> Result<()> {
    let c = connect().await?;
    let ns = c.namespace("approver").await?;
    let sa = unique_name("approver");
    c.service_account(&ns.name, &sa).await?;
    let cleanup = match c.backend {
        Backend::Real => common::cleanup::Cleanup::new(c.config.clone()),
        Backend::Emulator => common::cleanup::Cleanup::discard(),
    };
    // Given an identity that may create CSRs and update their approval, and nothing more.
    let role = unique_name("csr-approver");
    Api::<ClusterRole>::all(c.client.clone())
        .create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": role},
                "rules": [
                    {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get"]},
                    {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"], "verbs": ["update"]},
                ],
            }))?,
        )
        .await?;
    cleanup.cluster_role(&role);
    Api::<ClusterRoleBinding>::all(c.client.clone())
        .create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": role},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns.name}],
            }))?,
        )
        .await?;
    cleanup.cluster_role_binding(&role);
    let token = common::least_privilege::service_account_token(&c.client, &ns.name, &sa).await;
    let csrs = Api::<CertificateSigningRequest>::all(c.client_with_token(&token)?);
    let (pem, _) = csr_pem(&unique_name("approved-by-sa"), None)?;
    let name = unique_name("approval");
    let created = eventually_some("the role takes effect", || async {
        Ok(csrs
            .create(
                &PostParams::default(),
                &csr_object(&name, &pem, CLIENT_SIGNER, None)?,
            )
            .await
            .ok())
    })
    .await?;
    let refused = api_error(
        csrs.replace_subresource(
            "approval",
            &name,
            &PostParams::default(),
            &approved(created)?,
        )
        .await,
    )?;
    ensure!(refused.code == 403, "{refused:?}");
    ensure!(
        refused.message.contains(
            "user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client\""
        ),
        "{}",
        refused.message
    );
    let admin = Api::<CertificateSigningRequest>::all(c.client.clone());
    let stored = admin.get(&name).await.context("the CSR")?;
    ensure!(
        stored
            .status
            .and_then(|s| s.conditions)
            .is_none_or(|c| c.is_empty())
    );
    admin.delete(&name, &DeleteParams::default()).await?;
    Ok(())
}
