//! The sweeper: deletes tokend's records whose tokens expired more than a grace period ago. One
//! replica sweeps at a time, chosen through a coordination.k8s.io Lease; it never touches a
//! Secret that is not a tokend record (type, label and name all tokend's).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Api, Client};

use crate::service::TokenRecord;
use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// Name of the Lease the replicas compete for.
pub const LEASE_NAME: &str = "tokend-sweeper";

/// How the sweeper runs.
#[derive(Debug, Clone)]
pub struct SweeperOptions {
    /// Time between sweeps; also how often the lease is renewed.
    pub interval: Duration,
    /// How long after expiry a record is kept (so ListTokens can still show EXPIRED ones).
    pub grace: Duration,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// This replica's name in the Lease.
    pub identity: String,
}

/// Runs forever: every interval, take or renew the lease, and sweep when holding it.
pub async fn run(client: Client, options: SweeperOptions) {
    loop {
        match hold_lease(&client, &options).await {
            Ok(true) => {
                if let Err(e) = sweep(&client, options.grace).await {
                    tracing::warn!(error = %e, "sweep failed; trying again next interval");
                }
            }
            Ok(false) => tracing::debug!("another replica holds the sweeper lease"),
            Err(e) => tracing::warn!(error = %e, "cannot reach the sweeper lease"),
        }
        tokio::time::sleep(options.interval).await;
    }
}

/// Takes the Lease if it is free or expired, renews it if ours; `false` when another replica
/// holds it. A lost race (409) is simply not holding it.
async fn hold_lease(client: &Client, options: &SweeperOptions) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &options.lease_namespace);
    let now = Timestamp::now();
    // Three missed renewals before another replica may take over.
    let duration =
        i32::try_from(options.interval.as_secs().saturating_mul(3).max(1)).unwrap_or(i32::MAX);
    let spec = LeaseSpec {
        holder_identity: Some(options.identity.clone()),
        lease_duration_seconds: Some(duration),
        renew_time: Some(MicroTime(now)),
        ..Default::default()
    };
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                acquire_time: Some(MicroTime(now)),
                ..spec
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    let ours = current.holder_identity.as_deref() == Some(options.identity.as_str());
    let expired = match (current.renew_time, current.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) => renewed
            .0
            .checked_add(SignedDuration::from_secs(i64::from(seconds)))
            .is_ok_and(|end| end < now),
        _ => true,
    };
    if !ours && !expired {
        return Ok(false);
    }
    let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
    lease.spec = Some(LeaseSpec {
        acquire_time: if ours {
            current.acquire_time
        } else {
            Some(MicroTime(now))
        },
        lease_transitions: Some(transitions),
        ..spec
    });
    // The resourceVersion in `lease` makes this a compare-and-swap: a rival's write wins cleanly.
    match api
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes every record, in every namespace, whose token expired more than `grace` ago; answers
/// how many it deleted.
pub async fn sweep(client: &Client, grace: Duration) -> Result<usize, kube::Error> {
    let api: Api<Secret> = Api::all(client.clone());
    let records = api
        .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")))
        .await?;
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    let now = Timestamp::now();
    let mut swept = 0;
    for secret in &records.items {
        // Only what reads back as a record, never a look-alike.
        let Some(record) = TokenRecord::from_secret(secret) else {
            continue;
        };
        let Some(expiration) = record.expiration else {
            continue;
        };
        if expiration.checked_add(grace).is_ok_and(|end| end > now) {
            continue;
        }
        let ns: Api<Secret> = Api::namespaced(client.clone(), &record.namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.metadata.uid.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        match ns.delete(&record.token_id.secret_name(), &params).await {
            Ok(_) => {
                swept += 1;
                tracing::info!(
                    target: "tokend::audit",
                    action = "sweep",
                    outcome = "deleted",
                    namespace = %record.namespace,
                    service_account = %record.service_account,
                    token_id = %record.token_id,
                    expiration = %expiration,
                );
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(swept)
}
