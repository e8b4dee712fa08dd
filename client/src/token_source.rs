//! [`TokenSource`]: a handle that keeps a valid token from tokend for one target, for services.
//! A background task renews the token at a set fraction of its lifetime (with jitter, so many
//! replicas do not renew at once), retries failures with exponential backoff, never hands out
//! an expired token, and can revoke the last token on shutdown. [`TokenSource::kube_client`]
//! gives a `kube::Client` that sends the current token on every request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::TokendClient;
use crate::error::Result;
use crate::v1;

/// A token is never handed out within this margin of its expiry.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// The token a source holds now.
#[derive(Clone)]
pub struct CurrentToken {
    token: Arc<str>,
    /// Its record's id.
    pub token_id: String,
    /// When tokend said it was issued (this process's clock).
    pub issued_at: SystemTime,
    /// When it expires, as the API server set it.
    pub expires_at: SystemTime,
}

impl CurrentToken {
    /// The bearer token, or None once it is within a few seconds of expiring.
    pub fn token(&self) -> Option<&str> {
        (SystemTime::now() + EXPIRY_MARGIN < self.expires_at).then_some(&*self.token)
    }
}

impl std::fmt::Debug for CurrentToken {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentToken")
            .field("token_id", &self.token_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// How a [`TokenSource`] renews.
#[derive(Debug, Clone)]
pub struct RenewalPolicy {
    /// Renew once this fraction of the lifetime has passed (0 < f < 1; default 0.5).
    pub fraction: f64,
    /// Spread of the renewal point, as a fraction of the lifetime either way (default 0.05).
    pub jitter: f64,
    /// First retry delay after a failed renewal (default 1 s), doubled up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay (default 30 s).
    pub max_backoff: Duration,
    /// Revoke the current token when [`TokenSource::shutdown`] is called (default false).
    pub revoke_on_shutdown: bool,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        Self {
            fraction: 0.5,
            jitter: 0.05,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            revoke_on_shutdown: false,
        }
    }
}

impl RenewalPolicy {
    /// When to renew a token issued at `issued` that expires at `expires`.
    fn renew_at(&self, issued: SystemTime, expires: SystemTime) -> SystemTime {
        let lifetime = expires.duration_since(issued).unwrap_or_default();
        let spread = self.jitter.clamp(0.0, 0.5) * rand::rng().random_range(-1.0..=1.0);
        let at = (self.fraction + spread).clamp(0.001, 0.95);
        issued + lifetime.mul_f64(at)
    }
}

/// Keeps a valid token for one IssueToken request. Dropping it stops renewing (without
/// revoking); [`shutdown`](Self::shutdown) stops and revokes when the policy says so.
pub struct TokenSource {
    current: watch::Receiver<CurrentToken>,
    stop: Arc<Notify>,
    task: JoinHandle<()>,
    client: TokendClient,
    revoke_on_shutdown: bool,
}

impl TokenSource {
    /// Issues the first token for `request` (failing as IssueToken fails) and starts renewing.
    ///
    /// # Errors
    ///
    /// As [`TokendClient::issue_token`].
    pub async fn start(
        client: TokendClient,
        request: v1::IssueTokenRequest,
        policy: RenewalPolicy,
    ) -> Result<Self> {
        let first = issue(&client, &request).await?;
        let (tx, current) = watch::channel(first);
        let stop = Arc::new(Notify::new());
        let revoke_on_shutdown = policy.revoke_on_shutdown;
        let task = tokio::spawn(renew_loop(
            client.clone(),
            request,
            policy,
            tx,
            Arc::clone(&stop),
        ));
        Ok(Self {
            current,
            stop,
            task,
            client,
            revoke_on_shutdown,
        })
    }

    /// The current token, or None when renewing has failed until it (nearly) expired.
    pub fn token(&self) -> Option<String> {
        self.current.borrow().token().map(str::to_owned)
    }

    /// The current token and its facts.
    pub fn current(&self) -> CurrentToken {
        self.current.borrow().clone()
    }

    /// When the current token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.current.borrow().expires_at
    }

    /// A receiver that sees every renewal.
    pub fn subscribe(&self) -> watch::Receiver<CurrentToken> {
        self.current.clone()
    }

    /// A `kube::Client` for `config`'s cluster that authenticates with this source's current
    /// token on every request (the config's own credentials are dropped). After the source
    /// stops, requests carry the last token until it expires, then none.
    ///
    /// # Errors
    ///
    /// When kube-rs cannot build a client from `config` (TLS setup).
    #[cfg(feature = "kube")]
    pub fn kube_client(&self, mut config: kube::Config) -> kube::Result<kube::Client> {
        config.auth_info = Default::default();
        let current = self.current.clone();
        let authorize = tower::util::MapRequestLayer::new(
            move |mut request: http::Request<kube::client::Body>| {
                let header = current
                    .borrow()
                    .token()
                    .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok());
                if let Some(mut value) = header {
                    value.set_sensitive(true);
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, value);
                }
                request
            },
        );
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&authorize)
            .build())
    }

    /// Stops renewing and, when the policy says so, revokes the current token.
    ///
    /// # Errors
    ///
    /// As [`TokendClient::revoke_token`]; a token already gone (NOT_FOUND) is not an error.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop.notify_one();
        let _ = (&mut self.task).await;
        if !self.revoke_on_shutdown {
            return Ok(());
        }
        let token_id = self.current.borrow().token_id.clone();
        match self
            .client
            .revoke_token(v1::RevokeTokenRequest {
                target: Some(v1::revoke_token_request::Target::TokenId(token_id)),
            })
            .await
        {
            Err(e) if e.code() != tonic::Code::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for TokenSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn issue(client: &TokendClient, request: &v1::IssueTokenRequest) -> Result<CurrentToken> {
    let issued_at = SystemTime::now();
    let response = client.issue_token(request.clone()).await?;
    let expires_at = response
        .expiration_time
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(issued_at);
    Ok(CurrentToken {
        token: response.token.into(),
        token_id: response.token_id,
        issued_at,
        expires_at,
    })
}

/// Sleeps until the renewal point, issues, publishes; on failure retries with backoff (never
/// sleeping past the current token's expiry margin), until stopped.
async fn renew_loop(
    client: TokendClient,
    request: v1::IssueTokenRequest,
    policy: RenewalPolicy,
    tx: watch::Sender<CurrentToken>,
    stop: Arc<Notify>,
) {
    let mut backoff = policy.min_backoff;
    let mut next = {
        let current = tx.borrow();
        policy.renew_at(current.issued_at, current.expires_at)
    };
    loop {
        let wait = next.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::select! {
            () = stop.notified() => return,
            () = tokio::time::sleep(wait) => {}
        }
        match issue(&client, &request).await {
            Ok(fresh) => {
                backoff = policy.min_backoff;
                next = policy.renew_at(fresh.issued_at, fresh.expires_at);
                tx.send_replace(fresh);
            }
            // The crate does not log: a renewal failing until expiry shows as `token()`
            // answering None. The error is dropped so nothing near the token is printed.
            Err(_) => {
                next = SystemTime::now() + backoff;
                backoff = (backoff * 2).min(policy.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_renewal_point_is_the_fraction_give_or_take_the_jitter() {
        let policy = RenewalPolicy::default();
        let issued = SystemTime::UNIX_EPOCH;
        let expires = issued + Duration::from_secs(1000);
        for _ in 0..100 {
            let at = policy.renew_at(issued, expires);
            let secs = at
                .duration_since(issued)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            assert!((450.0..=550.0).contains(&secs), "{secs}");
        }
    }

    #[test]
    fn an_expiring_token_is_not_handed_out() {
        let now = SystemTime::now();
        let token = CurrentToken {
            token: "t".into(),
            token_id: "id".into(),
            issued_at: now,
            expires_at: now + Duration::from_secs(5),
        };
        assert_eq!(token.token(), None);
        let later = CurrentToken {
            expires_at: now + Duration::from_secs(600),
            ..token
        };
        assert_eq!(later.token(), Some("t"));
        assert!(
            !format!("{later:?}").contains("\"t\""),
            "Debug hides the token"
        );
    }
}
