//! The one error shape of the API: `{"error": {"type", "code", "message", "param"}}`, with an
//! HTTP status per type and a stable machine-readable `code`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    /// Sent as `Retry-After` (seconds) on 429 and 503 answers.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            param: None,
            retry_after_secs: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    pub fn invalid(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "a valid API key is required: Authorization: Bearer <key>",
        )
    }

    pub fn forbidden(scope: access::Scope) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "missing_scope",
            format!("this key lacks the {} scope", scope.as_str()),
        )
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "resource_missing", format!("no such {what}"))
    }

    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; retry with the same Idempotency-Key",
        )
    }

    pub fn unavailable(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// The `type` field, derived from the status.
    pub fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            422 => "rejected_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "type": self.kind(),
                "code": self.code,
                "message": self.message,
                "param": self.param,
            }
        })
    }
}

/// The stable code of an error answer, kept on the response for the layers around the
/// handlers (admission tells overload from a refusal by it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorCode(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        response.extensions_mut().insert(ErrorCode(self.code.clone()));
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<ledger::LedgerError> for ApiError {
    fn from(error: ledger::LedgerError) -> ApiError {
        match error {
            ledger::LedgerError::Overloaded => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ledger_overloaded",
                "the posting queue is full; retry with backoff",
            ),
            ledger::LedgerError::ShuttingDown => ApiError::unavailable(
                "shutting_down",
                "the service is shutting down; retry on another node",
            ),
            ledger::LedgerError::RequestTooLarge { n_commands, limit } => ApiError::invalid(
                "batch_too_large",
                format!("{n_commands} transfers, more than the limit of {limit}"),
            ),
            other => ApiError::internal(other),
        }
    }
}

impl From<ledger::port::StoreError> for ApiError {
    fn from(error: ledger::port::StoreError) -> ApiError {
        ApiError::internal(error)
    }
}

impl From<access::AccessError> for ApiError {
    fn from(error: access::AccessError) -> ApiError {
        ApiError::internal(error)
    }
}
