//! Taking back what a failed or unclaimed IssueToken made: the objects it created, as a list in
//! the order they were made, deleted newest first.

use std::time::Duration;

use super::TokenService;

/// Most records of failed issues waiting, in the background, for the API to come back.
const MAX_LATE_UNDOS: usize = 1024;

/// How long a record of a failed issue is retried in the background before the sweeper is left
/// to remove it.
const LATE_UNDO_FOR: Duration = Duration::from_secs(600);

static LATE_UNDOS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_LATE_UNDOS);

/// One object an IssueToken call created.
#[derive(Debug)]
pub(super) enum Created {
    /// A ServiceAccount made for the call (`create_service_account`).
    ServiceAccount {
        namespace: String,
        name: String,
        uid: String,
    },
    /// A RoleBinding of the asked ClusterRole.
    RoleBinding { namespace: String, name: String },
    /// A ClusterRoleBinding of the asked ClusterRole.
    ClusterRoleBinding { name: String },
    /// The token's record Secret.
    Record { namespace: String, name: String },
}

/// What one IssueToken call created, so a failure can take exactly that back.
#[derive(Debug, Default)]
pub(super) struct Undo {
    /// The ServiceAccount's existence was taken from the cache, not checked by this attempt.
    pub(super) cached_account: bool,
    created: Vec<Created>,
}

impl Undo {
    /// Remembers an object this call made.
    pub(super) fn push(&mut self, created: Created) {
        self.created.push(created);
    }
}

/// Runs `delete`, again up to four times with backoff (50 ms doubling) while the failure is
/// transient.
async fn retried<F, Fut>(mut delete: F) -> crate::cluster::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = crate::cluster::Result<()>>,
{
    const ATTEMPTS: u32 = 5;
    let mut pause = Duration::from_millis(50);
    for _ in 1..ATTEMPTS {
        match delete().await {
            Err(e) if e.is_transient() => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            done => return done,
        }
    }
    delete().await
}

impl TokenService {
    /// Deletes a record of a failed issue in the background once the API answers again: retried
    /// with backoff (1 s doubling to 30 s) for up to [`LATE_UNDO_FOR`]. At most
    /// [`MAX_LATE_UNDOS`] wait at once, so an outage under load holds bounded memory; a record
    /// beyond that is left to the sweeper.
    pub(super) fn delete_record_later(&self, ns: String, name: String) {
        let Ok(slot) = LATE_UNDOS.try_acquire() else {
            tracing::error!(namespace = %ns, secret = %name, "too many records wait for deletion; the sweeper will remove this one");
            return;
        };
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let deadline = tokio::time::Instant::now() + LATE_UNDO_FOR;
            let mut pause = Duration::from_secs(1);
            loop {
                tokio::time::sleep(pause).await;
                match cluster.delete_secret(&ns, &name).await {
                    Ok(_) => {
                        tracing::info!(namespace = %ns, secret = %name, "deleted the record of a failed issue after the outage");
                        return;
                    }
                    Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                        pause = (pause * 2).min(Duration::from_secs(30));
                    }
                    Err(e) => {
                        tracing::error!(namespace = %ns, secret = %name, error = %e, "could not delete the record of a failed issue");
                        return;
                    }
                }
            }
        });
    }

    /// Takes back what a failed or unclaimed issue made, newest first; failures are logged, as
    /// the caller already has the error that matters. A delete that meets a transient failure
    /// (5xx, 429, unreachable) is tried again a few times: the API failing is the usual reason
    /// for an undo, and what a failed undo still leaves waits for the sweeper. Answers whether
    /// no record is left (so a token bound to it no longer authenticates).
    pub(super) async fn undo(&self, undo: Undo) -> bool {
        let mut record_gone = true;
        for created in undo.created.into_iter().rev() {
            match created {
                Created::Record { namespace, name } => {
                    let deleted = retried(|| async {
                        self.cluster
                            .delete_secret(&namespace, &name)
                            .await
                            .map(drop)
                    })
                    .await;
                    if let Err(e) = deleted {
                        record_gone = false;
                        if e.is_transient() {
                            // The API is down: the write that confirmed this record may have
                            // landed with its answer lost, so the record can look issued. Keep
                            // trying after the outage.
                            self.delete_record_later(namespace, name);
                        } else {
                            tracing::error!(namespace = %namespace, secret = %name, error = %e, "could not delete the record of a failed issue");
                        }
                    }
                }
                Created::ClusterRoleBinding { name } => {
                    if let Err(e) =
                        retried(|| self.cluster.delete_cluster_role_binding(&name)).await
                    {
                        tracing::error!(binding = %name, error = %e, "could not delete a ClusterRoleBinding of a failed issue");
                    }
                }
                Created::RoleBinding { namespace, name } => {
                    if let Err(e) =
                        retried(|| self.cluster.delete_role_binding(&namespace, &name)).await
                    {
                        tracing::error!(namespace = %namespace, binding = %name, error = %e, "could not delete a RoleBinding of a failed issue");
                    }
                }
                Created::ServiceAccount {
                    namespace,
                    name,
                    uid,
                } => {
                    self.accounts.invalidate(&(namespace.clone(), name.clone()));
                    if let Err(e) =
                        retried(|| self.cluster.delete_service_account(&namespace, &name, &uid))
                            .await
                    {
                        tracing::error!(namespace = %namespace, service_account = %name, error = %e, "could not delete a ServiceAccount of a failed issue");
                    }
                }
            }
        }
        record_gone
    }
}
