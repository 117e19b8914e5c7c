//! Connections on a real socket (issue 10): past the connection cap the server
//! keeps answering its existing clients and, once idle sockets hit the
//! header-read timeout, new health checks; idle sockets are closed by the
//! header-read and keep-alive idle timeouts.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use byollm_api::clock::SystemClock;
use byollm_core::identity::keys::Algorithm;
use byollm_server::conn::ConnectionLimits;

use crate::common::config;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(15);

async fn server(limits: ConnectionLimits) -> (tempfile::TempDir, byollm_server::Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Algorithm::Es256);
    cfg.connections = limits;
    let server = byollm_server::start(&cfg, Arc::new(SystemClock))
        .await
        .unwrap();
    (dir, server)
}

/// Sends `GET /healthz` on a kept-alive connection and reads the whole response.
async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a full response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// Reads until the server closes the connection (EOF), within [`BOUND`].
async fn closed_by_server(stream: &mut TcpStream) {
    let mut chunk = [0u8; 256];
    let eof = tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(eof.is_ok(), "the server kept an idle connection open");
}

#[tokio::test]
async fn past_the_cap_health_checks_and_existing_clients_are_served() {
    const CAP: usize = 64;
    let (_dir, server) = server(ConnectionLimits {
        max_connections: Some(CAP),
        header_read_timeout: Duration::from_millis(500),
        keepalive_idle_timeout: Duration::from_secs(60),
    })
    .await;

    // A client that keeps its connection alive, sending now and then.
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz(&mut client).await.starts_with("HTTP/1.1 200"));

    // More idle connections than the cap: the kernel completes every
    // handshake; the server takes CAP - 1 and leaves the rest in the backlog.
    let mut idle = Vec::new();
    for _ in 0..CAP + 36 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The existing client is served while the cap is reached.
    let again = tokio::time::timeout(BOUND, healthz(&mut client)).await;
    assert!(again.unwrap().starts_with("HTTP/1.1 200"));

    // A new connection waits for a slot, which the header-read timeout frees.
    let fresh = tokio::time::timeout(BOUND, async {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        healthz(&mut s).await
    })
    .await;
    assert!(fresh.unwrap().starts_with("HTTP/1.1 200"));

    // Every idle connection, accepted at once or later, is closed by the server.
    for s in &mut idle {
        closed_by_server(s).await;
    }
    assert!(healthz(&mut client).await.starts_with("HTTP/1.1 200"));
    server.shutdown().await;
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_by_the_server() {
    let (_dir, server) = server(ConnectionLimits {
        max_connections: None,
        header_read_timeout: Duration::from_millis(300),
        keepalive_idle_timeout: Duration::from_millis(300),
    })
    .await;
    // Kept alive after a response, then idle: closed.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz(&mut kept).await.starts_with("HTTP/1.1 200"));
    closed_by_server(&mut kept).await;
    // A request head that never completes: closed.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    closed_by_server(&mut slow).await;
    // Connected, never a byte: closed.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    closed_by_server(&mut silent).await;
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_and_returns() {
    let (_dir, server) = server(ConnectionLimits {
        max_connections: None,
        header_read_timeout: Duration::from_secs(5),
        keepalive_idle_timeout: Duration::from_secs(5),
    })
    .await;
    // Shutdown with an idle keep-alive connection open returns (the idle
    // connection is closed, not waited for) and closes it.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz(&mut kept).await.starts_with("HTTP/1.1 200"));
    tokio::time::timeout(BOUND, server.shutdown())
        .await
        .expect("shutdown waits only for requests in flight");
    closed_by_server(&mut kept).await;
}
