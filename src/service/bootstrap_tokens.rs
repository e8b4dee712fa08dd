//! Bootstrap tokens (kubeadm's node join tokens) through tokend: issue (a Secret
//! `bootstrap-token-<id>` in kube-system with the bootstrap kubeconfig for it), list and get
//! (never the secret part), revoke (delete the Secret). Authorised as kubectl would need it:
//! create, list, get or delete Secrets in kube-system.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use tokend_api::duration::{format_duration, parse_duration};
use tokio::sync::oneshot;

use super::policy::over_maximum;
use super::{Error, Failure, Reason, Result, TokenService, Violations};
use crate::caller::Caller;
use crate::cluster::ResourceAccess;
use crate::credential_kubeconfig::{self, Credential, Entries};
use crate::names::echo;
use crate::vocabulary::{
    BOOTSTRAP_DEFAULT_EXTRA_GROUP, BOOTSTRAP_GROUP_PREFIX, BOOTSTRAP_KUBECONFIG_CLUSTER,
    BOOTSTRAP_KUBECONFIG_CONTEXT, BOOTSTRAP_KUBECONFIG_USER, BOOTSTRAP_TOKEN_NAMESPACE,
    BOOTSTRAP_TOKEN_SECRET_PREFIX, BOOTSTRAP_TOKEN_SECRET_TYPE, ISSUED_BY_ANNOTATION,
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, MIN_TOKEN_SECONDS,
};

/// Limits on bootstrap tokens, set by the operator.
#[derive(Debug, Clone)]
pub struct BootstrapPolicy {
    /// Whether tokend issues, lists, reads and revokes bootstrap tokens at all
    /// (`--enable-bootstrap-tokens`): they are Secrets in kube-system, whatever
    /// `--allowed-namespaces` says, so only an operator's explicit choice turns them on.
    pub enabled: bool,
    /// Lifetime of a token whose request names none (kubeadm's default: 24h).
    pub default_duration: Duration,
    /// Longest lifetime a caller may ask for.
    pub max_duration: Duration,
    /// The extra groups a token may carry (`--bootstrap-token-allowed-groups`); a request naming
    /// none gets kubeadm's default, which must be listed too.
    pub allowed_groups: Vec<String>,
}

impl Default for BootstrapPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            default_duration: Duration::from_secs(24 * 3600),
            max_duration: Duration::from_secs(7 * 24 * 3600),
            allowed_groups: vec![BOOTSTRAP_DEFAULT_EXTRA_GROUP.to_owned()],
        }
    }
}

/// The flag that switches bootstrap tokens on.
pub const ENABLE_BOOTSTRAP_TOKENS_FLAG: &str = "--enable-bootstrap-tokens";
/// What the tags of ListBootstrapTokens' page tokens are made for.
const LIST_BOOTSTRAP_TOKENS_PAGES: &str = "tokend.v1.ListBootstrapTokens page token";

/// Longest `description` accepted.
const MAX_DESCRIPTION: usize = 1024;
/// Most extra groups one token may carry.
const MAX_EXTRA_GROUPS: usize = 32;
/// The usages kubeadm knows.
const USAGES: [&str; 2] = ["authentication", "signing"];

/// What to issue.
#[derive(Debug, Clone, Default)]
pub struct BootstrapIssue {
    /// Lifetime text; empty for the default.
    pub duration: String,
    /// Extra groups; empty for kubeadm's default one.
    pub extra_groups: Vec<String>,
    /// Description stored with it.
    pub description: String,
    /// Usages; empty for both.
    pub usages: Vec<String>,
    /// Server URL override for the kubeconfig.
    pub server: String,
}

/// A bootstrap token as listed: never its secret.
#[derive(Debug, Clone, Default)]
pub struct BootstrapTokenInfo {
    /// The token id.
    pub token_id: String,
    /// Its expiry, when it has one.
    pub expiration: Option<Timestamp>,
    /// Usages marked true.
    pub usages: Vec<String>,
    /// Extra groups.
    pub extra_groups: Vec<String>,
    /// Description.
    pub description: String,
    /// Who issued it through tokend, if tokend did.
    pub issued_by: String,
    /// Whether it has expired.
    pub expired: bool,
    /// When its Secret was created.
    pub created: Option<Timestamp>,
}

/// A bootstrap token just issued. Its Debug shows neither the token nor the kubeconfig.
pub struct IssuedBootstrapToken {
    /// `<id>.<secret>`.
    pub token: String,
    /// The token's facts.
    pub info: BootstrapTokenInfo,
    /// The bootstrap kubeconfig.
    pub kubeconfig: String,
    /// The server URL in it.
    pub server: String,
    /// `sha256:` hashes of the CA's public keys.
    pub ca_cert_hashes: Vec<String>,
}

impl std::fmt::Debug for IssuedBootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedBootstrapToken")
            .field("info", &self.info)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// One page of bootstrap tokens.
#[derive(Debug, Default)]
pub struct BootstrapTokenPage {
    /// The tokens.
    pub tokens: Vec<BootstrapTokenInfo>,
    /// The next page's token; empty on the last page.
    pub next_page_token: String,
}

impl TokenService {
    /// Issues a bootstrap token. Everything is checked before the Secret is made; a Secret whose
    /// answer cannot be made or whose caller left is deleted again.
    pub async fn issue_bootstrap_token(
        &self,
        caller: &Caller,
        request: BootstrapIssue,
    ) -> Result<IssuedBootstrapToken> {
        self.require_bootstrap_tokens()?;
        // Every bad field at once, then this server's policy.
        let mut violations = Violations::default();
        let lifetime = self.bootstrap_lifetime(&request.duration, &mut violations);
        let groups = extra_groups(request.extra_groups, &mut violations);
        let usages = usages(request.usages, &mut violations);
        if request.description.len() > MAX_DESCRIPTION
            || request.description.chars().any(char::is_control)
        {
            violations.add(
                "description",
                Reason::TextInvalid,
                format!("must be at most {MAX_DESCRIPTION} bytes, without control characters"),
            );
        }
        let server = violations.check(
            "server",
            Reason::ServerUrlInvalid,
            self.kubeconfig_server(&request.server),
        );
        violations.into_result()?;
        let policy = &self.settings.bootstrap;
        check_allowed_groups(&policy.allowed_groups, &groups)?;
        let lifetime = lifetime.unwrap_or(policy.default_duration);
        if lifetime > policy.max_duration {
            return Err(over_maximum(
                "duration",
                lifetime,
                policy.max_duration,
                "for bootstrap tokens (--bootstrap-token-max-duration)",
            ));
        }
        let server = server.unwrap_or_default();
        self.require(
            caller,
            ResourceAccess {
                verb: "create",
                group: "",
                resource: "secrets",
                subresource: None,
                namespace: Some(BOOTSTRAP_TOKEN_NAMESPACE),
                name: None,
            },
        )
        .await?;
        let ca = self.kubeconfig_ca().await?;
        let (id, secret_part) = new_token()?;
        let token = format!("{id}.{secret_part}");
        let expiration = Timestamp::now()
            .checked_add(jiff_span(lifetime))
            .map_err(|e| Error::internal(format!("expiry out of range: {e}")))?;
        let secret = bootstrap_secret(
            &id,
            &secret_part,
            expiration,
            &groups,
            &usages,
            &request.description,
            caller,
        );

        // The Secret is made in a task of its own: if the caller leaves before the answer, the
        // token nobody received is deleted again rather than left working.
        let (tx, rx) = oneshot::channel();
        let this = self.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            let created = match this.cluster.create_bootstrap_token_secret(&secret).await {
                Ok(created) => created,
                Err(e) => {
                    let error = Error::from(e);
                    super::audit::bootstrap_issue_failed(&caller, &id, &error);
                    let _ = tx.send(Err(error));
                    return;
                }
            };
            let info = info_of(&created, Timestamp::now());
            let answer = credential_kubeconfig::render(
                &Entries {
                    server: &server,
                    ca_pem: ca.as_deref(),
                    cluster: BOOTSTRAP_KUBECONFIG_CLUSTER,
                    user: BOOTSTRAP_KUBECONFIG_USER,
                    context: BOOTSTRAP_KUBECONFIG_CONTEXT,
                },
                &Credential::Token(&token),
            )
            .map(|kubeconfig| IssuedBootstrapToken {
                token,
                info: info.clone(),
                kubeconfig,
                ca_cert_hashes: ca
                    .as_deref()
                    .map(credential_kubeconfig::ca_cert_hashes)
                    .unwrap_or_default(),
                server,
            })
            .map_err(|e| Error::internal(e.to_string()));
            let delivered = match answer {
                Ok(answer) => {
                    super::audit::bootstrap_issued(&caller, &info);
                    tx.send(Ok(answer)).is_ok()
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    false
                }
            };
            if !delivered {
                let uid = created.metadata.uid.unwrap_or_default();
                let name = format!("{BOOTSTRAP_TOKEN_SECRET_PREFIX}{id}");
                let revoked = this
                    .cluster
                    .delete_bootstrap_token_secret(&name, &uid)
                    .await
                    .is_ok();
                super::audit::bootstrap_taken_back(&caller, &id, revoked);
            }
        });
        rx.await
            .map_err(|_| Error::internal("the issuing task ended without an answer"))?
    }

    /// One page of bootstrap tokens in kube-system (all of them, not only tokend's).
    pub async fn list_bootstrap_tokens(
        &self,
        caller: &Caller,
        page_size: i32,
        page_token: &str,
    ) -> Result<BootstrapTokenPage> {
        self.require_bootstrap_tokens()?;
        let limit = match page_size {
            0 => super::DEFAULT_PAGE_SIZE,
            n if n < 0 => {
                return Err(Error::invalid(
                    "page_size",
                    Reason::ValueOutOfRange,
                    format!("must not be negative (got {n})"),
                ));
            }
            n => u32::try_from(n)
                .unwrap_or(super::MAX_PAGE_SIZE)
                .min(super::MAX_PAGE_SIZE),
        };
        self.require(
            caller,
            ResourceAccess {
                verb: "list",
                group: "",
                resource: "secrets",
                subresource: None,
                namespace: Some(BOOTSTRAP_TOKEN_NAMESPACE),
                name: None,
            },
        )
        .await?;
        let key = self.key().await?;
        // Only a page token tokend minted reaches the API server (whose own are not signed).
        let continue_token = match page_token {
            "" => None,
            text => Some(super::listing::read_page_token(
                key,
                LIST_BOOTSTRAP_TOKENS_PAGES,
                text,
                "",
            )?),
        };
        let page = self
            .cluster
            .bootstrap_token_secrets(limit, continue_token.as_deref())
            .await
            .map_err(|e| match Error::from(e) {
                Error::InvalidArgument(_) => Error::invalid(
                    "page_token",
                    Reason::PageTokenInvalid,
                    "is not a page token of this list, or has expired",
                ),
                other => other,
            })?;
        let now = Timestamp::now();
        Ok(BootstrapTokenPage {
            tokens: page
                .items
                .iter()
                .filter(|s| id_of(s).is_some())
                .map(|s| info_of(s, now))
                .collect(),
            next_page_token: page
                .continue_token
                .map(|c| {
                    super::listing::write_page_token(
                        key,
                        LIST_BOOTSTRAP_TOKENS_PAGES,
                        c,
                        String::new(),
                    )
                })
                .unwrap_or_default(),
        })
    }

    /// One bootstrap token by id.
    pub async fn get_bootstrap_token(
        &self,
        caller: &Caller,
        token_id: &str,
    ) -> Result<BootstrapTokenInfo> {
        self.require_bootstrap_tokens()?;
        let id = parse_token_id(token_id)?;
        let name = format!("{BOOTSTRAP_TOKEN_SECRET_PREFIX}{id}");
        self.require(caller, secret_access("get", &name)).await?;
        let secret = self
            .cluster
            .bootstrap_token_secret(&name)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(info_of(&secret, Timestamp::now()))
    }

    /// Revokes a bootstrap token: deletes its Secret.
    pub async fn revoke_bootstrap_token(&self, caller: &Caller, token_id: &str) -> Result<String> {
        self.require_bootstrap_tokens()?;
        let id = parse_token_id(token_id)?;
        let name = format!("{BOOTSTRAP_TOKEN_SECRET_PREFIX}{id}");
        self.require(caller, secret_access("delete", &name)).await?;
        let secret = self
            .cluster
            .bootstrap_token_secret(&name)
            .await?
            .ok_or_else(|| not_found(id))?;
        let uid = secret.metadata.uid.clone().unwrap_or_default();
        if !self
            .cluster
            .delete_bootstrap_token_secret(&name, &uid)
            .await?
        {
            return Err(not_found(id));
        }
        super::audit::bootstrap_revoked(caller, id);
        Ok(id.to_owned())
    }

    /// Refuses every bootstrap-token call unless the operator switched them on.
    fn require_bootstrap_tokens(&self) -> Result<()> {
        super::policy::require_enabled(
            self.settings.bootstrap.enabled,
            "bootstrap tokens (Secrets in kube-system)",
            ENABLE_BOOTSTRAP_TOKENS_FLAG,
        )
    }

    /// The lifetime asked for (the default when `text` is empty), or None after recording why
    /// `text` breaks the grammar or the API server's minimum. The maximum is checked by the caller,
    /// as it is this server's policy rather than a rule of the field.
    fn bootstrap_lifetime(&self, text: &str, violations: &mut Violations) -> Option<Duration> {
        if text.is_empty() {
            return Some(self.settings.bootstrap.default_duration);
        }
        let duration = violations.check(
            "duration",
            Reason::DurationInvalid,
            parse_duration(text).map_err(|e| format!("{e} (e.g. 24h, 2h45m)")),
        )?;
        if duration.as_secs() < MIN_TOKEN_SECONDS {
            violations.add(
                "duration",
                Reason::DurationUnderMinimum,
                format!(
                    "{} is shorter than the minimum of {}",
                    echo(text),
                    format_duration(Duration::from_secs(MIN_TOKEN_SECONDS))
                ),
            );
            return None;
        }
        Some(duration)
    }
}

fn secret_access<'a>(verb: &'a str, name: &'a str) -> ResourceAccess<'a> {
    ResourceAccess {
        verb,
        group: "",
        resource: "secrets",
        subresource: None,
        namespace: Some(BOOTSTRAP_TOKEN_NAMESPACE),
        name: Some(name),
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(
        Failure::new(
            Reason::TokenNotFound,
            format!(
                "bootstrap token \"{id}\" not found (no Secret {BOOTSTRAP_TOKEN_SECRET_PREFIX}{id} \
                 of type {BOOTSTRAP_TOKEN_SECRET_TYPE} in {BOOTSTRAP_TOKEN_NAMESPACE})"
            ),
        )
        .with("token_id", id),
    )
}

fn jiff_span(d: Duration) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::from_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn lower_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The id of `token_id` (`[a-z0-9]{6}`), or of a whole token `<id>.<secret>`.
fn parse_token_id(token_id: &str) -> Result<&str> {
    if token_id.is_empty() {
        return Err(Error::invalid(
            "token_id",
            Reason::FieldRequired,
            "must not be empty",
        ));
    }
    let id = token_id.split_once('.').map_or(token_id, |(id, _)| id);
    if id.len() == 6 && lower_alnum(id) {
        Ok(id)
    } else {
        Err(Error::invalid(
            "token_id",
            Reason::TokenIdInvalid,
            format!("{} is not a bootstrap token id ([a-z0-9]{{6}})", echo(id)),
        ))
    }
}

/// kubeadm's BootstrapGroupPattern: `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]` (also
/// what `--bootstrap-token-allowed-groups` is checked against at start).
pub fn is_bootstrap_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix(BOOTSTRAP_GROUP_PREFIX) else {
        return false;
    };
    rest.len() <= 256
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
}

/// The extra groups to store (kubeadm's default when none are asked for), deduplicated; every
/// group outside `system:bootstrappers:` is recorded in `violations`.
fn extra_groups(groups: Vec<String>, violations: &mut Violations) -> Vec<String> {
    if groups.is_empty() {
        return vec![BOOTSTRAP_DEFAULT_EXTRA_GROUP.to_owned()];
    }
    if groups.len() > MAX_EXTRA_GROUPS {
        violations.add(
            "extra_groups",
            Reason::TooManyValues,
            format!("at most {MAX_EXTRA_GROUPS} groups (got {})", groups.len()),
        );
        return Vec::new();
    }
    let mut unique = Vec::with_capacity(groups.len());
    for (i, group) in groups.into_iter().enumerate() {
        if !is_bootstrap_group(&group) {
            violations.add(
                format!("extra_groups[{i}]"),
                Reason::NameInvalid,
                format!(
                    "{} must match {BOOTSTRAP_GROUP_PREFIX}[a-z0-9:-]{{0,255}}[a-z0-9]: a bootstrap \
                     token authenticates only in system:bootstrappers groups",
                    echo(&group)
                ),
            );
        } else if !unique.contains(&group) {
            unique.push(group);
        }
    }
    unique
}

/// This server's policy on the extra groups a token carries: each must be one the operator
/// listed (`allowed`), as a group is what RBAC grants a joining node.
fn check_allowed_groups(allowed: &[String], groups: &[String]) -> Result<()> {
    match groups.iter().find(|g| !allowed.contains(g)) {
        None => Ok(()),
        Some(group) => Err(Error::FailedPrecondition(
            Failure::new(
                Reason::GroupNotAllowed,
                format!(
                    "extra_groups: {} is not a group this server issues bootstrap tokens in \
                     (--bootstrap-token-allowed-groups: {}){}",
                    echo(group),
                    allowed.join(","),
                    if group == BOOTSTRAP_DEFAULT_EXTRA_GROUP {
                        "; a request naming no group asks for kubeadm's default"
                    } else {
                        ""
                    }
                ),
            )
            .with("field", "extra_groups")
            .with("group", group.as_str())
            .with("allowed", allowed.join(",")),
        )),
    }
}

/// The usages to mark (both when none are asked for), in kubeadm's order; every usage kubeadm
/// does not know is recorded in `violations`.
fn usages(requested: Vec<String>, violations: &mut Violations) -> Vec<String> {
    if requested.is_empty() {
        return USAGES.iter().map(|u| (*u).to_owned()).collect();
    }
    for (i, usage) in requested.iter().enumerate() {
        if !USAGES.contains(&usage.as_str()) {
            violations.add(
                format!("usages[{i}]"),
                Reason::ValueUnknown,
                format!("{} is not one of authentication, signing", echo(usage)),
            );
        }
    }
    USAGES
        .iter()
        .filter(|u| requested.iter().any(|r| r == *u))
        .map(|u| (*u).to_owned())
        .collect()
}

/// A fresh `(id, secret)`: 6 and 16 characters of `[a-z0-9]` from the system CSPRNG, bytes of
/// 252 and over discarded so each character is equally likely (as kubeadm does).
fn new_token() -> Result<(String, String)> {
    const CHARS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut out = String::with_capacity(22);
    while out.len() < 22 {
        let mut buf = [0u8; 32];
        aws_lc_rs::rand::SecureRandom::fill(&rng, &mut buf)
            .map_err(|_| Error::internal("the system random generator failed"))?;
        for b in buf {
            if b < 252 && out.len() < 22 {
                out.push(char::from(CHARS[usize::from(b) % CHARS.len()]));
            }
        }
    }
    let secret = out.split_off(6);
    Ok((out, secret))
}

fn bootstrap_secret(
    id: &str,
    secret: &str,
    expiration: Timestamp,
    groups: &[String],
    usages: &[String],
    description: &str,
    caller: &Caller,
) -> Secret {
    let mut data = BTreeMap::from([
        ("token-id".to_owned(), id.to_owned()),
        ("token-secret".to_owned(), secret.to_owned()),
        (
            "expiration".to_owned(),
            expiration.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
        ("auth-extra-groups".to_owned(), groups.join(",")),
    ]);
    for usage in usages {
        data.insert(format!("usage-bootstrap-{usage}"), "true".to_owned());
    }
    if !description.is_empty() {
        data.insert("description".to_owned(), description.to_owned());
    }
    let issued_by = if caller.username.is_empty() {
        "unauthenticated (--auth none)".to_owned()
    } else {
        caller.username.clone()
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("{BOOTSTRAP_TOKEN_SECRET_PREFIX}{id}")),
            namespace: Some(BOOTSTRAP_TOKEN_NAMESPACE.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            )])),
            annotations: Some(BTreeMap::from([(
                ISSUED_BY_ANNOTATION.to_owned(),
                issued_by,
            )])),
            ..Default::default()
        },
        type_: Some(BOOTSTRAP_TOKEN_SECRET_TYPE.to_owned()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The id a Secret's name carries, when it is a bootstrap token Secret's name.
fn id_of(secret: &Secret) -> Option<&str> {
    let id = secret
        .metadata
        .name
        .as_deref()?
        .strip_prefix(BOOTSTRAP_TOKEN_SECRET_PREFIX)?;
    (id.len() == 6 && lower_alnum(id)).then_some(id)
}

/// What may be shown of a bootstrap token Secret: everything but `token-secret`.
fn info_of(secret: &Secret, now: Timestamp) -> BootstrapTokenInfo {
    let data = |key: &str| -> String {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .unwrap_or_default()
    };
    let expiration_text = data("expiration");
    let expiration = expiration_text.parse::<Timestamp>().ok();
    // An expiry that does not parse counts as expired, as the API server's authenticator reads it.
    let expired = !expiration_text.is_empty() && expiration.is_none_or(|t| t <= now);
    let extra = data("auth-extra-groups");
    BootstrapTokenInfo {
        token_id: id_of(secret).unwrap_or_default().to_owned(),
        expiration,
        usages: USAGES
            .iter()
            .filter(|u| data(&format!("usage-bootstrap-{u}")) == "true")
            .map(|u| (*u).to_owned())
            .collect(),
        extra_groups: extra
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        description: data("description"),
        issued_by: secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ISSUED_BY_ANNOTATION))
            .cloned()
            .unwrap_or_default(),
        expired,
        created: secret.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_kubeadms_form() {
        let (id, secret) = new_token().expect("random");
        assert_eq!(id.len(), 6);
        assert_eq!(secret.len(), 16);
        assert!(lower_alnum(&id) && lower_alnum(&secret));
        assert_ne!(new_token().expect("random").1, secret);
    }

    #[test]
    fn only_bootstrapper_groups_are_accepted() {
        let mut violations = Violations::default();
        assert_eq!(
            extra_groups(vec![], &mut violations),
            [BOOTSTRAP_DEFAULT_EXTRA_GROUP]
        );
        assert_eq!(
            extra_groups(vec!["system:bootstrappers:nodes".into()], &mut violations),
            ["system:bootstrappers:nodes"]
        );
        assert!(violations.is_empty());
        let bad = [
            "system:masters",
            "system:bootstrappers:",
            "system:bootstrappers:Nodes",
            "system:bootstrappers:nodes-",
            "system:bootstrappersx",
        ];
        extra_groups(
            bad.iter().map(|g| (*g).to_owned()).collect(),
            &mut violations,
        );
        // Every bad group is named, each by its index.
        let fields: Vec<(String, Reason)> = violations
            .0
            .into_iter()
            .map(|v| (v.field, v.reason))
            .collect();
        let expected: Vec<(String, Reason)> = (0..bad.len())
            .map(|i| (format!("extra_groups[{i}]"), Reason::NameInvalid))
            .collect();
        assert_eq!(fields, expected);
    }

    #[test]
    fn only_listed_groups_are_issued() {
        let allowed = vec![
            BOOTSTRAP_DEFAULT_EXTRA_GROUP.to_owned(),
            "system:bootstrappers:workers".to_owned(),
        ];
        assert!(check_allowed_groups(&allowed, &allowed).is_ok());
        assert!(matches!(
            check_allowed_groups(
                &allowed,
                &[
                    "system:bootstrappers:workers".into(),
                    "system:bootstrappers:other".into()
                ]
            ),
            Err(Error::FailedPrecondition(Failure {
                reason: Reason::GroupNotAllowed,
                ..
            }))
        ));
        assert!(check_allowed_groups(&[], &[BOOTSTRAP_DEFAULT_EXTRA_GROUP.into()]).is_err());
    }

    #[test]
    fn unknown_usages_are_each_named() {
        let mut violations = Violations::default();
        let kept = usages(
            vec![
                "signing".into(),
                "everything".into(),
                "authentication".into(),
            ],
            &mut violations,
        );
        assert_eq!(kept, ["authentication", "signing"]);
        assert_eq!(violations.0.len(), 1);
        assert_eq!(violations.0[0].field, "usages[1]");
        assert_eq!(violations.0[0].reason, Reason::ValueUnknown);
    }

    #[test]
    fn a_listed_token_never_shows_its_secret() {
        let secret = bootstrap_secret(
            "abcdef",
            "0123456789abcdef",
            Timestamp::UNIX_EPOCH,
            &["system:bootstrappers:a".into()],
            &["authentication".into()],
            "d",
            &Caller::default(),
        );
        let info = info_of(&secret, Timestamp::now());
        assert!(!format!("{info:?}").contains("0123456789abcdef"));
        assert!(info.expired);
        assert_eq!(info.usages, ["authentication"]);
        assert_eq!(
            parse_token_id("abcdef.0123456789abcdef").ok(),
            Some("abcdef")
        );
        assert_eq!(
            parse_token_id("ABCDEF").map_err(|e| e.to_string()).err(),
            Some("token_id: ABCDEF is not a bootstrap token id ([a-z0-9]{6})".to_owned())
        );
    }
}
