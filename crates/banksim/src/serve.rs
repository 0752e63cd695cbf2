//! The server loop. It is ours rather than `axum::serve` for one reason: a simulated bank
//! must be able to *not answer* — hold a request, then close its TCP connection — which a
//! handler cannot do through a normal response. Each connection gets a [`ConnectionKill`];
//! when a handler notifies it, the connection future is dropped and the socket closed.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::api::ConnectionKill;

/// Serves `router` on `listener` until `shutdown` completes. Connections still open then
/// are abandoned with the process: a simulator owes its clients no drain.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, router.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Notify::new());
    let kill_for_requests = kill.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectionKill(kill_for_requests.clone()));
        router.clone().oneshot(request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        // `notify_one` stores a permit, so a kill sent before this point is not lost.
        () = kill.notified() => {}
    }
}
