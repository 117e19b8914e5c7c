//! The gateway's own HTTP/1.1 client for the vendors' APIs, driven by the
//! request's own task.
//!
//! A pooled client (reqwest, hyper-util's) drives each connection from a task
//! of its own: a request crosses from the handler to that task to be written,
//! and its answer crosses back, two wake-ups between tasks (often between the
//! two workers) per request, each 60–100 µs of one loopback hop on a small
//! machine (docs/performance.md). Here the handler polls the connection
//! itself, while it waits for the answer's head and while it reads the body,
//! so the request is written and its answer read by the task that wants them.
//! Idle connections wait in a pool per origin (most recently used first) and
//! go back into it when an answer has been read to its end; one dropped
//! earlier (a client that left mid-stream) closes its connection, as
//! reqwest's did.
//!
//! An idle connection the server closed is found when it is taken: hyper
//! hands back a request it never wrote, and it goes again on another
//! connection. A request that was written is never sent twice.

use std::collections::VecDeque;
use std::future::Future as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_util::either::Either;

/// Idle connections kept per origin; past it the oldest is closed.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused (reqwest's
/// `pool_idle_timeout` was the same).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The monotonic clock, for [`IDLE_TIMEOUT`] only.
#[expect(
    clippy::disallowed_methods,
    reason = "ages idle connections in the pool: whether one is reused or a new \
              one opened changes no answer, so there is nothing for a fake clock \
              to test"
)]
fn monotonic_now() -> Instant {
    Instant::now()
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HopError {
    /// No connection within the connect timeout.
    #[error("no connection within the connect timeout")]
    ConnectTimeout,
    /// The connection could not be made.
    #[error("connect: {0}")]
    Connect(String),
    /// The request failed on its connection.
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// One scheme, host and port, with its idle connections.
pub(crate) struct Origin {
    /// Where to connect.
    host: Host,
    port: u16,
    /// The `Host` header.
    authority: HeaderValue,
    /// TLS for `https`, with the name the certificate must carry.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    idle: parking_lot::Mutex<VecDeque<(Live, Instant)>>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("authority", &self.authority)
            .field("tls", &self.tls.is_some())
            .field("idle", &self.idle.lock().len())
            .finish()
    }
}

#[derive(Debug)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Origin {
    /// The origin of `url` (`http` or `https`); `tls` is used for `https`.
    pub(crate) fn new(
        url: &reqwest::Url,
        tls: impl FnOnce() -> Arc<ClientConfig>,
        connect_timeout: Duration,
    ) -> Result<Origin, String> {
        let secure = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("scheme `{other}` is not http or https")),
        };
        let (host, name) = match url.host() {
            Some(url::Host::Domain(d)) => {
                (Host::Name(d.to_owned()), ServerName::try_from(d.to_owned()))
            }
            Some(url::Host::Ipv4(ip)) => {
                (Host::Ip(ip.into()), Ok(ServerName::from(IpAddr::from(ip))))
            }
            Some(url::Host::Ipv6(ip)) => {
                (Host::Ip(ip.into()), Ok(ServerName::from(IpAddr::from(ip))))
            }
            None => return Err("the URL has no host".to_owned()),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| "the URL has no port".to_owned())?;
        let host_str = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_owned(),
        };
        let authority = HeaderValue::from_str(&authority).map_err(|e| e.to_string())?;
        let tls = if secure {
            let name = name.map_err(|e| e.to_string())?;
            Some((TlsConnector::from(tls()), name))
        } else {
            None
        };
        Ok(Origin {
            host,
            port,
            authority,
            tls,
            connect_timeout,
            idle: parking_lot::Mutex::new(VecDeque::new()),
        })
    }

    /// Idle connections now (for tests and stats).
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }

    /// Sends `req` (origin-form URI; the `Host` header is set here) and
    /// returns the answer's head once it has come. The body is read by
    /// polling the returned response's body, which also drives the
    /// connection.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<HopBody>, HopError> {
        req.headers_mut().insert(HOST, self.authority.clone());
        loop {
            let (mut live, reused) = match self.take_idle() {
                Some(live) => (live, true),
                None => (self.connect().await?, false),
            };
            match live.round_trip(req).await {
                Ok(resp) => {
                    let origin = Arc::clone(self);
                    return Ok(resp.map(|inner| HopBody {
                        inner,
                        live: std::sync::Mutex::new(Some(live)),
                        origin,
                    }));
                }
                // An idle connection the server had closed: the request was
                // never written, so it goes on another one.
                Err(Unsent {
                    unsent: Some(r), ..
                }) if reused => req = r,
                Err(e) => return Err(e.error.into()),
            }
        }
    }

    /// The most recently used idle connection that is still open.
    fn take_idle(&self) -> Option<Live> {
        let now = monotonic_now();
        let mut idle = self.idle.lock();
        while let Some((live, since)) = idle.pop_back() {
            if live.sender.is_closed() || now.duration_since(since) > IDLE_TIMEOUT {
                continue;
            }
            return Some(live);
        }
        None
    }

    /// Puts a connection whose answer was read to its end back in the pool.
    fn put_back(&self, live: Live) {
        if live.conn.is_none() || live.sender.is_closed() {
            return;
        }
        let now = monotonic_now();
        let mut idle = self.idle.lock();
        while idle
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) > IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back((live, now));
    }

    /// A new connection (TCP, then TLS for `https`) within the connect timeout.
    async fn connect(&self) -> Result<Live, HopError> {
        let io = tokio::time::timeout(self.connect_timeout, self.open())
            .await
            .map_err(|_| HopError::ConnectTimeout)?
            .map_err(|e| HopError::Connect(e.to_string()))?;
        let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
        Ok(Live {
            sender,
            conn: Some(conn),
        })
    }

    async fn open(&self) -> io::Result<Io> {
        let tcp = self.tcp().await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Either::Left(tcp)),
            Some((connector, name)) => Ok(Either::Right(Box::new(
                connector.connect(name.clone(), tcp).await?,
            ))),
        }
    }

    /// A TCP connection to the host's first address that takes one.
    async fn tcp(&self) -> io::Result<TcpStream> {
        let name = match &self.host {
            Host::Ip(ip) => return TcpStream::connect(SocketAddr::new(*ip, self.port)).await,
            Host::Name(name) => name,
        };
        let mut last = None;
        for addr in tokio::net::lookup_host((name.as_str(), self.port)).await? {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{name} has no address"))
        }))
    }
}

/// TLS for the vendors' `https` APIs: the platform's root certificates
/// (as reqwest's `rustls-tls-native-roots` had), HTTP/1.1.
pub(crate) fn native_tls() -> Arc<ClientConfig> {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "a platform root certificate could not be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::warn!(
            added,
            ignored,
            "some platform root certificates were not usable"
        );
    }
    with_roots(roots)
}

/// TLS trusting `roots`, HTTP/1.1.
pub(crate) fn with_roots(roots: tokio_rustls::rustls::RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg =
        match ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
            // aws-lc-rs supports the default versions; fall back to the process default.
            Err(_) => ClientConfig::builder()
                .with_root_certificates(tokio_rustls::rustls::RootCertStore::empty())
                .with_no_client_auth(),
        };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

type Conn = Connection<TokioIo<Io>, Full<Bytes>>;

/// One connection: the handle requests go through and the connection itself,
/// polled by whoever is using it (`None` once it has ended).
struct Live {
    sender: SendRequest<Full<Bytes>>,
    conn: Option<Conn>,
}

/// Polls a connection; drops it when it has ended (what is pending on it then
/// fails, and a request it never wrote comes back).
fn drive(conn: &mut Option<Conn>, cx: &mut Context<'_>) -> Poll<()> {
    let Some(c) = conn.as_mut() else {
        return Poll::Ready(());
    };
    match Pin::new(c).poll(cx) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(r) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "upstream connection ended");
            }
            *conn = None;
            Poll::Ready(())
        }
    }
}

impl Live {
    /// Writes `req` and waits for the answer's head, driving the connection.
    async fn round_trip(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, Unsent> {
        let Live { sender, conn } = self;
        let mut req = Some(req);
        let mut sending = None;
        std::future::poll_fn(|cx| {
            // Each pass: the request's side, then the connection, then the
            // request's side again, so what the connection just did (took the
            // request, read the head) is seen without another wake-up.
            for _ in 0..2 {
                if sending.is_none() {
                    match sender.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            if let Some(r) = req.take() {
                                sending = Some(Box::pin(sender.try_send_request(r)));
                            }
                        }
                        Poll::Ready(Err(error)) => {
                            return Poll::Ready(Err(Unsent {
                                error,
                                unsent: req.take(),
                            }));
                        }
                        Poll::Pending => {}
                    }
                }
                if let Some(f) = sending.as_mut()
                    && let Poll::Ready(r) = f.as_mut().poll(cx)
                {
                    return Poll::Ready(r.map_err(|mut e| Unsent {
                        unsent: e.take_message(),
                        error: e.into_error(),
                    }));
                }
                // An ended connection is dropped; the request's side sees
                // that on the next pass.
                let _ = drive(conn, cx);
            }
            Poll::Pending
        })
        .await
    }
}

/// A failed round trip, with the request when hyper never wrote it.
struct Unsent {
    error: hyper::Error,
    unsent: Option<Request<Full<Bytes>>>,
}

/// An answer's body; polling it also drives its connection, which goes back
/// to the pool when the body has been read to its end.
pub(crate) struct HopBody {
    inner: Incoming,
    /// In a mutex only so the body is `Sync` (reqwest's body must be);
    /// reached through `get_mut`, never locked.
    live: std::sync::Mutex<Option<Live>>,
    origin: Arc<Origin>,
}

impl std::fmt::Debug for HopBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopBody").finish_non_exhaustive()
    }
}

impl Body for HopBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let live = this.live.get_mut().unwrap_or_else(PoisonError::into_inner);
        // The body, then (once) the connection and the body again: what the
        // connection just read is seen without another wake-up.
        let mut driven = false;
        loop {
            if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
                if frame.is_none()
                    && let Some(l) = live.take()
                {
                    this.origin.put_back(l);
                }
                return Poll::Ready(frame);
            }
            let Some(l) = live.as_mut() else {
                return Poll::Pending;
            };
            if driven {
                return Poll::Pending;
            }
            driven = true;
            if drive(&mut l.conn, cx).is_ready() {
                // The connection ended: its body has what it will ever have.
                *live = None;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's socket: plain TCP, or TLS over it.
type Io = Either<TcpStream, Box<TlsStream<TcpStream>>>;

#[cfg(test)]
#[path = "hop_tests.rs"]
mod tests;
