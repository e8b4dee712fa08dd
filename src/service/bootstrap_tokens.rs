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

use super::{Error, Result, TokenService};
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
    /// Lifetime of a token whose request names none (kubeadm's default: 24h).
    pub default_duration: Duration,
    /// Longest lifetime a caller may ask for.
    pub max_duration: Duration,
}

impl Default for BootstrapPolicy {
    fn default() -> Self {
        Self {
            default_duration: Duration::from_secs(24 * 3600),
            max_duration: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

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
        let lifetime = self.bootstrap_lifetime(&request.duration)?;
        let groups = extra_groups(request.extra_groups)?;
        let usages = usages(request.usages)?;
        if request.description.len() > MAX_DESCRIPTION
            || request.description.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "description",
                format!("at most {MAX_DESCRIPTION} bytes, without control characters"),
            ));
        }
        let server = self.kubeconfig_server(&request.server)?;
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
            .map_err(|e| Error::Internal(format!("expiry out of range: {e}")))?;
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
            .map_err(|e| Error::Internal(e.to_string()));
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
            .map_err(|_| Error::Internal("the issuing task ended without an answer".into()))?
    }

    /// One page of bootstrap tokens in kube-system (all of them, not only tokend's).
    pub async fn list_bootstrap_tokens(
        &self,
        caller: &Caller,
        page_size: i32,
        page_token: &str,
    ) -> Result<BootstrapTokenPage> {
        let limit = match page_size {
            0 => super::DEFAULT_PAGE_SIZE,
            n if n < 0 => {
                return Err(Error::invalid("page_size", "must not be negative"));
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
        let continue_token = (!page_token.is_empty()).then_some(page_token);
        let page = self
            .cluster
            .bootstrap_token_secrets(limit, continue_token)
            .await
            .map_err(|e| match Error::from(e) {
                Error::InvalidArgument { .. } => {
                    Error::invalid("page_token", "not a page token of this list, or expired")
                }
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
            next_page_token: page.continue_token.unwrap_or_default(),
        })
    }

    /// One bootstrap token by id.
    pub async fn get_bootstrap_token(
        &self,
        caller: &Caller,
        token_id: &str,
    ) -> Result<BootstrapTokenInfo> {
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

    fn bootstrap_lifetime(&self, text: &str) -> Result<Duration> {
        let policy = &self.settings.bootstrap;
        if text.is_empty() {
            return Ok(policy.default_duration);
        }
        let duration = parse_duration(text)
            .map_err(|e| Error::invalid("duration", format!("{e} (e.g. 24h, 2h45m)")))?;
        if duration.as_secs() < MIN_TOKEN_SECONDS {
            return Err(Error::invalid(
                "duration",
                format!(
                    "{} is shorter than the minimum of {}",
                    echo(text),
                    format_duration(Duration::from_secs(MIN_TOKEN_SECONDS))
                ),
            ));
        }
        if duration > policy.max_duration {
            return Err(Error::FailedPrecondition(format!(
                "duration {} exceeds the maximum of {} this server allows for bootstrap tokens \
                 (--bootstrap-token-max-duration)",
                echo(text),
                format_duration(policy.max_duration)
            )));
        }
        Ok(duration)
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
    Error::NotFound(format!(
        "bootstrap token \"{id}\" not found (no Secret {BOOTSTRAP_TOKEN_SECRET_PREFIX}{id} of type \
         {BOOTSTRAP_TOKEN_SECRET_TYPE} in {BOOTSTRAP_TOKEN_NAMESPACE})"
    ))
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
    let id = token_id.split_once('.').map_or(token_id, |(id, _)| id);
    if id.len() == 6 && lower_alnum(id) {
        Ok(id)
    } else {
        Err(Error::invalid(
            "token_id",
            format!("{} is not a bootstrap token id ([a-z0-9]{{6}})", echo(id)),
        ))
    }
}

/// kubeadm's BootstrapGroupPattern: `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
fn valid_group(group: &str) -> bool {
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

fn extra_groups(groups: Vec<String>) -> Result<Vec<String>> {
    if groups.is_empty() {
        return Ok(vec![BOOTSTRAP_DEFAULT_EXTRA_GROUP.to_owned()]);
    }
    if groups.len() > MAX_EXTRA_GROUPS {
        return Err(Error::invalid(
            "extra_groups",
            format!("at most {MAX_EXTRA_GROUPS} groups"),
        ));
    }
    let mut unique = Vec::with_capacity(groups.len());
    for group in groups {
        if !valid_group(&group) {
            return Err(Error::invalid(
                "extra_groups",
                format!(
                    "{} must match {BOOTSTRAP_GROUP_PREFIX}[a-z0-9:-]{{0,255}}[a-z0-9]: a bootstrap \
                     token authenticates only in system:bootstrappers groups",
                    echo(&group)
                ),
            ));
        }
        if !unique.contains(&group) {
            unique.push(group);
        }
    }
    Ok(unique)
}

fn usages(requested: Vec<String>) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(USAGES.iter().map(|u| (*u).to_owned()).collect());
    }
    for usage in &requested {
        if !USAGES.contains(&usage.as_str()) {
            return Err(Error::invalid(
                "usages",
                format!("{} is not one of authentication, signing", echo(usage)),
            ));
        }
    }
    Ok(USAGES
        .iter()
        .filter(|u| requested.iter().any(|r| r == *u))
        .map(|u| (*u).to_owned())
        .collect())
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
            .map_err(|_| Error::Internal("the system random generator failed".into()))?;
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
        assert_eq!(
            extra_groups(vec![]).expect("default"),
            [BOOTSTRAP_DEFAULT_EXTRA_GROUP]
        );
        assert!(extra_groups(vec!["system:bootstrappers:nodes".into()]).is_ok());
        for bad in [
            "system:masters",
            "system:bootstrappers:",
            "system:bootstrappers:Nodes",
            "system:bootstrappers:nodes-",
            "system:bootstrappersx",
        ] {
            assert!(extra_groups(vec![bad.into()]).is_err(), "{bad}");
        }
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
        assert!(parse_token_id("ABCDEF").is_err());
    }
}
