//! tokend with the ServiceAccountToken controller and admission webhook, for the declarative
//! tests: the CRD from deploy/ installed (server-side apply, left installed like any cluster
//! fixture), a MutatingWebhookConfiguration pointing at this tokend's webhook on loopback (only
//! for namespaces labelled for this env, so parallel tests never call each other's tokend), and
//! a controller that reconciles only this env's resources (by label).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, WebhookClientConfig,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokend::controller::{ControllerOptions, ServiceAccountToken};
use tokend::server::tls::TlsFiles;
use tokend::server::{ServerOptions, WebhookOptions};

use crate::backend::Backend;
use crate::least_privilege::TokendRbac;
use crate::skips::{SkipKind, skip};
use crate::tokend::TestEnv;

/// Label a resource carries to be reconciled by this env's controller, and a namespace to be
/// admitted through this env's webhook.
pub const ENV_LABEL: &str = "tokend-test/env";

/// What a declarative env adds to [`TestEnv`].
pub struct Declarative {
    /// Value of [`ENV_LABEL`] for this env.
    pub env_id: String,
    /// The controller's clock (move it forward to see expiry).
    pub clock: tokend::controller::Clock,
    /// Keeps the webhook's certificate files alive.
    _dir: tempfile::TempDir,
}

/// The CRD as deploy/ holds it.
pub fn deploy_crd() -> CustomResourceDefinition {
    let path =
        crate::control_plane::workspace_root().join("deploy/base/crd-serviceaccounttokens.yaml");
    let text = std::fs::read_to_string(&path).expect("read the CRD");
    serde_yaml::from_str(&text).expect("the CRD parses")
}

/// Starts tokend (no caller auth, deploy/'s RBAC) with the controller and the webhook, or
/// records a skip and answers None when the backend cannot serve the CRD (the emulator, until
/// its support for custom resources lands).
pub async fn start_declarative(test: &str, rotation_grace: Duration) -> Option<TestEnv> {
    let options = ServerOptions {
        auth: tokend::config::AuthMode::None,
        ..ServerOptions::default()
    };
    let rbac = std::env::var_os(crate::tokend::AS_ADMIN_ENV)
        .is_none()
        .then(TokendRbac::deploy);
    start_declarative_as(test, options, rbac, rotation_grace).await
}

/// Whether the backend can serve the ServiceAccountToken CRD (on the emulator: whether a fresh
/// one can); on the emulator without that support, records a skip for `test` and answers false.
pub async fn crd_served(test: &str) -> bool {
    let cluster = crate::backend::Cluster::connect()
        .await
        .expect("the test backend");
    match install_crd(&cluster.client).await {
        Ok(()) => true,
        Err(e) if cluster.backend == Backend::Emulator => {
            skip(
                test,
                SkipKind::PendingEmulatorSupport,
                &format!("the emulator does not serve the ServiceAccountToken CRD yet ({e})"),
            );
            false
        }
        Err(e) => panic!("install the ServiceAccountToken CRD: {e}"),
    }
}

/// [`start_declarative`] with `options` (the controller and webhook are added) and tokend's
/// `rbac` (None: as admin).
pub async fn start_declarative_as(
    test: &str,
    mut options: ServerOptions,
    rbac: Option<TokendRbac>,
    rotation_grace: Duration,
) -> Option<TestEnv> {
    let env_id = crate::unique_name("sat");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_pem = crate::pki::write_loopback_serving(dir.path()).expect("webhook certificate");
    let port = crate::free_port();
    let clock = tokend::controller::Clock::default();
    options.controller = Some(ControllerOptions {
        label_selector: Some(format!("{ENV_LABEL}={env_id}")),
        rotation_grace,
        clock: clock.clone(),
        ..ControllerOptions::default()
    });
    options.webhook = Some(WebhookOptions {
        listen: format!("127.0.0.1:{port}").parse().expect("address"),
        tls: TlsFiles {
            cert: dir.path().join("webhook.crt"),
            key: dir.path().join("webhook.key"),
            client_ca: None,
        },
    });
    let mut env = crate::tokend::start_as(options, rbac).await;
    // Into this env's own backend (each emulator is a fresh one).
    if let Err(e) = install_crd(&env.kube).await {
        if env.backend() == Backend::Emulator {
            skip(
                test,
                SkipKind::PendingEmulatorSupport,
                &format!("the emulator does not serve the ServiceAccountToken CRD yet ({e})"),
            );
            return None;
        }
        panic!("install the ServiceAccountToken CRD: {e}");
    }
    register_webhook(&env, &env_id, port, &ca_pem).await;
    env.declarative = Some(Declarative {
        env_id,
        clock,
        _dir: dir,
    });
    Some(env)
}

/// Applies the CRD and waits until the API serves it.
async fn install_crd(client: &Client) -> Result<(), String> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let crd = deploy_crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(
        &name,
        &PatchParams::apply("tokend-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .map_err(short)?;
    let sats = Api::<ServiceAccountToken>::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match sats.list(&Default::default()).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(short(e)),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// An API error as `CODE message`, short enough for a skip line.
fn short(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.message),
        other => other.to_string(),
    }
}

async fn register_webhook(env: &TestEnv, env_id: &str, port: u16, ca_pem: &str) {
    let name = env_id.to_owned();
    let config = MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: "serviceaccounttokens.tokend.io".into(),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(10),
            client_config: WebhookClientConfig {
                url: Some(format!(
                    "https://127.0.0.1:{port}{}",
                    tokend::controller::admission::PATH
                )),
                ca_bundle: Some(k8s_openapi::ByteString(ca_pem.as_bytes().to_vec())),
                service: None,
            },
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(ENV_LABEL.to_owned(), env_id.to_owned())])),
                ..Default::default()
            }),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["tokend.io".into()]),
                api_versions: Some(vec!["v1alpha1".into()]),
                resources: Some(vec!["serviceaccounttokens".into()]),
                operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                scope: Some("Namespaced".into()),
            }]),
            ..Default::default()
        }]),
    };
    Api::<MutatingWebhookConfiguration>::all(env.kube.clone())
        .create(&PostParams::default(), &config)
        .await
        .expect("register the webhook");
    env.cleanup().mutating_webhook(&name);
}

impl TestEnv {
    fn declarative(&self) -> &Declarative {
        self.declarative
            .as_ref()
            .expect("a declarative env (start_declarative)")
    }

    /// Labels a ServiceAccountToken needs to be reconciled by this env's controller.
    pub fn sat_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(ENV_LABEL.to_owned(), self.declarative().env_id.clone())])
    }

    /// The controller's clock.
    pub fn controller_clock(&self) -> &tokend::controller::Clock {
        &self.declarative().clock
    }

    /// A fresh namespace whose ServiceAccountTokens go through this env's webhook. Returns
    /// once they do: a real API server learns of a webhook registration and of a namespace's
    /// labels through informers, and on a busy server a create made at once can be admitted
    /// without the webhook. A dry-run create carrying a requester is refused by the webhook
    /// (and by nothing else), so its refusal shows the webhook is called.
    pub async fn fresh_sat_namespace(&self) -> String {
        let ns = self.fresh_namespace_labelled(self.sat_labels()).await;
        let api = Api::<ServiceAccountToken>::namespaced(self.kube.clone(), &ns);
        let mut probe = ServiceAccountToken::new(
            "webhook-probe",
            tokend::controller::ServiceAccountTokenSpec {
                requester: Some(tokend::controller::resource::Requester {
                    username: "webhook-probe".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        probe.metadata.namespace = Some(ns.clone());
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        crate::eventually(
            "the webhook admits the namespace's ServiceAccountTokens",
            || async {
                matches!(
                    api.create(&dry_run, &probe).await,
                    Err(kube::Error::Api(s)) if s.message.contains("spec.requester")
                )
            },
        )
        .await;
        ns
    }
}
