//! Health, readiness, metrics and the OpenAPI document (tag `operations`): no key needed.

use serde_json::Value;

use crate::client::{Client, Query};
use crate::error::ClientError;
use crate::routes;

/// `GET /readyz`: whether the node takes traffic, and what it said.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// The store answers and the posting queue is below 90%.
    pub ready: bool,
    /// The node's text (the reason, when not ready).
    pub detail: String,
}

impl Client {
    /// `GET /healthz`: the process is alive (its text).
    pub async fn healthz(&self) -> Result<String, ClientError> {
        self.read_text(routes::HEALTHZ, &[]).await
    }

    /// `GET /readyz`. A 503 is an answer here, not an error: the node is not ready.
    pub async fn readyz(&self) -> Result<Readiness, ClientError> {
        match self.read_text(routes::READYZ, &[]).await {
            Ok(detail) => Ok(Readiness { ready: true, detail }),
            Err(ClientError::UnexpectedResponse { status: 503, body_excerpt, .. }) => {
                Ok(Readiness { ready: false, detail: body_excerpt })
            }
            Err(error) => Err(error),
        }
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        self.read_text(routes::METRICS, &[]).await
    }

    /// `GET /v1/openapi.json`: the machine-readable contract this client implements.
    pub async fn openapi_json(&self) -> Result<Value, ClientError> {
        self.read(routes::OPENAPI_JSON, &[], Query::new()).await
    }
}
