//! `tokenctl kubeconfig --client-cert CN [--group O]`: a client-certificate kubeconfig, like
//! `kubeadm kubeconfig user`, with the private key made here and never sent: tokenctl generates
//! an ECDSA P-256 key, sends tokend only a CSR for it, and inserts the key into the kubeconfig
//! tokend returns. The certificate cannot be revoked before it expires.

use std::path::PathBuf;

use base64::Engine as _;
use clap::{Args, Parser};

use super::args::Connection;
use super::exit::ExitStatus;
use super::{CliError, connect, print};
use crate::v1;

/// `tokenctl [CONNECTION] kubeconfig --client-cert CN ...`, parsed on its own.
#[derive(Debug, Parser)]
#[command(name = "tokenctl")]
struct ClientCertCli {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: ClientCertCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClientCertCommand {
    /// A client-certificate kubeconfig.
    Kubeconfig(ClientCertArgs),
}

/// Arguments of `tokenctl kubeconfig --client-cert`.
#[derive(Debug, Args)]
struct ClientCertArgs {
    /// The user the certificate names (its CN).
    #[arg(long = "client-cert", value_name = "CN")]
    client_cert: String,
    /// The group the certificate names (its O).
    #[arg(long, value_name = "O")]
    group: Option<String>,
    /// Lifetime, e.g. 1h; default: the server's cap. It cannot be revoked before then.
    #[arg(long)]
    duration: Option<String>,
    /// API server URL written into the kubeconfig; default: tokend's.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Name of the context; default: CN@kubernetes.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Write the kubeconfig (it holds the private key) to this file, mode 0600, instead of stdout.
    #[arg(long, short = 'f', value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Whether the command line asks for `kubeconfig --client-cert` (which the token-kubeconfig
/// parser does not take).
pub(crate) fn requested(args: &[std::ffi::OsString]) -> bool {
    args.iter().any(|a| a == "kubeconfig")
        && args
            .iter()
            .any(|a| a == "--client-cert" || a.to_string_lossy().starts_with("--client-cert="))
}

/// Parses and runs `tokenctl kubeconfig --client-cert ...`.
pub(crate) async fn run(args: Vec<std::ffi::OsString>) -> Result<ExitStatus, CliError> {
    // Whether --token-file was a flag (it then outranks $TOKEND_TOKEN), as for every command.
    let token_file_flag = args
        .iter()
        .any(|a| a == "--token-file" || a.to_string_lossy().starts_with("--token-file="));
    let cli = ClientCertCli::parse_from(args);
    let ClientCertCommand::Kubeconfig(args) = cli.command;
    let key = rcgen::KeyPair::generate().map_err(local)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(local)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, args.client_cert.as_str());
    if let Some(group) = &args.group {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, group.as_str());
    }
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(local)?;
    let issued = connect(&cli.connection, token_file_flag)
        .await?
        .issue_client_certificate(v1::IssueClientCertificateRequest {
            csr,
            user: args.client_cert.clone(),
            groups: args.group.into_iter().collect(),
            duration: args.duration.unwrap_or_default(),
            server: args.server.unwrap_or_default(),
            context_name: args.context.unwrap_or_default(),
        })
        .await?;
    let mut kubeconfig: serde_yaml::Value = serde_yaml::from_str(&issued.kubeconfig)?;
    let key_data = base64::engine::general_purpose::STANDARD.encode(key.serialize_pem());
    if let Some(user) = kubeconfig
        .get_mut("users")
        .and_then(|u| u.get_mut(0))
        .and_then(|u| u.get_mut("user"))
        .and_then(serde_yaml::Value::as_mapping_mut)
    {
        user.insert("client-key-data".into(), key_data.into());
    }
    let text = serde_yaml::to_string(&kubeconfig)?;
    match &args.out {
        Some(path) => {
            super::bootstrap::write_private(path, &text)?;
            eprintln!(
                "wrote {} (certificate serial {}, expires at {}s; it cannot be revoked before)",
                path.display(),
                issued.serial_number,
                issued.not_after.map(|t| t.seconds).unwrap_or_default()
            );
        }
        None => print(&text)?,
    }
    Ok(ExitStatus::Success)
}

fn local(e: rcgen::Error) -> CliError {
    CliError::Io {
        action: "making",
        what: "the private key and CSR".into(),
        source: std::io::Error::other(e.to_string()),
    }
}
