//! Renders the kubeconfig a token comes in: one cluster (CA embedded), one user (the token), one
//! context (the namespace), selected as current-context.

use kube::config::{Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
use secrecy::SecretString;

/// What goes into a kubeconfig.
pub struct KubeconfigParts<'a> {
    /// API server URL as seen from where the kubeconfig will be used.
    pub server: &'a str,
    /// PEM bundle of the API server's CA; embedded as certificate-authority-data.
    pub ca_pem: Option<&'a str>,
    /// The bearer token.
    pub token: &'a str,
    /// Namespace the context selects.
    pub namespace: &'a str,
    /// Name of the context, cluster and user entries.
    pub context_name: &'a str,
}

/// A kubeconfig that could not be written out.
#[derive(Debug, thiserror::Error)]
#[error("could not render kubeconfig: {0}")]
pub struct RenderError(#[from] serde_yaml::Error);

/// Renders the parts as kubeconfig YAML that kubectl and client-go read as they are.
pub fn render(parts: &KubeconfigParts<'_>) -> Result<String, RenderError> {
    use base64::Engine as _;
    let name = parts.context_name.to_owned();
    let config = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: Some(Cluster {
                server: Some(parts.server.to_owned()),
                certificate_authority_data: parts
                    .ca_pem
                    .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.clone(),
            auth_info: Some(kube::config::AuthInfo {
                token: Some(SecretString::from(parts.token.to_owned())),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: Some(Context {
                cluster: name.clone(),
                user: Some(name.clone()),
                namespace: Some(parts.namespace.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(name),
        ..Default::default()
    };
    Ok(serde_yaml::to_string(&config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(ca: Option<&'a str>) -> KubeconfigParts<'a> {
        KubeconfigParts {
            server: "https://k8s.example:6443",
            ca_pem: ca,
            token: "t0ken",
            namespace: "team-a",
            context_name: "team-a-deployer",
        }
    }

    #[test]
    fn rendered_kubeconfig_reads_back_with_every_part_in_place() {
        let yaml = render(&parts(Some("-----BEGIN CERTIFICATE-----\nX\n"))).expect("renders");
        let back = Kubeconfig::from_yaml(&yaml).expect("kube-rs reads it");
        assert_eq!(back.current_context.as_deref(), Some("team-a-deployer"));
        let cluster = back.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://k8s.example:6443"));
        assert!(cluster.certificate_authority_data.is_some());
        let context = back.contexts[0].context.as_ref().expect("context");
        assert_eq!(context.namespace.as_deref(), Some("team-a"));
        assert_eq!(context.user.as_deref(), Some("team-a-deployer"));
        let user = back.auth_infos[0].auth_info.as_ref().expect("user");
        use secrecy::ExposeSecret as _;
        assert_eq!(
            user.token.as_ref().map(|t| t.expose_secret().to_owned()),
            Some("t0ken".into())
        );
    }

    #[test]
    fn without_a_ca_the_cluster_has_no_ca_data() {
        let yaml = render(&parts(None)).expect("renders");
        assert!(!yaml.contains("certificate-authority-data"));
    }
}
