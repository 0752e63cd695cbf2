//! What can go wrong with a call: the service refused it (its one error shape, with a stable
//! `code`), the request never got an answer (transport), or the answer was not what the
//! document promises.

/// The service's answer to a refused request: `{"error": {"type", "code", "message", "param"}}`
/// and the headers that matter for handling it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP status (400, 401, 403, 404, 409, 422, 429, 5xx…).
    pub status: u16,
    /// Follows the status: `invalid_request_error`, `rejected_error`, `api_error`…
    pub error_type: String,
    /// Stable and machine-readable (docs/api.md, "Errors"): what to match on.
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
    /// The field or header to blame, if one is.
    pub param: Option<String>,
    /// The service's `x-request-id` (`req_…`), to quote when asking about this request.
    pub request_id: Option<String>,
    /// `Retry-After` in seconds, on 429 and 503 answers that say when to come back.
    pub retry_after_secs: Option<u64>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service answered with its error shape.
    #[error("the service refused the request: {} {} ({}): {}", .0.status, .0.code, .0.error_type, .0.message)]
    Api(Box<ApiError>),
    /// No answer: the connection failed, timed out or broke. The request may or may not have
    /// been carried out; retry it with the same idempotency key to find out safely.
    #[error("no answer from the service: {0}")]
    Transport(#[source] reqwest::Error),
    /// A success status whose body is not what the document promises for it.
    #[error("an undecodable {status} answer (request {request_id:?}): {source}; body starts {body_excerpt:?}")]
    Decode {
        status: u16,
        request_id: Option<String>,
        body_excerpt: String,
        #[source]
        source: serde_json::Error,
    },
    /// An error status without the service's error shape: typically a proxy or load
    /// balancer in between (a 502 page) or a plain-text answer (`/readyz`).
    #[error(
        "an unexpected {status} answer (request {request_id:?}); body starts {body_excerpt:?}"
    )]
    UnexpectedResponse {
        status: u16,
        request_id: Option<String>,
        retry_after_secs: Option<u64>,
        body_excerpt: String,
    },
    /// The call could not be made as asked: a base URL that cannot take a path, a path
    /// parameter the URL cannot carry (empty, `.` or `..`), a header value that is not ASCII.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The operating system's random source failed (idempotency keys and nonces need it).
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// Codes that say "the same request may succeed later", whatever their status.
const RETRYABLE_CODES: &[&str] = &[
    // The first request with this idempotency key is still running: its answer will be
    // replayed to the retry once it is done.
    "idempotency_key_in_use",
    // The posting queue is full (429): back off.
    "ledger_overloaded",
];

impl ClientError {
    /// The stable error code, for a refusal by the service.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api(error) => Some(&error.code),
            _ => None,
        }
    }

    /// The HTTP status, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(error) => Some(error.status),
            ClientError::Decode { status, .. } | ClientError::UnexpectedResponse { status, .. } => {
                Some(*status)
            }
            ClientError::Transport(error) => error.status().map(|status| status.as_u16()),
            _ => None,
        }
    }

    /// The service's `x-request-id`, if it answered.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ClientError::Api(error) => error.request_id.as_deref(),
            ClientError::Decode { request_id, .. }
            | ClientError::UnexpectedResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// `Retry-After`, in seconds, if the answer carried one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ClientError::Api(error) => error.retry_after_secs,
            ClientError::UnexpectedResponse { retry_after_secs, .. } => *retry_after_secs,
            _ => None,
        }
    }

    /// Whether the same request (with the same idempotency key) may succeed if sent again:
    /// 429 and 503 (rate limits, overload, switches, a node shutting down), 500 and the
    /// gateway errors 502 and 504 (docs/api.md: "retry with the same Idempotency-Key"; a 5xx
    /// is never recorded), a request with this key still running, and transport failures.
    /// A refusal for the request itself (4xx) is not: the same request gets the same answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Api(error) => {
                retryable_status(error.status) || RETRYABLE_CODES.contains(&error.code.as_str())
            }
            ClientError::UnexpectedResponse { status, .. } => retryable_status(*status),
            // A request that could not even be built (a bad URL) fails the same way again.
            ClientError::Transport(error) => !error.is_builder() && !error.is_redirect(),
            ClientError::Decode { .. }
            | ClientError::InvalidArgument(_)
            | ClientError::Random(_) => false,
        }
    }
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

impl From<crate::idempotency::InvalidIdempotencyKey> for ClientError {
    fn from(error: crate::idempotency::InvalidIdempotencyKey) -> ClientError {
        ClientError::InvalidArgument(error.to_string())
    }
}
