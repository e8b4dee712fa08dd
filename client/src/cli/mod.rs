//! The `tokenctl` command line: argument parsing, one function per subcommand, and exit codes.
//!
//! Exit codes: 0 on success, 1 on an error (printed as `error: CODE: message` on stderr, with the
//! gRPC code and the server's message) or when `validate` finds the token not authenticated, 2 on
//! a usage error (clap's). Tokens are printed only by `issue` and inside `kubeconfig`'s output.

mod args;
mod kubeconfig;
mod output;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{CommandFactory, Parser};

use crate::v1;
use crate::{Error as ClientError, TokendClient};
use args::{
    Cli, Command, Connection, GetArgs, IssueArgs, IssueOutput, KubeconfigArgs, ListArgs,
    ListOutput, RecordOutput, RevokeArgs, Scope, TokenSpec, ValidateArgs, ValidateOutput,
};
use output::{IssuedView, RecordView, ValidationView};

/// A failed tokenctl command.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// tokend (or the connection to it) failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A local file or stream could not be used.
    #[error("{action} {what}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// To what.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The environment variable named by --token-env is unset or not UTF-8.
    #[error("--token-env {name}: the environment variable is not set (or is not UTF-8)")]
    TokenEnv {
        /// The variable's name.
        name: String,
    },
    /// No token was found where `validate` or `revoke --token-stdin` read it.
    #[error("no token in {0}")]
    NoToken(String),
    /// Merging into a kubeconfig failed.
    #[error(transparent)]
    Merge(#[from] kubeconfig::MergeError),
    /// Rendering JSON failed.
    #[error("rendering JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Rendering YAML failed.
    #[error("rendering YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// Runs tokenctl with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The one-line message for an error: `CODE: message` for tokend's errors, then any causes not
/// already in the text.
fn describe(error: &CliError) -> String {
    let mut text = match error {
        CliError::Client(client) => format!("{}: {}", code_name(client.code()), client.message()),
        other => other.to_string(),
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The canonical name of a gRPC code, as in the gRPC spec (`NOT_FOUND`).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Runs one parsed command.
async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "tokenctl", &mut script);
        print(&String::from_utf8_lossy(&script))?;
        return Ok(ExitCode::SUCCESS);
    }
    let connection = &cli.connection;
    match cli.command {
        Command::Issue(args) => issue(connection, args).await,
        Command::Kubeconfig(args) => kubeconfig(connection, args).await,
        Command::Revoke(args) => revoke(connection, args).await,
        Command::Validate(args) => validate(connection, args).await,
        Command::List(args) => list(connection, args).await,
        Command::Get(args) => get(connection, args).await,
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// Reads a whole file, naming it in the error.
fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Io {
        action: "reading",
        what: path.display().to_string(),
        source,
    })
}

/// Connects to tokend as the connection flags say.
async fn connect(connection: &Connection) -> Result<TokendClient, CliError> {
    let mut builder = TokendClient::builder(connection.addr.clone());
    if let Some(name) = &connection.token_env {
        let token = std::env::var(name).map_err(|_| CliError::TokenEnv { name: name.clone() })?;
        builder = builder.bearer_token(token);
    } else if let Some(path) = &connection.token_file {
        builder = builder.token_file(path.clone());
    }
    if connection.ca.is_some() || connection.cert.is_some() {
        let ca = connection.ca.as_deref().map(read_file).transpose()?;
        let identity = match (&connection.cert, &connection.key) {
            (Some(cert), Some(key)) => Some((read_file(cert)?, read_file(key)?)),
            _ => None,
        };
        builder = builder.tls(ca, identity);
    }
    Ok(builder.connect().await?)
}

/// The IssueTokenRequest a [`TokenSpec`] describes.
fn issue_request(spec: TokenSpec) -> v1::IssueTokenRequest {
    let binding_scope = match (&spec.role, spec.scope) {
        (None, _) => v1::BindingScope::Unspecified,
        (Some(_), Some(Scope::Cluster)) => v1::BindingScope::Cluster,
        (Some(_), _) => v1::BindingScope::Namespace,
    };
    v1::IssueTokenRequest {
        namespace: spec.service_account.namespace,
        service_account: spec.service_account.name,
        duration: spec.duration.unwrap_or_default(),
        audiences: spec.audiences,
        create_service_account: spec.create_sa,
        cluster_role: spec.role.unwrap_or_default(),
        binding_scope: binding_scope.into(),
        labels: spec.labels.into_iter().collect(),
        ..Default::default()
    }
}

/// Writes `text` to stdout, treating a closed pipe as the reader's choice rather than an error.
fn print(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Io {
            action: "writing",
            what: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Renders a serialisable value as pretty JSON with a trailing newline.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String, CliError> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// `tokenctl issue`.
async fn issue(connection: &Connection, args: IssueArgs) -> Result<ExitCode, CliError> {
    let request = issue_request(args.spec);
    let response = connect(connection).await?.issue_token(request).await?;
    let text = match args.output {
        IssueOutput::Token => format!("{}\n", response.token),
        IssueOutput::Json => to_json(&IssuedView::from(response))?,
        IssueOutput::Yaml => serde_yaml::to_string(&IssuedView::from(response))?,
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `tokenctl kubeconfig`.
async fn kubeconfig(connection: &Connection, args: KubeconfigArgs) -> Result<ExitCode, CliError> {
    let request = v1::GetKubeconfigRequest {
        source: Some(v1::get_kubeconfig_request::Source::Issue(issue_request(
            args.spec,
        ))),
        server: args.server.unwrap_or_default(),
        context_name: args.context.unwrap_or_default(),
    };
    let response = connect(connection).await?.get_kubeconfig(request).await?;
    if !args.merge {
        let mut text = response.kubeconfig;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        print(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let path: PathBuf = kubeconfig::target_path(
        args.kubeconfig.as_deref(),
        std::env::var_os("KUBECONFIG").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )?;
    let context = kubeconfig::merge_into_file(&path, &response.kubeconfig, args.use_context)?;
    let current = if args.use_context {
        " and made it the current context"
    } else {
        ""
    };
    print(&format!(
        "merged context {context:?} into {}{current} (token id {})\n",
        path.display(),
        response.token_id
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a token from a file, or stdin for `None` or `-`, trimming surrounding whitespace.
fn read_token(file: Option<&Path>) -> Result<String, CliError> {
    let (text, origin) = match file.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            let bytes = read_file(path)?;
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                path.display().to_string(),
            )
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| CliError::Io {
                    action: "reading",
                    what: "stdin".into(),
                    source,
                })?;
            (text, "stdin".to_owned())
        }
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::NoToken(origin));
    }
    Ok(token.to_owned())
}

/// `tokenctl revoke`.
async fn revoke(connection: &Connection, args: RevokeArgs) -> Result<ExitCode, CliError> {
    let target = match args.token_id {
        Some(id) if !args.token_stdin => v1::revoke_token_request::Target::TokenId(id),
        _ => v1::revoke_token_request::Target::Token(read_token(None)?),
    };
    let response = connect(connection)
        .await?
        .revoke_token(v1::RevokeTokenRequest {
            target: Some(target),
        })
        .await?;
    print(&format!(
        "revoked token {} of {}/{}\n",
        response.token_id, response.namespace, response.service_account
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `tokenctl validate`.
async fn validate(connection: &Connection, args: ValidateArgs) -> Result<ExitCode, CliError> {
    let token = read_token(args.file.as_deref())?;
    let response = connect(connection)
        .await?
        .validate_token(v1::ValidateTokenRequest {
            token,
            audiences: args.audiences,
        })
        .await?;
    let view = ValidationView::from(response);
    let text = match args.output {
        ValidateOutput::Text => view.to_text(),
        ValidateOutput::Json => to_json(&view)?,
        ValidateOutput::Yaml => serde_yaml::to_string(&view)?,
    };
    print(&text)?;
    Ok(if view.authenticated {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `tokenctl list`.
async fn list(connection: &Connection, args: ListArgs) -> Result<ExitCode, CliError> {
    use futures::{StreamExt, TryStreamExt};
    let client = connect(connection).await?;
    let request = v1::ListTokensRequest {
        namespace: args.namespace,
        service_account: args.service_account.unwrap_or_default(),
        include_expired: args.all,
        label_selector: args.selector.unwrap_or_default(),
        ..Default::default()
    };
    let limit = if args.limit == 0 {
        usize::MAX
    } else {
        args.limit
    };
    // The stream asks for the next page only when it is reached, so --limit bounds the calls.
    let tokens: Vec<v1::TokenRecord> = client
        .list_all_tokens(request)
        .take(limit)
        .try_collect()
        .await?;
    let text = match args.output {
        ListOutput::Table => output::token_table(&tokens, SystemTime::now()),
        ListOutput::Json => to_json(&tokens.iter().map(RecordView::from).collect::<Vec<_>>())?,
        ListOutput::Yaml => {
            serde_yaml::to_string(&tokens.iter().map(RecordView::from).collect::<Vec<_>>())?
        }
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `tokenctl get`.
async fn get(connection: &Connection, args: GetArgs) -> Result<ExitCode, CliError> {
    let response = connect(connection)
        .await?
        .get_token(v1::GetTokenRequest {
            token_id: args.token_id.clone(),
        })
        .await?;
    let Some(record) = response.token else {
        return Err(ClientError::Status {
            code: tonic::Code::NotFound,
            message: format!("tokend returned no record for token {}", args.token_id),
            details: Box::default(),
        }
        .into());
    };
    let view = RecordView::from(&record);
    let text = match args.output {
        RecordOutput::Yaml => serde_yaml::to_string(&view)?,
        RecordOutput::Json => to_json(&view)?,
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_server_errors_with_code_and_message() {
        let error = CliError::from(ClientError::from(tonic::Status::permission_denied(
            "system:serviceaccount:x:y may not create serviceaccounts/token in team-a",
        )));
        assert_eq!(
            describe(&error),
            "PERMISSION_DENIED: system:serviceaccount:x:y may not create serviceaccounts/token in team-a"
        );
    }

    #[test]
    fn describes_local_errors_with_their_causes() {
        let error = CliError::Io {
            action: "reading",
            what: "/nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let text = describe(&error);
        assert!(text.starts_with("reading /nope: "), "{text}");
        assert_eq!(text.matches("not found").count(), 1, "{text}");
    }

    #[test]
    fn issue_request_maps_flags_to_the_api() {
        let spec = TokenSpec {
            service_account: args::parse_service_account_ref("team-a/ci")
                .unwrap_or_else(|e| panic!("{e}")),
            duration: Some("2h45m".into()),
            audiences: vec!["vault".into()],
            create_sa: true,
            role: Some("view".into()),
            scope: None,
            labels: vec![("app".into(), "ci".into())],
        };
        let request = issue_request(spec);
        assert_eq!(request.namespace, "team-a");
        assert_eq!(request.service_account, "ci");
        assert_eq!(request.duration, "2h45m");
        assert_eq!(request.audiences, ["vault"]);
        assert!(request.create_service_account);
        assert_eq!(request.cluster_role, "view");
        assert_eq!(request.binding_scope(), v1::BindingScope::Namespace);
        assert_eq!(request.labels.get("app").map(String::as_str), Some("ci"));
    }

    #[test]
    fn no_role_means_no_binding_scope() {
        let spec = TokenSpec {
            service_account: args::parse_service_account_ref("a/b")
                .unwrap_or_else(|e| panic!("{e}")),
            duration: None,
            audiences: vec![],
            create_sa: false,
            role: None,
            scope: None,
            labels: vec![],
        };
        let request = issue_request(spec);
        assert_eq!(request.binding_scope(), v1::BindingScope::Unspecified);
        assert_eq!(request.duration, "");
    }

    #[test]
    fn reads_a_token_file_trimmed_and_rejects_an_empty_one() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t");
        std::fs::write(&path, "  abc.def \n")?;
        assert_eq!(
            read_token(Some(&path)).map_err(|e| e.to_string()),
            Ok("abc.def".into())
        );
        std::fs::write(&path, "\n")?;
        assert!(matches!(read_token(Some(&path)), Err(CliError::NoToken(_))));
        Ok(())
    }
}
