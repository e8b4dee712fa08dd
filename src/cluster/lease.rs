//! The coordination.k8s.io Lease calls leader election makes: read the record, and write it
//! as a compare-and-swap on its resourceVersion. What the record means is decided in
//! [`crate::leader_election`], not here.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

use super::{Cluster, Result};

/// A Lease as leader election sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Who holds it; empty when released.
    pub holder: String,
    /// The holder's promise: how long others must see the record unchanged before taking over.
    pub duration_seconds: Option<i32>,
    /// The holder's last renewal, by the holder's clock: only ever compared for change.
    pub renew_time: Option<Timestamp>,
    /// The API server's version of the object: the compare-and-swap token.
    pub resource_version: Option<String>,
    /// When the current holder took it (kept across renewals).
    pub acquire_time: Option<Timestamp>,
    /// How many times it changed hands.
    pub transitions: i32,
}

impl LeaseRecord {
    fn from_lease(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.unwrap_or_default(),
            duration_seconds: spec.lease_duration_seconds,
            renew_time: spec.renew_time.map(|t| t.0),
            resource_version: lease.metadata.resource_version.clone(),
            acquire_time: spec.acquire_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// What writing a Lease did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseWrite {
    /// Written; the record as stored.
    Written(LeaseRecord),
    /// Someone else wrote first (409): the write did not happen.
    Lost,
}

impl Cluster {
    /// The Lease `namespace/name`, if it exists.
    pub async fn read_lease(&self, namespace: &str, name: &str) -> Result<Option<LeaseRecord>> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        Ok(api
            .get_opt(name)
            .await?
            .map(|l| LeaseRecord::from_lease(&l)))
    }

    /// Writes `record` to the Lease: created when `record.resource_version` is None, else
    /// replaced only if the stored version is still that one.
    pub async fn write_lease(
        &self,
        namespace: &str,
        name: &str,
        record: &LeaseRecord,
    ) -> Result<LeaseWrite> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: record.resource_version.clone(),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(record.holder.clone()),
                lease_duration_seconds: record.duration_seconds,
                acquire_time: record.acquire_time.map(MicroTime),
                renew_time: record.renew_time.map(MicroTime),
                lease_transitions: Some(record.transitions),
                ..Default::default()
            }),
        };
        let written = match record.resource_version {
            None => api.create(&PostParams::default(), &lease).await,
            Some(_) => api.replace(name, &PostParams::default(), &lease).await,
        };
        match written {
            Ok(stored) => Ok(LeaseWrite::Written(LeaseRecord::from_lease(&stored))),
            // Created by a rival meanwhile, or changed since it was read.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(LeaseWrite::Lost),
            Err(e) => Err(e.into()),
        }
    }
}
