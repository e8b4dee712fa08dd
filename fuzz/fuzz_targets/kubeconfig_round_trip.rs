//! Fuzzes the kubeconfig renderer: whatever server, CA, token, namespace and context name it is
//! given, `kube::config::Kubeconfig::from_yaml` reads back exactly those values.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::Kubeconfig;
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use tokend::kubeconfig::{KubeconfigParts, render};

#[derive(Debug, Arbitrary)]
struct Parts {
    server: String,
    ca_pem: Option<String>,
    token: String,
    namespace: String,
    context_name: String,
}

fuzz_target!(|parts: Parts| {
    let yaml = render(&KubeconfigParts {
        exec: None,
        server: &parts.server,
        ca_pem: parts.ca_pem.as_deref(),
        token: &parts.token,
        namespace: &parts.namespace,
        context_name: &parts.context_name,
    })
    .expect("any strings render");
    let back = Kubeconfig::from_yaml(&yaml)
        .unwrap_or_else(|e| panic!("kube-rs cannot read what was rendered: {e}\n{yaml}"));
    let name = Some(parts.context_name.as_str());
    assert_eq!(back.current_context.as_deref(), name, "{yaml}");

    let [cluster] = back.clusters.as_slice() else {
        panic!("one cluster expected\n{yaml}");
    };
    assert_eq!(Some(cluster.name.as_str()), name, "{yaml}");
    let cluster = cluster.cluster.as_ref().expect("cluster entry");
    assert_eq!(
        cluster.server.as_deref(),
        Some(parts.server.as_str()),
        "{yaml}"
    );
    let ca = cluster
        .certificate_authority_data
        .as_ref()
        .map(|b64| STANDARD.decode(b64).expect("base64 CA"));
    assert_eq!(ca, parts.ca_pem.map(String::into_bytes), "{yaml}");

    let [user] = back.auth_infos.as_slice() else {
        panic!("one user expected\n{yaml}");
    };
    assert_eq!(Some(user.name.as_str()), name, "{yaml}");
    let token = user
        .auth_info
        .as_ref()
        .and_then(|a| a.token.as_ref())
        .map(|t| t.expose_secret().to_owned());
    assert_eq!(token.as_deref(), Some(parts.token.as_str()), "{yaml}");

    let [context] = back.contexts.as_slice() else {
        panic!("one context expected\n{yaml}");
    };
    assert_eq!(Some(context.name.as_str()), name, "{yaml}");
    let context = context.context.as_ref().expect("context entry");
    assert_eq!(Some(context.cluster.as_str()), name, "{yaml}");
    assert_eq!(context.user.as_deref(), name, "{yaml}");
    assert_eq!(
        context.namespace.as_deref(),
        Some(parts.namespace.as_str()),
        "{yaml}"
    );
});
