//! The objects the controller makes for a ServiceAccountToken: the Secret with the token and
//! kubeconfig, and the default ServiceAccount, both owned by the resource (garbage collection
//! removes them with it) and labelled so the controller's watches see only them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource as _};

use super::resource::ServiceAccountToken;
use super::{Error, OWNER_LABEL};
use crate::service::Credentials;
use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// The resource as the owner of what is made for it.
pub fn owner_reference(sat: &ServiceAccountToken) -> Result<OwnerReference, Error> {
    sat.controller_owner_ref(&())
        .ok_or_else(|| Error::Object("the resource has no name or uid".into()))
}

fn owned_meta(sat: &ServiceAccountToken, name: &str, ns: &str) -> Result<ObjectMeta, Error> {
    Ok(ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        labels: Some(BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (
                OWNER_LABEL.to_owned(),
                sat.metadata.name.clone().unwrap_or_default(),
            ),
        ])),
        owner_references: Some(vec![owner_reference(sat)?]),
        ..Default::default()
    })
}

/// Whether the resource is among the object's owners.
pub fn is_owned_by(meta: &ObjectMeta, sat: &ServiceAccountToken) -> bool {
    let uid = sat.metadata.uid.as_deref();
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| Some(o.uid.as_str()) == uid)
}

/// Creates the ServiceAccount made for the resource (named after it) when missing; one of that
/// name that exists already is used as it is, never adopted.
pub async fn ensure_default_account(
    client: &Client,
    sat: &ServiceAccountToken,
    ns: &str,
    name: &str,
) -> Result<(), Error> {
    let api = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let sa = ServiceAccount {
        metadata: owned_meta(sat, name, ns)?,
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether the ServiceAccount exists.
pub async fn account_exists(client: &Client, ns: &str, name: &str) -> Result<bool, Error> {
    Ok(Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get_metadata_opt(name)
        .await?
        .is_some())
}

/// The Secret's metadata, when it exists.
pub async fn secret_meta(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<ObjectMeta>, Error> {
    Ok(Api::<Secret>::namespaced(client.clone(), ns)
        .get_metadata_opt(name)
        .await?
        .map(|m| m.metadata))
}

fn data(credentials: &Credentials, ns: &str) -> BTreeMap<String, ByteString> {
    let mut data = BTreeMap::from([
        (
            "token".to_owned(),
            ByteString(credentials.token.clone().into_bytes()),
        ),
        (
            "kubeconfig".to_owned(),
            ByteString(credentials.kubeconfig.clone().into_bytes()),
        ),
        ("namespace".to_owned(), ByteString(ns.as_bytes().to_vec())),
    ]);
    if let Some(ca) = &credentials.ca_pem {
        data.insert("ca.crt".into(), ByteString(ca.clone().into_bytes()));
    }
    data
}

/// Creates the Secret `<resource>-<5 random>` holding the credentials; answers its name.
pub async fn create_secret(
    client: &Client,
    sat: &ServiceAccountToken,
    ns: &str,
    credentials: &Credentials,
) -> Result<String, Error> {
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    let base = sat.metadata.name.clone().unwrap_or_default();
    // A name taken by chance is simply drawn again.
    let mut last = None;
    for _ in 0..3 {
        let name = format!("{base}-{}", random_suffix());
        let secret = Secret {
            metadata: owned_meta(sat, &name, ns)?,
            type_: Some("Opaque".into()),
            data: Some(data(credentials, ns)),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => return Ok(name),
            Err(kube::Error::Api(s)) if s.code == 409 => last = Some(kube::Error::Api(s)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .map(Error::from)
        .unwrap_or_else(|| Error::Object("no free Secret name".into())))
}

/// Replaces the credentials in the resource's existing Secret (rotation).
pub async fn update_secret(
    client: &Client,
    ns: &str,
    name: &str,
    credentials: &Credentials,
) -> Result<(), Error> {
    let patch = serde_json::json!({ "data": data(credentials, ns) });
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Five characters of [a-z0-9], as Kubernetes' generateName draws them.
fn random_suffix() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
