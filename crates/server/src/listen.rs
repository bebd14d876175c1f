//! Accepting connections: HTTP/1.1 with timeouts and a cap on how many are open.
//!
//! - A connection must send a request's headers within `header_read` of starting
//!   to wait for them; that covers a slow client and an idle keep-alive alike.
//! - A request body that sends nothing for `body_idle` fails with 408 (see
//!   [`crate::error::ApiError::BodyTimeout`]) and its connection is closed.
//! - At most `max_connections` are served at once; the next waits in the
//!   listener's backlog until one closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutBody;

/// How long a connection may take, and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers, counted from when the server starts
    /// waiting for them (so also the idle time of a keep-alive connection).
    pub header_read: Duration,
    /// The longest a request body may go without sending anything.
    pub body_idle: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long requests in flight may take to finish at shutdown.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body_idle: Duration::from_secs(30),
            max_connections: 512,
            drain: Duration::from_secs(30),
        }
    }
}

/// The address a request's connection came from, in its extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<std::net::IpAddr>);

/// The router with every request body behind the idle timeout.
fn with_body_timeout(router: Router, idle: Duration) -> Router {
    router.layer(axum::middleware::map_request(move |req: Request| async move {
        req.map(|body| Body::new(TimeoutBody::new(idle, body)))
    }))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish (for at most `limits.drain`).
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let router = with_body_timeout(router, limits.body_idle);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept(&listener, &permits) => accepted,
        };
        let (stream, permit) = accepted;
        let peer = Peer(stream.peer_addr().ok().map(|a| a.ip()));
        let inner = TowerToHyperService::new(router.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer);
            hyper::service::Service::call(&inner, req)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(seconds = limits.drain.as_secs(), "requests still running after the drain time were cut off");
    }
}

/// The next connection, once one of the permitted places is free. An accept
/// error (a connection reset before it was taken, descriptors used up) is
/// logged and retried after a pause, never fatal.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> (tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit) {
    let permit = permits.clone().acquire_owned().await.expect("the connection semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return (stream, permit),
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Whether `error` (a body's, or one of its causes) is the body idle timeout.
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}
