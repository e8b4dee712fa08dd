//! The certificates and keys a loopback control plane needs: a cluster CA (which also signs
//! CSRs through the controller-manager), the API server's serving certificate, the
//! ServiceAccount signing key, and a front-proxy CA with its client certificate.

use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A CA as files: its certificate, its key, and the issuer to sign more with.
struct Ca {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(common_name: &str) -> Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        issuer: Issuer::new(params, key),
    })
}

/// A leaf certificate and key signed by `ca`, as PEM.
fn leaf(
    ca: &Ca,
    common_name: &str,
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// An RSA 2048 key in PKCS#8 PEM: the API server signs ServiceAccount tokens RS256 with it, as
/// clusters usually do, and reads the public half from the same file.
fn service_account_key() -> Result<String> {
    use aws_lc_rs::encoding::AsDer;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| anyhow::anyhow!("RSA key generation: {e}"))?;
    let der = key
        .as_der()
        .map_err(|e| anyhow::anyhow!("RSA key encoding: {e}"))?;
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref())))
}

/// Writes the control plane's PKI into `dir`, under the file names the flags use; answers the
/// cluster CA's PEM.
pub fn write(dir: &Path) -> Result<String> {
    let cluster = ca("tokend-test-cluster-ca")?;
    let (serving, serving_key) = leaf(
        &cluster,
        "kube-apiserver",
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let front_proxy = ca("tokend-test-front-proxy-ca")?;
    let (proxy_client, proxy_client_key) = leaf(
        &front_proxy,
        "front-proxy-client",
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let files = [
        ("ca.crt", cluster.cert_pem.clone()),
        ("ca.key", cluster.key_pem),
        ("apiserver.crt", serving),
        ("apiserver.key", serving_key),
        ("sa.key", service_account_key()?),
        ("front-proxy-ca.crt", front_proxy.cert_pem),
        ("front-proxy-client.crt", proxy_client),
        ("front-proxy-client.key", proxy_client_key),
    ];
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).with_context(|| format!("writing {name}"))?;
    }
    Ok(cluster.cert_pem)
}

/// A serving certificate for 127.0.0.1 (and localhost) from a fresh CA, written into `dir` as
/// `webhook.crt` and `webhook.key`; answers the CA's PEM (the caBundle callers trust).
pub fn write_loopback_serving(dir: &Path) -> Result<String> {
    let authority = ca("tokend-test-webhook-ca")?;
    let (cert, key) = leaf(
        &authority,
        "tokend-webhook",
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    std::fs::write(dir.join("webhook.crt"), cert).context("writing webhook.crt")?;
    std::fs::write(dir.join("webhook.key"), key).context("writing webhook.key")?;
    Ok(authority.cert_pem)
}
