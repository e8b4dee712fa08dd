//! tokenctl's command-line grammar (clap derive) and the parsers for its structured values.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::jsonpath::Template;
use crate::duration::parse_duration;

/// Examples shown after `tokenctl --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  # A 2h45m token for team-a/ci, creating the ServiceAccount and letting it view team-a
  tokenctl issue team-a/ci --duration 2h45m --create-sa --role view --scope namespace

  # The same, kubectl-style: the namespace from -n, or from your kubeconfig's current context
  tokenctl issue ci -n team-a --duration 2h45m
  TOKEN=$(tokenctl issue ci --duration 1h)

  # A kubeconfig for kubectl, or merged into ~/.kube/config as a new context
  tokenctl kubeconfig team-a/ci --duration 8h > kc && kubectl --kubeconfig kc get pods
  tokenctl kubeconfig team-a/ci --duration 8h --merge --use

  # Check a token (read from a file or stdin, never from a flag), list, inspect and revoke
  tokenctl validate token.txt
  tokenctl list -n team-a --no-headers
  tokenctl list -n team-a -o jsonpath='{range .tokens[*]}{.tokenId}{\"\\n\"}{end}'
  tokenctl get TOKEN_ID -o json
  tokenctl revoke TOKEN_ID

  # Talk to a remote tokend over TLS as this pod's ServiceAccount
  TOKEND_ADDR=https://tokend.tokend-system.svc:50051 TOKEND_CA=/etc/tokend/ca.crt \\
    tokenctl --token-file /var/run/secrets/kubernetes.io/serviceaccount/token list -n team-a

  # As a kubectl plugin: ln -s \"$(command -v tokenctl)\" ~/bin/kubectl-tokend
  kubectl tokend list -n team-a

Credentials, first found wins: --token-env VAR, --token-file PATH, $TOKEND_TOKEN,
$TOKEND_TOKEN_FILE; none: no bearer token (mutual TLS or anonymous).

-o json|yaml prints the RPC's response in proto3 JSON, as grpcurl prints it (`list`: all pages
as one ListTokensResponse); -o jsonpath=TEMPLATE applies kubectl's JSONPath to that JSON.";

/// Issue, revoke, validate and list Kubernetes ServiceAccount tokens through tokend.
#[derive(Debug, Parser)]
#[command(name = "tokenctl", version)]
pub(crate) struct Cli {
    /// How to reach tokend and who to be.
    #[command(flatten)]
    pub(crate) connection: Connection,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Checks that tokend's address is an http:// or https:// URL, so a typo is a usage error.
fn parse_addr(value: &str) -> Result<String, String> {
    let uri: http::Uri = value
        .parse()
        .map_err(|e| format!("not a URL ({e}); expected e.g. https://tokend:50051"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(value.to_owned()),
        _ => {
            Err("expected an http:// or https:// URL with a host, e.g. https://tokend:50051".into())
        }
    }
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
        global = true,
        value_parser = parse_addr
    )]
    pub(crate) addr: String,
    /// File holding the bearer token to authenticate with, re-read on every call. The flag wins
    /// over $TOKEND_TOKEN, which wins over $TOKEND_TOKEN_FILE.
    #[arg(long, env = "TOKEND_TOKEN_FILE", value_name = "PATH", global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// Name of an environment variable holding the bearer token (wins over every other source).
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

/// The namespace to work in, kubectl-style.
#[derive(Debug, Args, Default)]
pub(crate) struct NamespaceArgs {
    /// The namespace; default: the namespace of the kubeconfig's current context, else "default".
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// The kubeconfig to take the default namespace from; default: $KUBECONFIG, else ~/.kube/config.
    #[arg(long, value_name = "PATH")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context whose namespace is the default; default: the current context.
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
}

/// tokenctl's subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Issue a token for a ServiceAccount and print it (only the token, unless -o says otherwise).
    #[command(
        after_help = "Examples:\n  tokenctl issue team-a/ci --duration 2h45m\n  \
        tokenctl issue ci -n team-a --create-sa --role view --scope namespace --label app=ci -o json\n  \
        tokenctl issue ci -o jsonpath='{.tokenId}'"
    )]
    Issue(IssueArgs),
    /// Issue a token and print a kubeconfig that uses it, or merge it into your kubeconfig.
    #[command(
        after_help = "Examples:\n  tokenctl kubeconfig team-a/ci --duration 8h > kc\n  \
        tokenctl kubeconfig ci -n team-a --merge --use\n  \
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
    /// Ask the API server whether a token (from FILE or stdin) is valid; exit 6 if it is not.
    #[command(
        after_help = "Examples:\n  tokenctl validate token.txt\n  echo \"$TOKEN\" | tokenctl validate\n\n\
        Exit codes: 0 valid, 6 not valid (the API server said so); 3, 5 or 1 when it could not be asked."
    )]
    Validate(ValidateArgs),
    /// List the tokens on record in a namespace, optionally for one ServiceAccount.
    #[command(
        after_help = "Examples:\n  tokenctl list                  # the current context's namespace\n  \
        tokenctl list -n team-a ci --all -o yaml\n  tokenctl list team-a ci        # NAMESPACE SERVICEACCOUNT\n  \
        tokenctl list team-a/ci -o name\n  \
        tokenctl list -n team-a -o jsonpath='{.tokens[*].tokenId}'"
    )]
    List(ListArgs),
    /// Show one token record.
    #[command(
        after_help = "Examples:\n  tokenctl get TOKEN_ID\n  tokenctl get TOKEN_ID -o json\n  \
        tokenctl get TOKEN_ID -o jsonpath='{.token.expirationTime}'"
    )]
    Get(GetArgs),
    /// kubectl's exec credential plugin: print an ExecCredential with a token from tokend,
    /// cached (0600, under the kube cache) and reused until a fraction of its lifetime.
    #[command(
        after_help = "Examples:\n  tokenctl kubeconfig team-a/ci --exec --merge --use   # writes a user that runs:\n  \
        tokenctl --addr https://tokend:50051 credential team-a/ci --duration 1h\n\n\
        A cached token is checked with tokend (GetToken) when its last check is 10s old or more,\n\
        and dropped when its record is gone; when tokend cannot tell, it is served at most 5m\n\
        after its last successful check."
    )]
    Credential(super::credential::CredentialArgs),
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
    /// Print tokenctl's man page, or a subcommand's (roff).
    #[command(
        after_help = "Examples:\n  tokenctl man > tokenctl.1 && man ./tokenctl.1\n  \
        tokenctl man issue > tokenctl-issue.1"
    )]
    Man {
        /// The subcommand whose page to print (tokenctl-SUBCOMMAND(1)).
        subcommand: Option<String>,
    },
}

/// A ServiceAccount named as `NAME` or `NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceAccountRef {
    /// The namespace, when given as `NAMESPACE/`.
    pub(crate) namespace: Option<String>,
    /// The ServiceAccount's name.
    pub(crate) name: String,
}

/// Parses `NAME` or `NAMESPACE/NAME`; the server checks the names themselves.
pub(crate) fn parse_service_account_ref(value: &str) -> Result<ServiceAccountRef, String> {
    let Some((namespace, name)) = value.split_once('/') else {
        if value.is_empty() {
            return Err("expected SERVICEACCOUNT or NAMESPACE/SERVICEACCOUNT, got \"\"".into());
        }
        return Ok(ServiceAccountRef {
            namespace: None,
            name: value.to_owned(),
        });
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
            "expected at most one '/' (NAMESPACE/SERVICEACCOUNT), got {value:?}"
        ));
    }
    Ok(ServiceAccountRef {
        namespace: Some(namespace.to_owned()),
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

/// What `-o` asks for.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// The command's own format for people (issue: the token; list: a table; validate and
    /// revoke: text; get: YAML).
    Default,
    /// The RPC's response in proto3 JSON.
    Json,
    /// The same document as YAML.
    Yaml,
    /// `token/<token_id>`, one a line.
    Name,
    /// kubectl's JSONPath template applied to the proto3 JSON.
    JsonPath(Template),
}

/// The `-o` parser for a command whose own format is called `default_name` (`token`, `table`,
/// `text`, `yaml`), and which prints names only when `names` is set.
fn output_parser(
    default_name: &'static str,
    names: bool,
) -> impl Fn(&str) -> Result<Output, String> + Clone + Send + Sync + 'static {
    move |value: &str| {
        if let Some(template) = value.strip_prefix("jsonpath=") {
            return Template::parse(template)
                .map(Output::JsonPath)
                .map_err(|e| e.to_string());
        }
        match value {
            v if v == default_name => Ok(Output::Default),
            "json" => Ok(Output::Json),
            "yaml" => Ok(Output::Yaml),
            "name" if names => Ok(Output::Name),
            _ => {
                let name = if names { ", name" } else { "" };
                Err(format!(
                    "unknown output format; expected one of {default_name}, json, yaml{name}, jsonpath=TEMPLATE"
                ))
            }
        }
    }
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
    /// The ServiceAccount: NAME (in -n's namespace), or NAMESPACE/NAME.
    #[arg(value_name = "[NAMESPACE/]SERVICEACCOUNT", value_parser = parse_service_account_ref)]
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

/// Arguments of `tokenctl issue`.
#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// What to issue.
    #[command(flatten)]
    pub(crate) spec: TokenSpec,
    /// The namespace, when not given as NAMESPACE/.
    #[command(flatten)]
    pub(crate) namespace: NamespaceArgs,
    /// Output format: token (only the token), json, yaml, name, jsonpath=TEMPLATE.
    #[arg(short, long, value_name = "FORMAT", default_value = "token", value_parser = output_parser("token", true))]
    pub(crate) output: Output,
}

/// Arguments of `tokenctl kubeconfig`.
#[derive(Debug, Args)]
pub(crate) struct KubeconfigArgs {
    /// What to issue.
    #[command(flatten)]
    pub(crate) spec: TokenSpec,
    /// The namespace; default: the namespace of --kubeconfig's (or $KUBECONFIG's) current context.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// API server URL to write into the kubeconfig; default: the one tokend is configured with.
    #[arg(long, value_name = "URL")]
    pub(crate) server: Option<String>,
    /// Name of the context (and its cluster and user) to write; default: NAMESPACE-SERVICEACCOUNT.
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// Merge into a kubeconfig file ($KUBECONFIG or ~/.kube/config) instead of printing.
    #[arg(long)]
    pub(crate) merge: bool,
    /// The kubeconfig file to merge into, and to take the default namespace from.
    #[arg(long, value_name = "PATH")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Also make the new context the current one (with --merge).
    #[arg(long = "use", requires = "merge")]
    pub(crate) use_context: bool,
    /// Write a kubeconfig that runs `tokenctl credential` for a fresh short-lived token whenever
    /// kubectl needs one, instead of embedding a token; nothing secret is written.
    #[arg(long)]
    pub(crate) exec: bool,
    /// The plugin command the exec kubeconfig runs (with --exec); default: tokenctl.
    #[arg(long, value_name = "COMMAND", requires = "exec")]
    pub(crate) exec_command: Option<String>,
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
    /// Output format: text, json, yaml, name, jsonpath=TEMPLATE.
    #[arg(short, long, value_name = "FORMAT", default_value = "text", value_parser = output_parser("text", true))]
    pub(crate) output: Output,
}

/// Arguments of `tokenctl validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// File holding the token; stdin when absent or "-".
    pub(crate) file: Option<PathBuf>,
    /// An audience the token must be valid for (repeatable).
    #[arg(long = "audience", value_name = "AUDIENCE")]
    pub(crate) audiences: Vec<String>,
    /// Output format: text (key: value lines), json, yaml, jsonpath=TEMPLATE.
    #[arg(short, long, value_name = "FORMAT", default_value = "text", value_parser = output_parser("text", false))]
    pub(crate) output: Output,
}

/// Arguments of `tokenctl list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The namespace, then a ServiceAccount; or NAMESPACE/SERVICEACCOUNT; with -n, only the ServiceAccount.
    #[arg(value_names = ["NAMESPACE", "SERVICEACCOUNT"], num_args = 0..=2)]
    pub(crate) positional: Vec<String>,
    /// The namespace when not given as an argument.
    #[command(flatten)]
    pub(crate) namespace: NamespaceArgs,
    /// Include expired tokens.
    #[arg(long)]
    pub(crate) all: bool,
    /// Only tokens whose labels match this Kubernetes label selector, e.g. `team=blue,env in (dev,qa)`.
    #[arg(short = 'l', long)]
    pub(crate) selector: Option<String>,
    /// Print at most this many tokens (0: all); pages are fetched only as far as needed.
    #[arg(long, default_value_t = 0)]
    pub(crate) limit: usize,
    /// Output format: table, json, yaml, name, jsonpath=TEMPLATE.
    #[arg(short, long, value_name = "FORMAT", default_value = "table", value_parser = output_parser("table", true))]
    pub(crate) output: Output,
    /// Leave out the table's header line.
    #[arg(long)]
    pub(crate) no_headers: bool,
}

/// Arguments of `tokenctl get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The token's id.
    pub(crate) token_id: String,
    /// Output format: yaml, json, name, jsonpath=TEMPLATE.
    #[arg(short, long, value_name = "FORMAT", default_value = "yaml", value_parser = output_parser("yaml", true))]
    pub(crate) output: Output,
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
                namespace: Some("team-a".into()),
                name: "ci".into()
            })
        );
        assert_eq!(
            parse_service_account_ref("ci"),
            Ok(ServiceAccountRef {
                namespace: None,
                name: "ci".into()
            })
        );
    }

    #[test]
    fn rejects_malformed_service_account_refs() {
        for (input, expected) in [
            ("", "expected SERVICEACCOUNT or NAMESPACE/SERVICEACCOUNT"),
            ("/ci", "namespace before '/' is empty"),
            ("team-a/", "name after '/' is empty"),
            ("/", "namespace before '/' is empty"),
            ("a/b/c", "at most one '/'"),
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
        assert_eq!(
            args.spec.service_account.namespace.as_deref(),
            Some("team-a")
        );
        assert_eq!(args.spec.service_account.name, "ci");
        assert_eq!(args.spec.duration.as_deref(), Some("2h45m"));
        assert_eq!(args.spec.audiences, ["a", "b"]);
        assert!(args.spec.create_sa);
        assert_eq!(args.spec.role.as_deref(), Some("view"));
        assert_eq!(args.spec.scope, Some(Scope::Cluster));
        assert_eq!(args.spec.labels, [("app".to_owned(), "ci".to_owned())]);
        assert!(matches!(args.output, Output::Json), "{:?}", args.output);
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
        assert_eq!(kind(&["issue", "a/b/c"]), Err(ErrorKind::ValueValidation));
        assert_eq!(
            kind(&["issue", "a/b", "-o", "table"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["list", "-o", "jsonpath={range .tokens[*]}"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["list", "a", "b", "c"]),
            Err(ErrorKind::TooManyValues)
        );
        assert_eq!(
            kind(&["get", "x", "--no-headers"]),
            Err(ErrorKind::UnknownArgument)
        );
        assert_eq!(
            kind(&["validate", "-o", "name"]),
            Err(ErrorKind::ValueValidation)
        );
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
    fn namespace_flags_and_output_formats() -> Result<(), clap::Error> {
        let Command::Issue(args) = parse(&[
            "issue",
            "ci",
            "-n",
            "team-a",
            "--kubeconfig",
            "kc",
            "--context",
            "prod",
            "-o",
            "jsonpath={.tokenId}",
        ])?
        .command
        else {
            panic!("expected issue");
        };
        assert_eq!(args.spec.service_account.namespace, None);
        assert_eq!(args.namespace.namespace.as_deref(), Some("team-a"));
        assert_eq!(args.namespace.kubeconfig, Some(PathBuf::from("kc")));
        assert_eq!(args.namespace.context.as_deref(), Some("prod"));
        assert!(matches!(args.output, Output::JsonPath(_)));
        let Command::List(args) =
            parse(&["list", "--namespace", "a", "ci", "--no-headers"])?.command
        else {
            panic!("expected list");
        };
        assert_eq!(args.positional, ["ci"]);
        assert!(args.no_headers);
        assert!(matches!(args.output, Output::Default));
        let Command::Get(args) = parse(&["get", "x", "-o", "name"])?.command else {
            panic!("expected get");
        };
        assert!(matches!(args.output, Output::Name));
        Ok(())
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
