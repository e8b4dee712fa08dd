//! deploy/'s RBAC grants tokend enough and nothing unneeded. Every other black-box test already
//! runs tokend with exactly deploy/'s rules (proof of enough); here each verb of each rule is
//! taken away in turn and a scenario exercising everything tokend does must then fail (proof of
//! nothing unneeded: a permission whose removal breaks nothing has no place in deploy/).
//!
//! The scenario includes the ServiceAccountToken controller and webhook (issue, Ready, a
//! deleted ServiceAccount and Secret noticed through the watches, an earlier version's
//! finalizer removed) where the backend serves the CRD; elsewhere (the emulator, until it serves custom
//! resources) the controller's permissions are not judged and a counted skip says so.
//!
//! On both backends: the scenario injects a fault through the fault proxy to exercise tokend's
//! undo path, and on a real cluster the rules are judged by the real RBAC authorizer.

use tokend_test_support as common;

use common::issue;

use std::collections::BTreeMap;
use std::time::Duration;

use common::FailRule;
use common::least_privilege::TokendRbac;
use common::{TestEnv, unique_name};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use tokend::config::AuthMode;
use tokend::controller::{ServiceAccountToken, ServiceAccountTokenSpec};
use tokend::server::ServerOptions;
use tokend::service::Settings;
use tokend::service::policy::Policy;
use tokend::sweeper::{LEASE_NAME, SweeperOptions};
use tokend_client::{TokendClient, v1};
use tonic::Code;

type Outcome = Result<(), String>;

/// Options as deploy/'s Deployment sets them (which switches bootstrap tokens and client
/// certificates on, as it grants their RBAC).
fn options() -> ServerOptions {
    let options = ServerOptions {
        auth: AuthMode::Kubernetes,
        settings: Settings {
            policy: Policy {
                allowed_cluster_roles: vec!["*".into()],
                ..Policy::default()
            },
            ..Settings::default()
        },
        sweeper: Some(SweeperOptions {
            interval: Duration::from_millis(200),
            grace: Duration::ZERO,
            lease_namespace: String::new(), // the harness puts it in tokend's own namespace
            identity: "rbac-test".into(),
            ..SweeperOptions::default()
        }),
        ..ServerOptions::default()
    };
    common::with_node_credentials(options, &[])
}

/// A caller allowed everything, so only tokend's own rights can make the scenario fail.
async fn admin_caller(env: &TestEnv) -> TokendClient {
    let ns = env.fresh_namespace().await;
    let name = "caller";
    let meta = |n: &str| ObjectMeta {
        name: Some(n.into()),
        namespace: Some(ns.clone()),
        ..Default::default()
    };
    let accounts = Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta(name),
                ..Default::default()
            },
        )
        .await
        .expect("caller SA");
    let binding_name = unique_name("tokend-test-caller");
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(binding_name.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(ns.clone()),
            api_group: None,
        }]),
    };
    Api::<ClusterRoleBinding>::all(env.kube.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("caller binding");
    env.forget_cluster_binding_later(&binding_name);
    let token = common::least_privilege::service_account_token(&env.kube, &ns, name).await;
    TokendClient::builder(env.endpoint.clone())
        .bearer_token(token)
        .connect()
        .await
        .expect("connect")
}

fn bound(
    request: v1::IssueTokenRequest,
    role: &str,
    scope: v1::BindingScope,
) -> v1::IssueTokenRequest {
    v1::IssueTokenRequest {
        cluster_role: role.into(),
        binding_scope: scope as i32,
        ..request
    }
}

fn ensure(condition: bool, what: &str) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

fn step<T>(what: &str, result: Result<T, tokend_client::Error>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {:?} {}", e.code(), e.message()))
}

async fn poll(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Outcome {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("not within {limit:?}: {what}"))
}

/// Everything tokend does with Kubernetes, each step checked; the first failure is the answer.
async fn scenario(env: &TestEnv) -> Outcome {
    rpc_scenario(env).await?;
    if env.declarative.is_some() {
        declared_scenario(env).await?;
    }
    Ok(())
}

/// The ServiceAccountToken controller's part: two resources issued (Ready), one's ServiceAccount
/// and the other's Secret deleted and each noticed at once through the watches (the periodic
/// re-check is minutes away), and the finalizer an earlier tokend left on a resource removed.
async fn declared_scenario(env: &TestEnv) -> Outcome {
    let ns = env.fresh_sat_namespace().await;
    // The API server reads webhook registrations through an informer: on a busy one, an object
    // created at once could skip the webhook just registered (and never get a requester).
    common::propagation::webhook_in_force(&env.kube, &ns, BTreeMap::new())
        .await
        .map_err(|e| format!("{e:#}"))?;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let reason = async |name: &str| -> Option<(String, String)> {
        let sat = api.get_opt(name).await.ok().flatten()?;
        let ready = sat
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        Some((ready.status, ready.reason))
    };
    let mut names = Vec::new();
    for which in ["sa", "secret"] {
        let name = format!("{which}-{}", unique_name("sat"));
        let mut sat = ServiceAccountToken::new(&name, ServiceAccountTokenSpec::default());
        sat.metadata.labels = Some(env.sat_labels());
        api.create(&PostParams::default(), &sat)
            .await
            .map_err(|e| format!("create ServiceAccountToken: {e}"))?;
        names.push(name);
    }
    for name in &names {
        poll(
            "a ServiceAccountToken becomes Ready",
            Duration::from_secs(20),
            async || reason(name).await == Some(("True".into(), "SubresourcesReady".into())),
        )
        .await?;
    }
    let (by_account, by_secret) = (&names[0], &names[1]);
    Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns)
        .delete(by_account, &Default::default())
        .await
        .map_err(|e| format!("delete ServiceAccount: {e}"))?;
    poll(
        "a deleted ServiceAccount is noticed",
        Duration::from_secs(10),
        async || {
            reason(by_account)
                .await
                .is_some_and(|(_, r)| r == "SubresourceNotFound")
        },
    )
    .await?;
    let secret = api
        .get(by_secret)
        .await
        .ok()
        .and_then(|s| s.status?.secret_ref)
        .ok_or("no secretRef")?;
    Api::<Secret>::namespaced(env.kube.clone(), &ns)
        .delete(&secret.name, &Default::default())
        .await
        .map_err(|e| format!("delete Secret: {e}"))?;
    poll(
        "a deleted Secret is noticed",
        Duration::from_secs(10),
        async || {
            reason(by_secret)
                .await
                .is_some_and(|(_, r)| r == "SubresourceNotFound")
        },
    )
    .await?;
    let upgraded = format!("legacy-{}", unique_name("sat"));
    let mut sat = ServiceAccountToken::new(&upgraded, ServiceAccountTokenSpec::default());
    sat.metadata.labels = Some(env.sat_labels());
    sat.metadata.finalizers = Some(vec![tokend::controller::LEGACY_FINALIZER.into()]);
    api.create(&PostParams::default(), &sat)
        .await
        .map_err(|e| format!("create ServiceAccountToken: {e}"))?;
    let removed = poll(
        "an earlier version's finalizer is removed",
        Duration::from_secs(20),
        async || {
            api.get_opt(&upgraded)
                .await
                .ok()
                .flatten()
                .is_some_and(|s| s.metadata.finalizers.unwrap_or_default().is_empty())
        },
    )
    .await;
    // Whatever tokend did, nothing is left held by a finalizer (its namespace would never go).
    let unheld = serde_json::json!({ "metadata": { "finalizers": null } });
    api.patch(&upgraded, &PatchParams::default(), &Patch::Merge(&unheld))
        .await
        .map_err(|e| format!("remove the finalizer: {e}"))?;
    removed?;
    // Every watch ran: a watch refused for want of a permission still lets resources through
    // (its failures make the controller look again), so the errors are counted instead.
    let metrics = env.scrape_metrics().await;
    ensure(
        metrics.contains("tokend_controller_watch_errors_total 0\n"),
        "the controller's watches run without errors",
    )
}

/// What tokend does for gRPC callers and the sweeper.
async fn rpc_scenario(env: &TestEnv) -> Outcome {
    let client = admin_caller(env).await;
    let ns = env.fresh_namespace().await;
    let kube = env.kube.clone();
    let view = v1::BindingScope::Namespace;

    // Issue with a new ServiceAccount and a RoleBinding, over the server's cap (a record patch).
    let first = step(
        "issue",
        client
            .issue_token(bound(
                v1::IssueTokenRequest {
                    duration: "72h".into(),
                    ..issue(&ns, "app")
                },
                "view",
                view,
            ))
            .await,
    )?;
    // Again: the binding exists now (409, then a GET of it).
    let second = step(
        "issue again",
        client
            .issue_token(bound(issue(&ns, "app"), "view", view))
            .await,
    )?;
    step(
        "cluster-scoped binding",
        client
            .issue_token(bound(issue(&ns, "app2"), "view", v1::BindingScope::Cluster))
            .await,
    )?;
    env.forget_cluster_binding_later(&format!("tokend:{ns}:app2:view"));
    step(
        "cluster-scoped binding again",
        client
            .issue_token(bound(issue(&ns, "app2"), "view", v1::BindingScope::Cluster))
            .await,
    )?;
    let record = step(
        "get",
        client
            .get_token(v1::GetTokenRequest {
                token_id: first.token_id.clone(),
            })
            .await,
    )?
    .token
    .ok_or("no record")?;
    ensure(
        record.expiration_time.map(|t| t.seconds) == first.expiration_time.map(|t| t.seconds),
        "the record keeps the server's expiry",
    )?;
    let kubeconfig = step(
        "kubeconfig",
        client
            .get_kubeconfig(v1::GetKubeconfigRequest {
                source: Some(v1::get_kubeconfig_request::Source::Token(
                    first.token.clone(),
                )),
                ..Default::default()
            })
            .await,
    )?;
    ensure(
        kubeconfig.kubeconfig.contains("certificate-authority-data"),
        "kubeconfig embeds the CA",
    )?;
    let review = step(
        "validate",
        client
            .validate_token(v1::ValidateTokenRequest {
                token: first.token.clone(),
                audiences: vec![],
            })
            .await,
    )?;
    ensure(review.authenticated, "the token validates")?;
    let listed = step(
        "list",
        client
            .list_tokens(v1::ListTokensRequest {
                namespace: ns.clone(),
                ..Default::default()
            })
            .await,
    )?;
    ensure(listed.tokens.len() == 4, "four tokens listed")?;
    step(
        "revoke by token",
        client
            .revoke_token(v1::RevokeTokenRequest {
                target: Some(v1::revoke_token_request::Target::Token(second.token)),
            })
            .await,
    )?;

    // A missing ServiceAccount is NOT_FOUND naming it (tokend looks at the namespace to say which).
    match client
        .issue_token(v1::IssueTokenRequest {
            create_service_account: false,
            ..issue(&ns, "ghost")
        })
        .await
    {
        Err(e) if e.code() == Code::NotFound && e.message().contains("serviceaccounts") => {}
        other => return Err(format!("missing account: {other:?}")),
    }
    // A failure after the ServiceAccount was made takes it back.
    match client
        .issue_token(bound(
            issue(&ns, "undo1"),
            &unique_name("no-such-role"),
            view,
        ))
        .await
    {
        Err(e) if e.code() == Code::NotFound => {}
        other => return Err(format!("missing role: {other:?}")),
    }
    let accounts = Api::<ServiceAccount>::namespaced(kube.clone(), &ns);
    ensure(
        accounts
            .get_opt("undo1")
            .await
            .map_err(|e| e.to_string())?
            .is_none(),
        "undo deletes the ServiceAccount",
    )?;
    // A failed TokenRequest takes back the bindings too.
    // Deleted at the end even when a reduced RBAC keeps tokend from undoing it.
    env.forget_cluster_binding_later(&format!("tokend:{ns}:undo3:view"));
    for (sa, scope) in [("undo2", view), ("undo3", v1::BindingScope::Cluster)] {
        env.faults().fail_next(FailRule {
            method: Some(http::Method::POST),
            path_contains: format!("/serviceaccounts/{sa}/token"),
            count: 1,
            status: 500,
        });
        ensure(
            client
                .issue_token(bound(issue(&ns, sa), "view", scope))
                .await
                .is_err(),
            "the faulted issue fails",
        )?;
    }
    let role_bindings = Api::<RoleBinding>::namespaced(kube.clone(), &ns);
    ensure(
        role_bindings
            .get_opt("tokend:undo2:view")
            .await
            .map_err(|e| e.to_string())?
            .is_none(),
        "undo deletes the RoleBinding",
    )?;
    let crb = Api::<ClusterRoleBinding>::all(kube.clone())
        .get_opt(&format!("tokend:{ns}:undo3:view"))
        .await
        .map_err(|e| e.to_string())?;
    ensure(crb.is_none(), "undo deletes the ClusterRoleBinding")?;

    // Bootstrap tokens: a Secret in kube-system issued, listed, shown and deleted.
    let bootstrap = step(
        "issue bootstrap token",
        client
            .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
                duration: "10m".into(),
                ..Default::default()
            })
            .await,
    )?;
    step(
        "list bootstrap tokens",
        client
            .list_bootstrap_tokens(v1::ListBootstrapTokensRequest::default())
            .await,
    )?;
    step(
        "get bootstrap token",
        client
            .get_bootstrap_token(v1::GetBootstrapTokenRequest {
                token_id: bootstrap.token_id.clone(),
            })
            .await,
    )?;
    step(
        "revoke bootstrap token",
        client
            .revoke_bootstrap_token(v1::RevokeBootstrapTokenRequest {
                token_id: bootstrap.token_id,
            })
            .await,
    )?;
    // A client certificate: a CertificateSigningRequest created, approved, read and deleted.
    let user = unique_name("component");
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user.as_str());
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| e.to_string())?;
    step(
        "client certificate",
        client
            .issue_client_certificate(v1::IssueClientCertificateRequest {
                csr: csr.clone(),
                user,
                ..Default::default()
            })
            .await,
    )?;
    let left = Api::<CertificateSigningRequest>::all(kube.clone())
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|c| c.spec.request.0 == csr.as_bytes())
        .count();
    ensure(left == 0, "the CertificateSigningRequest is deleted")?;

    // The sweeper: takes the lease, deletes an expired (sealed) record, renews the lease.
    let expired = common::record_of(&ns, "app", "2020-01-01T00:00:00Z");
    common::write_sealed_record(env, &expired).await;
    let expired_name = expired.token_id.secret_name();
    let secrets = Api::<Secret>::namespaced(kube.clone(), &ns);
    poll(
        "the sweeper deletes the expired record",
        Duration::from_secs(5),
        async || matches!(secrets.get_opt(&expired_name).await, Ok(None)),
    )
    .await?;
    let leases = Api::<Lease>::namespaced(
        kube.clone(),
        env.tokend_namespace
            .as_deref()
            .ok_or("no tokend namespace")?,
    );
    poll(
        "the sweeper renews its lease",
        Duration::from_secs(5),
        async || {
            let spec = leases
                .get_opt(LEASE_NAME)
                .await
                .ok()
                .flatten()
                .and_then(|l| l.spec);
            spec.is_some_and(|s| s.renew_time.map(|t| t.0) > s.acquire_time.map(|t| t.0))
        },
    )
    .await
}

/// Every (rule, resource, verb) of `rules`, and the rules with just that one taken away.
fn without_each_permission(rules: &[PolicyRule]) -> Vec<(String, Vec<PolicyRule>)> {
    let mut variants = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let resources = rule.resources.clone().unwrap_or_default();
        for resource in &resources {
            for verb in &rule.verbs {
                let mut reduced = rules.to_vec();
                reduced.remove(i);
                let other_resources: Vec<String> = resources
                    .iter()
                    .filter(|r| *r != resource)
                    .cloned()
                    .collect();
                let other_verbs: Vec<String> =
                    rule.verbs.iter().filter(|v| *v != verb).cloned().collect();
                if !other_resources.is_empty() {
                    reduced.push(PolicyRule {
                        resources: Some(other_resources),
                        ..rule.clone()
                    });
                }
                if !other_verbs.is_empty() {
                    reduced.push(PolicyRule {
                        resources: Some(vec![resource.clone()]),
                        verbs: other_verbs,
                        ..rule.clone()
                    });
                }
                variants.push((format!("{verb} {resource}"), reduced));
            }
        }
    }
    variants
}

/// Permissions only the ServiceAccountToken controller uses (judged only where the CRD is served).
fn controller_only(what: &str) -> bool {
    what.ends_with(" serviceaccounttokens")
        || what.ends_with(" serviceaccounttokens/status")
        || [
            "watch secrets",
            "list serviceaccounts",
            "watch serviceaccounts",
        ]
        .contains(&what)
}

/// tokend with `rbac`, with the controller and webhook where the backend serves the CRD.
async fn start(test: &str, rbac: TokendRbac, declared: bool) -> TestEnv {
    if declared {
        common::start_declarative_as(test, options(), Some(rbac), Duration::from_secs(60))
            .await
            .expect("the CRD is served")
    } else {
        common::start_as(options(), Some(rbac)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rbac_grants_tokend_exactly_what_it_uses() {
    let test = "deploy_rbac_grants_tokend_exactly_what_it_uses";
    let declared = common::crd_served(test).await;
    let deploy = TokendRbac::deploy();
    let env = start(test, deploy.clone(), declared).await;
    scenario(&env)
        .await
        .expect("with deploy/'s RBAC the whole scenario works");
    drop(env);

    let mut unneeded = Vec::new();
    for (what, cluster_rules) in without_each_permission(&deploy.cluster_rules) {
        if !declared && controller_only(&what) {
            continue;
        }
        let env = start(
            test,
            TokendRbac {
                cluster_rules,
                lease_rules: deploy.lease_rules.clone(),
            },
            declared,
        )
        .await;
        if scenario(&env).await.is_ok() {
            unneeded.push(format!("ClusterRole: {what}"));
        }
    }
    for (what, lease_rules) in without_each_permission(&deploy.lease_rules) {
        let env = start(
            test,
            TokendRbac {
                cluster_rules: deploy.cluster_rules.clone(),
                lease_rules,
            },
            declared,
        )
        .await;
        if scenario(&env).await.is_ok() {
            unneeded.push(format!("lease Role: {what}"));
        }
    }
    assert!(
        unneeded.is_empty(),
        "deploy/ grants permissions tokend never needs: {unneeded:?}"
    );
}
