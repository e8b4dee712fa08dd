//! tokend-bench: a bounded load generator for tokend and the baselines a user would pick instead
//! (the same Kubernetes calls made directly with kube-rs, and `kubectl create token` per token),
//! with latency percentiles, throughput, API-call counts, peak RSS, a text / JSON report and a chart.

pub mod backend;
pub mod calls;
pub mod chart;
pub mod kubectl;
pub mod load;
pub mod memory;
pub mod raw;
pub mod report;
pub mod scale;
pub mod via_tokend;

use std::fmt;
use std::str::FromStr;

/// What a run drives: one way of getting a bound ServiceAccount token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The floor: tokend's own Kubernetes calls, made directly with kube-rs.
    Raw,
    /// `kubectl create token` as a process per token.
    Kubectl,
    /// IssueToken through tokend-client against tokend.
    Tokend,
    /// tokend's service layer called in-process, without gRPC (a diagnostic split).
    Service,
    /// IssueToken that tokend rejects before any Kubernetes call: the gRPC round trip alone.
    GrpcFloor,
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Mode; 5] = [
        Mode::Raw,
        Mode::Kubectl,
        Mode::Tokend,
        Mode::Service,
        Mode::GrpcFloor,
    ];

    /// The mode's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Kubectl => "kubectl",
            Mode::Tokend => "tokend",
            Mode::Service => "service",
            Mode::GrpcFloor => "grpc-floor",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown mode {s:?} (raw, kubectl, tokend, service, grpc-floor)")
            })
    }
}

/// What one operation is: a token issued, or a token issued and then revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Issue only.
    Issue,
    /// Issue, then revoke the same token; the latency is the pair's.
    IssueRevoke,
}

/// Something that issues and revokes tokens one way (directly, through tokend, or through its
/// service layer), so every mode's operation is the same loop.
pub trait Issuer: Clone + Send + Sync + 'static {
    /// Issues one token; answers what revoking it takes (a Secret name or a token_id).
    fn issue(&self) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// Revokes what [`Issuer::issue`] answered.
    fn revoke(&self, id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

impl Issuer for raw::RawIssuer {
    fn issue(&self) -> impl Future<Output = anyhow::Result<String>> + Send {
        raw::RawIssuer::issue(self)
    }
    fn revoke(&self, id: &str) -> impl Future<Output = anyhow::Result<()>> + Send {
        raw::RawIssuer::revoke(self, id)
    }
}

impl Issuer for via_tokend::TokendIssuer {
    fn issue(&self) -> impl Future<Output = anyhow::Result<String>> + Send {
        via_tokend::TokendIssuer::issue(self)
    }
    fn revoke(&self, id: &str) -> impl Future<Output = anyhow::Result<()>> + Send {
        via_tokend::TokendIssuer::revoke(self, id)
    }
}

impl Issuer for via_tokend::ServiceIssuer {
    fn issue(&self) -> impl Future<Output = anyhow::Result<String>> + Send {
        via_tokend::ServiceIssuer::issue(self)
    }
    fn revoke(&self, id: &str) -> impl Future<Output = anyhow::Result<()>> + Send {
        via_tokend::ServiceIssuer::revoke(self, id)
    }
}

/// The lifetime asked for every token: kubectl's `--duration=1h`, and tokend's default.
pub const TOKEN_DURATION: &str = "1h";
/// The same lifetime in seconds, for the raw TokenRequest.
pub const TOKEN_SECONDS: i64 = 3600;
