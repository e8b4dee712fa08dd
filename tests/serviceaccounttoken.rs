//! Declarative tokens: a ServiceAccountToken object becomes a Secret with a working token and
//! kubeconfig, Ready reports the truth over time (deleted subresources, expiry), the token
//! rotates, deleting the object revokes it, and nobody gets more through the object than they
//! could get themselves (the requester comes from the API server, stamped by tokend's webhook).
//! Through kubectl and kube-rs, against the real control plane or, once it serves custom
//! resources, the emulator (until then these tests record a counted skip there).

use std::time::Duration;

use tokend_test_support as common;

use common::{TestEnv, eventually_within, find_on_path, unique_name};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokend::controller::resource::{Requester, ServiceAccountToken, ServiceAccountTokenSpec};

/// Long enough for the controller to take its Lease, watch, issue and write status.
const SETTLES: Duration = Duration::from_secs(30);
/// How long a real control plane may take to empty and remove a deleted namespace (its
/// namespace controller and garbage collector, on a busy machine).
const NAMESPACE_GONE: Duration = Duration::from_secs(90);
/// How long a real control plane's garbage collector may take to delete what a deleted resource
/// owned (it is asynchronous, slower on a busy machine, and learns of a newly installed CRD's
/// resources only at its next discovery resync, every 30 s).
const GARBAGE_COLLECTED: Duration = Duration::from_secs(90);
/// Grace of a rotated-out token in these tests.
const ROTATION_GRACE: Duration = Duration::from_secs(3);

async fn env(test: &str) -> Option<TestEnv> {
    common::start_declarative(test, ROTATION_GRACE).await
}

fn sat(env: &TestEnv, name: &str, spec: ServiceAccountTokenSpec) -> ServiceAccountToken {
    let mut sat = ServiceAccountToken::new(name, spec);
    sat.metadata.labels = Some(env.sat_labels());
    sat
}

/// The Ready condition as (status, reason, message), once one is reported.
fn ready(sat: &ServiceAccountToken) -> Option<(String, String, String)> {
    sat.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the resource reports Ready with `status` and `reason`; answers it.
async fn wait_ready(
    api: &Api<ServiceAccountToken>,
    name: &str,
    status: &str,
    reason: &str,
) -> ServiceAccountToken {
    let last = std::sync::Mutex::new(None);
    let found = eventually_within(
        &format!("{name} reports Ready={status} ({reason})"),
        SETTLES,
        || {
            let last = &last;
            async move {
                let sat = api.get(name).await?;
                let now = ready(&sat);
                let done = now
                    .as_ref()
                    .is_some_and(|(s, r, _)| s == status && r == reason);
                *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(sat);
                Ok(done)
            }
        },
    )
    .await;
    let sat = last
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .expect("read at least once");
    if let Err(e) = found {
        panic!("{e}; last status: {:?}", sat.status);
    }
    sat
}

async fn secret_of(env: &TestEnv, ns: &str, sat: &ServiceAccountToken) -> Secret {
    let name = &sat
        .status
        .as_ref()
        .and_then(|s| s.secret_ref.as_ref())
        .expect("status.secretRef")
        .name;
    Api::<Secret>::namespaced(env.kube.clone(), ns)
        .get(name)
        .await
        .expect("the resource's Secret")
}

fn data(secret: &Secret, key: &str) -> String {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("Secret has {key}"));
    String::from_utf8(bytes.0.clone()).expect("UTF-8")
}

/// Whether the API server accepts `token` (a list of configmaps in `ns` is not refused as 401).
async fn accepted(env: &TestEnv, ns: &str, token: &str) -> bool {
    let client = common::client_with_token(env, token).await;
    match Api::<ConfigMap>::namespaced(client, ns)
        .list(&Default::default())
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(s)) => s.code != 401,
        Err(_) => false,
    }
}

/// A client authenticated as a new ServiceAccount `name` of `ns` (its own token, which the API
/// server names as the creator to the webhook as to RBAC), and that ServiceAccount as a subject.
async fn client_as(env: &TestEnv, ns: &str, name: &str) -> (Client, Subject) {
    Api::<ServiceAccount>::namespaced(env.kube.clone(), ns)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create the creator's ServiceAccount");
    let token = common::least_privilege::service_account_token(&env.kube, ns, name).await;
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(ns.into()),
        api_group: None,
    };
    (common::client_with_token(env, &token).await, subject)
}

fn may_create_serviceaccounttokens() -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec!["tokend.io".into()]),
        resources: Some(vec!["serviceaccounttokens".into()]),
        verbs: vec![
            "create".into(),
            "get".into(),
            "list".into(),
            "delete".into(),
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn applied_resource_becomes_ready_with_a_kubeconfig_confined_to_its_namespace() {
    let test = "applied_resource_becomes_ready_with_a_kubeconfig_confined_to_its_namespace";
    let Some(env) = env(test).await else { return };
    let Some(kubectl) = find_on_path("kubectl") else {
        common::skip(
            test,
            common::SkipKind::MissingTool,
            "kubectl is not on PATH",
        );
        return;
    };
    // Given a namespace, and another one the token must not reach
    let ns = env.fresh_sat_namespace().await;
    let elsewhere = env.fresh_namespace().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let labels = env.sat_labels();
    let (label_key, label_value) = labels.iter().next().expect("a label");
    let manifest = dir.path().join("sat.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: tokend.io/v1alpha1\nkind: ServiceAccountToken\nmetadata:\n  name: sat-sample\n  \
             namespace: {ns}\n  labels: {{{label_key}: {label_value}}}\nspec: {{duration: 1h, clusterRole: view}}\n"
        ),
    )
    .expect("write manifest");

    // When it is applied with kubectl (run asynchronously: tokend's webhook, which the API
    // server calls meanwhile, runs on this test's runtime)
    let applied = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .arg("apply")
        .arg("-f")
        .arg(&manifest)
        .output()
        .await
        .expect("run kubectl");
    assert!(
        applied.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // Then it becomes Ready, with the requester stamped by the webhook
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let sat = wait_ready(&api, "sat-sample", "True", "SubresourcesReady").await;
    let (_, _, message) = ready(&sat).expect("Ready");
    assert_eq!(message, "All subresources are ready");
    let requester = sat.spec.requester.clone().expect("spec.requester stamped");
    assert!(!requester.username.is_empty());
    let status = sat.status.clone().expect("status");
    let secret_name = status.secret_ref.clone().expect("secretRef").name;
    let suffix = secret_name
        .strip_prefix("sat-sample-")
        .expect("named after the resource");
    assert_eq!(suffix.len(), 5, "{secret_name}");
    assert!(status.expiration_time.is_some() && status.token_id.is_some());
    assert_eq!(status.observed_generation, sat.metadata.generation);

    // And its Secret, owned by the resource, holds token, kubeconfig, ca.crt and namespace
    let secret = secret_of(&env, &ns, &sat).await;
    let owner = &secret.metadata.owner_references.clone().expect("owner")[0];
    assert_eq!(owner.kind, "ServiceAccountToken");
    assert_eq!(Some(&owner.uid), sat.metadata.uid.as_ref());
    assert_eq!(data(&secret, "namespace"), ns);
    assert!(data(&secret, "ca.crt").contains("BEGIN CERTIFICATE"));
    assert!(!data(&secret, "token").is_empty());

    // And ListTokens shows its record, issued by the requester
    let listed = env
        .client()
        .await
        .list_tokens(tokend_client::v1::ListTokensRequest {
            namespace: ns.clone(),
            ..Default::default()
        })
        .await
        .expect("ListTokens");
    let record = listed
        .tokens
        .iter()
        .find(|t| Some(&t.token_id) == status.token_id.as_ref())
        .expect("the token's record is listed");
    assert_eq!(record.issued_by, requester.username);
    assert_eq!(listed.tokens.len(), 1, "one token per resource");
    let made = Api::<Secret>::namespaced(env.kube.clone(), &ns)
        .list(&kube::api::ListParams::default().labels(tokend::controller::OWNER_LABEL))
        .await
        .expect("list Secrets");
    assert_eq!(made.items.len(), 1, "one Secret per resource");
    assert_eq!(record.service_account, "sat-sample");

    // And its kubeconfig works in the namespace, as the view role bound there allows
    let kc = dir.path().join("kc");
    std::fs::write(&kc, data(&secret, "kubeconfig")).expect("write kubeconfig");
    let kubectl_with = async |args: &[&str]| {
        tokio::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .output()
            .await
            .expect("run kubectl")
    };
    let inside = kubectl_with(&["get", "configmaps"]).await;
    assert!(
        inside.status.success(),
        "get configmaps in its namespace: {}",
        String::from_utf8_lossy(&inside.stderr)
    );
    // But nowhere else
    let outside = kubectl_with(&["get", "configmaps", "-n", &elsewhere]).await;
    assert!(
        !outside.status.success(),
        "get configmaps in another namespace must be refused"
    );
    assert!(
        String::from_utf8_lossy(&outside.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&outside.stderr)
    );
}

#[tokio::test]
async fn deleting_the_resource_revokes_the_token_and_removes_the_secret() {
    let test = "deleting_the_resource_revokes_the_token_and_removes_the_secret";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let name = unique_name("sat");
    // A token for a ServiceAccount made for the resource, with a role bound to it
    let spec = ServiceAccountTokenSpec {
        cluster_role: "view".into(),
        ..Default::default()
    };
    api.create(&PostParams::default(), &sat(&env, &name, spec))
        .await
        .expect("create");
    let ready_sat = wait_ready(&api, &name, "True", "SubresourcesReady").await;
    let secret = secret_of(&env, &ns, &ready_sat).await;
    let token = data(&secret, "token");
    assert!(accepted(&env, &ns, &token).await, "the token works before");
    let accounts = Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns);
    let bindings =
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(env.kube.clone(), &ns);
    let binding = format!("{}{name}:view", tokend::vocabulary::BINDING_PREFIX);
    assert!(
        bindings.get_opt(&binding).await.expect("get").is_some(),
        "the RoleBinding {binding} was made"
    );

    // When the resource is deleted
    api.delete(&name, &DeleteParams::default())
        .await
        .expect("delete");

    // Then once garbage collection has deleted what the resource owned (its token's record
    // among them), and the API server's 10 s authentication cache has passed, the token is
    // rejected, and the Secret, the ServiceAccount and RoleBinding made for it and the
    // resource are gone
    let secrets = Api::<Secret>::namespaced(env.kube.clone(), &ns);
    let secret_name = secret.metadata.name.clone().expect("name");
    let left = std::sync::Mutex::new(Vec::new());
    let limit = GARBAGE_COLLECTED + common::EVENTUALLY;
    let gone = eventually_within(
        "the token is rejected and the Secret gone",
        limit,
        || async {
            let mut still = Vec::new();
            if accepted(&env, &ns, &token).await {
                still.push("the token is accepted".to_owned());
            }
            if secrets.get_opt(&secret_name).await?.is_some() {
                still.push("the Secret exists".to_owned());
            }
            if let Some(sat) = api.get_opt(&name).await? {
                still.push(format!(
                    "the resource exists: {:?}",
                    sat.metadata.finalizers
                ));
            }
            if accounts.get_opt(&name).await?.is_some() {
                still.push("its ServiceAccount exists".to_owned());
            }
            if bindings.get_opt(&binding).await?.is_some() {
                still.push(format!("the RoleBinding {binding} exists"));
            }
            let done = still.is_empty();
            *left.lock().unwrap_or_else(|p| p.into_inner()) = still;
            Ok(done)
        },
    )
    .await;
    if let Err(e) = gone {
        panic!("{e}: {:?}", left.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

#[tokio::test]
async fn deleted_service_account_is_reported_as_subresource_not_found() {
    let test = "deleted_service_account_is_reported_as_subresource_not_found";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let name = unique_name("sat");
    api.create(
        &PostParams::default(),
        &sat(&env, &name, ServiceAccountTokenSpec::default()),
    )
    .await
    .expect("create");
    wait_ready(&api, &name, "True", "SubresourcesReady").await;

    // When the ServiceAccount made for it is deleted
    Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns)
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the ServiceAccount");

    // Then Ready turns False, naming it
    let sat = wait_ready(&api, &name, "False", "SubresourceNotFound").await;
    let (_, _, message) = ready(&sat).expect("Ready");
    assert_eq!(
        message,
        format!("subresource not found: ServiceAccount {ns}/{name} has been deleted")
    );
}

/// The real API server refuses tokens under 10 minutes, so the expiry is reached by moving the
/// controller's clock (an injected "now"), not by waiting.
#[tokio::test]
async fn expired_token_is_reported_as_token_expired() {
    let test = "expired_token_is_reported_as_token_expired";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let name = unique_name("sat");
    let spec = ServiceAccountTokenSpec {
        duration: "10m".into(),
        ..Default::default()
    };
    api.create(&PostParams::default(), &sat(&env, &name, spec))
        .await
        .expect("create");
    wait_ready(&api, &name, "True", "SubresourcesReady").await;

    // When the token's lifetime has passed (for the controller) and it looks again
    env.controller_clock().advance(Duration::from_secs(11 * 60));
    let touch = serde_json::json!({ "metadata": { "annotations": { "test/touched": "1" } } });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .expect("touch");

    // Then Ready is False: TokenExpired
    let sat = wait_ready(&api, &name, "False", "TokenExpired").await;
    assert_eq!(ready(&sat).expect("Ready").2, "This token has expired");
}

#[tokio::test]
async fn rotation_puts_a_new_token_in_the_same_secret_and_revokes_the_old_one() {
    let test = "rotation_puts_a_new_token_in_the_same_secret_and_revokes_the_old_one";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let name = unique_name("sat");
    // 10 minutes, renewed when less than 9m50s remain: about 10 s after each issue.
    let spec = ServiceAccountTokenSpec {
        duration: "10m".into(),
        renew_before: "9m50s".into(),
        ..Default::default()
    };
    api.create(&PostParams::default(), &sat(&env, &name, spec))
        .await
        .expect("create");
    let first = wait_ready(&api, &name, "True", "SubresourcesReady").await;
    let first_status = first.status.clone().expect("status");
    let secret = secret_of(&env, &ns, &first).await;
    let old_token = data(&secret, "token");

    // When the renewal time comes, a new token is written into the same Secret
    let secrets = Api::<Secret>::namespaced(env.kube.clone(), &ns);
    let secret_name = secret.metadata.name.clone().expect("name");
    let new_token = std::sync::Mutex::new(String::new());
    eventually_within("the token is rotated", SETTLES, || {
        let new_token = &new_token;
        let (api, secrets) = (&api, &secrets);
        let (name, secret_name, first_id) = (&name, &secret_name, &first_status.token_id);
        async move {
            let now = api.get(name).await?;
            let status = now.status.unwrap_or_default();
            let secret = secrets.get(secret_name).await?;
            *new_token.lock().unwrap_or_else(|p| p.into_inner()) = data(&secret, "token");
            Ok(status.token_id != *first_id
                && status.secret_ref.map(|s| s.name) == Some(secret_name.clone()))
        }
    })
    .await
    .expect("rotated");
    let new_token = new_token.into_inner().unwrap_or_else(|p| p.into_inner());
    assert_ne!(new_token, old_token);
    assert!(accepted(&env, &ns, &new_token).await, "the new token works");

    // Then the old one is rejected once the grace is over
    common::eventually_ok("the old token is rejected after the grace", || async {
        Ok(!accepted(&env, &ns, &old_token).await)
    })
    .await
    .expect("old token revoked");
}

#[tokio::test]
async fn creator_without_rights_in_the_namespace_gets_ready_false_and_no_token() {
    let test = "creator_without_rights_in_the_namespace_gets_ready_false_and_no_token";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    // Given a user who may create ServiceAccountTokens there, and nothing else
    let alice = unique_name("alice");
    let (client, subject) = client_as(&env, &ns, &alice).await;
    common::grant(&env, &ns, subject, vec![may_create_serviceaccounttokens()]).await;
    let as_alice = Api::<ServiceAccountToken>::namespaced(client, &ns);

    // When she declares a token (for a ServiceAccount made for it, with the view role)
    let name = unique_name("sat");
    let spec = ServiceAccountTokenSpec {
        cluster_role: "view".into(),
        ..Default::default()
    };
    as_alice
        .create(&PostParams::default(), &sat(&env, &name, spec))
        .await
        .expect("alice may create the object");

    // Then it is refused as she would be, and nothing is issued or made
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let sat = wait_ready(&api, &name, "False", "Forbidden").await;
    let (_, _, message) = ready(&sat).expect("Ready");
    assert!(message.contains(&alice), "{message}");
    let status = sat.status.unwrap_or_default();
    assert!(status.token_id.is_none() && status.secret_ref.is_none());
    let accounts = Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns);
    assert!(
        accounts.get_opt(&name).await.expect("get").is_none(),
        "no ServiceAccount made"
    );
    let listed = env
        .client()
        .await
        .list_tokens(tokend_client::v1::ListTokensRequest {
            namespace: ns.clone(),
            ..Default::default()
        })
        .await
        .expect("ListTokens");
    assert!(
        listed.tokens.is_empty(),
        "no token issued: {:?}",
        listed.tokens
    );
}

#[tokio::test]
async fn naming_a_service_account_the_creator_may_not_use_is_refused() {
    let test = "naming_a_service_account_the_creator_may_not_use_is_refused";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    // Given two ServiceAccounts, and a user who may get tokens for only one of them
    let accounts = Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns);
    for sa in ["allowed", "guarded"] {
        accounts
            .create(
                &PostParams::default(),
                &ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some(sa.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .expect("create ServiceAccount");
    }
    let bob = unique_name("bob");
    let (client, subject) = client_as(&env, &ns, &bob).await;
    let token_of_allowed = PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["serviceaccounts/token".into()]),
        resource_names: Some(vec!["allowed".into()]),
        verbs: vec!["create".into()],
        ..Default::default()
    };
    common::grant(
        &env,
        &ns,
        subject,
        vec![may_create_serviceaccounttokens(), token_of_allowed],
    )
    .await;
    let as_bob = Api::<ServiceAccountToken>::namespaced(client, &ns);
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);

    // When he declares a token for each
    for sa in ["allowed", "guarded"] {
        let spec = ServiceAccountTokenSpec {
            service_account_name: sa.into(),
            ..Default::default()
        };
        as_bob
            .create(
                &PostParams::default(),
                &sat(&env, &format!("for-{sa}"), spec),
            )
            .await
            .expect("bob may create the object");
    }

    // Then the one he may use is issued, the other refused with no token
    wait_ready(&api, "for-allowed", "True", "SubresourcesReady").await;
    let refused = wait_ready(&api, "for-guarded", "False", "Forbidden").await;
    let (_, _, message) = ready(&refused).expect("Ready");
    assert!(message.contains("guarded"), "{message}");
    assert!(refused.status.unwrap_or_default().token_id.is_none());
}

#[tokio::test]
async fn a_requester_written_by_the_author_is_refused() {
    let test = "a_requester_written_by_the_author_is_refused";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let forged = Requester {
        username: "system:admin".into(),
        groups: vec!["system:masters".into()],
        ..Default::default()
    };

    // A CREATE carrying spec.requester is refused by the webhook
    let spec = ServiceAccountTokenSpec {
        requester: Some(forged.clone()),
        ..Default::default()
    };
    let created = api
        .create(
            &PostParams::default(),
            &sat(&env, &unique_name("sat"), spec),
        )
        .await;
    match created {
        Err(kube::Error::Api(s)) => assert!(s.message.contains("spec.requester"), "{}", s.message),
        other => panic!("a forged requester must be refused, got {other:?}"),
    }

    // And an UPDATE changing the stamped one is refused too
    let name = unique_name("sat");
    api.create(
        &PostParams::default(),
        &sat(&env, &name, ServiceAccountTokenSpec::default()),
    )
    .await
    .expect("create");
    let patch = serde_json::json!({ "spec": { "requester": forged } });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert!(
                s.message.contains("spec.requester cannot be changed"),
                "{}",
                s.message
            )
        }
        other => panic!("changing the requester must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn whoever_changes_the_spec_becomes_the_requester() {
    let test = "whoever_changes_the_spec_becomes_the_requester";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let name = unique_name("sat");
    api.create(
        &PostParams::default(),
        &sat(&env, &name, ServiceAccountTokenSpec::default()),
    )
    .await
    .expect("create");
    let before = wait_ready(&api, &name, "True", "SubresourcesReady").await;
    let creator = before.spec.requester.clone().expect("stamped").username;

    // Given an editor who may change ServiceAccountTokens but could not get the token itself
    let carol = unique_name("carol");
    let (client, subject) = client_as(&env, &ns, &carol).await;
    let may_edit = PolicyRule {
        api_groups: Some(vec!["tokend.io".into()]),
        resources: Some(vec!["serviceaccounttokens".into()]),
        verbs: vec!["get".into(), "patch".into()],
        ..Default::default()
    };
    common::grant(&env, &ns, subject, vec![may_edit]).await;

    // When she asks the creator's resource for the admin role
    let patch = serde_json::json!({ "spec": { "clusterRole": "admin" } });
    Api::<ServiceAccountToken>::namespaced(client, &ns)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("carol may edit the object");

    // Then she is the requester now, and is refused as she would be herself
    let after = wait_ready(&api, &name, "False", "Forbidden").await;
    let requester = after.spec.requester.expect("stamped").username;
    assert_ne!(requester, creator);
    assert!(requester.ends_with(&carol), "{requester}");
}

/// What a hostile requester must not have been given in `ns` through resource `name`: no
/// Secret or ServiceAccount made for it, no RoleBinding tokend makes, no token on record
/// beyond `tokens_before`.
async fn assert_nothing_made_for(env: &TestEnv, ns: &str, name: &str, tokens_before: usize) {
    let made = Api::<Secret>::namespaced(env.kube.clone(), ns)
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("{}={name}", tokend::controller::OWNER_LABEL)),
        )
        .await
        .expect("list Secrets");
    assert!(made.items.is_empty(), "a Secret was made for {name}");
    let accounts = Api::<ServiceAccount>::namespaced(env.kube.clone(), ns);
    assert!(
        accounts.get_opt(name).await.expect("get").is_none(),
        "a ServiceAccount was made for {name}"
    );
    let bindings = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(env.kube.clone(), ns)
        .list(&Default::default())
        .await
        .expect("list RoleBindings");
    let tokends: Vec<_> = bindings
        .items
        .iter()
        .filter_map(|b| b.metadata.name.clone())
        .filter(|n| n.starts_with(tokend::vocabulary::BINDING_PREFIX))
        .collect();
    assert!(tokends.is_empty(), "tokend made RoleBindings: {tokends:?}");
    let listed = env
        .client()
        .await
        .list_tokens(tokend_client::v1::ListTokensRequest {
            namespace: ns.to_owned(),
            ..Default::default()
        })
        .await
        .expect("ListTokens");
    assert_eq!(
        listed.tokens.len(),
        tokens_before,
        "tokens issued: {:?}",
        listed.tokens
    );
}

/// Issue #22 item 1: without the webhook registered (deploy/'s base as applied), a user who may
/// only create ServiceAccountTokens writes the requester herself.
#[tokio::test]
async fn a_hand_written_requester_gets_nothing_without_the_webhook() {
    let test = "a_hand_written_requester_gets_nothing_without_the_webhook";
    let Some(env) = env(test).await else { return };
    // Given a namespace no webhook admits ServiceAccountTokens in, where `ops` is an admin
    let ns = env.fresh_namespace().await;
    let ops = unique_name("ops");
    Api::<ServiceAccount>::namespaced(env.kube.clone(), &ns)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(ops.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create ops");
    let ops_is_admin = k8s_openapi::api::rbac::v1::RoleBinding {
        metadata: ObjectMeta {
            name: Some(unique_name("ops-admin")),
            ..Default::default()
        },
        role_ref: k8s_openapi::api::rbac::v1::RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: ops.clone(),
            namespace: Some(ns.clone()),
            api_group: None,
        }]),
    };
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(env.kube.clone(), &ns)
        .create(&PostParams::default(), &ops_is_admin)
        .await
        .expect("bind ops to admin");
    // And mallory, who may create ServiceAccountTokens there and nothing else
    let (client, subject) = client_as(&env, &ns, &unique_name("mallory")).await;
    common::grant(&env, &ns, subject, vec![may_create_serviceaccounttokens()]).await;
    let as_mallory = Api::<ServiceAccountToken>::namespaced(client, &ns);
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);

    // When she names ops as the requester, and then an admin in system:masters with a role
    let as_ops = Requester {
        username: format!("system:serviceaccount:{ns}:{ops}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
        ..Default::default()
    };
    let as_masters = Requester {
        username: "admin".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
        ..Default::default()
    };
    let forged = [
        ("as-ops", as_ops, String::new()),
        ("as-masters", as_masters, "admin".to_owned()),
    ];
    for (name, requester, cluster_role) in &forged {
        let spec = ServiceAccountTokenSpec {
            requester: Some(requester.clone()),
            cluster_role: cluster_role.clone(),
            ..Default::default()
        };
        as_mallory
            .create(&PostParams::default(), &sat(&env, name, spec))
            .await
            .expect("mallory may create the object");
    }

    // Then each is Ready=False (RequesterUnproven), and nothing is issued or made for either
    for (name, _, _) in &forged {
        let refused = wait_ready(&api, name, "False", "RequesterUnproven").await;
        let status = refused.status.unwrap_or_default();
        assert!(status.token_id.is_none() && status.secret_ref.is_none());
    }
    for (name, _, _) in &forged {
        assert_nothing_made_for(&env, &ns, name, 0).await;
    }
}

/// Issue #22 item 1: a requester the webhook did stamp, copied onto another object, or kept
/// while the spec it was stamped for is changed behind the webhook's back.
#[tokio::test]
async fn a_stamped_requester_copied_or_kept_across_a_spec_change_gets_nothing() {
    let test = "a_stamped_requester_copied_or_kept_across_a_spec_change_gets_nothing";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let original = unique_name("sat");
    api.create(
        &PostParams::default(),
        &sat(&env, &original, ServiceAccountTokenSpec::default()),
    )
    .await
    .expect("create");
    let stamped = wait_ready(&api, &original, "True", "SubresourcesReady").await;
    let requester = stamped.spec.requester.clone().expect("stamped");
    let issued = stamped.status.clone().unwrap_or_default().token_id;

    // Given the webhook no longer admits ServiceAccountTokens in the namespace (unregistered)
    let unlabel =
        serde_json::json!({ "metadata": { "labels": { common::declarative::ENV_LABEL: null } } });
    Api::<k8s_openapi::api::core::v1::Namespace>::all(env.kube.clone())
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .expect("unlabel the namespace");

    // When the stamped requester is copied onto an object of another name (created once the
    // API server stops calling the webhook for the namespace, which refuses a written requester)
    let copy = unique_name("copy");
    let copied = sat(
        &env,
        &copy,
        ServiceAccountTokenSpec {
            requester: Some(requester.clone()),
            ..Default::default()
        },
    );
    common::eventually_ok("the copy is created without the webhook", || async {
        match api.create(&PostParams::default(), &copied).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.message.contains("spec.requester") => Ok(false),
            Err(e) => Err(e.into()),
        }
    })
    .await
    .expect("create the copy");
    // And the original's spec is changed, keeping its stamped requester
    let widen = serde_json::json!({ "spec": { "clusterRole": "admin" } });
    api.patch(&original, &PatchParams::default(), &Patch::Merge(&widen))
        .await
        .expect("change the original's spec");

    // Then neither is acted on
    let refused = wait_ready(&api, &copy, "False", "RequesterUnproven").await;
    assert!(refused.status.unwrap_or_default().token_id.is_none());
    let changed = wait_ready(&api, &original, "False", "RequesterUnproven").await;
    assert_eq!(
        changed.status.unwrap_or_default().token_id,
        issued,
        "no token issued for the changed spec"
    );
    assert_nothing_made_for(&env, &ns, &copy, 1).await;
}

/// Issue #22 item 2: a principal who may only write a resource's status plants another
/// namespace's token id as the rotated-out token, due already.
#[tokio::test]
async fn a_token_id_planted_in_status_is_not_revoked() {
    let test = "a_token_id_planted_in_status_is_not_revoked";
    let Some(env) = env(test).await else { return };
    // Given a token of another namespace
    let elsewhere = env.fresh_namespace().await;
    let victim = env
        .client()
        .await
        .issue_token(common::issue(&elsewhere, "victim"))
        .await
        .expect("IssueToken");
    // And a Ready resource, and someone who may only patch its status
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let name = unique_name("sat");
    api.create(
        &PostParams::default(),
        &sat(&env, &name, ServiceAccountTokenSpec::default()),
    )
    .await
    .expect("create");
    wait_ready(&api, &name, "True", "SubresourcesReady").await;
    let (client, subject) = client_as(&env, &ns, &unique_name("statusbot")).await;
    let status_only = PolicyRule {
        api_groups: Some(vec!["tokend.io".into()]),
        resources: Some(vec!["serviceaccounttokens/status".into()]),
        verbs: vec!["patch".into(), "get".into()],
        ..Default::default()
    };
    common::grant(&env, &ns, subject, vec![status_only]).await;

    // When it names the other token as this resource's previous one, due long ago
    let plant = serde_json::json!({ "status": {
        "previousTokenId": victim.token_id,
        "previousRevokeAt": "2000-01-01T00:00:00Z",
    } });
    Api::<ServiceAccountToken>::namespaced(client, &ns)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&plant))
        .await
        .expect("the status writer may patch status");

    // Then once the controller has looked at it (and dropped the planted id)
    common::eventually_ok("the controller drops the planted id", || async {
        let now = api.get(&name).await?;
        Ok(now.status.unwrap_or_default().previous_token_id.is_none())
    })
    .await
    .expect("the controller reconciled the planted status");
    // The other namespace's token is still on record and valid
    let tokend = env.client().await;
    tokend
        .get_token(tokend_client::v1::GetTokenRequest {
            token_id: victim.token_id.clone(),
        })
        .await
        .expect("the victim's record is still there");
    let validated = tokend
        .validate_token(tokend_client::v1::ValidateTokenRequest {
            token: victim.token.clone(),
            ..Default::default()
        })
        .await
        .expect("ValidateToken");
    assert!(validated.authenticated, "the victim's token still works");
}

/// Issue #22 item 12: a namespace holding a Ready resource is deleted while no tokend runs
/// (scaled to zero, uninstalled): it goes, and the resource's token with it.
#[tokio::test]
async fn a_namespace_deleted_while_tokend_is_down_goes_and_takes_the_token() {
    let test = "a_namespace_deleted_while_tokend_is_down_goes_and_takes_the_token";
    let Some(mut env) = env(test).await else {
        return;
    };
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let name = unique_name("sat");
    api.create(
        &PostParams::default(),
        &sat(&env, &name, ServiceAccountTokenSpec::default()),
    )
    .await
    .expect("create");
    let ready_sat = wait_ready(&api, &name, "True", "SubresourcesReady").await;
    let token = data(&secret_of(&env, &ns, &ready_sat).await, "token");

    // When tokend is stopped and the namespace deleted
    env.stop_tokend().await;
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(env.kube.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete the namespace");

    // Then the namespace is gone within a bound (not stuck Terminating on a finalizer)
    let finalizers = std::sync::Mutex::new(None);
    let gone = eventually_within("the namespace is gone", NAMESPACE_GONE, || async {
        if let Ok(Some(sat)) = api.get_opt(&name).await {
            *finalizers.lock().unwrap_or_else(|p| p.into_inner()) = sat.metadata.finalizers;
        }
        Ok(namespaces.get_opt(&ns).await?.is_none())
    })
    .await;
    if let Err(e) = gone {
        panic!(
            "{e}; the resource's finalizers: {:?}",
            finalizers.lock().unwrap_or_else(|p| p.into_inner())
        );
    }
    // And its token is rejected
    common::eventually_ok("the token is rejected", || async {
        Ok(!accepted(&env, &ns, &token).await)
    })
    .await
    .expect("the token is revoked");
}

/// Issue #22 item 12, upgrading: the finalizer earlier versions put on every resource is removed
/// by the controller, so no resource (nor its namespace) waits on a tokend that may not run.
#[tokio::test]
async fn the_finalizer_of_an_earlier_version_is_removed() {
    let test = "the_finalizer_of_an_earlier_version_is_removed";
    let Some(env) = env(test).await else { return };
    let ns = env.fresh_sat_namespace().await;
    let api = Api::<ServiceAccountToken>::namespaced(env.kube.clone(), &ns);
    let name = unique_name("sat");
    let mut legacy = sat(&env, &name, ServiceAccountTokenSpec::default());
    legacy.metadata.finalizers = Some(vec![tokend::controller::LEGACY_FINALIZER.into()]);
    api.create(&PostParams::default(), &legacy)
        .await
        .expect("create");
    wait_ready(&api, &name, "True", "SubresourcesReady").await;
    common::eventually_ok("the earlier finalizer is removed", || async {
        let now = api.get(&name).await?;
        Ok(now.metadata.finalizers.unwrap_or_default().is_empty())
    })
    .await
    .expect("finalizer removed");
    api.delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    common::eventually_ok("the resource goes at once", || async {
        Ok(api.get_opt(&name).await?.is_none())
    })
    .await
    .expect("deleted");
}
