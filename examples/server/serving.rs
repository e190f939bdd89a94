//! Serving a router on a TCP listener, with the limits of [`ServerConfig`] and a
//! graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::Router;

/// Limits of a running server.
///
/// # Defaults
/// Header read timeout 10 s, request timeout 30 s, body limit 1 MiB, 64 requests at
/// once of which at most 16 change streams, 5 s grace on shutdown.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long one request may take, queueing included.
    pub request_timeout: Duration,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Requests handled at once; others wait (within the request timeout).
    pub max_concurrent_requests: usize,
    /// Change streams (`/changes/stream`) open at once; each also holds one of the
    /// [`max_concurrent_requests`](Self::max_concurrent_requests) for its whole life,
    /// so this keeps streams from taking every place. More are refused with a 503.
    pub max_streams: usize,
    /// How long shutdown waits for open connections to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            max_concurrent_requests: 64,
            max_streams: 16,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open connections
/// finish their current request (up to [`ServerConfig::shutdown_grace`]).
///
/// Each connection is HTTP/1.1 with a header read timeout, so a client that trickles
/// its headers is disconnected; plain `axum::serve` has no such timeout.
///
/// # Errors
/// None today; accept failures are logged and retried.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        eprintln!("accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(router.clone());
                let mut stopped = stopped.clone();
                let header_read_timeout = config.header_read_timeout;
                connections.spawn(async move {
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        // A connection error is the client's business (reset, timeout).
                        _ = connection.as_mut() => {}
                        _ = stopped.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        }
    }
    let _ = stop.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
    Ok(())
}
