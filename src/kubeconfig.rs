//! Renders the kubeconfig a token comes in: one cluster (CA embedded), one user (the token), one
//! context (the namespace), selected as current-context.

use std::sync::LazyLock;

use kube::config::{
    Cluster, Context, ExecConfig, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use regex::Regex;
use secrecy::SecretString;

/// What goes into a kubeconfig.
pub struct KubeconfigParts<'a> {
    /// API server URL as seen from where the kubeconfig will be used.
    pub server: &'a str,
    /// PEM bundle of the API server's CA; embedded as certificate-authority-data.
    pub ca_pem: Option<&'a str>,
    /// The bearer token; ignored when `exec` is set.
    pub token: &'a str,
    /// An exec credential plugin the user runs instead of holding a token.
    pub exec: Option<&'a ExecConfig>,
    /// Namespace the context selects.
    pub namespace: &'a str,
    /// Name of the context, cluster and user entries.
    pub context_name: &'a str,
}

/// Plain scalars YAML 1.1 reads as something other than a string (yaml.org/type: bool, null,
/// int, float, timestamp, merge, value). kubectl reads kubeconfigs with a YAML 1.1 parser, so a
/// name such as `yes`, `on`, `1_000` or `2024-01-01` written unquoted is not a name to it.
static YAML11_NON_STRING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:",
        r"y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
        r"|~|null|Null|NULL|",
        r"|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
        r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
        r"|[-+]?(?:[0-9][0-9_]*)?\.[0-9.]*(?:[eE][-+][0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ 	]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ 	]*Z|[-+][0-9]{1,2}(?::[0-9]{2})?)?)?",
        r"|<<|=",
        r")$"
    ))
    .unwrap_or_else(|e| panic!("the YAML 1.1 pattern is a valid regex: {e}"))
});

/// Refuses a name the rendered kubeconfig would hold in a form kubectl reads as something other
/// than that string. serde_yaml quotes what YAML 1.2 would misread; what only YAML 1.1 misreads
/// it writes plain, and those are refused here, before any token exists.
pub fn check_name(value: &str) -> Result<(), String> {
    let quoted = serde_yaml::to_string(value)
        .map(|text| text.starts_with(['\'', '"']))
        .unwrap_or(false);
    if !quoted && YAML11_NON_STRING.is_match(value) {
        return Err(format!(
            "{:?} would be read by kubectl as a YAML boolean, number, null or date, not a name",
            crate::names::echo(value)
        ));
    }
    Ok(())
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
            auth_info: Some(match parts.exec {
                Some(exec) => kube::config::AuthInfo {
                    exec: Some(exec.clone()),
                    ..Default::default()
                },
                None => kube::config::AuthInfo {
                    token: Some(SecretString::from(parts.token.to_owned())),
                    ..Default::default()
                },
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
    Ok(serde_yaml::to_string(&kubectl_order(
        serde_yaml::to_value(&config)?,
    ))?)
}

/// The top-level keys as kubectl writes a kubeconfig: `apiVersion` and `kind` first, as in every
/// Kubernetes object, then the rest in kubectl's (alphabetical) order. kube-rs serialises them
/// in its struct's order, with `kind` and `apiVersion` last.
fn kubectl_order(value: serde_yaml::Value) -> serde_yaml::Value {
    let serde_yaml::Value::Mapping(mut mapping) = value else {
        return value;
    };
    let mut ordered = serde_yaml::Mapping::new();
    for key in ["apiVersion", "kind"] {
        if let Some((k, v)) = mapping.remove_entry(key) {
            ordered.insert(k, v);
        }
    }
    let mut rest: Vec<_> = mapping.into_iter().collect();
    rest.sort_by(|(a, _), (b, _)| a.as_str().cmp(&b.as_str()));
    ordered.extend(rest);
    serde_yaml::Value::Mapping(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(ca: Option<&'a str>) -> KubeconfigParts<'a> {
        KubeconfigParts {
            server: "https://k8s.example:6443",
            ca_pem: ca,
            token: "t0ken",
            exec: None,
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
    fn api_version_and_kind_come_first_as_kubectl_writes_them() {
        let yaml = render(&parts(None)).expect("renders");
        let top: Vec<&str> = yaml
            .lines()
            .filter(|line| !line.starts_with([' ', '-']))
            .filter_map(|line| line.split(':').next())
            .collect();
        assert_eq!(
            top,
            [
                "apiVersion",
                "kind",
                "clusters",
                "contexts",
                "current-context",
                "users"
            ]
        );
    }

    #[test]
    fn names_yaml_1_1_misreads_are_refused_and_others_pass() {
        for bad in ["yes", "no", "on", "Off", "y", "1_000", "2024-01-01", "1:20"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        // Quoted by the renderer (YAML 1.2 would misread them too), or plain names.
        for good in [
            "true",
            "null",
            "1000",
            "0x1f",
            "1e3",
            "team-a-ci",
            "yes-please",
            "on-call",
            "a",
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn without_a_ca_the_cluster_has_no_ca_data() {
        let yaml = render(&parts(None)).expect("renders");
        assert!(!yaml.contains("certificate-authority-data"));
    }
}
