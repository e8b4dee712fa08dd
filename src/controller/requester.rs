//! The seal on a ServiceAccountToken's requester: proof that tokend's own admission webhook
//! wrote it, for this namespace, name, object and spec. Without a webhook registered anyone who
//! may create the object can write `spec.requester`; a requester is acted on only when its seal
//! verifies, so a hand-written, copied or replayed one gets nothing.
//!
//! The webhook runs before the API server sets what only it knows (in kube-apiserver mutating
//! admission runs before the strategy's PrepareForCreate/PrepareForUpdate and BeforeCreate /
//! BeforeUpdate): a CREATE is seen without its uid, generation or creation time (they become a
//! fresh uid, 1 and "now"), an UPDATE that changes the spec with the old generation (it becomes
//! old + 1) and the old creation time. So the seal covers the generation the object will have and
//! an anchor: the object's creation time (for a CREATE, the webhook's clock, which the API
//! server's creation time must be within [`CREATION_WINDOW`] of). A requester copied to another
//! name, namespace or spec, kept across a spec change the webhook did not see, or replayed onto
//! an object re-created later under the same name does not verify.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::resource::{Requester, ServiceAccountToken, ServiceAccountTokenSpec};
use crate::service::RecordKey;

/// The record key's tags are made for one purpose each: this one never verifies as another.
const PURPOSE: &str = "serviceaccounttoken-requester";
/// Prefix of a requester seal, naming the scheme.
const SCHEME: &str = "r1";
/// How far the API server's creation time may be from the webhook's clock when it sealed a
/// CREATE: the webhook's time limit (at most 30 s) and clock skew. A name deleted and re-created
/// within this window of its first creation can replay the first requester (see README).
pub const CREATION_WINDOW: i64 = 30;

/// Why a requester is not proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unproven {
    /// No seal at all (hand-written, or stamped by a tokend before seals).
    #[error("it carries no seal")]
    Missing,
    /// The seal is not one tokend wrote for this object, name, generation, requester and spec.
    #[error("its seal does not match this object as it is now")]
    Mismatch,
    /// The seal was made for an object created at another time (a re-created name).
    #[error("its seal was made for an object of this name created at another time")]
    OtherObject,
}

/// What a seal covers, in one encoding both the webhook and the controller produce: the typed
/// spec (the API server prunes unknown fields, serde ignores them) with the requester apart.
fn canonical(
    namespace: &str,
    name: &str,
    generation: i64,
    anchor: i64,
    spec: &ServiceAccountTokenSpec,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Sealed<'a> {
        purpose: &'static str,
        namespace: &'a str,
        name: &'a str,
        generation: i64,
        anchor: i64,
        requester: Option<Requester>,
        spec: ServiceAccountTokenSpec,
    }
    let mut spec = spec.clone();
    let requester = spec.requester.take().map(|mut r| {
        r.seal.clear();
        r
    });
    let sealed = Sealed {
        purpose: "tokend.io ServiceAccountToken requester",
        namespace,
        name,
        generation,
        anchor,
        requester,
        spec,
    };
    serde_json::to_vec(&sealed).unwrap_or_default()
}

/// The seal of `spec` (its requester included, its seal ignored) for the object `namespace/name`
/// at `generation`, anchored at `anchor` (Unix seconds of its creation).
pub fn seal(
    key: &RecordKey,
    namespace: &str,
    name: &str,
    generation: i64,
    anchor: i64,
    spec: &ServiceAccountTokenSpec,
) -> String {
    let tag = key.tag(
        PURPOSE,
        &canonical(namespace, name, generation, anchor, spec),
    );
    format!("{SCHEME}.{anchor}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Whether `sat`'s requester carries a seal `key` made for this object as it is.
pub fn verify(key: &RecordKey, sat: &ServiceAccountToken) -> Result<(), Unproven> {
    let seal = sat
        .spec
        .requester
        .as_ref()
        .map(|r| r.seal.as_str())
        .filter(|s| !s.is_empty())
        .ok_or(Unproven::Missing)?;
    let mut parts = seal.splitn(3, '.');
    let (Some(SCHEME), Some(anchor), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Unproven::Mismatch);
    };
    let anchor: i64 = anchor.parse().map_err(|_| Unproven::Mismatch)?;
    let namespace = sat.metadata.namespace.as_deref().unwrap_or_default();
    let name = sat.metadata.name.as_deref().unwrap_or_default();
    let generation = sat.metadata.generation.ok_or(Unproven::Mismatch)?;
    let bytes = canonical(namespace, name, generation, anchor, &sat.spec);
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| Unproven::Mismatch)?;
    if !key.verifies_tag(PURPOSE, &bytes, &tag) {
        return Err(Unproven::Mismatch);
    }
    let created = sat
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .ok_or(Unproven::OtherObject)?;
    if (created - anchor).abs() > CREATION_WINDOW {
        return Err(Unproven::OtherObject);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn sat(created: i64, generation: i64, spec: ServiceAccountTokenSpec) -> ServiceAccountToken {
        let mut sat = ServiceAccountToken::new("sat-a", spec);
        sat.metadata.namespace = Some("team-a".into());
        sat.metadata.generation = Some(generation);
        sat.metadata.creation_timestamp =
            Some(Time(Timestamp::from_second(created).expect("time")));
        sat
    }

    fn sealed(key: &RecordKey, anchor: i64, generation: i64) -> ServiceAccountTokenSpec {
        let mut spec = ServiceAccountTokenSpec {
            duration: "1h".into(),
            requester: Some(Requester {
                username: "alice".into(),
                groups: vec!["dev".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let seal = seal(key, "team-a", "sat-a", generation, anchor, &spec);
        if let Some(r) = spec.requester.as_mut() {
            r.seal = seal;
        }
        spec
    }

    #[test]
    fn a_seal_verifies_only_for_its_object_as_sealed() {
        let key = RecordKey::new(&[7; 32]);
        let spec = sealed(&key, 1_000, 1);
        assert_eq!(verify(&key, &sat(1_002, 1, spec.clone())), Ok(()));
        let mut other_name = sat(1_002, 1, spec.clone());
        other_name.metadata.name = Some("sat-b".into());
        assert_eq!(verify(&key, &other_name), Err(Unproven::Mismatch));
        let mut other_ns = sat(1_002, 1, spec.clone());
        other_ns.metadata.namespace = Some("team-b".into());
        assert_eq!(verify(&key, &other_ns), Err(Unproven::Mismatch));
        assert_eq!(
            verify(&key, &sat(1_002, 2, spec.clone())),
            Err(Unproven::Mismatch),
            "a later generation"
        );
        let mut widened = spec.clone();
        widened.cluster_role = "admin".into();
        assert_eq!(
            verify(&key, &sat(1_002, 1, widened)),
            Err(Unproven::Mismatch)
        );
        let mut promoted = spec.clone();
        if let Some(r) = promoted.requester.as_mut() {
            r.groups.push("system:masters".into());
        }
        assert_eq!(
            verify(&key, &sat(1_002, 1, promoted)),
            Err(Unproven::Mismatch)
        );
        assert_eq!(
            verify(&key, &sat(1_000 + 3_600, 1, spec.clone())),
            Err(Unproven::OtherObject),
            "the name re-created an hour later"
        );
        assert_eq!(
            verify(&RecordKey::new(&[8; 32]), &sat(1_002, 1, spec.clone())),
            Err(Unproven::Mismatch),
            "another key"
        );
        let mut unsealed = spec;
        if let Some(r) = unsealed.requester.as_mut() {
            r.seal.clear();
        }
        assert_eq!(
            verify(&key, &sat(1_002, 1, unsealed)),
            Err(Unproven::Missing)
        );
    }
}
