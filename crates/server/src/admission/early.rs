//! Refusing before any other work. Under five times its capacity a node refuses thousands of
//! requests a second, and each refusal that went through the whole stack (a request id from
//! the OS's random source, a tracing span, the route's metrics under a lock, the switches,
//! the error's JSON written anew) took CPU from the requests it admitted: at 5× the knee the
//! admitted requests' p99 was twice the knee's, and writes got less goodput than at 2×
//! (docs/bench/overload.md). This layer, outermost, asks admission whether the request's
//! class is at its limit — two atomic loads — and if so answers at once with the same
//! `overloaded` error, written once per class.
//!
//! It only filters: a request it lets through is admitted as before by
//! [`super::admit`], which holds the permit. A request a switch would refuse is, while its
//! class is at its limit, refused as `overloaded` instead — both are 503, and the client's
//! answer (retry later) is the same.

use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::future::{Either, Ready};
use tower::{Layer, Service};
use tower_http::request_id::MakeRequestId;

use super::{class_of, overloaded, Admission, Class};
use crate::ops::HttpMetrics;

/// Each class's refusal, serialized once.
static BODIES: LazyLock<[Bytes; 3]> = LazyLock::new(|| {
    Class::ALL.map(|class| Bytes::from(overloaded(class).body().to_string().into_bytes()))
});

/// Wraps a book's router: see the module's documentation.
#[derive(Clone)]
pub struct ShedEarlyLayer {
    admission: Arc<Admission>,
    metrics: Arc<HttpMetrics>,
    mode: access::KeyMode,
}

impl ShedEarlyLayer {
    pub fn new(
        admission: Arc<Admission>,
        metrics: Arc<HttpMetrics>,
        mode: access::KeyMode,
    ) -> ShedEarlyLayer {
        ShedEarlyLayer { admission, metrics, mode }
    }
}

impl<S> Layer<S> for ShedEarlyLayer {
    type Service = ShedEarly<S>;

    fn layer(&self, inner: S) -> ShedEarly<S> {
        ShedEarly { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct ShedEarly<S> {
    inner: S,
    layer: ShedEarlyLayer,
}

impl<S> Service<Request> for ShedEarly<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let refused = class_of(request.method(), request.uri().path())
            .filter(|class| self.layer.admission.refuses_now(*class));
        let Some(class) = refused else {
            return Either::Right(self.inner.call(request));
        };
        self.layer.admission.count_refused(class);
        self.layer.metrics.record_shed(self.layer.mode, class);
        Either::Left(futures_util::future::ready(Ok(refusal(class, &request))))
    }
}

/// The `overloaded` answer to `request`, with its request id (the client's, or a new one)
/// like every other answer.
fn refusal(class: Class, request: &Request) -> Response {
    let request_id = request.headers().get("x-request-id").cloned().or_else(|| {
        crate::RandomRequestId.make_request_id(request).map(|id| id.header_value().clone())
    });
    let mut response = Response::new(Body::from(BODIES[class.index()].clone()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if let Some(request_id) = request_id {
        headers.insert("x-request-id", request_id);
    }
    response
}
