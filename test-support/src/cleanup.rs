//! Deletes what a test made in the cluster when the test ends, whichever runtime the test ran
//! on: the deletes run on a thread of their own with a client made there, never with a client
//! whose connection worker lives on the (shutting-down) runtime of the test.

use std::sync::Mutex;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::DeleteParams;

/// Cluster objects to delete when this is dropped.
pub struct Cleanup {
    /// None when there is nothing to clean: an emulator goes away with its test, and its server
    /// runs on the test's runtime, which a blocking cleanup would starve.
    config: Option<kube::Config>,
    namespaces: Mutex<Vec<String>>,
    cluster_roles: Mutex<Vec<String>>,
    cluster_role_bindings: Mutex<Vec<String>>,
    mutating_webhooks: Mutex<Vec<String>>,
}

impl Cleanup {
    /// Cleans up with an admin client made from `config`.
    pub fn new(config: kube::Config) -> Cleanup {
        Cleanup::with(Some(config))
    }

    /// Registers nothing for deletion: for a backend that is thrown away whole.
    pub fn discard() -> Cleanup {
        Cleanup::with(None)
    }

    fn with(config: Option<kube::Config>) -> Cleanup {
        Cleanup {
            config,
            namespaces: Mutex::default(),
            cluster_roles: Mutex::default(),
            cluster_role_bindings: Mutex::default(),
            mutating_webhooks: Mutex::default(),
        }
    }

    /// Deletes namespace `name` at the end (everything in it goes with it).
    pub fn namespace(&self, name: &str) {
        push(&self.namespaces, name);
    }

    /// Deletes ClusterRole `name` at the end.
    pub fn cluster_role(&self, name: &str) {
        push(&self.cluster_roles, name);
    }

    /// Deletes ClusterRoleBinding `name` at the end.
    pub fn cluster_role_binding(&self, name: &str) {
        push(&self.cluster_role_bindings, name);
    }

    /// Deletes MutatingWebhookConfiguration `name` at the end.
    pub fn mutating_webhook(&self, name: &str) {
        push(&self.mutating_webhooks, name);
    }

    /// Deletes everything registered so far; errors other than "already gone" are printed.
    pub fn run(&self) {
        let namespaces = take(&self.namespaces);
        let roles = take(&self.cluster_roles);
        let bindings = take(&self.cluster_role_bindings);
        let webhooks = take(&self.mutating_webhooks);
        let Some(config) = self.config.clone() else {
            return;
        };
        if namespaces.is_empty() && roles.is_empty() && bindings.is_empty() && webhooks.is_empty() {
            return;
        }
        let worker = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                eprintln!("cleanup: no runtime");
                return;
            };
            runtime.block_on(async move {
                let Ok(client) = kube::Client::try_from(config) else {
                    eprintln!("cleanup: no client");
                    return;
                };
                let dp = DeleteParams::background();
                // The webhooks first: one left pointing at a stopped tokend refuses creates.
                for name in webhooks {
                    report(
                        "MutatingWebhookConfiguration",
                        &name,
                        Api::<MutatingWebhookConfiguration>::all(client.clone())
                            .delete(&name, &dp)
                            .await
                            .map(|_| ()),
                    );
                }
                for name in bindings {
                    report(
                        "ClusterRoleBinding",
                        &name,
                        Api::<ClusterRoleBinding>::all(client.clone())
                            .delete(&name, &dp)
                            .await
                            .map(|_| ()),
                    );
                }
                for name in roles {
                    report(
                        "ClusterRole",
                        &name,
                        Api::<ClusterRole>::all(client.clone())
                            .delete(&name, &dp)
                            .await
                            .map(|_| ()),
                    );
                }
                for name in namespaces {
                    report(
                        "Namespace",
                        &name,
                        Api::<Namespace>::all(client.clone())
                            .delete(&name, &dp)
                            .await
                            .map(|_| ()),
                    );
                }
            });
        });
        let _ = worker.join();
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

fn push(list: &Mutex<Vec<String>>, name: &str) {
    list.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(name.to_owned());
}

fn take(list: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *list.lock().unwrap_or_else(|p| p.into_inner()))
}

fn report(kind: &str, name: &str, result: kube::Result<()>) {
    match result {
        Ok(()) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => eprintln!("cleanup: deleting {kind} {name}: {e}"),
    }
}
