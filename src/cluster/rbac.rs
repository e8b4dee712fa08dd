//! The RBAC objects tokend reads and makes: ClusterRoles looked up, RoleBindings and
//! ClusterRoleBindings made (and taken back) for issued tokens.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::*;

impl Cluster {
    /// Whether a ClusterRole exists.
    pub async fn cluster_role_exists(&self, name: &str) -> Result<bool> {
        Ok(Api::<ClusterRole>::all(self.client.clone())
            .get_opt(name)
            .await?
            .is_some())
    }

    /// Ensures a RoleBinding `binding` in `ns` grants ClusterRole `role` to the ServiceAccount;
    /// one created now is owned by `owner` (garbage-collected with it).
    pub async fn ensure_role_binding(
        &self,
        ns: &str,
        binding: &str,
        sa: &str,
        role: &str,
        owner: Option<OwnerReference>,
    ) -> Result<Ensured> {
        let mut metadata = managed_meta(binding, Some(ns));
        // Only a binding made now gets an owner: one that exists may serve others.
        metadata.owner_references = owner.map(|o| vec![o]);
        let rb = RoleBinding {
            metadata,
            role_ref: cluster_role_ref(role),
            subjects: Some(vec![sa_subject(ns, sa)]),
        };
        let api: Api<RoleBinding> = Api::namespaced(self.client.clone(), ns);
        match api.create(&PostParams::default(), &rb).await {
            Ok(_) => Ok(Ensured::Created),
            Err(e) if is_already_exists(&e) => {
                let existing = api.get(binding).await?;
                check_same_binding(
                    binding,
                    &existing.role_ref,
                    existing.subjects.as_deref(),
                    &rb,
                )?;
                Ok(Ensured::Existed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ensures a ClusterRoleBinding `binding` grants ClusterRole `role` to the ServiceAccount.
    pub async fn ensure_cluster_role_binding(
        &self,
        binding: &str,
        ns: &str,
        sa: &str,
        role: &str,
    ) -> Result<Ensured> {
        let crb = ClusterRoleBinding {
            metadata: managed_meta(binding, None),
            role_ref: cluster_role_ref(role),
            subjects: Some(vec![sa_subject(ns, sa)]),
        };
        let api: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &crb).await {
            Ok(_) => Ok(Ensured::Created),
            Err(e) if is_already_exists(&e) => {
                let existing = api.get(binding).await?;
                let wanted = RoleBinding {
                    role_ref: crb.role_ref.clone(),
                    subjects: crb.subjects.clone(),
                    ..Default::default()
                };
                check_same_binding(
                    binding,
                    &existing.role_ref,
                    existing.subjects.as_deref(),
                    &wanted,
                )?;
                Ok(Ensured::Existed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a RoleBinding this call created.
    pub async fn delete_role_binding(&self, ns: &str, name: &str) -> Result<()> {
        let api: Api<RoleBinding> = Api::namespaced(self.client.clone(), ns);
        ignore_not_found(api.delete(name, &DeleteParams::default()).await.map(drop))
    }

    /// Deletes a ClusterRoleBinding this call created.
    pub async fn delete_cluster_role_binding(&self, name: &str) -> Result<()> {
        let api: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        ignore_not_found(api.delete(name, &DeleteParams::default()).await.map(drop))
    }
}

pub(super) fn cluster_role_ref(role: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "ClusterRole".into(),
        name: role.to_owned(),
    }
}

pub(super) fn sa_subject(ns: &str, sa: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: sa.to_owned(),
        namespace: Some(ns.to_owned()),
        api_group: None,
    }
}

/// A binding of the same name must grant the same role to our ServiceAccount, else it is
/// someone else's and tokend must not claim it.
pub(super) fn check_same_binding(
    name: &str,
    role_ref: &RoleRef,
    subjects: Option<&[Subject]>,
    wanted: &RoleBinding,
) -> Result<()> {
    let subject_present = wanted.subjects.iter().flatten().all(|w| {
        subjects
            .unwrap_or_default()
            .iter()
            .any(|s| s.kind == w.kind && s.name == w.name && s.namespace == w.namespace)
    });
    if role_ref.name == wanted.role_ref.name
        && role_ref.kind == wanted.role_ref.kind
        && subject_present
    {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "binding \"{name}\" already exists with a different role or subjects"
        )))
    }
}
