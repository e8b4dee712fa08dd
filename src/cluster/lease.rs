//! Leader election through a coordination.k8s.io Lease: the one replica holding it runs the
//! singleton jobs (the sweeper).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

use super::{Cluster, Result};

impl Cluster {
    /// Takes the Lease if it is free or expired, renews it if ours; `false` when another replica
    /// holds it. A lost race (409) is simply not holding it.
    pub async fn hold_lease(
        &self,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: i32,
    ) -> Result<bool> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        let now = Timestamp::now();
        let spec = LeaseSpec {
            holder_identity: Some(identity.to_owned()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        };
        let Some(mut lease) = api.get_opt(name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
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
                Err(e) => Err(e.into()),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let ours = current.holder_identity.as_deref() == Some(identity);
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
        match api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
