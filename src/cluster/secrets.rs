//! Secrets: token records (written, confirmed, read as metadata a page at a time, deleted only
//! while unchanged), the shared record key, and the published root CA.

use super::*;

impl Cluster {
    /// Creates a Secret.
    pub async fn create_secret(&self, secret: &Secret) -> Result<Secret> {
        let ns = secret.metadata.namespace.as_deref().unwrap_or_default();
        Ok(self
            .secrets(ns)
            .create(&PostParams::default(), secret)
            .await?)
    }

    /// A Secret's metadata, if it exists: never its data, so a large Secret costs nothing.
    pub async fn secret_metadata(&self, ns: &str, name: &str) -> Result<Option<ObjectMeta>> {
        Ok(self
            .secrets(ns)
            .get_metadata_opt(name)
            .await?
            .map(|partial| partial.metadata))
    }

    /// One page (at most `limit`) of the metadata of record-typed Secrets matching a label
    /// selector, in one namespace or all; one bounded API call, resumed from `continue_token`.
    /// The type is a field selector, so other Secrets never leave the API server.
    pub async fn record_page(
        &self,
        ns: Option<&str>,
        selector: &str,
        limit: u32,
        continue_token: Option<&str>,
    ) -> Result<MetadataPage> {
        let api: Api<Secret> = match ns {
            Some(ns) => self.secrets(ns),
            None => Api::all(self.client.clone()),
        };
        let mut params = ListParams::default()
            .labels(selector)
            .fields(&format!("type={RECORD_SECRET_TYPE}"))
            .limit(limit);
        if let Some(token) = continue_token {
            params = params.continue_token(token);
        }
        let list = api.list_metadata(&params).await?;
        Ok(MetadataPage {
            items: list.items.into_iter().map(|p| p.metadata).collect(),
            continue_token: list.metadata.continue_.filter(|c| !c.is_empty()),
        })
    }

    /// Confirms a record once its token is issued: merges `annotations` (corrections and the
    /// seal), drops the pending label, and makes the Secret immutable, which no one can undo, so
    /// a confirmed record can never again pass for a pending one.
    pub async fn confirm_record(
        &self,
        ns: &str,
        name: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<()> {
        let patch = serde_json::json!({
            "metadata": {
                "annotations": annotations,
                "labels": { PENDING_LABEL: null },
            },
            "immutable": true,
        });
        self.secrets(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// What the API server itself enforces about a Secret (the fields only the server or its
    /// creator control): uid, resourceVersion, type and whether it is immutable. A full GET, so
    /// only for the few Secrets this is asked about.
    pub async fn secret_facts(&self, ns: &str, name: &str) -> Result<Option<SecretFacts>> {
        Ok(self.secrets(ns).get_opt(name).await?.map(|s| SecretFacts {
            uid: s.metadata.uid.unwrap_or_default(),
            resource_version: s.metadata.resource_version.unwrap_or_default(),
            type_: s.type_.unwrap_or_default(),
            immutable: s.immutable == Some(true),
        }))
    }

    /// The key in Secret `name` of `ns`; when the Secret is missing it is created holding
    /// `fresh`, and a replica that lost that race reads the winner's.
    pub async fn shared_key(&self, ns: &str, name: &str, fresh: &[u8]) -> Result<Vec<u8>> {
        let read = |secret: Secret| {
            secret
                .data
                .and_then(|mut data| data.remove(RECORD_KEY_DATA))
                .map(|bytes| bytes.0)
                .filter(|bytes| bytes.len() >= 32)
                .ok_or_else(|| {
                    Error::Unexpected(format!(
                        "Secret {ns}/{name} has no key {RECORD_KEY_DATA:?} of at least 32 bytes"
                    ))
                })
        };
        if let Some(existing) = self.secrets(ns).get_opt(name).await? {
            return read(existing);
        }
        let secret = Secret {
            metadata: managed_meta(name, Some(ns)),
            data: Some(BTreeMap::from([(
                RECORD_KEY_DATA.to_owned(),
                k8s_openapi::ByteString(fresh.to_vec()),
            )])),
            immutable: Some(true),
            ..Default::default()
        };
        match self
            .secrets(ns)
            .create(&PostParams::default(), &secret)
            .await
        {
            Ok(created) => read(created),
            Err(e) if is_already_exists(&e) => read(self.secrets(ns).get(name).await?),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a Secret only if it is still the object that was read (same uid and
    /// resourceVersion): what was checked is what is deleted. `false` when it is gone or changed.
    pub async fn delete_secret_if_unchanged(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        resource_version: &str,
    ) -> Result<bool> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: Some(resource_version.to_owned()),
            }),
            ..Default::default()
        };
        match self.secrets(ns).delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a Secret; `false` when it was already gone.
    pub async fn delete_secret(&self, ns: &str, name: &str) -> Result<bool> {
        match self
            .secrets(ns)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The CA bundle the API server publishes in `kube-root-ca.crt`, if that ConfigMap exists.
    pub async fn published_root_ca(&self, ns: &str) -> Result<Option<String>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let cm = api.get_opt(ROOT_CA_CONFIGMAP).await?;
        Ok(cm
            .and_then(|cm| cm.data)
            .and_then(|mut data| data.remove(ROOT_CA_KEY)))
    }
}
