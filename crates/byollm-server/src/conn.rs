//! The accept loop and each connection's life: a cap on open connections, a
//! header-read timeout and a keep-alive idle timeout, graceful shutdown.
//!
//! Invariants:
//! - At most [`ConnectionLimits::max_connections`] connections are open. At the
//!   cap the loop stops calling `accept`, so new connections wait in the kernel's
//!   backlog (nothing is refused, no descriptor is spent) until one closes.
//! - A connection that has not sent a complete request head within
//!   `header_read_timeout` of opening, or of its first byte after a response, is
//!   closed; so is a keep-alive connection idle for `keepalive_idle_timeout`. A
//!   connection with a request in flight (including a streaming response) is
//!   never closed by these timeouts. Idle sockets are thus the first to go and
//!   free their slot for health checks and real clients.
//! - An accept error never stops the server: descriptor exhaustion (`EMFILE`,
//!   `ENFILE`) and memory pressure back off and retry; per-connection errors
//!   (`ECONNABORTED`, …) retry at once.
//! - Shutdown: the loop stops accepting, every connection is told to finish its
//!   request in flight and close, and [`serve`] returns only when all have
//!   closed (the hook graceful draining builds on).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// Listen backlog of the public listener: connections the kernel completes
/// before the accept loop takes them. A burst of new connections (clients
/// opening more when answers slow down) beyond it is dropped at the SYN and
/// retried by the client a whole second later (`TcpExtListenOverflows`), which
/// turned a millisecond hiccup into seconds of latency under load.
/// `TcpListener::bind` listens with 128. The kernel caps the backlog at
/// `net.core.somaxconn` (4,096 on current Linux).
pub const LISTEN_BACKLOG: u32 = 8192;

/// Binds `addr` for the public listener, with [`LISTEN_BACKLOG`].
///
/// # Errors
/// When the socket cannot be made, bound or put to listening.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server rebinds at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connection cap when none is configured (also clamped to the descriptor limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time allowed for a complete request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default life of an idle keep-alive connection: above the 60 s of common load
/// balancers' idle timeouts, as nginx's 75 s is, so a proxy in front closes first.
pub const DEFAULT_KEEPALIVE_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Pause after an accept error that is not the peer's (descriptors or memory
/// exhausted): long enough not to spin, short enough to recover at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// `[server]` connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most open connections; `None`: [`DEFAULT_MAX_CONNECTIONS`]. Either way
    /// clamped below the process's descriptor limit (see [`Self::effective_max`]).
    pub max_connections: Option<usize>,
    /// Time allowed for a complete request head, from the connection's opening
    /// or from the first byte of a following request.
    pub header_read_timeout: Duration,
    /// Time an idle keep-alive connection (no request in flight, no byte of a
    /// next request) stays open.
    pub keepalive_idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            keepalive_idle_timeout: DEFAULT_KEEPALIVE_IDLE_TIMEOUT,
        }
    }
}

impl ConnectionLimits {
    /// The cap in force for a soft descriptor limit (`None`: unlimited): the
    /// configured or default cap, at most the limit minus a reserve of a quarter
    /// of it (64 to 1,024 descriptors) for the store pool, upstream sockets, the
    /// data files and the listener; at least 1.
    pub fn effective_max(&self, nofile: Option<u64>) -> usize {
        let wanted = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let Some(nofile) = nofile else {
            return wanted.max(1);
        };
        let reserve = (nofile / 4).clamp(64, 1024);
        let by_fds = usize::try_from(nofile.saturating_sub(reserve)).unwrap_or(usize::MAX);
        wanted.min(by_fds).max(1)
    }
}

/// The process's soft limit on open descriptors (`None`: unlimited).
pub fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raises the soft limit on open descriptors to the hard limit (the usual start
/// of a server: the soft default of 1,024 is a desktop's, not a server's).
/// Returns the new soft limit (`None`: unlimited).
pub fn raise_nofile_limit() -> io::Result<Option<u64>> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(nofile_limit())
}

/// Serves `app` on `listener` until `stop` is cancelled, then waits for every
/// open connection to finish (module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let nofile = nofile_limit();
    let max = limits.effective_max(nofile);
    if limits.max_connections.is_some_and(|m| m > max) {
        tracing::warn!(
            configured = limits.max_connections,
            max,
            nofile,
            "server.max_connections lowered to fit the open-file limit"
        );
    }
    tracing::debug!(max_connections = max, nofile, "accepting connections");
    let permits = Arc::new(Semaphore::new(max));
    let connections = TaskTracker::new();
    let limits = Arc::new(limits);
    let mut failing = false;
    loop {
        // At the cap this waits, and new connections queue in the backlog.
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => {
                failing = false;
                conn
            }
            Err(e) if is_peer_error(&e) => continue,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "accept failed; backing off and retrying");
                    failing = true;
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        // Nagle's algorithm meeting delayed ACKs costs 40 ms per small response.
        let _ = tcp.set_nodelay(true);
        connections.spawn(connection(
            tcp,
            peer,
            app.clone(),
            limits.clone(),
            stop.clone(),
            permit,
        ));
    }
    drop(listener);
    // Draining hook: every connection saw `stop` and closes once its request in
    // flight is answered; shutdown waits here for the last one.
    connections.close();
    connections.wait().await;
}

/// Errors of one half-open connection, not of the listener: retry at once.
fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Arc<ConnectionLimits>,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let watch = Arc::new(Watch::default());
    let io = TokioIo::new(Tracked {
        inner: tcp,
        watch: watch.clone(),
    });
    let svc_watch = watch.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let busy = Busy::enter(&svc_watch);
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await?;
            Ok::<_, Infallible>(resp.map(|inner| GuardedBody { inner, _busy: busy }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // The watchdog below enforces the timeouts; hyper's own (which needs a
        // timer and would also cut keep-alive at the header timeout) stays off.
        .header_read_timeout(None)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    let watchdog = watchdog(&watch, &limits);
    tokio::pin!(watchdog);
    let mut stopping = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            // Dropping the connection closes the socket: nothing is in flight.
            () = &mut watchdog => break,
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection is doing, as far as its timeouts care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request is in flight (head read, response not fully written).
    Busy,
    /// Waiting for a complete head: a fresh connection, or bytes of a next one.
    Head,
    /// Kept alive after a response, no byte of a next request yet.
    Idle,
}

#[derive(Debug, Default)]
struct Watch {
    busy: AtomicUsize,
    /// Bytes arrived since the connection last went idle.
    reading: AtomicBool,
    /// At least one response was written.
    served: AtomicBool,
    changed: Notify,
}

impl Watch {
    fn phase(&self) -> Phase {
        if self.busy.load(Ordering::Acquire) > 0 {
            Phase::Busy
        } else if self.reading.load(Ordering::Acquire) || !self.served.load(Ordering::Acquire) {
            Phase::Head
        } else {
            Phase::Idle
        }
    }

    fn on_bytes(&self) {
        if self.busy.load(Ordering::Acquire) == 0 && !self.reading.swap(true, Ordering::AcqRel) {
            self.changed.notify_one();
        }
    }
}

/// Completes when the connection has been in [`Phase::Head`] or
/// [`Phase::Idle`] longer than that phase's timeout.
async fn watchdog(watch: &Watch, limits: &ConnectionLimits) {
    let mut current = None;
    let mut timer = Box::pin(tokio::time::sleep(limits.header_read_timeout));
    loop {
        let changed = watch.changed.notified();
        let phase = watch.phase();
        if current != Some(phase) {
            current = Some(phase);
            match phase {
                Phase::Busy => {}
                Phase::Head => timer.set(tokio::time::sleep(limits.header_read_timeout)),
                Phase::Idle => timer.set(tokio::time::sleep(limits.keepalive_idle_timeout)),
            }
        }
        if phase == Phase::Busy {
            changed.await;
            continue;
        }
        tokio::select! {
            () = changed => {}
            () = timer.as_mut() => {
                if watch.phase() == phase {
                    return;
                }
            }
        }
    }
}

/// Marks a request in flight from its head until its response body is dropped
/// (fully written, or the connection died).
#[derive(Debug)]
struct Busy(Arc<Watch>);

impl Busy {
    fn enter(watch: &Arc<Watch>) -> Busy {
        watch.busy.fetch_add(1, Ordering::AcqRel);
        watch.changed.notify_one();
        Busy(watch.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // `reading` first: a next request's bytes arriving right after the
        // decrement must count as reading.
        self.0.served.store(true, Ordering::Release);
        self.0.reading.store(false, Ordering::Release);
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request [`Busy`] while hyper writes it.
#[derive(Debug)]
struct GuardedBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting the first byte of each request head for the watchdog.
#[derive(Debug)]
struct Tracked {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.on_bytes();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of connections far beyond `TcpListener::bind`'s backlog (128) all
    /// complete their handshake while nothing accepts yet: none is dropped at
    /// the SYN (which a client retries only a second later).
    #[tokio::test]
    async fn a_burst_beyond_the_default_backlog_is_not_dropped() {
        let _ = raise_nofile_limit();
        let burst = 1_500;
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tries = tokio::task::JoinSet::new();
        for _ in 0..burst {
            tries.spawn(async move {
                tokio::time::timeout(Duration::from_millis(800), TcpStream::connect(addr)).await
            });
        }
        let mut open = Vec::new();
        while let Some(r) = tries.join_next().await {
            if let Ok(Ok(Ok(stream))) = r {
                open.push(stream);
            }
        }
        assert_eq!(open.len(), burst, "connections dropped at the backlog");
        drop(listener);
    }

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        let default = ConnectionLimits::default();
        assert_eq!(default.effective_max(None), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            default.effective_max(Some(1 << 20)),
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(default.effective_max(Some(1024)), 768);
        assert_eq!(default.effective_max(Some(10)), 1);
        let small = ConnectionLimits {
            max_connections: Some(64),
            ..ConnectionLimits::default()
        };
        assert_eq!(small.effective_max(Some(1024)), 64);
    }
}
