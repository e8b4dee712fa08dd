//! The `tokenctl` command line: argument parsing, one function per subcommand, and exit codes.
//!
//! Exit codes are listed in [`exit::ExitStatus`], the one place that maps failures to them. Errors
//! are printed as `error: CODE: message` on stderr, with the gRPC code and the server's message.
//! Tokens are printed only by `issue` and inside `kubeconfig`'s output.
//!
//! The same binary is the kubectl plugin `kubectl-tokend`: invoked under that name, its help and
//! usage messages say `kubectl tokend`.

mod args;
mod bootstrap;
mod client_cert;
mod credential;
mod exit;
mod jsonpath;
mod kube_context;
mod kubeconfig;
mod man;
mod output;
mod proto_json;
mod secret_file;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::v1;
use crate::{Error as ClientError, TokendClient};
use args::{
    Cli, Command, Connection, GetArgs, IssueArgs, KubeconfigArgs, ListArgs, NamespaceArgs, Output,
    RevokeArgs, Scope, ServiceAccountRef, TokenSpec, ValidateArgs,
};
use exit::ExitStatus;
use kube_context::KubeconfigSource;
use output::ValidationView;
use proto_json::ApiMessage;

/// The name kubectl looks for to run tokenctl as `kubectl tokend`.
const PLUGIN_NAME: &str = "kubectl-tokend";

/// The environment variable holding a bearer token (below --token-env and --token-file).
const TOKEN_VAR: &str = "TOKEND_TOKEN";

/// A failed tokenctl command.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The command line is wrong in a way clap cannot see (e.g. `-n` against `NAMESPACE/`).
    #[error("{0}")]
    Usage(Box<clap::Error>),
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
    /// A file holding a secret could not be written.
    #[error(transparent)]
    SecretFile(#[from] secret_file::SecretFileError),
    /// The default namespace could not be read from the kubeconfig.
    #[error(transparent)]
    Context(#[from] kube_context::ContextError),
    /// A response could not be rendered as proto3 JSON.
    #[error(transparent)]
    ProtoJson(#[from] proto_json::ProtoJsonError),
    /// Rendering JSON failed.
    #[error("rendering JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Rendering YAML failed.
    #[error("rendering YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// kubectl's KUBERNETES_EXEC_INFO cannot be answered (`credential`).
    #[error("{0}")]
    ExecInfo(String),
}

/// Whether this process was started as the kubectl plugin.
fn invoked_as_plugin(argv0: Option<&OsString>) -> bool {
    argv0
        .map(Path::new)
        .and_then(Path::file_stem)
        .is_some_and(|stem| stem == PLUGIN_NAME)
}

/// tokenctl's clap command, named as it was invoked, with the exit codes after `--help`.
fn command() -> clap::Command {
    let argv0 = std::env::args_os().next();
    let command = Cli::command().after_help(format!(
        "{}\n\n{}",
        args::EXAMPLES,
        ExitStatus::help_table()
    ));
    if invoked_as_plugin(argv0.as_ref()) {
        command.bin_name("kubectl tokend")
    } else {
        command.bin_name("tokenctl")
    }
}

/// A usage error found after parsing, formatted by clap like its own (exit code 2).
fn usage_error(message: String) -> CliError {
    CliError::Usage(Box::new(
        command().error(ErrorKind::ArgumentConflict, message),
    ))
}

/// Whether `--token-file` was given as a flag (rather than through $TOKEND_TOKEN_FILE).
fn token_file_flag_given(matches: &ArgMatches) -> bool {
    let mut current = Some(matches);
    while let Some(m) = current {
        if m.value_source("token_file") == Some(ValueSource::CommandLine) {
            return true;
        }
        current = m.subcommand().map(|(_, sub)| sub);
    }
    false
}

/// Runs tokenctl with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if client_cert::requested(&argv) {
        // `kubeconfig --client-cert` has arguments of its own (no SERVICEACCOUNT), parsed apart.
        return run_blocking(client_cert::run(argv));
    }
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => {
            // Help and version exit 0 on stdout; usage errors exit 2 on stderr.
            let code = error.exit_code();
            let _ = error.print();
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitStatus::Usage.into();
        }
    };
    let token_file_flag = token_file_flag_given(&matches);
    run_blocking(run(cli, token_file_flag))
}

/// Runs a command to completion on a current-thread runtime and turns its outcome into the exit
/// code.
fn run_blocking(
    command: impl std::future::Future<Output = Result<ExitStatus, CliError>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitStatus::Failure.into();
        }
    };
    match runtime.block_on(command) {
        Ok(status) => status.into(),
        Err(CliError::Usage(error)) => {
            let _ = error.print();
            ExitStatus::Usage.into()
        }
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitStatus::of(&error).into()
        }
    }
}

/// The one-line message for an error: `CODE: message` for tokend's errors, then any causes not
/// already in the text.
fn describe(error: &CliError) -> String {
    let mut text = match error {
        CliError::Client(client @ (ClientError::Status { .. } | ClientError::Transport { .. })) => {
            format!("{}: {}", code_name(client.code()), client.message())
        }
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
async fn run(cli: Cli, token_file_flag: bool) -> Result<ExitStatus, CliError> {
    match cli.command {
        Command::Completions { shell } => {
            let mut command = command();
            let name = command
                .get_bin_name()
                .unwrap_or("tokenctl")
                .replace(' ', "-");
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, name, &mut script);
            print(&String::from_utf8_lossy(&script))?;
            return Ok(ExitStatus::Success);
        }
        Command::Man { subcommand } => {
            let page = man::man_page(command(), subcommand.as_deref())
                .map_err(|message| usage_error(format!("tokenctl man: {message}")))?;
            print(&page)?;
            return Ok(ExitStatus::Success);
        }
        _ => {}
    }
    let connection = &cli.connection;
    match cli.command {
        Command::Issue(args) => issue(connection, token_file_flag, args).await,
        Command::Kubeconfig(args) => kubeconfig(connection, token_file_flag, args).await,
        Command::Revoke(args) => revoke(connection, token_file_flag, args).await,
        Command::Validate(args) => validate(connection, token_file_flag, args).await,
        Command::List(args) => list(connection, token_file_flag, args).await,
        Command::Get(args) => get(connection, token_file_flag, args).await,
        Command::Credential(args) => {
            credential::credential(
                async || connect(connection, token_file_flag).await,
                &connection.addr,
                args,
            )
            .await
        }
        Command::Bootstrap(args) => bootstrap::run(connection, token_file_flag, args).await,
        Command::Completions { .. } | Command::Man { .. } => Ok(ExitStatus::Success),
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

/// Connects to tokend as the connection flags say. The bearer token comes from the first of:
/// --token-env VAR, --token-file PATH, $TOKEND_TOKEN, $TOKEND_TOKEN_FILE.
async fn connect(connection: &Connection, token_file_flag: bool) -> Result<TokendClient, CliError> {
    let mut builder = TokendClient::builder(connection.addr.clone());
    let token_var = std::env::var(TOKEN_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty());
    if let Some(name) = &connection.token_env {
        let token = std::env::var(name).map_err(|_| CliError::TokenEnv { name: name.clone() })?;
        builder = builder.bearer_token(token.trim().to_owned());
    } else if let (true, Some(path)) = (token_file_flag, &connection.token_file) {
        builder = builder.token_file(path.clone());
    } else if let Some(token) = token_var {
        builder = builder.bearer_token(token.trim().to_owned());
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

/// The namespace to use: `from_argument` (the `NAMESPACE/` of an argument, written as `argument`),
/// or `-n`, which must agree with it, or else the kubeconfig context's namespace.
fn resolve_namespace(
    from_argument: Option<String>,
    argument: &str,
    flag: Option<&str>,
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<String, CliError> {
    match (from_argument, flag) {
        (Some(namespace), Some(flag)) if namespace != flag => Err(usage_error(format!(
            "-n/--namespace {flag:?} conflicts with the namespace {namespace:?} in {argument:?}; \
             give the namespace once"
        ))),
        (Some(namespace), _) => Ok(namespace),
        (None, Some(flag)) => Ok(flag.to_owned()),
        (None, None) => {
            let env = std::env::var_os("KUBECONFIG");
            let home = std::env::var_os("HOME");
            Ok(kube_context::default_namespace(KubeconfigSource {
                explicit: kubeconfig,
                env: env.as_deref(),
                home: home.as_deref(),
                context,
            })?)
        }
    }
}

/// The IssueTokenRequest a [`TokenSpec`] describes, in `namespace`.
fn issue_request(spec: TokenSpec, namespace: String) -> v1::IssueTokenRequest {
    let binding_scope = match (&spec.role, spec.scope) {
        (None, _) => v1::BindingScope::Unspecified,
        (Some(_), Some(Scope::Cluster)) => v1::BindingScope::Cluster,
        (Some(_), _) => v1::BindingScope::Namespace,
    };
    v1::IssueTokenRequest {
        namespace,
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

/// The text of a [`ServiceAccountRef`] argument, for messages.
fn ref_text(reference: &ServiceAccountRef) -> String {
    match &reference.namespace {
        Some(namespace) => format!("{namespace}/{}", reference.name),
        None => reference.name.clone(),
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

/// `kind/name` lines for `-o name`, as kubectl prints them.
fn names<'a>(token_ids: impl IntoIterator<Item = &'a str>) -> String {
    token_ids
        .into_iter()
        .map(|id| format!("token/{id}\n"))
        .collect()
}

/// Renders `message` as `output` asks; `human` is the command's own format, `name` its
/// `-o name` lines.
fn render<M: ApiMessage>(
    output: &Output,
    message: &M,
    name: impl FnOnce() -> String,
    human: impl FnOnce() -> Result<String, CliError>,
) -> Result<String, CliError> {
    Ok(match output {
        Output::Default => human()?,
        Output::Json => proto_json::to_json_text(&proto_json::to_document(message)?)?,
        Output::Yaml => serde_yaml::to_string(&proto_json::to_document(message)?)?,
        Output::Name => name(),
        Output::JsonPath(template) => template.render(&proto_json::to_json_value(
            &proto_json::to_document(message)?,
        )?),
    })
}

/// `tokenctl issue`.
async fn issue(
    connection: &Connection,
    token_file_flag: bool,
    args: IssueArgs,
) -> Result<ExitStatus, CliError> {
    let NamespaceArgs {
        namespace,
        kubeconfig,
        context,
    } = &args.namespace;
    let namespace = resolve_namespace(
        args.spec.service_account.namespace.clone(),
        &ref_text(&args.spec.service_account),
        namespace.as_deref(),
        kubeconfig.as_deref(),
        context.as_deref(),
    )?;
    let request = issue_request(args.spec, namespace);
    let response = connect(connection, token_file_flag)
        .await?
        .issue_token(request)
        .await?;
    let text = render(
        &args.output,
        &response,
        || names([response.token_id.as_str()]),
        || Ok(format!("{}\n", response.token)),
    )?;
    print(&text)?;
    Ok(ExitStatus::Success)
}

/// `tokenctl kubeconfig`.
async fn kubeconfig(
    connection: &Connection,
    token_file_flag: bool,
    args: KubeconfigArgs,
) -> Result<ExitStatus, CliError> {
    let namespace = resolve_namespace(
        args.spec.service_account.namespace.clone(),
        &ref_text(&args.spec.service_account),
        args.namespace.as_deref(),
        args.kubeconfig.as_deref(),
        None,
    )?;
    let request = v1::GetKubeconfigRequest {
        source: Some(v1::get_kubeconfig_request::Source::Issue(issue_request(
            args.spec, namespace,
        ))),
        server: args.server.unwrap_or_default(),
        context_name: args.context.unwrap_or_default(),
        exec: args.exec.then(|| v1::KubeconfigExec {
            tokend_address: connection.addr.clone(),
            command: args.exec_command.clone().unwrap_or_default(),
            extra_args: exec_connection_args(connection),
        }),
    };
    let response = connect(connection, token_file_flag)
        .await?
        .get_kubeconfig(request)
        .await?;
    if !args.merge {
        let mut text = response.kubeconfig;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        print(&text)?;
        return Ok(ExitStatus::Success);
    }
    let path: PathBuf = kubeconfig::target_path(
        args.kubeconfig.as_deref(),
        std::env::var_os("KUBECONFIG").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )?;
    let (context, replaced) =
        kubeconfig::merge_into_file(&path, &response.kubeconfig, args.use_context)?;
    if let secret_file::Replaced::Symlink(target) = replaced {
        eprintln!(
            "tokenctl: {} was a symlink to {}: read it, and replaced the link with the merged \
             file, mode 0600 ({} is unchanged)",
            path.display(),
            target.display(),
            target.display()
        );
    }
    let current = if args.use_context {
        " and made it the current context"
    } else {
        ""
    };
    let what = if response.token_id.is_empty() {
        "exec credential plugin".to_owned()
    } else {
        format!("token id {}", response.token_id)
    };
    print(&format!(
        "merged context {context:?} into {}{current} ({what})\n",
        path.display(),
    ))?;
    Ok(ExitStatus::Success)
}

/// The connection flags an exec kubeconfig's plugin needs to reach tokend as this call did:
/// paths made absolute (kubectl runs the plugin from anywhere) and the name of a token variable,
/// never a token. A token from $TOKEND_TOKEN reaches the plugin through kubectl's environment.
fn exec_connection_args(connection: &Connection) -> Vec<String> {
    let absolute = |path: &Path| {
        std::path::absolute(path)
            .unwrap_or_else(|_| path.to_owned())
            .display()
            .to_string()
    };
    let mut args = Vec::new();
    for (flag, path) in [
        ("--token-file", &connection.token_file),
        ("--ca", &connection.ca),
        ("--cert", &connection.cert),
        ("--key", &connection.key),
    ] {
        if let Some(path) = path {
            args.push(flag.to_owned());
            args.push(absolute(path));
        }
    }
    if let Some(var) = &connection.token_env {
        args.push("--token-env".into());
        args.push(var.clone());
    }
    args
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
async fn revoke(
    connection: &Connection,
    token_file_flag: bool,
    args: RevokeArgs,
) -> Result<ExitStatus, CliError> {
    let target = match args.token_id {
        Some(id) if !args.token_stdin => v1::revoke_token_request::Target::TokenId(id),
        _ => v1::revoke_token_request::Target::Token(read_token(None)?),
    };
    let response = connect(connection, token_file_flag)
        .await?
        .revoke_token(v1::RevokeTokenRequest {
            target: Some(target),
        })
        .await?;
    let text = render(
        &args.output,
        &response,
        || names([response.token_id.as_str()]),
        || {
            Ok(format!(
                "revoked token {} of {}/{}\n",
                response.token_id, response.namespace, response.service_account
            ))
        },
    )?;
    print(&text)?;
    Ok(ExitStatus::Success)
}

/// `tokenctl validate`: exit 0 for a valid token, 6 for one the API server rejects.
async fn validate(
    connection: &Connection,
    token_file_flag: bool,
    args: ValidateArgs,
) -> Result<ExitStatus, CliError> {
    let token = read_token(args.file.as_deref())?;
    let response = connect(connection, token_file_flag)
        .await?
        .validate_token(v1::ValidateTokenRequest {
            token,
            audiences: args.audiences,
        })
        .await?;
    let text = render(
        &args.output,
        &response,
        // `validate -o name` is refused by its parser: a verdict has no name.
        String::new,
        || Ok(ValidationView::from(response.clone()).to_text()),
    )?;
    print(&text)?;
    Ok(if response.authenticated {
        ExitStatus::Success
    } else {
        ExitStatus::TokenInvalid
    })
}

/// `list`'s namespace and ServiceAccount from its arguments: `[NAMESPACE] [SERVICEACCOUNT]` or
/// `NAMESPACE/SERVICEACCOUNT`; with `-n`, a single bare argument is the ServiceAccount.
fn list_target(args: &ListArgs) -> Result<(String, Option<String>), CliError> {
    let flag = args.namespace.namespace.as_deref();
    let (from_argument, service_account, argument) = match args.positional.as_slice() {
        [] => (None, None, String::new()),
        [one] if one.contains('/') => {
            let reference = args::parse_service_account_ref(one).map_err(usage_error)?;
            (reference.namespace, Some(reference.name), one.clone())
        }
        [one] if flag.is_some() => (None, Some(one.clone()), one.clone()),
        [one] => (Some(one.clone()), None, one.clone()),
        [namespace, service_account, ..] => (
            Some(namespace.clone()),
            Some(service_account.clone()),
            format!("{namespace} {service_account}"),
        ),
    };
    let namespace = resolve_namespace(
        from_argument,
        &argument,
        flag,
        args.namespace.kubeconfig.as_deref(),
        args.namespace.context.as_deref(),
    )?;
    Ok((namespace, service_account))
}

/// `tokenctl list`.
async fn list(
    connection: &Connection,
    token_file_flag: bool,
    args: ListArgs,
) -> Result<ExitStatus, CliError> {
    use futures::{StreamExt, TryStreamExt};
    let (namespace, service_account) = list_target(&args)?;
    let client = connect(connection, token_file_flag).await?;
    let request = v1::ListTokensRequest {
        namespace,
        service_account: service_account.unwrap_or_default(),
        include_expired: args.all,
        label_selector: args.selector.clone().unwrap_or_default(),
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
    // Every page as one response, as if the server had sent them at once.
    let response = v1::ListTokensResponse {
        tokens,
        next_page_token: String::new(),
    };
    let text = render(
        &args.output,
        &response,
        || names(response.tokens.iter().map(|t| t.token_id.as_str())),
        || {
            Ok(output::token_table(
                &response.tokens,
                SystemTime::now(),
                !args.no_headers,
            ))
        },
    )?;
    print(&text)?;
    Ok(ExitStatus::Success)
}

/// `tokenctl get`.
async fn get(
    connection: &Connection,
    token_file_flag: bool,
    args: GetArgs,
) -> Result<ExitStatus, CliError> {
    let response = connect(connection, token_file_flag)
        .await?
        .get_token(v1::GetTokenRequest {
            token_id: args.token_id.clone(),
        })
        .await?;
    let Some(record) = &response.token else {
        return Err(ClientError::Status {
            code: tonic::Code::NotFound,
            message: format!("tokend returned no record for token {}", args.token_id),
            details: Box::default(),
        }
        .into());
    };
    let output = match args.output {
        Output::Default => Output::Yaml,
        other => other,
    };
    let text = render(
        &output,
        &response,
        || names([record.token_id.as_str()]),
        || Ok(String::new()),
    )?;
    print(&text)?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
        let request = issue_request(spec, "team-a".into());
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
        let request = issue_request(spec, "a".into());
        assert_eq!(request.binding_scope(), v1::BindingScope::Unspecified);
        assert_eq!(request.duration, "");
    }

    fn list_args(args: &[&str]) -> ListArgs {
        let cli = Cli::try_parse_from(["tokenctl", "list"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            Command::List(list) => list,
            other => panic!("expected list, got {other:?}"),
        }
    }

    #[test]
    fn list_arguments_name_the_namespace_and_service_account() {
        let target = |args: &[&str]| list_target(&list_args(args)).map_err(|e| e.to_string());
        assert_eq!(target(&["team-a"]), Ok(("team-a".into(), None)));
        assert_eq!(
            target(&["team-a", "ci"]),
            Ok(("team-a".into(), Some("ci".into())))
        );
        assert_eq!(
            target(&["team-a/ci"]),
            Ok(("team-a".into(), Some("ci".into())))
        );
        assert_eq!(
            target(&["-n", "team-a", "ci"]),
            Ok(("team-a".into(), Some("ci".into())))
        );
        assert_eq!(
            target(&["-n", "team-a", "team-a/ci"]),
            Ok(("team-a".into(), Some("ci".into())))
        );
        assert_eq!(target(&["-n", "team-a"]), Ok(("team-a".into(), None)));
        for conflict in [&["-n", "b", "a/ci"][..], &["-n", "b", "a", "ci"][..]] {
            let error = target(conflict).expect_err("a conflict");
            assert!(
                error.contains("\"b\"") && error.contains("\"a"),
                "{conflict:?}: {error}"
            );
        }
    }

    #[test]
    fn the_plugin_name_is_recognised_from_argv0() {
        let yes = |s: &str| invoked_as_plugin(Some(&OsString::from(s)));
        assert!(yes("/usr/local/bin/kubectl-tokend"));
        assert!(yes("kubectl-tokend"));
        assert!(!yes("/usr/local/bin/tokenctl"));
        assert!(!yes("kubectl-tokendx"));
        assert!(!invoked_as_plugin(None));
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
