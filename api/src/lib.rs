//! tokend's API as both sides share it: the code generated once from
//! `proto/tokend/v1/*.proto` ([`v1`]: messages, enums, the server trait, the client,
//! and the descriptor set for reflection) and the API's duration grammar ([`duration`]).

pub mod duration;

/// The generated `tokend.v1` code: messages, enums, the
/// [`TokenService`](v1::token_service_server::TokenService) server trait and the raw
/// [`TokenServiceClient`](v1::token_service_client::TokenServiceClient).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("tokend.v1");

    /// Descriptor set of the proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tokend_descriptor");
}
