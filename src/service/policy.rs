//! tokend's own policy, applied on top of Kubernetes RBAC: it can only narrow what a caller may do.

use std::time::Duration;

use tokend_api::duration::{format_duration, parse_duration};

use super::error::{Error, Failure, Violations};
use super::reason::Reason;
use crate::vocabulary::MIN_TOKEN_SECONDS;

/// A lifetime given as a google.protobuf.Duration's parts, not yet checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GivenLifetime {
    /// Whole seconds (negative is refused).
    pub seconds: i64,
    /// Nanoseconds (anything but 0 is refused: tokens live whole seconds).
    pub nanos: i32,
}

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
    /// The lifetime a request asks for: `text` in the duration grammar or `given` (a
    /// google.protobuf.Duration's parts), at most one of them, else the default. Breaking the
    /// grammar, the API server's minimum, or setting both is recorded in `violations` (under
    /// `text_field` / `given_field`); the maximum is [`Policy::check_maximum`]'s, as it is this
    /// server's policy rather than a rule of the field.
    pub fn requested_lifetime(
        &self,
        (text_field, text): (&str, &str),
        (given_field, given): (&str, Option<GivenLifetime>),
        violations: &mut Violations,
    ) -> Option<Duration> {
        let minimum = || {
            format!(
                "is shorter than the minimum of {} the API server accepts",
                format_duration(Duration::from_secs(MIN_TOKEN_SECONDS))
            )
        };
        match (text.is_empty(), given) {
            (true, None) => Some(self.default_duration),
            (false, Some(_)) => {
                let rule = format!("set {text_field} or {given_field}, not both");
                violations.add(text_field, Reason::FieldsMutuallyExclusive, &rule);
                violations.add(given_field, Reason::FieldsMutuallyExclusive, rule);
                None
            }
            (false, None) => {
                let duration = violations.check(
                    text_field,
                    Reason::DurationInvalid,
                    parse_duration(text).map_err(|e| format!("{e} (e.g. 1h, 2h45m, 3w)")),
                )?;
                if duration.as_secs() < MIN_TOKEN_SECONDS {
                    violations.add(
                        text_field,
                        Reason::DurationUnderMinimum,
                        format!("{} {}", crate::names::echo(text), minimum()),
                    );
                    return None;
                }
                Some(duration)
            }
            (true, Some(given)) => {
                if given.seconds < 0 || given.nanos != 0 {
                    violations.add(
                        given_field,
                        Reason::DurationInvalid,
                        "must be a positive whole number of seconds",
                    );
                    return None;
                }
                let duration = Duration::from_secs(given.seconds.unsigned_abs());
                if duration.as_secs() < MIN_TOKEN_SECONDS {
                    violations.add(
                        given_field,
                        Reason::DurationUnderMinimum,
                        format!("{}s {}", given.seconds, minimum()),
                    );
                    return None;
                }
                Some(duration)
            }
        }
    }

    /// Refuses a lifetime over `--max-duration`.
    pub fn check_maximum(&self, lifetime: Duration, field: &str) -> Result<(), Error> {
        if lifetime <= self.max_duration {
            return Ok(());
        }
        Err(over_maximum(
            field,
            lifetime,
            self.max_duration,
            "(--max-duration)",
        ))
    }

    /// The lifetime for a request's `duration` text alone (tests and callers without the
    /// Duration form): the default when empty, else checked against minimum and maximum.
    pub fn token_lifetime(&self, text: &str) -> Result<Duration, Error> {
        let mut violations = Violations::default();
        let lifetime =
            self.requested_lifetime(("duration", text), ("lifetime", None), &mut violations);
        violations.into_result()?;
        let lifetime = lifetime.unwrap_or(self.default_duration);
        self.check_maximum(lifetime, "duration")?;
        Ok(lifetime)
    }

    /// Refuses namespaces outside `--allowed-namespaces`.
    pub fn check_namespace(&self, namespace: &str) -> Result<(), Error> {
        if self.allowed_namespaces.is_empty()
            || self.allowed_namespaces.iter().any(|n| n == namespace)
        {
            Ok(())
        } else {
            Err(Error::FailedPrecondition(
                Failure::new(
                    Reason::NamespaceNotAllowed,
                    format!(
                        "namespace \"{namespace}\" is not in this server's allowed namespaces ({})",
                        self.allowed_namespaces.join(", ")
                    ),
                )
                .with("namespace", namespace),
            ))
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
            Err(Error::FailedPrecondition(
                Failure::new(
                    Reason::ClusterRoleNotAllowed,
                    format!(
                        "cluster_role \"{role}\" is not in this server's allowed cluster roles ({})",
                        self.allowed_cluster_roles.join(", ")
                    ),
                )
                .with("cluster_role", role),
            ))
        }
    }
}

/// The refusal of a `lifetime` asked for in `field` that is longer than the `maximum` this server
/// allows, where `allows` names the limit (its flag, and what it limits when that is not tokens).
/// A refusal of this server's policy rather than of the field's rules, so FAILED_PRECONDITION
/// with the maximum in seconds for programs.
pub(super) fn over_maximum(
    field: &str,
    lifetime: Duration,
    maximum: Duration,
    allows: &str,
) -> Error {
    Error::FailedPrecondition(
        Failure::new(
            Reason::DurationOverMaximum,
            format!(
                "{field} {} exceeds the maximum of {} this server allows {allows}",
                format_duration(lifetime),
                describe(maximum)
            ),
        )
        .with("field", field)
        .with("maximum", format_duration(maximum))
        .with("maximum_seconds", maximum.as_secs().to_string()),
    )
}

/// Refuses a call of a credential kind the operator has not switched on (`flag`): nothing else
/// about the request is looked at, and nothing is read or written in the cluster.
pub(super) fn require_enabled(enabled: bool, what: &str, flag: &str) -> Result<(), Error> {
    if enabled {
        return Ok(());
    }
    Err(Error::FailedPrecondition(
        Failure::new(
            Reason::FeatureDisabled,
            format!(
                "{what} are switched off on this server; the operator turns them on with {flag}"
            ),
        )
        .with("flag", flag),
    ))
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
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            policy.token_lifetime("0"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            policy.token_lifetime("1.5h"),
            Err(Error::InvalidArgument(_))
        ));
        match policy.token_lifetime("8h1s") {
            Err(Error::FailedPrecondition(f)) => {
                assert!(f.message.contains("8h"), "{}", f.message);
                assert_eq!(f.reason, Reason::DurationOverMaximum);
            }
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
    }

    #[test]
    fn duration_and_lifetime_are_alternatives() {
        let policy = Policy::default();
        let ask = |text: &str, given: Option<GivenLifetime>| {
            let mut v = Violations::default();
            let got = policy.requested_lifetime(("duration", text), ("lifetime", given), &mut v);
            (
                got,
                v.0.iter()
                    .map(|v| (v.field.clone(), v.reason))
                    .collect::<Vec<_>>(),
            )
        };
        let hour = GivenLifetime {
            seconds: 3600,
            nanos: 0,
        };
        assert_eq!(ask("", Some(hour)).0, Some(Duration::from_secs(3600)));
        assert_eq!(
            ask("1h", Some(hour)).1,
            [
                ("duration".to_owned(), Reason::FieldsMutuallyExclusive),
                ("lifetime".to_owned(), Reason::FieldsMutuallyExclusive)
            ]
        );
        let fractional = GivenLifetime {
            seconds: 3600,
            nanos: 5,
        };
        assert_eq!(
            ask("", Some(fractional)).1,
            [("lifetime".to_owned(), Reason::DurationInvalid)]
        );
        let short = GivenLifetime {
            seconds: 60,
            nanos: 0,
        };
        assert_eq!(
            ask("", Some(short)).1,
            [("lifetime".to_owned(), Reason::DurationUnderMinimum)]
        );
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
