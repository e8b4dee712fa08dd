//! GetKubeconfig: a kubeconfig for a fresh token or for one the caller has, with the server
//! and CA tokend trusts.

use k8s_openapi::jiff::Timestamp;

use super::{Claims, Error, IssueRequest, Reason, Result, TokenService, Violations};
use crate::caller::Caller;
use crate::kubeconfig::{self, KubeconfigParts};
use crate::names;
use crate::token_id::TokenId;

/// Where the token in a kubeconfig comes from.
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
}

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
        violations.into_result()?;
        let server = server.unwrap_or_default();
        match request.source {
            KubeconfigSource::Issue(issue) => {
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
            KubeconfigSource::Token(token) => {
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
