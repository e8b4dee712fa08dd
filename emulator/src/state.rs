//! The state every request handler shares: the store, the token signer, credentials and fault knobs.

use std::sync::{Mutex, MutexGuard};

use crate::store::Store;
use crate::tokens::Signer;

/// Everything a request handler needs, behind one `Arc`.
#[derive(Debug)]
pub struct Shared {
    /// The stored objects.
    pub store: Mutex<Store>,
    /// The service-account token key.
    pub signer: Signer,
    /// The bearer token of user `admin` (group `system:masters`).
    pub admin_token: String,
    /// PEM of the emulator's CA.
    pub ca_pem: String,
    /// The CA's certificate and key, for the CSR API's signers.
    pub ca: crate::certificates::ClusterCa,
    /// Whether requests without credentials are treated as `system:anonymous` (else 401).
    pub anonymous_auth: bool,
    /// Like `--service-account-max-token-expiration`: longer TokenRequests are silently shortened.
    pub max_token_seconds: Option<i64>,
}

impl Shared {
    /// Locks the store, recovering from a poisoned lock (a panicking handler leaves no half-written object).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}
