//! Accepting connections, for every listener (gRPC, the admission webhook): at most a configured
//! number open at once (further clients wait in the listen backlog) and at most a configured
//! number from one address (further ones are closed at once), TCP_NODELAY on each, and an
//! optional per-connection setup step (the TLS handshake) run off the accept loop within a time
//! bound. [`serve_http`] serves HTTP on such connections with header, idle and request
//! timeouts, so a client that opens connections and sends nothing, or half a request, holds a
//! slot for seconds, not forever.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// How many connections may be open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionBounds {
    /// In all.
    pub total: usize,
    /// From one client address: one client cannot take every slot, or hold more than this many
    /// connections' worth of streams.
    pub per_address: usize,
    /// Longest the per-connection setup (the TLS handshake) may take.
    pub setup_timeout: Duration,
}

/// Open connections per client address; an address leaves the map with its last connection.
type OpenPerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection counted against its address, until dropped.
struct AddressSlot {
    open: OpenPerAddress,
    ip: IpAddr,
}

impl AddressSlot {
    fn take(open: &OpenPerAddress, ip: IpAddr, max: usize) -> Option<Self> {
        let mut map = open.lock().ok()?;
        let count = map.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self {
            open: open.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.open.lock()
            && let Some(count) = map.get_mut(&self.ip)
        {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// A connection that holds one of the server's connection slots, and one of its address's,
/// until it is dropped.
pub struct LimitedConnection<T> {
    inner: T,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
    _address: AddressSlot,
}

impl<T> LimitedConnection<T> {
    /// What the connection is doing, for [`serve_http`]'s timeouts.
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LimitedConnection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received(Instant::now());
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LimitedConnection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<T: Connected> Connected for LimitedConnection<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Accepts connections on `listener` within `bounds`, sets TCP_NODELAY, and runs `establish` on
/// each off the accept loop (None, or taking longer than `bounds.setup_timeout`, drops the
/// connection); the loop ends when the server drops the stream.
pub fn incoming<T, F, Fut>(
    listener: TcpListener,
    bounds: ConnectionBounds,
    establish: F,
) -> ReceiverStream<io::Result<LimitedConnection<T>>>
where
    T: Send + 'static,
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<T>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(bounds.total.max(1)));
    let open: OpenPerAddress = Arc::default();
    tokio::spawn(async move {
        loop {
            // A slot first: at the limit, clients wait in the kernel's backlog, costing nothing here.
            let slot = tokio::select! {
                () = tx.closed() => return,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            let accepted = tokio::select! {
                () = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let Some(address) = AddressSlot::take(&open, peer.ip(), bounds.per_address.max(1))
            else {
                tracing::debug!(%peer, "connection refused: too many open from this address");
                continue;
            };
            // Without TCP_NODELAY a unary answer waits ~40 ms for Nagle and delayed ACKs.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
            }
            let setup = tokio::time::timeout(bounds.setup_timeout, establish(tcp, peer));
            let tx = tx.clone();
            tokio::spawn(async move {
                match setup.await {
                    Ok(Some(inner)) => {
                        let _ = tx
                            .send(Ok(LimitedConnection {
                                inner,
                                activity: Arc::new(Activity::new(Instant::now())),
                                _slot: slot,
                                _address: address,
                            }))
                            .await;
                    }
                    Ok(None) => {}
                    Err(_) => tracing::debug!(%peer, "connection setup (TLS handshake) timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// How long an HTTP connection may spend in each state before it is closed.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// From the first byte of a request to its complete header (no request in flight).
    pub header: Duration,
    /// With no request in flight and nothing received since the last one.
    pub idle: Duration,
    /// One request, from its header to its answer (its body read included).
    pub request: Duration,
}

/// What a connection is doing: requests in flight, and since when it has been idle or receiving
/// an unfinished request.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<ActivityState>,
}

#[derive(Debug, Clone, Copy)]
struct ActivityState {
    in_flight: usize,
    idle_since: Instant,
    receiving_since: Option<Instant>,
}

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Nothing received, no request in flight, for the idle timeout.
    Idle,
    /// A request started arriving and its header did not complete in time.
    Header,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: now,
                receiving_since: None,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut ActivityState) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    fn received(&self, now: Instant) {
        self.with(|s| {
            if s.in_flight == 0 && s.receiving_since.is_none() {
                s.receiving_since = Some(now);
            }
        });
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.with(|s| {
            s.in_flight += 1;
            s.receiving_since = None;
        });
        InFlight(self.clone())
    }

    /// At `now`: `Ok(when to look again)`, or why the connection must close.
    pub fn check(&self, now: Instant, timeouts: &HttpTimeouts) -> Result<Instant, Expired> {
        let state = self.with(|s| *s);
        if state.in_flight > 0 {
            // The request timeout bounds what is in flight; look again after the shortest bound.
            return Ok(now + timeouts.header.min(timeouts.idle));
        }
        if let Some(since) = state.receiving_since {
            let deadline = since + timeouts.header;
            return if now >= deadline {
                Err(Expired::Header)
            } else {
                Ok(deadline)
            };
        }
        let deadline = state.idle_since + timeouts.idle;
        if now >= deadline {
            Err(Expired::Idle)
        } else {
            Ok(deadline)
        }
    }
}

/// One request in flight on a connection, until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = Instant::now();
        self.0.with(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = now;
                s.receiving_since = None;
            }
        });
    }
}

/// A service counting its requests against the connection's [`Activity`] and answering 408 to
/// one that outlives the request timeout (a body sent a byte at a time, for instance).
#[derive(Clone)]
struct Timed<S> {
    inner: S,
    activity: Arc<Activity>,
    request_timeout: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for Timed<S>
where
    S: tower::Service<
            http::Request<B>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let in_flight = self.activity.request_started();
        let answer = self.inner.call(request);
        let limit = self.request_timeout;
        Box::pin(async move {
            let _in_flight = in_flight;
            match tokio::time::timeout(limit, answer).await {
                Ok(answer) => answer,
                Err(_) => {
                    use axum::response::IntoResponse as _;
                    Ok((http::StatusCode::REQUEST_TIMEOUT, "request timeout").into_response())
                }
            }
        })
    }
}

/// How long a connection being closed for a timeout may take to say goodbye (HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` over HTTP/1.1 and HTTP/2 on every connection `incoming` yields, each bounded
/// by `timeouts`, until `shutdown` resolves or the stream ends.
pub async fn serve_http<T>(
    mut incoming: ReceiverStream<io::Result<LimitedConnection<T>>>,
    router: axum::Router,
    timeouts: HttpTimeouts,
    shutdown: impl Future<Output = ()> + Send,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            () = &mut shutdown => break,
            next = incoming.next() => match next {
                Some(Ok(connection)) => connection,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "connection failed");
                    continue;
                }
                None => break,
            },
        };
        tokio::spawn(serve_connection(connection, router.clone(), timeouts));
    }
}

async fn serve_connection<T>(
    connection: LimitedConnection<T>,
    router: axum::Router,
    timeouts: HttpTimeouts,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let activity = connection.activity();
    let service = hyper_util::service::TowerToHyperService::new(Timed {
        inner: router,
        activity: activity.clone(),
        request_timeout: timeouts.request,
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let served = builder.serve_connection(TokioIo::new(connection), service);
    tokio::pin!(served);
    loop {
        let next = match activity.check(Instant::now(), &timeouts) {
            Ok(next) => next,
            Err(why) => {
                tracing::debug!(
                    ?why,
                    "closing a connection that sent no complete request in time"
                );
                served.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, served.as_mut()).await;
                return;
            }
        };
        tokio::select! {
            ended = served.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_expires_when_idle_or_when_a_header_is_too_slow() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let timeouts = HttpTimeouts {
            header: s(10),
            idle: s(30),
            request: s(30),
        };
        let activity = Arc::new(Activity::new(t0));
        assert_eq!(activity.check(t0, &timeouts), Ok(t0 + s(30)));
        assert_eq!(activity.check(t0 + s(30), &timeouts), Err(Expired::Idle));
        // Half a header arrives: it has the header timeout from its first byte.
        activity.received(t0 + s(5));
        activity.received(t0 + s(9));
        assert_eq!(activity.check(t0 + s(14), &timeouts), Ok(t0 + s(15)));
        assert_eq!(activity.check(t0 + s(15), &timeouts), Err(Expired::Header));
        // A request in flight is the request timeout's business; after it, idle again.
        let request = activity.request_started();
        assert!(activity.check(t0 + s(100), &timeouts).is_ok());
        drop(request);
        let after = activity
            .check(Instant::now(), &timeouts)
            .expect("idle, not expired");
        assert!(after > Instant::now() + s(29));
    }
}
