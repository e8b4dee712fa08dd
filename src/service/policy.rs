//! tokend's own policy, applied on top of Kubernetes RBAC: it can only narrow what a caller may do.

use std::time::Duration;

use tokend_api::duration::{format_duration, parse_duration};

use super::error::Error;
use crate::vocabulary::MIN_TOKEN_SECONDS;

/// Limits set by the operator at start.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Lifetime of a token whose request names none.
    pub default_duration: Duration,
    /// Longest lifetime a caller may ask for.
    pub max_duration: Duration,
    /// Namespaces tokens may be issued in; empty means all.
    pub allowed_namespaces: Vec<String>,
    /// ClusterRoles a ServiceAccount may be bound to through tokend; `*` means any.
    pub allowed_cluster_roles: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            default_duration: Duration::from_secs(3600),
            max_duration: Duration::from_secs(8760 * 3600),
            allowed_namespaces: Vec::new(),
            allowed_cluster_roles: crate::vocabulary::DEFAULT_ALLOWED_CLUSTER_ROLES
                .split(',')
                .map(str::to_owned)
                .collect(),
        }
    }
}

impl Policy {
    /// The lifetime for a request's `duration` text: the default when empty, else parsed and
    /// checked against the API server's minimum and this policy's maximum.
    pub fn token_lifetime(&self, text: &str) -> Result<Duration, Error> {
        if text.is_empty() {
            return Ok(self.default_duration);
        }
        let duration = parse_duration(text)
            .map_err(|e| Error::invalid("duration", format!("{e} (e.g. 1h, 2h45m, 3w)")))?;
        if duration.as_secs() < MIN_TOKEN_SECONDS {
            return Err(Error::invalid(
                "duration",
                format!(
                    "{} is shorter than the minimum of {} the API server accepts",
                    crate::names::echo(text),
                    format_duration(Duration::from_secs(MIN_TOKEN_SECONDS))
                ),
            ));
        }
        if duration > self.max_duration {
            return Err(Error::FailedPrecondition(format!(
                "duration {} exceeds the maximum of {} this server allows (--max-duration)",
                crate::names::echo(text),
                describe(self.max_duration)
            )));
        }
        Ok(duration)
    }

    /// Refuses namespaces outside `--allowed-namespaces`.
    pub fn check_namespace(&self, namespace: &str) -> Result<(), Error> {
        if self.allowed_namespaces.is_empty()
            || self.allowed_namespaces.iter().any(|n| n == namespace)
        {
            Ok(())
        } else {
            Err(Error::FailedPrecondition(format!(
                "namespace \"{namespace}\" is not in this server's allowed namespaces ({})",
                self.allowed_namespaces.join(", ")
            )))
        }
    }

    /// Refuses ClusterRoles outside `--allowed-cluster-roles`.
    pub fn check_cluster_role(&self, role: &str) -> Result<(), Error> {
        if self
            .allowed_cluster_roles
            .iter()
            .any(|r| r == "*" || r == role)
        {
            Ok(())
        } else {
            Err(Error::FailedPrecondition(format!(
                "cluster_role \"{role}\" is not in this server's allowed cluster roles ({})",
                self.allowed_cluster_roles.join(", ")
            )))
        }
    }
}

/// A limit as people write it: whole hours as `8760h (1y)`, anything else canonically.
fn describe(limit: Duration) -> String {
    let canonical = format_duration(limit);
    let secs = limit.as_secs();
    if secs.is_multiple_of(3600) && format!("{}h", secs / 3600) != canonical {
        format!("{}h ({canonical})", secs / 3600)
    } else {
        canonical
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_duration_means_the_default() {
        assert_eq!(
            Policy::default().token_lifetime("").ok(),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn durations_are_checked_against_minimum_and_maximum() {
        let policy = Policy {
            max_duration: Duration::from_secs(8 * 3600),
            ..Policy::default()
        };
        assert_eq!(
            policy.token_lifetime("2h45m").ok(),
            Some(Duration::from_secs(9900))
        );
        assert_eq!(
            policy.token_lifetime("10m").ok(),
            Some(Duration::from_secs(600))
        );
        assert!(matches!(
            policy.token_lifetime("9m59s"),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            policy.token_lifetime("0"),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            policy.token_lifetime("1.5h"),
            Err(Error::InvalidArgument { .. })
        ));
        match policy.token_lifetime("8h1s") {
            Err(Error::FailedPrecondition(msg)) => assert!(msg.contains("8h"), "{msg}"),
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
    }

    #[test]
    fn allow_lists_narrow_namespaces_and_roles() {
        let policy = Policy {
            allowed_namespaces: vec!["a".into()],
            ..Policy::default()
        };
        assert!(policy.check_namespace("a").is_ok());
        assert!(policy.check_namespace("b").is_err());
        assert!(Policy::default().check_namespace("anything").is_ok());
        assert!(policy.check_cluster_role("view").is_ok());
        assert!(policy.check_cluster_role("cluster-admin").is_err());
        let any = Policy {
            allowed_cluster_roles: vec!["*".into()],
            ..Policy::default()
        };
        assert!(any.check_cluster_role("cluster-admin").is_ok());
    }
}
