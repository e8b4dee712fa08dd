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
    Status::new(code, bounded(error.to_string()))
}

/// Longest message a status carries. Messages quote callers' values shortened already; this
/// bounds what is left (an API server's message quoting them back, say), as a grpc-message is a
/// header the caller's client must hold.
const MAX_MESSAGE_BYTES: usize = 1024;

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}
