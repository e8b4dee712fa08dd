//! tokenctl's command-line grammar (clap derive) and the parsers for its structured values.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_duration;

/// Examples shown after `tokenctl --help`.
const EXAMPLES: &str = "\
Examples:
  # A 2h45m token for team-a/ci, creating the ServiceAccount and letting it view team-a
  tokenctl issue team-a/ci --duration 2h45m --create-sa --role view --scope namespace

  # Use it right away
  TOKEN=$(tokenctl issue team-a/ci --duration 1h)

  # A kubeconfig for kubectl, or merged into ~/.kube/config as a new context
  tokenctl kubeconfig team-a/ci --duration 8h > kc && kubectl --kubeconfig kc get pods
  tokenctl kubeconfig team-a/ci --duration 8h --merge --use

  # Check a token (read from a file or stdin, never from a flag), list, inspect and revoke
  tokenctl validate token.txt
  tokenctl list team-a
  tokenctl get TOKEN_ID -o json
  tokenctl revoke TOKEN_ID

  # Talk to a remote tokend over TLS as this pod's ServiceAccount
  TOKEND_ADDR=https://tokend.tokend-system.svc:50051 TOKEND_CA=/etc/tokend/ca.crt \\
    tokenctl --token-file /var/run/secrets/kubernetes.io/serviceaccount/token list team-a";

/// Issue, revoke, validate and list Kubernetes ServiceAccount tokens through tokend.
#[derive(Debug, Parser)]
#[command(name = "tokenctl", version, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// How to reach tokend and who to be.
    #[command(flatten)]
    pub(crate) connection: Connection,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where tokend is and the credentials and TLS files to use.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection")]
pub(crate) struct Connection {
    /// tokend's address (http:// or https://).
    #[arg(
        long,
        env = "TOKEND_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub(crate) addr: String,
    /// File holding the bearer token to authenticate with, re-read on every call.
    #[arg(long, env = "TOKEND_TOKEN_FILE", value_name = "PATH", global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// Name of an environment variable holding the bearer token (takes precedence over --token-file).
    #[arg(long, value_name = "VAR", global = true)]
    pub(crate) token_env: Option<String>,
    /// PEM CA bundle that signs tokend's certificate.
    #[arg(long, env = "TOKEND_CA", value_name = "PATH", global = true)]
    pub(crate) ca: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS (needs --key).
    #[arg(
        long,
        env = "TOKEND_CERT",
        value_name = "PATH",
        global = true,
        requires = "key"
    )]
    pub(crate) cert: Option<PathBuf>,
    /// PEM client key, for mutual TLS (needs --cert).
    #[arg(
        long,
        env = "TOKEND_KEY",
        value_name = "PATH",
        global = true,
        requires = "cert"
    )]
    pub(crate) key: Option<PathBuf>,
}

/// tokenctl's subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Issue a token for a ServiceAccount and print it (only the token, unless -o json|yaml).
    #[command(
        after_help = "Examples:\n  tokenctl issue team-a/ci --duration 2h45m\n  \
        tokenctl issue team-a/ci --create-sa --role view --scope namespace --label app=ci -o json"
    )]
    Issue(IssueArgs),
    /// Issue a token and print a kubeconfig that uses it, or merge it into your kubeconfig.
    #[command(
        after_help = "Examples:\n  tokenctl kubeconfig team-a/ci --duration 8h > kc\n  \
        tokenctl kubeconfig team-a/ci --merge --use\n  \
        tokenctl kubeconfig team-a/ci --merge --kubeconfig ./other-config --context ci\n  \
        tokenctl kubeconfig --client-cert system:kube-proxy [--group O] [--duration 1h] [-f FILE]\n    \
        (a client-certificate kubeconfig; the key is made locally; not revocable before expiry)"
    )]
    Kubeconfig(KubeconfigArgs),
    /// Revoke a token by its id, or by the token itself read from stdin.
    #[command(
        after_help = "Examples:\n  tokenctl revoke TOKEN_ID\n  tokenctl revoke --token-stdin < token.txt"
    )]
    Revoke(RevokeArgs),
    /// Ask the API server whether a token (from FILE or stdin) is valid; exit 1 if it is not.
    #[command(
        after_help = "Examples:\n  tokenctl validate token.txt\n  echo \"$TOKEN\" | tokenctl validate"
    )]
    Validate(ValidateArgs),
    /// List the tokens on record in a namespace, optionally for one ServiceAccount.
    #[command(
        after_help = "Examples:\n  tokenctl list team-a\n  tokenctl list team-a ci --all -o yaml"
    )]
    List(ListArgs),
    /// Show one token record.
    #[command(after_help = "Examples:\n  tokenctl get TOKEN_ID\n  tokenctl get TOKEN_ID -o json")]
    Get(GetArgs),
    /// Bootstrap tokens for joining nodes: create (with --print-join-command), list, revoke.
    Bootstrap(super::bootstrap::BootstrapArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  tokenctl completions bash > /etc/bash_completion.d/tokenctl"
    )]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// A ServiceAccount named as `NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceAccountRef {
    /// The namespace.
    pub(crate) namespace: String,
    /// The ServiceAccount's name.
    pub(crate) name: String,
}

/// Parses `NAMESPACE/NAME`; the server checks the names themselves.
pub(crate) fn parse_service_account_ref(value: &str) -> Result<ServiceAccountRef, String> {
    let Some((namespace, name)) = value.split_once('/') else {
        return Err(format!(
            "expected NAMESPACE/SERVICEACCOUNT, e.g. team-a/ci, got {value:?}"
        ));
    };
    if namespace.is_empty() {
        return Err(format!("the namespace before '/' is empty in {value:?}"));
    }
    if name.is_empty() {
        return Err(format!(
            "the ServiceAccount name after '/' is empty in {value:?}"
        ));
    }
    if name.contains('/') {
        return Err(format!(
            "expected exactly one '/' (NAMESPACE/SERVICEACCOUNT), got {value:?}"
        ));
    }
    Ok(ServiceAccountRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// Parses a `KEY=VALUE` label; the server checks Kubernetes label syntax.
pub(crate) fn parse_label(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, label_value)) if !key.is_empty() => Ok((key.to_owned(), label_value.to_owned())),
        Some(_) => Err(format!("the label key before '=' is empty in {value:?}")),
        None => Err(format!("expected KEY=VALUE, got {value:?}")),
    }
}

/// Checks a duration against the API's grammar, keeping the text as given.
fn parse_duration_arg(value: &str) -> Result<String, String> {
    parse_duration(value)
        .map(|_| value.to_owned())
        .map_err(|e| e.to_string())
}

/// Where a ClusterRole binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scope {
    /// A RoleBinding in the ServiceAccount's namespace.
    Namespace,
    /// A ClusterRoleBinding: every namespace.
    Cluster,
}

/// What to issue a token for: shared by `issue` and `kubeconfig`.
#[derive(Debug, Args)]
pub(crate) struct TokenSpec {
    /// The ServiceAccount, as NAMESPACE/SERVICEACCOUNT.
    #[arg(value_name = "NAMESPACE/SERVICEACCOUNT", value_parser = parse_service_account_ref)]
    pub(crate) service_account: ServiceAccountRef,
    /// Lifetime, e.g. 1h, 2h45m, 3w (units y w d h m s); default: the server's.
    #[arg(long, value_parser = parse_duration_arg)]
    pub(crate) duration: Option<String>,
    /// An audience the token is valid for (repeatable); default: the API server's.
    #[arg(long = "audience", value_name = "AUDIENCE")]
    pub(crate) audiences: Vec<String>,
    /// Create the ServiceAccount if it does not exist.
    #[arg(long)]
    pub(crate) create_sa: bool,
    /// Bind the ServiceAccount to this ClusterRole.
    #[arg(long, value_name = "CLUSTERROLE")]
    pub(crate) role: Option<String>,
    /// Where the --role binding applies [default: namespace].
    #[arg(long, value_enum, requires = "role")]
    pub(crate) scope: Option<Scope>,
    /// A label for the token's record, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
}

/// How `issue` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum IssueOutput {
    /// Only the token, for `$(tokenctl issue ...)`.
    #[default]
    Token,
    /// The token and its record as JSON.
    Json,
    /// The token and its record as YAML.
    Yaml,
}

/// Arguments of `tokenctl issue`.
#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// What to issue.
    #[command(flatten)]
    pub(crate) spec: TokenSpec,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub(crate) output: IssueOutput,
}

/// Arguments of `tokenctl kubeconfig`.
#[derive(Debug, Args)]
pub(crate) struct KubeconfigArgs {
    /// What to issue.
    #[command(flatten)]
    pub(crate) spec: TokenSpec,
    /// API server URL to write into the kubeconfig; default: the one tokend is configured with.
    #[arg(long, value_name = "URL")]
    pub(crate) server: Option<String>,
    /// Name of the context (and its cluster and user); default: NAMESPACE-SERVICEACCOUNT.
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// Merge into a kubeconfig file ($KUBECONFIG or ~/.kube/config) instead of printing.
    #[arg(long)]
    pub(crate) merge: bool,
    /// The kubeconfig file to merge into (with --merge).
    #[arg(long, value_name = "PATH", requires = "merge")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Also make the new context the current one (with --merge).
    #[arg(long = "use", requires = "merge")]
    pub(crate) use_context: bool,
}

/// Arguments of `tokenctl revoke`.
#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The token's id, as `issue` returned it.
    #[arg(
        required_unless_present = "token_stdin",
        conflicts_with = "token_stdin"
    )]
    pub(crate) token_id: Option<String>,
    /// Read the token itself from stdin instead of giving its id.
    #[arg(long)]
    pub(crate) token_stdin: bool,
}

/// How `validate` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum ValidateOutput {
    /// `key: value` lines.
    #[default]
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Arguments of `tokenctl validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// File holding the token; stdin when absent or "-".
    pub(crate) file: Option<PathBuf>,
    /// An audience the token must be valid for (repeatable).
    #[arg(long = "audience", value_name = "AUDIENCE")]
    pub(crate) audiences: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub(crate) output: ValidateOutput,
}

/// How `list` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum ListOutput {
    /// A table.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Arguments of `tokenctl list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The namespace.
    pub(crate) namespace: String,
    /// Only this ServiceAccount's tokens.
    pub(crate) service_account: Option<String>,
    /// Include expired tokens.
    #[arg(long)]
    pub(crate) all: bool,
    /// Only tokens whose labels match this Kubernetes label selector, e.g. `team=blue,env in (dev,qa)`.
    #[arg(short = 'l', long)]
    pub(crate) selector: Option<String>,
    /// Print at most this many tokens (0: all); pages are fetched only as far as needed.
    #[arg(long, default_value_t = 0)]
    pub(crate) limit: usize,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub(crate) output: ListOutput,
}

/// How `get` prints a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum RecordOutput {
    /// YAML.
    #[default]
    Yaml,
    /// JSON.
    Json,
}

/// Arguments of `tokenctl get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The token's id.
    pub(crate) token_id: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub(crate) output: RecordOutput,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tokenctl").chain(args.iter().copied()))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn splits_namespace_and_service_account() {
        assert_eq!(
            parse_service_account_ref("team-a/ci"),
            Ok(ServiceAccountRef {
                namespace: "team-a".into(),
                name: "ci".into()
            })
        );
    }

    #[test]
    fn rejects_malformed_service_account_refs() {
        for (input, expected) in [
            ("ci", "expected NAMESPACE/SERVICEACCOUNT"),
            ("", "expected NAMESPACE/SERVICEACCOUNT"),
            ("/ci", "namespace before '/' is empty"),
            ("team-a/", "name after '/' is empty"),
            ("/", "namespace before '/' is empty"),
            ("a/b/c", "exactly one '/'"),
        ] {
            match parse_service_account_ref(input) {
                Err(message) => assert!(message.contains(expected), "{input:?}: {message}"),
                Ok(parsed) => panic!("{input:?} parsed as {parsed:?}"),
            }
        }
    }

    #[test]
    fn parses_labels() {
        assert_eq!(parse_label("app=ci"), Ok(("app".into(), "ci".into())));
        assert_eq!(parse_label("empty="), Ok(("empty".into(), String::new())));
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_label("=x").is_err());
        assert!(parse_label("novalue").is_err());
    }

    #[test]
    fn parses_a_full_issue_command() -> Result<(), clap::Error> {
        let cli = parse(&[
            "--addr",
            "http://tokend:50051",
            "issue",
            "team-a/ci",
            "--duration",
            "2h45m",
            "--audience",
            "a",
            "--audience",
            "b",
            "--create-sa",
            "--role",
            "view",
            "--scope",
            "cluster",
            "--label",
            "app=ci",
            "-o",
            "json",
        ])?;
        assert_eq!(cli.connection.addr, "http://tokend:50051");
        let Command::Issue(args) = cli.command else {
            panic!("expected issue, got {:?}", cli.command);
        };
        assert_eq!(args.spec.service_account.namespace, "team-a");
        assert_eq!(args.spec.service_account.name, "ci");
        assert_eq!(args.spec.duration.as_deref(), Some("2h45m"));
        assert_eq!(args.spec.audiences, ["a", "b"]);
        assert!(args.spec.create_sa);
        assert_eq!(args.spec.role.as_deref(), Some("view"));
        assert_eq!(args.spec.scope, Some(Scope::Cluster));
        assert_eq!(args.spec.labels, [("app".to_owned(), "ci".to_owned())]);
        assert_eq!(args.output, IssueOutput::Json);
        Ok(())
    }

    #[test]
    fn connection_flags_are_accepted_after_the_subcommand() -> Result<(), clap::Error> {
        let cli = parse(&[
            "list",
            "team-a",
            "--addr",
            "http://x:1",
            "--token-env",
            "MY_TOKEN",
        ])?;
        assert_eq!(cli.connection.addr, "http://x:1");
        assert_eq!(cli.connection.token_env.as_deref(), Some("MY_TOKEN"));
        Ok(())
    }

    #[test]
    fn usage_errors_are_reported_by_clap() {
        let kind = |args: &[&str]| parse(args).map(|_| ()).map_err(|e| e.kind());
        assert_eq!(kind(&["issue", "ci"]), Err(ErrorKind::ValueValidation));
        assert_eq!(
            kind(&["issue", "a/b", "--duration", "90"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["issue", "a/b", "--duration", "30m1h"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["issue", "a/b", "--label", "x"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["issue", "a/b", "--scope", "cluster"]),
            Err(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&["kubeconfig", "a/b", "--use"]),
            Err(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(kind(&["revoke"]), Err(ErrorKind::MissingRequiredArgument));
        assert_eq!(
            kind(&["revoke", "id", "--token-stdin"]),
            Err(ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            kind(&["--cert", "c.pem", "list", "ns"]),
            Err(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&["validate", "--token", "x"]),
            Err(ErrorKind::UnknownArgument)
        );
    }

    #[test]
    fn validate_reads_from_a_file_or_stdin_only() -> Result<(), clap::Error> {
        let Command::Validate(args) = parse(&["validate"])?.command else {
            panic!("expected validate");
        };
        assert_eq!(args.file, None);
        let Command::Validate(args) = parse(&["validate", "t.txt"])?.command else {
            panic!("expected validate");
        };
        assert_eq!(args.file, Some(PathBuf::from("t.txt")));
        Ok(())
    }

    #[test]
    fn kubeconfig_merge_flags() -> Result<(), clap::Error> {
        let Command::Kubeconfig(args) = parse(&[
            "kubeconfig",
            "a/b",
            "--merge",
            "--kubeconfig",
            "kc",
            "--use",
            "--context",
            "x",
        ])?
        .command
        else {
            panic!("expected kubeconfig");
        };
        assert!(args.merge && args.use_context);
        assert_eq!(args.kubeconfig, Some(PathBuf::from("kc")));
        assert_eq!(args.context.as_deref(), Some("x"));
        Ok(())
    }
}
