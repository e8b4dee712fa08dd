//! IssueToken: check everything that can be checked, make the ServiceAccount and binding when
//! asked, write the record, ask the API server for a token bound to it, and undo what this call
//! made if any step fails or the caller goes away.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::sync::oneshot;

use super::audit;
use super::checks::check_audiences;
use super::policy::GivenLifetime;
use super::record::{BindingScope, TokenRecord};
use super::undo::{Created, Undo};
use super::{Caller, Claims, Error, Failure, Reason, Result, TokenService, Violations};
use crate::cluster::{Ensured, ResourceAccess};
use crate::names;
use crate::token_id::TokenId;
use crate::vocabulary::{
    BINDING_PREFIX, EXPIRATION_ANNOTATION, MAX_LABELS, RESERVED_PREFIX, SEAL_ANNOTATION,
    SERVICE_ACCOUNT_UID_ANNOTATION,
};

/// An IssueToken request in the service's terms.
#[derive(Debug, Clone, Default)]
pub struct IssueRequest {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// The ServiceAccount.
    pub service_account: String,
    /// Lifetime in the duration grammar; empty means `lifetime`, or the default.
    pub duration: String,
    /// Lifetime as a google.protobuf.Duration's parts; at most one of this and `duration`.
    pub lifetime: Option<GivenLifetime>,
    /// Audiences; empty means the API server's.
    pub audiences: Vec<String>,
    /// Create the ServiceAccount when it is missing.
    pub create_service_account: bool,
    /// ClusterRole to bind the ServiceAccount to; empty means none.
    pub cluster_role: String,
    /// Scope of that binding; None means namespace.
    pub binding_scope: Option<BindingScope>,
    /// Labels for the record.
    pub labels: BTreeMap<String, String>,
    /// The token this one replaces (RenewToken); never taken from a caller's field.
    pub replaces: Option<TokenId>,
    /// The object declaring the token (the ServiceAccountToken controller); never taken from a
    /// caller's field.
    pub owner: Option<DeclaredOwner>,
    /// Fields the gRPC layer could not translate (unknown enum numbers), reported together with
    /// every other bad field.
    pub untranslatable: Violations,
}

/// The object a declared token is issued for. Its record names it (sealed) and is owned by it:
/// deleting the object has garbage collection delete the record, which revokes the token, and
/// only that object's controller revokes it otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredOwner {
    /// apiVersion of the object.
    pub api_version: String,
    /// Kind of the object.
    pub kind: String,
    /// Name of the object (in the token's namespace).
    pub name: String,
    /// Uid of the object.
    pub uid: String,
    /// Whether the ServiceAccount is the object's own (made for it, owned by it): a RoleBinding
    /// made for that account is then owned by the object too, and goes with it. A binding for
    /// another account may serve other tokens and is never given an owner.
    pub owns_service_account: bool,
}

impl DeclaredOwner {
    /// An owner reference to the object (not a controller, blocking nothing: tokend needs no
    /// right on the object's finalizers to set it).
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            ..Default::default()
        }
    }
}

/// A token just issued.
#[derive(Debug)]
pub struct IssuedToken {
    /// The bearer token.
    pub token: String,
    /// Its record's id.
    pub token_id: TokenId,
    /// Expiry as the API server set it.
    pub expiration: Timestamp,
    /// The lifetime the API server granted: expiry less the time of issue.
    pub granted_lifetime: Duration,
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// The ServiceAccount.
    pub service_account: String,
    undo: Undo,
}

/// Which token was minted, for the audit line of its revocation.
struct Minted {
    namespace: String,
    service_account: String,
    token_id: TokenId,
}

impl TokenService {
    /// Issues a token. The work runs to completion even if the caller disconnects; a token
    /// nobody received is revoked again at once.
    pub async fn issue(&self, caller: &Caller, request: IssueRequest) -> Result<IssuedToken> {
        self.issue_then(caller, request, |issued| async move { Ok(issued) })
            .await
    }

    /// Issues a token and makes the caller's answer from it with `finish`, both in a task of their
    /// own that outlives the caller. A minted token is revoked again (with an audit line) when
    /// `finish` fails or the caller has left before the answer is handed over: nobody holds it.
    pub(super) async fn issue_then<T, F, Fut>(
        &self,
        caller: &Caller,
        request: IssueRequest,
        finish: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(IssuedToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let this = self.clone();
        let caller = caller.clone();
        let task = async move {
            let mut issued = match this.issue_now(&caller, request).await {
                Ok(issued) => issued,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let undo = std::mem::take(&mut issued.undo);
            let minted = Minted {
                namespace: issued.namespace.clone(),
                service_account: issued.service_account.clone(),
                token_id: issued.token_id.clone(),
            };
            if tx.is_closed() {
                this.take_back(&caller, &minted, undo, "caller left").await;
                return;
            }
            match finish(issued).await {
                Ok(answer) => {
                    if tx.send(Ok(answer)).is_err() {
                        this.take_back(&caller, &minted, undo, "caller left").await;
                    }
                }
                Err(e) => {
                    this.take_back(&caller, &minted, undo, "answer could not be made")
                        .await;
                    let _ = tx.send(Err(e));
                }
            }
        };
        // The request's span (and so its request id) follows the work into the task.
        tokio::spawn(tracing::Instrument::instrument(
            task,
            tracing::Span::current(),
        ));
        rx.await
            .map_err(|_| Error::internal("the issuing task ended without an answer"))?
    }

    /// Revokes a minted token nobody holds, by undoing its issue, and says so in the audit.
    async fn take_back(&self, caller: &Caller, minted: &Minted, undo: Undo, reason: &str) {
        tracing::warn!(token_id = %minted.token_id, reason, "revoking a token nobody received");
        let revoked = self.undo(undo).await;
        audit::taken_back(
            caller,
            &minted.namespace,
            &minted.service_account,
            &minted.token_id,
            reason,
            revoked,
        );
    }

    async fn issue_now(&self, caller: &Caller, request: IssueRequest) -> Result<IssuedToken> {
        let plan = self.check_issue(&request)?;
        let mut trust_cache = true;
        loop {
            let mut undo = Undo::default();
            let result = self
                .issue_steps(caller, &request, &plan, &mut undo, trust_cache)
                .await;
            match result {
                Ok((token, record)) => {
                    let outcome = if record.replaces.is_some() {
                        "renewed"
                    } else {
                        "issued"
                    };
                    audit::issued(caller, &record, outcome);
                    let expiration = record.expiration.unwrap_or_else(Timestamp::now);
                    // What the API server granted is in the token itself (exp - iat): the
                    // record's issue time is taken before the TokenRequest, so it can be a
                    // second early.
                    let granted_lifetime = Claims::read(&token)
                        .and_then(|c| Some((c.exp? - c.iat?).max(0)))
                        .and_then(|secs| u64::try_from(secs).ok())
                        .map(Duration::from_secs)
                        .or_else(|| {
                            record.issued_at.and_then(|issued| {
                                Duration::try_from(expiration.duration_since(issued)).ok()
                            })
                        })
                        .unwrap_or_default();
                    return Ok(IssuedToken {
                        token,
                        token_id: record.token_id,
                        expiration,
                        granted_lifetime,
                        namespace: request.namespace,
                        service_account: request.service_account,
                        undo,
                    });
                }
                // The cached account may be gone: take back this attempt and look again, once.
                Err(Error::NotFound(_)) if trust_cache && undo.cached_account => {
                    self.accounts
                        .invalidate(&(request.namespace.clone(), request.service_account.clone()));
                    self.undo(undo).await;
                    trust_cache = false;
                }
                Err(e) => {
                    audit::issue_failed(caller, &request.namespace, &request.service_account, &e);
                    self.undo(undo).await;
                    return Err(e);
                }
            }
        }
    }

    /// Every check that needs no API call: names, duration, audiences, labels, policy. Every
    /// bad field is reported at once; then the first policy refusal.
    pub(super) fn check_issue(&self, request: &IssueRequest) -> Result<Plan> {
        let mut violations = Violations::default();
        let lifetime = self.issue_violations(request, &mut violations);
        violations.into_result()?;
        let lifetime = lifetime.unwrap_or(self.settings.policy.default_duration);
        let field = if request.duration.is_empty() && request.lifetime.is_some() {
            "lifetime"
        } else {
            "duration"
        };
        self.settings.policy.check_maximum(lifetime, field)?;
        self.settings.policy.check_namespace(&request.namespace)?;
        if !request.cluster_role.is_empty() {
            self.settings
                .policy
                .check_cluster_role(&request.cluster_role)?;
        }
        Ok(Plan { lifetime })
    }

    /// Records every field of an IssueToken request that breaks a rule; the lifetime asked for
    /// when its fields are good.
    pub(super) fn issue_violations(
        &self,
        request: &IssueRequest,
        violations: &mut Violations,
    ) -> Option<Duration> {
        violations
            .0
            .extend(request.untranslatable.0.iter().cloned());
        violations.check(
            "namespace",
            Reason::NameInvalid,
            names::check_dns1123_label(&request.namespace),
        );
        violations.check(
            "service_account",
            Reason::NameInvalid,
            names::check_dns1123_subdomain(&request.service_account),
        );
        let lifetime = self.settings.policy.requested_lifetime(
            ("duration", &request.duration),
            ("lifetime", request.lifetime),
            violations,
        );
        check_audiences("audiences", &request.audiences, violations);
        check_labels(&request.labels, violations);
        if request.cluster_role.is_empty() && request.binding_scope.is_some() {
            violations.add(
                "binding_scope",
                Reason::FieldNeedsAnother,
                "may only be set together with cluster_role",
            );
        }
        if !request.cluster_role.is_empty() {
            violations.check(
                "cluster_role",
                Reason::NameInvalid,
                names::check_role_name(&request.cluster_role),
            );
        }
        lifetime
    }

    async fn issue_steps(
        &self,
        caller: &Caller,
        request: &IssueRequest,
        plan: &Plan,
        undo: &mut Undo,
        trust_cache: bool,
    ) -> Result<(String, TokenRecord)> {
        let ns = request.namespace.as_str();
        let sa_name = request.service_account.as_str();
        let scope = request.binding_scope.unwrap_or(BindingScope::Namespace);
        self.authorize_issue(caller, request, scope).await?;
        let account_key = (ns.to_owned(), sa_name.to_owned());
        let cached_uid = trust_cache
            .then(|| self.accounts.get(&account_key))
            .flatten();
        let sa_uid = match cached_uid {
            Some(uid) => {
                undo.cached_account = true;
                uid
            }
            None => {
                let uid = self.look_up_or_create_account(request, undo).await?;
                self.accounts.insert(account_key.clone(), uid.clone());
                uid
            }
        };
        if !request.cluster_role.is_empty() {
            let owner = request
                .owner
                .as_ref()
                .filter(|o| o.owns_service_account)
                .map(DeclaredOwner::reference);
            self.bind(ns, sa_name, &request.cluster_role, scope, owner, undo)
                .await?;
        }

        // The API server sets expiry to its clock plus the lifetime, in whole seconds; recording
        // the same guess saves a write in the usual case, and a wrong guess is corrected below.
        let now = Timestamp::from_second(Timestamp::now().as_second())
            .map_err(|e| Error::internal(format!("clock: {e}")))?;
        let asked = SignedDuration::try_from(plan.lifetime)
            .map_err(|_| Error::invalid("duration", Reason::DurationOverMaximum, "is too long"))?;
        let mut record = TokenRecord {
            token_id: TokenId::generate(ns),
            namespace: ns.to_owned(),
            service_account: sa_name.to_owned(),
            service_account_uid: sa_uid,
            issued_at: Some(now),
            expiration: now.checked_add(asked).ok(),
            audiences: request.audiences.clone(),
            labels: request.labels.clone(),
            issued_by: caller.username.clone(),
            cluster_role: (!request.cluster_role.is_empty()).then(|| request.cluster_role.clone()),
            binding_scope: (!request.cluster_role.is_empty()).then_some(scope),
            object_uid: String::new(),
            resource_version: String::new(),
            seal: None,
            // Pending until the token is issued and the record sealed: if that never happens
            // and the undo cannot run, nobody is shown it and the sweeper removes it.
            pending: true,
            replaces: request.replaces.clone(),
            owner_uid: request.owner.as_ref().map(|o| o.uid.clone()),
        };
        // The key is needed to seal the record: without it, write nothing.
        let key = self.key().await?;
        let mut to_create = record.to_secret();
        // Owned by the declaring object: garbage collection deletes the record with it, and that
        // revokes the token, whether or not tokend runs then.
        to_create.metadata.owner_references = request.owner.as_ref().map(|o| vec![o.reference()]);
        let secret = self.cluster.create_secret(&to_create).await?;
        undo.push(Created::Record {
            namespace: ns.to_owned(),
            name: record.token_id.secret_name(),
        });

        let seconds = i64::try_from(plan.lifetime.as_secs())
            .map_err(|_| Error::invalid("duration", Reason::DurationOverMaximum, "is too long"))?;
        let issued = self
            .cluster
            .request_token(ns, sa_name, seconds, &request.audiences, &secret)
            .await?;
        // A real server silently shortens tokens over its own maximum, and clocks differ; and a
        // cached account may have been recreated since. The token's claims say what is true.
        let mut corrections = BTreeMap::new();
        if record.expiration != Some(issued.expiration) {
            corrections.insert(
                EXPIRATION_ANNOTATION.to_owned(),
                issued.expiration.to_string(),
            );
        }
        let claimed_uid =
            Claims::read(&issued.token).and_then(|c| c.service_account_uid().map(str::to_owned));
        if let Some(uid) = claimed_uid.filter(|uid| *uid != record.service_account_uid) {
            corrections.insert(SERVICE_ACCOUNT_UID_ANNOTATION.to_owned(), uid.clone());
            self.accounts.insert(account_key, uid.clone());
            record.service_account_uid = uid;
        }
        record.expiration = Some(issued.expiration);
        record.object_uid = secret.metadata.uid.clone().unwrap_or_default();
        record.pending = false;
        let seal = key.seal(&record, &record.object_uid);
        corrections.insert(SEAL_ANNOTATION.to_owned(), seal.clone());
        self.cluster
            .confirm_record(ns, &record.token_id.secret_name(), &corrections)
            .await?;
        record.seal = Some(seal);
        Ok((issued.token, record))
    }

    /// The uid of the request's ServiceAccount, found with one GET in the usual case, created
    /// when missing and the request asks for it.
    async fn look_up_or_create_account(
        &self,
        request: &IssueRequest,
        undo: &mut Undo,
    ) -> Result<String> {
        let (ns, name) = (request.namespace.as_str(), request.service_account.as_str());
        let sa = match self.cluster.service_account(ns, name).await? {
            Some(sa) => sa,
            None if request.create_service_account => {
                let (sa, ensured) = self.cluster.ensure_service_account(ns, name).await?;
                if ensured == Ensured::Created {
                    let uid = sa.metadata.uid.clone().unwrap_or_default();
                    undo.push(Created::ServiceAccount {
                        namespace: ns.to_owned(),
                        name: name.to_owned(),
                        uid,
                    });
                }
                sa
            }
            None => return Err(self.missing_service_account(ns, name).await),
        };
        Ok(sa.metadata.uid.unwrap_or_default())
    }

    /// What the caller would need to do the same with kubectl: create a token for the
    /// ServiceAccount; create ServiceAccounts when asked to; create the binding and `bind` the
    /// role (Kubernetes' own escalation rule). The reviews run at once, not one after another.
    pub(super) async fn authorize_issue(
        &self,
        caller: &Caller,
        request: &IssueRequest,
        scope: BindingScope,
    ) -> Result<()> {
        let ns = request.namespace.as_str();
        let mut needed = vec![ResourceAccess {
            verb: "create",
            group: "",
            resource: "serviceaccounts",
            subresource: Some("token"),
            namespace: Some(ns),
            name: Some(&request.service_account),
        }];
        if request.create_service_account {
            needed.push(ResourceAccess {
                verb: "create",
                group: "",
                resource: "serviceaccounts",
                subresource: None,
                namespace: Some(ns),
                name: None,
            });
        }
        if !request.cluster_role.is_empty() {
            let (resource, namespace) = match scope {
                BindingScope::Namespace => ("rolebindings", Some(ns)),
                BindingScope::Cluster => ("clusterrolebindings", None),
            };
            let rbac = "rbac.authorization.k8s.io";
            needed.push(ResourceAccess {
                verb: "create",
                group: rbac,
                resource,
                subresource: None,
                namespace,
                name: None,
            });
            needed.push(ResourceAccess {
                verb: "bind",
                group: rbac,
                resource: "clusterroles",
                subresource: None,
                namespace,
                name: Some(&request.cluster_role),
            });
        }
        // Asked at once, but a refusal is reported in the order above, so the caller always
        // hears of the most basic permission it lacks, whichever review answered first.
        futures::future::join_all(
            needed
                .into_iter()
                .map(|access| self.require(caller, access)),
        )
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
        Ok(())
    }

    async fn bind(
        &self,
        ns: &str,
        sa: &str,
        role: &str,
        scope: BindingScope,
        owner: Option<OwnerReference>,
        undo: &mut Undo,
    ) -> Result<()> {
        if !self.cluster.cluster_role_exists(role).await? {
            return Err(Error::NotFound(
                Failure::new(
                    Reason::ClusterRoleNotFound,
                    format!("cluster_role: clusterroles \"{role}\" not found"),
                )
                .with("cluster_role", role),
            ));
        }
        match scope {
            BindingScope::Namespace => {
                let name = format!("{BINDING_PREFIX}{sa}:{role}");
                if self
                    .cluster
                    .ensure_role_binding(ns, &name, sa, role, owner)
                    .await?
                    == Ensured::Created
                {
                    undo.push(Created::RoleBinding {
                        namespace: ns.to_owned(),
                        name,
                    });
                }
            }
            BindingScope::Cluster => {
                let name = format!("{BINDING_PREFIX}{ns}:{sa}:{role}");
                if self
                    .cluster
                    .ensure_cluster_role_binding(&name, ns, sa, role)
                    .await?
                    == Ensured::Created
                {
                    undo.push(Created::ClusterRoleBinding { name });
                }
            }
        }
        Ok(())
    }

    /// NotFound naming what is missing: the namespace or only the ServiceAccount.
    pub(super) async fn missing_service_account(&self, ns: &str, sa: &str) -> Error {
        match self.cluster.namespace_exists(ns).await {
            Ok(false) => Error::NotFound(
                Failure::new(
                    Reason::NamespaceNotFound,
                    format!("namespace: namespaces \"{ns}\" not found"),
                )
                .with("namespace", ns),
            ),
            Ok(true) => Error::NotFound(
                Failure::new(
                    Reason::ServiceAccountNotFound,
                    format!(
                        "service_account: serviceaccounts \"{sa}\" not found in namespace \"{ns}\" \
                         (set create_service_account to create it)"
                    ),
                )
                .with("namespace", ns)
                .with("service_account", sa),
            ),
            Err(e) => e.into(),
        }
    }
}

/// What the checks decided.
pub(super) struct Plan {
    lifetime: Duration,
}

fn check_labels(labels: &BTreeMap<String, String>, violations: &mut Violations) {
    if labels.len() > MAX_LABELS {
        violations.add(
            "labels",
            Reason::TooManyValues,
            format!("at most {MAX_LABELS} labels (got {})", labels.len()),
        );
        return;
    }
    for (key, value) in labels {
        // The key names the field; a long one is shortened there, as every echoed value is.
        let field = || format!("labels[{:?}]", names::echo(key));
        if let Err(rule) = names::check_label_key(key) {
            violations.add(field(), Reason::LabelInvalid, format!("key {rule}"));
        } else if key.starts_with(RESERVED_PREFIX)
            || key.starts_with("app.kubernetes.io/managed-by")
        {
            violations.add(field(), Reason::LabelInvalid, "key is reserved for tokend");
        } else if let Err(rule) = names::check_label_value(value) {
            violations.add(field(), Reason::LabelInvalid, format!("value {rule}"));
        }
    }
}
