//! tokenctl's exit codes: the one place where gRPC codes and local failures become a number a
//! script can branch on, and the table `--help`, the man page and the README show.

use std::process::ExitCode;

use super::CliError;
use crate::Error as ClientError;

/// How a tokenctl run ended, as its exit code.
///
/// The numbers are part of tokenctl's interface: scripts branch on them, so a value never changes
/// meaning. Usage errors are clap's 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ExitStatus {
    /// The command did what was asked (`validate`: the token is valid).
    Success = 0,
    /// Any other failure: tokend refused the request (INVALID_ARGUMENT, FAILED_PRECONDITION,
    /// INTERNAL, ...) or a local file, stream or kubeconfig could not be used.
    Failure = 1,
    /// The command line is wrong (clap's usage errors, and `-n` disagreeing with `NS/`).
    Usage = 2,
    /// tokend could not be asked, or could not ask Kubernetes: the connection failed, or the
    /// answer was UNAVAILABLE or DEADLINE_EXCEEDED. Retrying later may help.
    Unavailable = 3,
    /// What was named does not exist (NOT_FOUND): a token id, a ServiceAccount, a namespace.
    NotFound = 4,
    /// The caller is not allowed (PERMISSION_DENIED) or not authenticated (UNAUTHENTICATED).
    Denied = 5,
    /// `validate` asked, and the API server says the token is not valid (expired, revoked, wrong
    /// audience, not a token). Distinct from 3/5/1, which mean the question got no answer.
    TokenInvalid = 6,
}

impl ExitStatus {
    /// Every status, in code order, for the documentation.
    pub(crate) const ALL: [ExitStatus; 7] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::Unavailable,
        ExitStatus::NotFound,
        ExitStatus::Denied,
        ExitStatus::TokenInvalid,
    ];

    /// The exit status for a gRPC status code returned by tokend (or by tonic for the transport).
    pub(crate) fn from_grpc(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::Ok => ExitStatus::Success,
            Code::NotFound => ExitStatus::NotFound,
            Code::PermissionDenied | Code::Unauthenticated => ExitStatus::Denied,
            Code::Unavailable | Code::DeadlineExceeded => ExitStatus::Unavailable,
            _ => ExitStatus::Failure,
        }
    }

    /// The exit status for a failed command.
    pub(super) fn of(error: &CliError) -> Self {
        match error {
            CliError::Usage(_) => ExitStatus::Usage,
            CliError::Client(ClientError::Status { code, .. }) => ExitStatus::from_grpc(*code),
            CliError::Client(ClientError::Transport { .. }) => ExitStatus::Unavailable,
            // A bad endpoint or an unreadable token file is a local problem, not the server's
            // verdict on the caller.
            CliError::Client(ClientError::InvalidUri { .. } | ClientError::Credentials { .. }) => {
                ExitStatus::Failure
            }
            CliError::Io { .. }
            | CliError::TokenEnv { .. }
            | CliError::NoToken(_)
            | CliError::Merge(_)
            | CliError::SecretFile(_)
            | CliError::Context(_)
            | CliError::ProtoJson(_)
            | CliError::Json(_)
            | CliError::Yaml(_)
            | CliError::ExecInfo(_) => ExitStatus::Failure,
        }
    }

    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// One line describing when tokenctl exits with this status.
    pub(crate) fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Success => "success (validate: the token is valid)",
            ExitStatus::Failure => {
                "any other error: tokend refused the request (e.g. INVALID_ARGUMENT), or a local file or kubeconfig could not be used"
            }
            ExitStatus::Usage => {
                "usage error: unknown flag, bad value, -n disagreeing with NAMESPACE/"
            }
            ExitStatus::Unavailable => {
                "tokend unreachable, or UNAVAILABLE / DEADLINE_EXCEEDED (worth retrying)"
            }
            ExitStatus::NotFound => "NOT_FOUND: no such token id, ServiceAccount or namespace",
            ExitStatus::Denied => "PERMISSION_DENIED or UNAUTHENTICATED",
            ExitStatus::TokenInvalid => {
                "validate: the API server answered that the token is not valid (the other codes mean it could not be asked)"
            }
        }
    }

    /// The table shown at the end of `--help`.
    pub(crate) fn help_table() -> String {
        let mut text = String::from("Exit codes:\n");
        for status in Self::ALL {
            text.push_str(&format!("  {}  {}\n", status.code(), status.meaning()));
        }
        text
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_order() {
        for (index, status) in ExitStatus::ALL.iter().enumerate() {
            assert_eq!(usize::from(status.code()), index, "{status:?}");
        }
    }

    #[test]
    fn grpc_codes_map_to_the_documented_statuses() {
        use tonic::Code;
        assert_eq!(ExitStatus::from_grpc(Code::NotFound), ExitStatus::NotFound);
        assert_eq!(
            ExitStatus::from_grpc(Code::PermissionDenied),
            ExitStatus::Denied
        );
        assert_eq!(
            ExitStatus::from_grpc(Code::Unauthenticated),
            ExitStatus::Denied
        );
        assert_eq!(
            ExitStatus::from_grpc(Code::Unavailable),
            ExitStatus::Unavailable
        );
        assert_eq!(
            ExitStatus::from_grpc(Code::DeadlineExceeded),
            ExitStatus::Unavailable
        );
        for other in [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::Internal,
            Code::AlreadyExists,
        ] {
            assert_eq!(ExitStatus::from_grpc(other), ExitStatus::Failure);
        }
    }

    /// The README's exit code table names every code with the same meaning as `--help`.
    #[test]
    fn readme_documents_every_exit_code() {
        let readme = include_str!("../../../README.md");
        for status in ExitStatus::ALL {
            let row = format!("| {} | {} |", status.code(), status.meaning());
            assert!(
                readme.contains(&row),
                "README.md lacks the exit code row {row:?}"
            );
        }
    }
}
