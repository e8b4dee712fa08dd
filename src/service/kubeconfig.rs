//! GetKubeconfig: a kubeconfig for a fresh token or for one the caller has, with the server
//! and CA tokend trusts.

use k8s_openapi::jiff::Timestamp;

use super::{Claims, Error, IssueRequest, Reason, Result, TokenService, Violations};
use crate::caller::Caller;
use crate::kubeconfig::{self, KubeconfigParts};
use crate::names;
use crate::token_id::TokenId;
use kube::config::{ExecConfig, ExecInteractiveMode};

/// Where the token in a kubeconfig comes from.
// One per request, moved not copied around: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum KubeconfigSource {
    /// Issue a fresh token.
    Issue(IssueRequest),
    /// Wrap a token the caller has.
    Token(String),
}

/// A kubeconfig request.
#[derive(Debug, Clone)]
pub struct KubeconfigRequest {
    /// The token's source.
    pub source: KubeconfigSource,
    /// API server URL override.
    pub server: String,
    /// Context name override.
    pub context_name: String,
    /// Render a user that runs this exec credential plugin instead of issuing a token.
    pub exec: Option<KubeconfigExec>,
}

/// The exec credential plugin an exec-mode kubeconfig runs (`tokenctl credential`).
#[derive(Debug, Clone, Default)]
pub struct KubeconfigExec {
    /// The tokend address the plugin asks.
    pub tokend_address: String,
    /// The plugin's command; empty means `tokenctl`.
    pub command: String,
    /// Arguments put before the plugin's own.
    pub extra_args: Vec<String>,
}

/// Most extra arguments an exec-mode kubeconfig may carry, and the longest one.
const MAX_EXEC_ARGS: usize = 16;
const MAX_EXEC_ARG_LEN: usize = 1024;

/// A rendered kubeconfig and what is known of its token.
pub struct RenderedKubeconfig {
    /// The YAML.
    pub yaml: String,
    /// Set when tokend issued the token.
    pub token_id: Option<TokenId>,
    /// When the token expires, when known.
    pub expiration: Option<Timestamp>,
    /// The lifetime the API server granted, when tokend issued the token.
    pub granted_lifetime: Option<std::time::Duration>,
}

impl TokenService {
    /// Renders a kubeconfig for a fresh token or for one the caller has. Everything the answer
    /// needs is checked before a token is minted, and a minted token whose answer cannot be made
    /// or delivered is revoked again.
    pub async fn kubeconfig(
        &self,
        caller: &Caller,
        request: KubeconfigRequest,
    ) -> Result<RenderedKubeconfig> {
        let mut violations = Violations::default();
        let server = violations.check(
            "server",
            Reason::ServerUrlInvalid,
            self.kubeconfig_server(&request.server),
        );
        if !request.context_name.is_empty() {
            violations.check(
                "context_name",
                Reason::NameInvalid,
                names::check_role_name(&request.context_name),
            );
        }
        match &request.source {
            KubeconfigSource::Issue(issue) => {
                // Named by their path in GetKubeconfigRequest, as BadRequest field paths are.
                let mut of_issue = Violations::default();
                self.issue_violations(issue, &mut of_issue);
                for mut violation in of_issue.0 {
                    violation.field = format!("issue.{}", violation.field);
                    violations.0.push(violation);
                }
            }
            KubeconfigSource::Token(token) if token.is_empty() => {
                violations.add("token", Reason::FieldRequired, "must not be empty");
            }
            KubeconfigSource::Token(_) => {}
        }
        if let Some(exec) = &request.exec {
            exec_violations(exec, &request.source, &mut violations);
        }
        violations.into_result()?;
        let server = server.unwrap_or_default();
        match (request.source, request.exec) {
            (KubeconfigSource::Issue(issue), Some(exec)) => {
                self.exec_kubeconfig(caller, issue, exec, &server, request.context_name)
                    .await
            }
            (KubeconfigSource::Token(_), Some(_)) => Err(Error::internal(
                "an exec kubeconfig for a token passed the checks",
            )),
            (KubeconfigSource::Issue(issue), None) => {
                let context_name = kubeconfig_context_name(
                    request.context_name,
                    &issue.namespace,
                    &issue.service_account,
                )?;
                let this = self.clone();
                self.issue_then(caller, issue, move |issued| async move {
                    let yaml = this
                        .render_kubeconfig(&server, &issued.token, &issued.namespace, &context_name)
                        .await?;
                    Ok(RenderedKubeconfig {
                        yaml,
                        token_id: Some(issued.token_id),
                        expiration: Some(issued.expiration),
                        granted_lifetime: Some(issued.granted_lifetime),
                    })
                })
                .await
            }
            (KubeconfigSource::Token(token), None) => {
                let validation = self.validate(caller, &token, &[]).await?;
                if !validation.authenticated {
                    return Err(Error::invalid(
                        "token",
                        Reason::TokenNotAuthenticated,
                        format!(
                            "the API server rejects it: {}",
                            names::echo(&validation.error)
                        ),
                    ));
                }
                let claims = Claims::read(&token).unwrap_or_default();
                let namespace = claims.namespace().unwrap_or("default").to_owned();
                let sa = claims.service_account().unwrap_or("user");
                let context_name = kubeconfig_context_name(request.context_name, &namespace, sa)?;
                let yaml = self
                    .render_kubeconfig(&server, &token, &namespace, &context_name)
                    .await?;
                Ok(RenderedKubeconfig {
                    yaml,
                    token_id: validation.token_id,
                    expiration: validation.expiration,
                    granted_lifetime: None,
                })
            }
        }
    }

    /// A kubeconfig whose user runs `tokenctl credential` for the issue request's target: no
    /// token is issued and nothing secret is written. The request is checked and authorised as
    /// an issue would be, so a kubeconfig that can only ever fail is refused now.
    async fn exec_kubeconfig(
        &self,
        caller: &Caller,
        issue: IssueRequest,
        exec: KubeconfigExec,
        server: &str,
        context_name: String,
    ) -> Result<RenderedKubeconfig> {
        let exec_config = exec_config(&exec, &issue);
        self.check_issue(&issue)?;
        self.authorize_issue(caller, &issue, super::BindingScope::Namespace)
            .await?;
        if self
            .cluster
            .service_account(&issue.namespace, &issue.service_account)
            .await?
            .is_none()
        {
            return Err(self
                .missing_service_account(&issue.namespace, &issue.service_account)
                .await);
        }
        let context_name =
            kubeconfig_context_name(context_name, &issue.namespace, &issue.service_account)?;
        let ca = self.kubeconfig_ca().await?;
        let yaml = kubeconfig::render(&KubeconfigParts {
            server,
            ca_pem: ca.as_deref(),
            token: "",
            exec: Some(&exec_config),
            namespace: &issue.namespace,
            context_name: &context_name,
        })
        .map_err(|e| Error::internal(e.to_string()))?;
        Ok(RenderedKubeconfig {
            yaml,
            token_id: None,
            expiration: None,
            granted_lifetime: None,
        })
    }

    pub(super) async fn render_kubeconfig(
        &self,
        server: &str,
        token: &str,
        namespace: &str,
        context_name: &str,
    ) -> Result<String> {
        let ca = self.kubeconfig_ca().await?;
        kubeconfig::render(&KubeconfigParts {
            server,
            ca_pem: ca.as_deref(),
            token,
            exec: None,
            namespace,
            context_name,
        })
        .map_err(|e| Error::internal(e.to_string()))
    }

    pub(super) fn kubeconfig_server(
        &self,
        requested: &str,
    ) -> std::result::Result<String, &'static str> {
        let server = if !requested.is_empty() {
            requested.to_owned()
        } else if let Some(public) = &self.settings.public_server {
            public.clone()
        } else {
            self.settings.api_server_url.clone()
        };
        let uri: http::Uri = server.parse().map_err(|_| "must be an https:// URL")?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err("must be an https:// URL with a host");
        }
        Ok(server.trim_end_matches('/').to_owned())
    }

    /// The CA for kubeconfigs, from sources tokend trusts: configured, then `kube-root-ca.crt` in
    /// tokend's own namespace, then the CA tokend itself trusts for the API server. Never the
    /// target namespace's copy: anyone who may edit ConfigMaps there could replace it.
    pub(super) async fn kubeconfig_ca(&self) -> Result<Option<String>> {
        if let Some(ca) = &self.settings.ca_pem {
            return Ok(Some(ca.clone()));
        }
        if let Some(own) = &self.settings.own_namespace
            && let Some(ca) = self.cluster.published_root_ca(own).await?
        {
            return Ok(Some(ca));
        }
        Ok(self.settings.client_ca_pem.clone())
    }
}

/// The context name a kubeconfig will carry (the caller's, or `NAMESPACE-SERVICEACCOUNT`), after
/// checking that kubectl will read it, and the namespace, back as the same strings.
pub(super) fn kubeconfig_context_name(
    requested: String,
    namespace: &str,
    sa: &str,
) -> Result<String> {
    kubeconfig::check_name(namespace)
        .map_err(|rule| Error::invalid("namespace", Reason::NameInvalid, rule))?;
    let name = if requested.is_empty() {
        format!("{namespace}-{sa}")
    } else {
        requested
    };
    kubeconfig::check_name(&name)
        .map_err(|rule| Error::invalid("context_name", Reason::NameInvalid, rule))?;
    Ok(name)
}

/// Records every way an exec request breaks a rule: it needs `issue` (what the plugin asks for)
/// without create_service_account and cluster_role (the plugin only issues tokens), an http(s)
/// tokend address, and a printable command and extra arguments.
fn exec_violations(exec: &KubeconfigExec, source: &KubeconfigSource, violations: &mut Violations) {
    match source {
        KubeconfigSource::Token(_) => violations.add(
            "exec",
            Reason::FieldsMutuallyExclusive,
            "needs issue (what the plugin asks for), not token",
        ),
        KubeconfigSource::Issue(issue) => {
            const ONLY_ISSUES: &str = "may not be set with exec: the plugin only issues tokens; \
                 create the ServiceAccount and its binding once with IssueToken, then ask for an \
                 exec kubeconfig without create_service_account and cluster_role";
            if issue.create_service_account {
                violations.add(
                    "issue.create_service_account",
                    Reason::FieldsMutuallyExclusive,
                    ONLY_ISSUES,
                );
            }
            if !issue.cluster_role.is_empty() {
                violations.add(
                    "issue.cluster_role",
                    Reason::FieldsMutuallyExclusive,
                    ONLY_ISSUES,
                );
            }
        }
    }
    if exec.tokend_address.is_empty() {
        violations.add(
            "exec.tokend_address",
            Reason::FieldRequired,
            "must not be empty",
        );
    } else {
        let good = exec
            .tokend_address
            .parse::<http::Uri>()
            .is_ok_and(|a| matches!(a.scheme_str(), Some("http" | "https")) && a.host().is_some());
        if !good {
            violations.add(
                "exec.tokend_address",
                Reason::ServerUrlInvalid,
                "must be an http:// or https:// URL with a host",
            );
        }
    }
    if exec.command.len() > MAX_EXEC_ARG_LEN || exec.command.chars().any(char::is_control) {
        violations.add(
            "exec.command",
            Reason::TextInvalid,
            format!("must be at most {MAX_EXEC_ARG_LEN} printable characters"),
        );
    }
    if exec.extra_args.len() > MAX_EXEC_ARGS {
        violations.add(
            "exec.extra_args",
            Reason::TooManyValues,
            format!("at most {MAX_EXEC_ARGS} arguments"),
        );
    }
    for (i, arg) in exec.extra_args.iter().enumerate() {
        if arg.len() > MAX_EXEC_ARG_LEN || arg.chars().any(char::is_control) {
            violations.add(
                format!("exec.extra_args[{i}]"),
                Reason::TextInvalid,
                format!("must be at most {MAX_EXEC_ARG_LEN} printable characters"),
            );
        }
    }
}

/// The kubeconfig `exec:` entry: `COMMAND --addr ADDRESS EXTRA... credential NS/SA --duration D
/// --audience A... --label K=V...`, never interactive, with a hint for kubectl to show when the
/// command is missing. The fields were checked by [`exec_violations`].
fn exec_config(exec: &KubeconfigExec, issue: &IssueRequest) -> ExecConfig {
    let command = if exec.command.is_empty() {
        "tokenctl".to_owned()
    } else {
        exec.command.clone()
    };
    let mut args = vec!["--addr".to_owned(), exec.tokend_address.clone()];
    args.extend(exec.extra_args.iter().cloned());
    args.push("credential".into());
    args.push(format!("{}/{}", issue.namespace, issue.service_account));
    if !issue.duration.is_empty() {
        args.push("--duration".into());
        args.push(issue.duration.clone());
    }
    for audience in &issue.audiences {
        args.push("--audience".into());
        args.push(audience.clone());
    }
    for (key, value) in &issue.labels {
        args.push("--label".into());
        args.push(format!("{key}={value}"));
    }
    ExecConfig {
        api_version: Some("client.authentication.k8s.io/v1".into()),
        command: Some(command.clone()),
        args: Some(args),
        env: None,
        drop_env: None,
        install_hint: Some(format!(
            "{command} is tokend's credential plugin: install tokenctl (see tokend's README) and \
             put it on PATH"
        )),
        interactive_mode: Some(ExecInteractiveMode::Never),
        provide_cluster_info: false,
        cluster: None,
        other: Default::default(),
    }
}
