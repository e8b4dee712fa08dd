//! Typed client for tokend, the gRPC service that issues, revokes, validates and lists Kubernetes
//! ServiceAccount tokens and renders kubeconfigs for them.
//!
//! - [`v1`]: the types and client generated from `proto/tokend/v1/*.proto`.
//! - [`TokendClient`]: connection setup (bearer token or token file, TLS) and one method per RPC,
//!   with errors that keep the gRPC code, the server's message and its `google.rpc.Status`
//!   details ([`Error::reason`], [`Error::field_violations`], [`Error::retry_delay`]).
//! - [`duration`]: the API's duration strings (`"2h45m"`) to and from [`std::time::Duration`].
//!
//! The `cli` feature (on by default) adds the `tokenctl` command line; turn default features off
//! to depend on the client alone.
//!
//! # Connecting
//!
//! ```no_run
//! use tokend_client::TokendClient;
//!
//! # async fn example() -> Result<(), tokend_client::Error> {
//! // In a pod: the projected ServiceAccount token, re-read on every call as it rotates.
//! let client = TokendClient::builder("https://tokend.tokend-system.svc:50051")
//!     .token_file("/var/run/secrets/kubernetes.io/serviceaccount/token")
//!     .tls(Some(std::fs::read("/etc/tokend/ca.crt").unwrap_or_default()), None)
//!     .connect()
//!     .await?;
//! # let _ = client;
//! # Ok(())
//! # }
//! ```
//!
//! # IssueToken
//!
//! ```no_run
//! use tokend_client::{v1, TokendClient};
//!
//! # async fn example() -> Result<(), tokend_client::Error> {
//! let client = TokendClient::builder("http://127.0.0.1:50051")
//!     .bearer_token(std::env::var("TOKEND_TOKEN").unwrap_or_default())
//!     .connect()
//!     .await?;
//! let issued = client
//!     .issue_token(v1::IssueTokenRequest {
//!         namespace: "team-a".into(),
//!         service_account: "ci".into(),
//!         duration: "2h45m".into(),
//!         create_service_account: true,
//!         cluster_role: "view".into(),
//!         binding_scope: v1::BindingScope::Namespace.into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("token id {} expires {:?}", issued.token_id, issued.expiration_time);
//! # Ok(())
//! # }
//! ```
//!
//! # RevokeToken
//!
//! ```no_run
//! use tokend_client::{v1, TokendClient};
//!
//! # async fn example(client: TokendClient, token_id: String) -> Result<(), tokend_client::Error> {
//! let revoked = client
//!     .revoke_token(v1::RevokeTokenRequest {
//!         target: Some(v1::revoke_token_request::Target::TokenId(token_id)),
//!     })
//!     .await?;
//! println!("revoked {}/{}", revoked.namespace, revoked.service_account);
//! # Ok(())
//! # }
//! ```
//!
//! # GetKubeconfig
//!
//! ```no_run
//! use tokend_client::{v1, TokendClient};
//!
//! # async fn example(client: TokendClient) -> Result<(), tokend_client::Error> {
//! let response = client
//!     .get_kubeconfig(v1::GetKubeconfigRequest {
//!         source: Some(v1::get_kubeconfig_request::Source::Issue(v1::IssueTokenRequest {
//!             namespace: "team-a".into(),
//!             service_account: "ci".into(),
//!             duration: "8h".into(),
//!             ..Default::default()
//!         })),
//!         server: "https://k8s.example.com:6443".into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! std::fs::write("kubeconfig", response.kubeconfig).ok();
//! # Ok(())
//! # }
//! ```
//!
//! # ValidateToken
//!
//! ```no_run
//! use tokend_client::{v1, TokendClient};
//!
//! # async fn example(client: TokendClient, token: String) -> Result<(), tokend_client::Error> {
//! let review = client
//!     .validate_token(v1::ValidateTokenRequest { token, audiences: vec![] })
//!     .await?;
//! if review.authenticated {
//!     println!("{} in {:?}", review.username, review.groups);
//! } else {
//!     println!("rejected: {}", review.error);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # ListTokens
//!
//! ```no_run
//! use tokend_client::{v1, TokendClient};
//!
//! # async fn example(client: TokendClient) -> Result<(), tokend_client::Error> {
//! let list = client
//!     .list_tokens(v1::ListTokensRequest {
//!         namespace: "team-a".into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! for record in list.tokens {
//!     println!("{} {} {:?}", record.token_id, record.service_account, record.state());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # GetToken
//!
//! ```no_run
//! use tokend_client::{v1, Error, TokendClient};
//!
//! # async fn example(client: TokendClient, token_id: String) -> Result<(), Error> {
//! match client.get_token(v1::GetTokenRequest { token_id }).await {
//!     Ok(response) => println!("{:?}", response.token),
//!     Err(error) if error.code() == tonic::Code::NotFound => println!("no such token"),
//!     Err(error) => return Err(error),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Errors a program can act on
//!
//! ```no_run
//! use tokend_client::{v1, Error, TokendClient};
//!
//! # async fn example(client: TokendClient, request: v1::IssueTokenRequest) -> Result<(), Error> {
//! match client.issue_token(request).await {
//!     Ok(issued) => println!("granted {:?}", issued.granted_lifetime),
//!     Err(error) if error.reason() == Some("DURATION_OVER_MAXIMUM") => {
//!         println!("at most {:?} seconds", error.metadata("maximum_seconds"));
//!     }
//!     Err(error) if error.error_reason() == Some(v1::ErrorReason::InvalidFields) => {
//!         for v in error.field_violations() {
//!             println!("{}: {} ({})", v.field, v.description, v.reason);
//!         }
//!     }
//!     Err(error) => match error.retry_delay() {
//!         Some(delay) => println!("try again in {delay:?}"),
//!         None => return Err(error),
//!     },
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod client;
mod error;
mod node_credentials;
#[cfg(feature = "source")]
mod token_source;

#[cfg(feature = "cli")]
pub mod cli;

pub use client::{BearerAuth, RawClient, TokendClient, TokendClientBuilder};
pub use error::{DOMAIN, Error, ErrorDetails, FieldViolation, Result};
#[cfg(feature = "source")]
pub use token_source::{CurrentToken, RenewalPolicy, TokenSource};

/// The `tokend.v1` API as generated from `proto/tokend/v1/token_service.proto` (by
/// [`tokend_api`]): messages, enums and the raw
/// [`TokenServiceClient`](v1::token_service_client::TokenServiceClient).
pub use tokend_api::v1;

/// The API's duration strings (`"2h45m"`) to and from [`std::time::Duration`].
pub use tokend_api::duration;
