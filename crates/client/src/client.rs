//! The [`Client`] and the one path every call takes: build the URL (path parameters
//! percent-encoded), add the key, the idempotency key and, for a signing key, the signature;
//! send; turn the answer into a value or a [`ClientError`].

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ClientError};
use crate::idempotency::{random_hex, IdempotencyKey};
use crate::routes::Route;

/// The wait for a whole answer when the builder sets none. Writes wait on banks behind the
/// service, so this is generous; a load tool sets its own.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// How much of an unexpected body an error keeps, in characters.
const BODY_EXCERPT_CHARS_MAX: usize = 200;

const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
const REPLAYED_HEADER: &str = "idempotent-replayed";
const REQUEST_ID_HEADER: &str = "x-request-id";
const TIMESTAMP_HEADER: &str = "qianbao-timestamp";
const NONCE_HEADER: &str = "qianbao-nonce";
const SIGNATURE_HEADER: &str = "qianbao-signature";

/// A client of one Qianbao service with one API key. Cloning is cheap (one `Arc`): clones
/// share the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    /// `Bearer <key>`, marked sensitive so that it is never logged by the HTTP stack.
    authorization: HeaderValue,
    /// The HMAC key of signed requests: the SHA-256 of the API key (docs/api.md, "Signed
    /// requests"), as the server stores it.
    signing_key: Option<access::KeyHash>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the key nor its hash (the signing key) is printed.
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field("signs_requests", &self.inner.signing_key.is_some())
            .finish_non_exhaustive()
    }
}

/// Options of a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    base_url: String,
    api_key: access::Secret,
    timeout: Duration,
    connect_timeout: Option<Duration>,
    sign_requests: bool,
    user_agent: String,
}

impl ClientBuilder {
    /// The wait for a whole answer (default [`TIMEOUT_DEFAULT`]). A write that times out may
    /// still have been carried out: retry it with the same idempotency key.
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = timeout;
        self
    }

    /// The wait for a connection (default: within [`Self::timeout`] only).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Signs every request, as a key created with `"signed": true` must. The scheme's secret
    /// is the API key itself (the HMAC key is its SHA-256), so there is no second secret to
    /// configure or to get wrong.
    pub fn sign_requests(mut self) -> ClientBuilder {
        self.sign_requests = true;
        self
    }

    /// The `User-Agent` header (default `qianbao-client/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> ClientBuilder {
        self.user_agent = user_agent.into();
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        let mut base_url = Url::parse(&self.base_url)
            .map_err(|error| invalid(format!("base URL {:?}: {error}", self.base_url)))?;
        // Plain HTTP only: this build has no TLS stack (see the crate's documentation), so an
        // `https` URL is refused here rather than failing on every call.
        if base_url.cannot_be_a_base() || base_url.scheme() != "http" {
            return Err(invalid(format!("base URL {:?} is not http://", self.base_url)));
        }
        base_url.set_query(None);
        base_url.set_fragment(None);
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", self.api_key.expose()))
            .map_err(|_| invalid("the API key is not visible ASCII".to_string()))?;
        authorization.set_sensitive(true);
        let mut http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(self.user_agent)
            // The service answers redirects never; following one would resend the key.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(timeout) = self.connect_timeout {
            http = http.connect_timeout(timeout);
        }
        let http = http.build().map_err(ClientError::Transport)?;
        let signing_key = self.sign_requests.then(|| self.api_key.hash());
        Ok(Client { inner: Arc::new(Inner { http, base_url, authorization, signing_key }) })
    }
}

/// The answer to a write, with what a caller needs to reason about retries.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Reply<T> {
    pub value: T,
    /// 201 for something created, 200 for something that already existed (the same
    /// account or transfer sent again) or a state change, 202 for work accepted.
    pub http_status: u16,
    /// The idempotency key the request carried (the caller's, or the one generated for it).
    pub idempotency_key: IdempotencyKey,
    /// `Idempotent-Replayed: true`: the service answered from its record of an earlier
    /// request with this key; nothing happened this time.
    pub replayed: bool,
    pub request_id: Option<String>,
}

impl<T> Reply<T> {
    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T> Deref for Reply<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Query parameters of a call, in order; absent options are left out.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(&'static str, String)>);

impl Query {
    pub(crate) fn new() -> Query {
        Query::default()
    }

    pub(crate) fn opt<T: fmt::Display>(mut self, name: &'static str, value: Option<T>) -> Query {
        if let Some(value) = value {
            self.0.push((name, value.to_string()));
        }
        self
    }
}

/// A successful answer, before its body is decoded.
struct Answer {
    status: u16,
    request_id: Option<String>,
    replayed: bool,
    body: Vec<u8>,
}

impl Client {
    /// A client of the service at `base_url` (`http://127.0.0.1:8080`) with `api_key`
    /// (`qb_live_…` or `qb_test_…`) and the default options.
    pub fn new(base_url: &str, api_key: &str) -> Result<Client, ClientError> {
        Client::builder(base_url, api_key).build()
    }

    pub fn builder(base_url: &str, api_key: &str) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.to_string(),
            api_key: access::Secret::new(api_key),
            timeout: TIMEOUT_DEFAULT,
            connect_timeout: None,
            sign_requests: false,
            user_agent: format!("qianbao-client/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// A read: GET `route` and decode its JSON.
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        route: Route,
        params: &[&str],
        query: Query,
    ) -> Result<T, ClientError> {
        let url = self.url(route, params, &query)?;
        let answer = self.execute(route, url, None, None, &[]).await?;
        decode(&answer)
    }

    /// A read of a text resource (CSV, Prometheus text, a statement file).
    pub(crate) async fn read_text(
        &self,
        route: Route,
        params: &[&str],
    ) -> Result<String, ClientError> {
        let url = self.url(route, params, &Query::new())?;
        let answer = self.execute(route, url, None, None, &[]).await?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    /// A write (POST, PUT, DELETE) with a JSON body or none, under an idempotency key.
    pub(crate) async fn write<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        route: Route,
        params: &[&str],
        body: Option<&B>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<T>, ClientError> {
        let body = match body {
            Some(body) => Some(serde_json::to_vec(body).map_err(|error| {
                invalid(format!("the request body does not serialize: {error}"))
            })?),
            None => None,
        };
        self.write_bytes(route, params, body, idempotency_key, &[]).await
    }

    /// A write whose body is given as bytes, with extra headers (a channel's callback).
    pub(crate) async fn write_bytes<T: DeserializeOwned>(
        &self,
        route: Route,
        params: &[&str],
        body: Option<Vec<u8>>,
        idempotency_key: Option<IdempotencyKey>,
        extra_headers: &[(&str, &str)],
    ) -> Result<Reply<T>, ClientError> {
        let idempotency_key = match idempotency_key {
            Some(key) => key,
            None => IdempotencyKey::generate()?,
        };
        let url = self.url(route, params, &Query::new())?;
        let answer = self.execute(route, url, body, Some(&idempotency_key), extra_headers).await?;
        let value = decode(&answer)?;
        Ok(Reply {
            value,
            http_status: answer.status,
            idempotency_key,
            replayed: answer.replayed,
            request_id: answer.request_id,
        })
    }

    /// The URL of `route` with `params` in its `{…}` placeholders, in order, each
    /// percent-encoded as one path segment.
    fn url(&self, route: Route, params: &[&str], query: &Query) -> Result<Url, ClientError> {
        let (_, template) = route;
        let mut url = self.inner.base_url.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| invalid("the base URL cannot take a path".to_string()))?;
            segments.pop_if_empty();
            let mut params = params.iter();
            for segment in template.trim_start_matches('/').split('/') {
                if !segment.starts_with('{') {
                    segments.push(segment);
                    continue;
                }
                let Some(value) = params.next() else {
                    return Err(invalid(format!("{template}: {segment} has no value")));
                };
                // A URL normalises `.` and `..` away (even percent-encoded), so such an id
                // would name another resource; an empty one names none.
                if matches!(*value, "" | "." | "..") {
                    return Err(invalid(format!("{template}: {segment} cannot be {value:?}")));
                }
                segments.push(value);
            }
            if params.next().is_some() {
                return Err(invalid(format!("{template}: more values than placeholders")));
            }
        }
        if !query.0.is_empty() {
            url.query_pairs_mut().extend_pairs(query.0.iter().map(|(name, value)| (name, value)));
        }
        Ok(url)
    }

    async fn execute(
        &self,
        route: Route,
        url: Url,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&IdempotencyKey>,
        extra_headers: &[(&str, &str)],
    ) -> Result<Answer, ClientError> {
        let method = method(route)?;
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.inner.authorization.clone());
        if let Some(key) = idempotency_key {
            headers.insert(IDEMPOTENCY_KEY_HEADER, header_value(key.as_str())?);
        }
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (name, value) in extra_headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("header name {name:?}")))?;
            headers.insert(name, header_value(value)?);
        }
        let body = body.unwrap_or_default();
        if let Some(signing_key) = &self.inner.signing_key {
            self.sign(signing_key, &method, &url, &body, &mut headers)?;
        }
        let response = self
            .inner
            .http
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(ClientError::Transport)?.to_vec();
        let request_id = text_header(&headers, REQUEST_ID_HEADER);
        if !(200..300).contains(&status) {
            return Err(refusal(status, request_id, &headers, &body));
        }
        let replayed = text_header(&headers, REPLAYED_HEADER).as_deref() == Some("true");
        Ok(Answer { status, request_id, replayed, body })
    }

    /// Adds the three headers of a signed request over exactly what is sent: the method, the
    /// path and query as they leave in the request line, and the body bytes.
    fn sign(
        &self,
        signing_key: &access::KeyHash,
        method: &Method,
        url: &Url,
        body: &[u8],
        headers: &mut HeaderMap,
    ) -> Result<(), ClientError> {
        // A clock before 1970 signs with 0: the service answers `signature_expired`.
        let timestamp_secs =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        // 32 hex characters: within the nonce's 16 to 64 of `[A-Za-z0-9_-]`.
        let nonce = random_hex::<16>()?;
        let signed = signature_headers(
            signing_key,
            method.as_str(),
            &path_and_query(url),
            timestamp_secs,
            &nonce,
            body,
        )?;
        for (name, value) in signed {
            headers.insert(name, value);
        }
        Ok(())
    }
}

/// The request target as it leaves in the request line: the path, and `?query` if any.
fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
}

/// The three headers of a signed request (docs/api.md, "Signed requests").
fn signature_headers(
    signing_key: &access::KeyHash,
    method: &str,
    path_and_query: &str,
    timestamp_secs: u64,
    nonce: &str,
    body: &[u8],
) -> Result<[(&'static str, HeaderValue); 3], ClientError> {
    let string_to_sign =
        access::signature::string_to_sign(method, path_and_query, timestamp_secs, nonce, body);
    let signature = access::signature::sign(signing_key, &string_to_sign);
    Ok([
        (TIMESTAMP_HEADER, HeaderValue::from(timestamp_secs)),
        (NONCE_HEADER, header_value(nonce)?),
        (SIGNATURE_HEADER, header_value(&format!("v1={signature}"))?),
    ])
}

fn method(route: Route) -> Result<Method, ClientError> {
    match route.0 {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "DELETE" => Ok(Method::DELETE),
        other => Err(invalid(format!("method {other}"))),
    }
}

fn invalid(message: String) -> ClientError {
    ClientError::InvalidArgument(message)
}

fn header_value(text: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(text).map_err(|_| invalid(format!("header value {text:?}")))
}

fn text_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(BODY_EXCERPT_CHARS_MAX).collect()
}

fn decode<T: DeserializeOwned>(answer: &Answer) -> Result<T, ClientError> {
    serde_json::from_slice(&answer.body).map_err(|source| ClientError::Decode {
        status: answer.status,
        request_id: answer.request_id.clone(),
        body_excerpt: excerpt(&answer.body),
        source,
    })
}

/// The one error shape.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    error_type: String,
    code: String,
    message: String,
    #[serde(default)]
    param: Option<String>,
}

fn refusal(
    status: u16,
    request_id: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> ClientError {
    // Only the seconds form: the service never sends an HTTP date.
    let retry_after_secs = text_header(headers, RETRY_AFTER.as_str())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ClientError::Api(Box::new(ApiError {
            status,
            error_type: error.error_type,
            code: error.code,
            message: error.message,
            param: error.param,
            request_id,
            retry_after_secs,
        })),
        Err(_) => ClientError::UnexpectedResponse {
            status,
            request_id,
            retry_after_secs,
            body_excerpt: excerpt(body),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::routes;

    #[test]
    fn path_parameters_are_one_encoded_segment_each() {
        let client = Client::new("http://127.0.0.1:1/prefix/", "qb_test_key").unwrap();
        let url = client.url(routes::GET_CUSTOMER, &["a b/c?d#e%f"], &Query::new()).unwrap();
        assert_eq!(path_and_query(&url), "/prefix/v1/customers/a%20b%2Fc%3Fd%23e%25f");
        let params = ["bank:a", "req 1"];
        let url = client.url(routes::ASK_NOW, &params, &Query::new()).unwrap();
        assert_eq!(url.path(), "/prefix/v1/ops/inquiries/bank:a/req%201/ask");
        for bad in ["", ".", ".."] {
            let error = client.url(routes::GET_ORDER, &[bad], &Query::new()).unwrap_err();
            assert!(matches!(error, ClientError::InvalidArgument(_)), "{bad:?}: {error}");
        }
        assert!(client.url(routes::GET_ORDER, &[], &Query::new()).is_err());
        assert!(client.url(routes::GET_ORDER, &["a", "b"], &Query::new()).is_err());
    }

    #[test]
    fn queries_leave_out_absent_options_and_encode_values() {
        let client = Client::new("http://127.0.0.1:1", "qb_test_key").unwrap();
        let query = Query::new()
            .opt("limit", Some(2))
            .opt("kind", None::<&str>)
            .opt("starting_after", Some("a&b=c d"));
        let url = client.url(routes::LIST_ORDERS, &[], &query).unwrap();
        assert_eq!(path_and_query(&url), "/v1/orders?limit=2&starting_after=a%26b%3Dc+d");
        let url = client.url(routes::LIST_ORDERS, &[], &Query::new()).unwrap();
        assert_eq!(path_and_query(&url), "/v1/orders");
    }

    #[test]
    fn signatures_match_the_documented_example() {
        // docs/api.md, "Signed requests": the worked example.
        let key = access::Secret::new(format!("qb_test_{}", "0".repeat(64))).hash();
        let headers = signature_headers(
            &key,
            "POST",
            "/v1/transfers",
            1_764_000_000,
            "nonce-0123456789ab",
            b"{}",
        )
        .unwrap();
        let [(_, timestamp), (_, nonce), (_, signature)] = headers;
        assert_eq!(timestamp, "1764000000");
        assert_eq!(nonce, "nonce-0123456789ab");
        assert_eq!(
            signature,
            "v1=5fa144aa1cb839e7b41a89f6a342d2b8fd0fc6a7270ed16a412607e948bf77fe"
        );
    }

    #[test]
    fn neither_the_key_nor_the_signing_key_is_printed() {
        let client = Client::builder("http://127.0.0.1:1", "qb_test_secret")
            .sign_requests()
            .build()
            .unwrap();
        let printed = format!("{client:?}");
        assert!(!printed.contains("qb_test_secret"), "{printed}");
        assert!(printed.contains("signs_requests: true"), "{printed}");
        assert!(Client::new("ftp://127.0.0.1", "k").is_err());
        assert!(Client::new("https://127.0.0.1", "k").is_err());
        assert!(Client::new("not a url", "k").is_err());
        assert!(Client::new("http://127.0.0.1", "bad\nkey").is_err());
    }
}
