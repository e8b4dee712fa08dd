//! Records as tokend writes them, made directly: for states a test cannot wait for (records
//! that expired long ago), sealed with tokend's own record key as an operator holding the key
//! Secret could.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use tokend::service::{RecordKey, TokenRecord};
use tokend::vocabulary::{PENDING_LABEL, RECORD_KEY_DATA, RECORD_KEY_SECRET, SEAL_ANNOTATION};

use crate::tokend::{ADMIN_KEY_NAMESPACE, TestEnv};

/// The key tokend seals records with (made now, for tokend to find, if tokend has not needed it
/// yet).
pub async fn record_key(env: &TestEnv) -> RecordKey {
    let namespace = env
        .tokend_namespace
        .clone()
        .unwrap_or_else(|| ADMIN_KEY_NAMESPACE.into());
    let secrets = Api::<Secret>::namespaced(env.kube.clone(), &namespace);
    let fresh: [u8; 32] = rand::random();
    let new = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(RECORD_KEY_SECRET.into()),
            ..Default::default()
        },
        data: Some(std::collections::BTreeMap::from([(
            RECORD_KEY_DATA.to_owned(),
            k8s_openapi::ByteString(fresh.to_vec()),
        )])),
        ..Default::default()
    };
    // 409: tokend (or an earlier test) made it first; read that one.
    let _ = secrets.create(&PostParams::default(), &new).await;
    let stored = secrets
        .get(RECORD_KEY_SECRET)
        .await
        .expect("record key Secret");
    let bytes = stored
        .data
        .and_then(|mut d| d.remove(RECORD_KEY_DATA))
        .expect("key in the record key Secret");
    RecordKey::new(&bytes.0)
}

/// Writes `record` as tokend does (pending, then sealed and made immutable once it has the
/// Secret's uid) without issuing a token. Answers the Secret's uid.
pub async fn write_sealed_record(env: &TestEnv, record: &TokenRecord) -> String {
    let key = record_key(env).await;
    let secrets = Api::<Secret>::namespaced(env.kube.clone(), &record.namespace);
    let created = secrets
        .create(&PostParams::default(), &record.to_secret())
        .await
        .expect("create record Secret");
    let uid = created.metadata.uid.clone().expect("uid");
    let mut sealed = record.clone();
    sealed.pending = false;
    let patch = serde_json::json!({
        "metadata": {
            "annotations": { SEAL_ANNOTATION: key.seal(&sealed, &uid) },
            "labels": { PENDING_LABEL: null },
        },
        "immutable": true,
    });
    secrets
        .patch(
            &record.token_id.secret_name(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("seal the record");
    uid
}

/// A record of `ns/sa` expiring at `expiration` (RFC 3339), as tokend writes it before sealing.
pub fn record_of(ns: &str, sa: &str, expiration: &str) -> TokenRecord {
    TokenRecord {
        token_id: tokend::token_id::TokenId::generate(ns),
        namespace: ns.into(),
        service_account: sa.into(),
        service_account_uid: String::new(),
        issued_at: None,
        expiration: Some(expiration.parse().expect("RFC 3339 time")),
        audiences: Vec::new(),
        labels: Default::default(),
        issued_by: "test".into(),
        cluster_role: None,
        binding_scope: None,
        object_uid: String::new(),
        resource_version: String::new(),
        seal: None,
        pending: true,
        replaces: None,
        owner_uid: None,
    }
}
