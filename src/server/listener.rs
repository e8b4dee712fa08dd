//! Accepting gRPC connections: at most a configured number open at once (further clients wait in
//! the listen backlog) and at most a configured number from one address (further ones are closed
//! at once), TCP_NODELAY on each, and an optional per-connection setup step (the TLS handshake)
//! run off the accept loop.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    _slot: OwnedSemaphorePermit,
    _address: AddressSlot,
}

impl<T: AsyncRead + Unpin> AsyncRead for LimitedConnection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
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
/// each off the accept loop (None drops the connection); the loop ends when the server drops
/// the stream.
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
            let setup = establish(tcp, peer);
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(inner) = setup.await {
                    let _ = tx
                        .send(Ok(LimitedConnection {
                            inner,
                            _slot: slot,
                            _address: address,
                        }))
                        .await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
