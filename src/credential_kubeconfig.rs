//! Kubeconfigs for node and component credentials: the bootstrap kubeconfig (a bootstrap token)
//! and the client-certificate kubeconfig, each written as `kubectl config set-cluster
//! --embed-certs`, `set-credentials`, `set-context` and `use-context` would write it; and the
//! `sha256:` hashes of a CA's public keys that `kubeadm join` pins.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use secrecy::SecretString;

use crate::kubeconfig::RenderError;

/// The names and credential of one kubeconfig.
pub struct Entries<'a> {
    /// API server URL.
    pub server: &'a str,
    /// PEM bundle of the API server's CA, embedded as certificate-authority-data.
    pub ca_pem: Option<&'a str>,
    /// Name of the cluster entry.
    pub cluster: &'a str,
    /// Name of the user entry.
    pub user: &'a str,
    /// Name of the context, also the current-context.
    pub context: &'a str,
}

/// The credential a kubeconfig's user holds.
pub enum Credential<'a> {
    /// A bearer token (`set-credentials --token`).
    Token(&'a str),
    /// A client certificate, PEM (`set-credentials --client-certificate --embed-certs`); the key
    /// is added by whoever holds it.
    Certificate(&'a str),
}

/// Renders the kubeconfig, with `preferences: {}` as kubectl writes it.
pub fn render(entries: &Entries<'_>, credential: &Credential<'_>) -> Result<String, RenderError> {
    let auth_info = match credential {
        Credential::Token(token) => AuthInfo {
            token: Some(SecretString::from((*token).to_owned())),
            ..Default::default()
        },
        Credential::Certificate(pem) => AuthInfo {
            client_certificate_data: Some(STANDARD.encode(pem)),
            ..Default::default()
        },
    };
    let config = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        preferences: Some(Default::default()),
        clusters: vec![NamedCluster {
            name: entries.cluster.to_owned(),
            cluster: Some(Cluster {
                server: Some(entries.server.to_owned()),
                certificate_authority_data: entries.ca_pem.map(|pem| STANDARD.encode(pem)),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: entries.user.to_owned(),
            auth_info: Some(auth_info),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: entries.context.to_owned(),
            context: Some(Context {
                cluster: entries.cluster.to_owned(),
                user: Some(entries.user.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(entries.context.to_owned()),
        ..Default::default()
    };
    Ok(serde_yaml::to_string(&config)?)
}

/// `sha256:<hex>` of each certificate's SubjectPublicKeyInfo in a PEM bundle, the form of
/// `kubeadm join --discovery-token-ca-cert-hash`; certificates that do not parse are skipped.
pub fn ca_cert_hashes(ca_pem: &str) -> Vec<String> {
    let Ok(blocks) = pem::parse_many(ca_pem) else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .filter_map(|b| {
            let (_, cert) = x509_parser::parse_x509_certificate(b.contents()).ok()?;
            let digest =
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.public_key().raw);
            Some(format!(
                "sha256:{}",
                digest
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bootstrap_kubeconfig_names_the_guides_entries() {
        let yaml = render(
            &Entries {
                server: "https://10.0.0.1:6443",
                ca_pem: Some("PEM"),
                cluster: "kubernetes",
                user: "kubelet-bootstrap",
                context: "default",
            },
            &Credential::Token("abcdef.0123456789abcdef"),
        )
        .expect("renders");
        let parsed: Kubeconfig = serde_yaml::from_str(&yaml).expect("parses");
        assert_eq!(parsed.current_context.as_deref(), Some("default"));
        assert_eq!(parsed.clusters[0].name, "kubernetes");
        assert_eq!(parsed.auth_infos[0].name, "kubelet-bootstrap");
        assert!(yaml.contains("token: abcdef.0123456789abcdef"));
        assert!(yaml.contains("preferences: {}"));
    }
}
