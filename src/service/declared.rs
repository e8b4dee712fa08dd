//! Tokens declared as ServiceAccountToken objects: the controller issues them through the same
//! steps as IssueToken, always authorised as the object's requester (never as tokend), records
//! them as owned by the object (garbage collection revokes them with it), and revokes a
//! rotated-out one as tokend itself, only when its sealed record names the object.

use k8s_openapi::jiff::Timestamp;

use super::checks::parse_token_id;
use super::{Caller, DeclaredOwner, Error, IssueRequest, Reason, Result, TokenService, audit};
use crate::token_id::TokenId;

/// A token issued for a declared object, with everything its Secret holds.
pub struct Credentials {
    /// The bearer token.
    pub token: String,
    /// Its record's id.
    pub token_id: TokenId,
    /// Expiry as the API server set it.
    pub expiration: Timestamp,
    /// A kubeconfig for the token.
    pub kubeconfig: String,
    /// The CA bundle written into the kubeconfig, when one is known.
    pub ca_pem: Option<String>,
}

impl TokenService {
    /// The same service, but authorising every call with SubjectAccessReview even when gRPC
    /// callers are not authenticated (`--auth none`): a declared token's requester is an identity
    /// the API server proved, and it must never borrow tokend's rights.
    pub fn authorizing(&self) -> Self {
        let mut settings = (*self.settings).clone();
        settings.authorize = true;
        Self {
            settings: std::sync::Arc::new(settings),
            ..self.clone()
        }
    }

    /// Refuses unless `requester` could issue `request` itself (IssueToken's reviews), before
    /// anything is created for it.
    pub async fn authorize_declared(
        &self,
        requester: &Caller,
        request: &IssueRequest,
    ) -> Result<()> {
        self.check_issue(request)?;
        let scope = request
            .binding_scope
            .unwrap_or(super::BindingScope::Namespace);
        let result = self.authorize_issue(requester, request, scope).await;
        if let Err(e) = &result {
            audit::issue_failed(requester, &request.namespace, &request.service_account, e);
        }
        result
    }

    /// Issues a token for `requester` and renders its kubeconfig (server and context name
    /// overrides checked first); a token whose kubeconfig cannot be made is revoked again.
    pub async fn issue_declared(
        &self,
        requester: &Caller,
        request: IssueRequest,
        server: &str,
        context_name: &str,
    ) -> Result<Credentials> {
        let server = self
            .kubeconfig_server(server)
            .map_err(|rule| Error::invalid("server", Reason::ServerUrlInvalid, rule))?;
        let context_name = super::kubeconfig::kubeconfig_context_name(
            context_name.to_owned(),
            &request.namespace,
            &request.service_account,
        )?;
        let this = self.clone();
        self.issue_then(requester, request, move |issued| async move {
            let ca_pem = this.kubeconfig_ca().await?;
            let kubeconfig = this
                .render_kubeconfig(&server, &issued.token, &issued.namespace, &context_name)
                .await?;
            Ok(Credentials {
                token: issued.token.clone(),
                token_id: issued.token_id.clone(),
                expiration: issued.expiration,
                kubeconfig,
                ca_pem,
            })
        })
        .await
    }

    /// Revokes a declared token as tokend (rotated out, or never handed over); `false` when it
    /// is gone already or is not `owner`'s. No review: tokend revokes only what it issued for
    /// that object, as its own sealed record says (in the object's namespace, naming the
    /// object's uid), never a token because an id was written somewhere.
    pub async fn revoke_declared(
        &self,
        on_behalf_of: &str,
        token_id: &str,
        namespace: &str,
        owner: &DeclaredOwner,
    ) -> Result<bool> {
        let id = parse_token_id(token_id)?;
        if id.namespace() != namespace {
            tracing::warn!(
                namespace,
                owner = %owner.name,
                token_id = %id,
                "not revoking a token of another namespace named by a declared object"
            );
            return Ok(false);
        }
        let Some(record) = self.record(&id).await? else {
            return Ok(false);
        };
        if record.owner_uid.as_deref() != Some(owner.uid.as_str()) || owner.uid.is_empty() {
            tracing::warn!(
                namespace,
                owner = %owner.name,
                token_id = %id,
                "not revoking a token the declared object did not get issued"
            );
            return Ok(false);
        }
        let deleted = self
            .cluster
            .delete_secret_if_unchanged(
                id.namespace(),
                &id.secret_name(),
                &record.object_uid,
                &record.resource_version,
            )
            .await?;
        if deleted {
            let caller = Caller {
                username: on_behalf_of.to_owned(),
                ..Caller::default()
            };
            audit::revoked(&caller, &record);
        }
        Ok(deleted)
    }
}

impl Error {
    /// The condition reason a declared token's refusal is reported with.
    pub fn condition_reason(&self) -> &'static str {
        match self {
            Error::PermissionDenied(_) | Error::Unauthenticated(_) => "Forbidden",
            Error::FailedPrecondition(_) => "PolicyRefused",
            Error::InvalidArgument { .. } => "InvalidSpec",
            Error::NotFound(_) => "NotFound",
            Error::AlreadyExists(_) => "Conflict",
            Error::Unavailable(_) | Error::Internal(_) => "IssueFailed",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Internal(_))
    }
}
