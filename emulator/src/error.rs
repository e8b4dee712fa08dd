//! The crate's one error type, returned by everything that sets the emulator up or talks to it.

use std::net::SocketAddr;

/// Everything that can go wrong while starting, configuring or connecting to the emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Generating the CA or the server certificate failed.
    #[error("cannot generate the emulator's certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Building the TLS server configuration failed.
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Generating or encoding the service-account signing key failed.
    #[error("cannot generate the token signing key: {0}")]
    SigningKey(String),
    /// Signing a token failed.
    #[error("cannot sign a token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Reading or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The kubeconfig could not be turned into a client configuration.
    #[error("invalid kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The kube client could not be built.
    #[error("cannot build a kube client: {0}")]
    Client(#[from] kube::Error),
    /// The kubeconfig could not be rendered as YAML.
    #[error("cannot render the kubeconfig as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}
