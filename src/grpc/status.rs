//! The one place service errors become gRPC statuses.

use tonic::{Code, Status};

use crate::service::Error;

/// Maps a service error to the gRPC status a caller sees.
pub fn to_status(error: Error) -> Status {
    let code = match &error {
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::NotFound(_) => Code::NotFound,
        Error::AlreadyExists(_) => Code::AlreadyExists,
        Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::FailedPrecondition(_) => Code::FailedPrecondition,
        Error::Unavailable(_) => Code::Unavailable,
        Error::Internal(_) => Code::Internal,
    };
    Status::new(code, error.to_string())
}
