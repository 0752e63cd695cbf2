//! What a node answers while it waits to hold the book (a standby: the journal-first engine on
//! PostgreSQL, another node holding the journal's lease). It listens from the start, so an
//! orchestrator's probes reach it: `/healthz` says it is alive, `/readyz` that it is not ready,
//! and every other request is refused as unavailable (503 `standby`), so a client or a load
//! balancer moves on to the node that holds the book. Once this node holds it, the service's
//! own router takes the listener over.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;

/// The body of `/readyz` and the message of every refusal while standing by.
pub const STANDBY_MESSAGE: &str =
    "this node is a standby: another node holds the ledger's book; it takes the book over if that node stops";

/// The router of a node standing by.
pub fn standby_router() -> Router {
    Router::new()
        .route("/healthz", get(crate::ops::healthz))
        .route("/readyz", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, STANDBY_MESSAGE) }))
        .fallback(|| async { ApiError::unavailable("standby", STANDBY_MESSAGE).into_response() })
}
