//! What a node answers before it holds its books: while they open (a journal replayed), and
//! for as long as another node holds them (a standby: the journal-first engine on PostgreSQL,
//! another node holding the journal's lease). It listens from the start, so an orchestrator's
//! probes reach it: `/healthz` says it is alive, `/readyz` that it is not ready, and every
//! other request is refused as unavailable (503 `standby`), so a client or a load balancer
//! moves on to a node that serves. Once this node holds its books, the service's own router
//! takes the listener over.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;

/// The body of `/readyz` and the message of every refusal before the books are held.
pub const STANDBY_MESSAGE: &str = "this node does not hold its ledger's books yet: they are \
     opening, or another node holds them and this one takes them over if that node stops";

/// The router of a node standing by.
pub fn standby_router() -> Router {
    Router::new()
        .route("/healthz", get(crate::ops::healthz))
        .route("/readyz", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, STANDBY_MESSAGE) }))
        .fallback(|| async { ApiError::unavailable("standby", STANDBY_MESSAGE).into_response() })
}
