//! `tokenctl bootstrap create|list|revoke`: bootstrap tokens, as `kubeadm token` manages them,
//! through tokend; `create --print-join-command` prints what `kubeadm token create
//! --print-join-command` prints.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::args::Connection;
use super::exit::ExitStatus;
use super::{CliError, connect, print};
use crate::v1;

/// Arguments of `tokenctl bootstrap`.
#[derive(Debug, Args)]
pub(crate) struct BootstrapArgs {
    /// What to do.
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Issue a bootstrap token; print it (or the join command, or its kubeconfig).
    #[command(
        after_help = "Examples:\n  tokenctl bootstrap create --print-join-command\n  \
        tokenctl bootstrap create --duration 2h --group system:bootstrappers:workers \
        --kubeconfig-out bootstrap.kubeconfig"
    )]
    Create(CreateArgs),
    /// List the bootstrap tokens (never their secrets).
    List(ListArgs),
    /// Revoke a bootstrap token by its id (deletes its Secret).
    Revoke {
        /// The token's id (the part before the dot).
        token_id: String,
    },
}

/// How `bootstrap create` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
enum CreateOutput {
    /// Only the token.
    #[default]
    Token,
    /// The bootstrap kubeconfig.
    Kubeconfig,
    /// Everything, JSON.
    Json,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Lifetime, e.g. 24h (units y w d h m s); default: the server's (24h).
    #[arg(long)]
    duration: Option<String>,
    /// An extra group, system:bootstrappers:... (repeatable); default:
    /// system:bootstrappers:kubeadm:default-node-token.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Description stored with the token.
    #[arg(long)]
    description: Option<String>,
    /// A usage, authentication or signing (repeatable); default: both.
    #[arg(long = "usage", value_name = "USAGE")]
    usages: Vec<String>,
    /// API server URL for the kubeconfig and join command; default: tokend's.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Print `kubeadm join SERVER --token TOKEN --discovery-token-ca-cert-hash sha256:...`.
    #[arg(long, conflicts_with = "output")]
    print_join_command: bool,
    /// Also write the bootstrap kubeconfig to this file (mode 0600).
    #[arg(long, value_name = "FILE")]
    kubeconfig_out: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: CreateOutput,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Output format: a table, or JSON.
    #[arg(short, long, value_enum, default_value_t)]
    output: ListOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
enum ListOutput {
    /// TOKEN_ID EXPIRES USAGES EXTRA_GROUPS ISSUED_BY DESCRIPTION.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// Runs `tokenctl bootstrap ...`.
pub(crate) async fn run(
    connection: &Connection,
    token_file_flag: bool,
    args: BootstrapArgs,
) -> Result<ExitStatus, CliError> {
    let client = connect(connection, token_file_flag).await?;
    match args.action {
        Action::Create(args) => {
            let issued = client
                .issue_bootstrap_token(v1::IssueBootstrapTokenRequest {
                    duration: args.duration.unwrap_or_default(),
                    extra_groups: args.groups,
                    description: args.description.unwrap_or_default(),
                    usages: args.usages,
                    server: args.server.unwrap_or_default(),
                })
                .await?;
            if let Some(path) = &args.kubeconfig_out {
                write_private(path, &issued.kubeconfig)?;
            }
            let text = if args.print_join_command {
                join_command(&issued)
            } else {
                match args.output {
                    CreateOutput::Token => format!("{}\n", issued.token),
                    CreateOutput::Kubeconfig => issued.kubeconfig.clone(),
                    CreateOutput::Json => format!(
                        "{}\n",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "token": issued.token,
                            "tokenId": issued.token_id,
                            "expirationTime": issued.expiration_time.map(|t| t.seconds),
                            "server": issued.server,
                            "caCertHashes": issued.ca_cert_hashes,
                            "kubeconfig": issued.kubeconfig,
                        }))?
                    ),
                }
            };
            print(&text)?;
        }
        Action::List(args) => {
            let mut tokens = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_bootstrap_tokens(v1::ListBootstrapTokensRequest {
                        page_size: 500,
                        page_token,
                    })
                    .await?;
                tokens.extend(page.bootstrap_tokens);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            print(&match args.output {
                ListOutput::Table => table(&tokens),
                ListOutput::Json => format!(
                    "{}\n",
                    serde_json::to_string_pretty(
                        &tokens
                            .iter()
                            .map(|t| serde_json::json!({
                                "tokenId": t.token_id,
                                "expirationTime": t.expiration_time.map(|e| e.seconds),
                                "expired": t.expired,
                                "usages": t.usages,
                                "extraGroups": t.extra_groups,
                                "description": t.description,
                                "issuedBy": t.issued_by,
                            }))
                            .collect::<Vec<_>>()
                    )?
                ),
            })?;
        }
        Action::Revoke { token_id } => {
            let revoked = client
                .revoke_bootstrap_token(v1::RevokeBootstrapTokenRequest { token_id })
                .await?;
            print(&format!("revoked bootstrap token {}\n", revoked.token_id))?;
        }
    }
    Ok(ExitStatus::Success)
}

/// kubeadm's join line: the server as host:port, the token, each CA hash.
fn join_command(issued: &v1::IssueBootstrapTokenResponse) -> String {
    let endpoint = issued
        .server
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let mut line = format!("kubeadm join {endpoint} --token {}", issued.token);
    for hash in &issued.ca_cert_hashes {
        line.push_str(&format!(" --discovery-token-ca-cert-hash {hash}"));
    }
    line.push('\n');
    line
}

fn table(tokens: &[v1::BootstrapToken]) -> String {
    let mut out = String::from("TOKEN_ID\tEXPIRES\tUSAGES\tEXTRA_GROUPS\tISSUED_BY\tDESCRIPTION\n");
    for t in tokens {
        let expires = match (t.expired, t.expiration_time) {
            (true, _) => "expired".to_owned(),
            (false, Some(ts)) => format!("{}s", ts.seconds),
            (false, None) => "never".to_owned(),
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            t.token_id,
            expires,
            t.usages.join(","),
            t.extra_groups.join(","),
            if t.issued_by.is_empty() {
                "-"
            } else {
                &t.issued_by
            },
            t.description.replace(['\t', '\n'], " "),
        ));
    }
    out
}

/// Writes a file that holds a credential: 0600, through a temporary file and a rename, saying on
/// stderr when a symlink was replaced rather than written through.
pub(super) fn write_private(path: &std::path::Path, text: &str) -> Result<(), CliError> {
    if let super::secret_file::Replaced::Symlink(target) =
        super::secret_file::write(path, text.as_bytes())?
    {
        eprintln!(
            "tokenctl: {} was a symlink to {}: replaced it with a file of its own ({} is unchanged)",
            path.display(),
            target.display(),
            target.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_command_is_kubeadms() {
        let issued = v1::IssueBootstrapTokenResponse {
            token: "abcdef.0123456789abcdef".into(),
            server: "https://10.0.0.1:6443/".into(),
            ca_cert_hashes: vec!["sha256:aa".into()],
            ..Default::default()
        };
        assert_eq!(
            join_command(&issued),
            "kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef \
             --discovery-token-ca-cert-hash sha256:aa\n"
        );
    }
}
