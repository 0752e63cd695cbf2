//! The adapter for the bank simulator's HTTP protocol (`docs/banksim.md`): the template for a
//! real bank's adapter. It signs every request (HMAC-SHA256 with the channel's shared secret
//! over timestamp, method, path and body), sends our request id as the channel's
//! deduplication key, verifies callbacks, and maps every answer to a typed [`Outcome`].
//!
//! The mapping is where money is lost or kept: only an answer that proves the channel did
//! nothing becomes a failure that may go elsewhere (connection refused before sending, 503
//! down). Anything after the request may have reached the channel without a readable answer
//! (a timeout, a dropped connection, a 5xx, garbage) is [`Outcome::Unknown`].

use std::time::Duration;

use hmac::{Hmac, Mac};
use money::{Amount, AssetCode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::channel::{BoxFuture, Channel, ChannelError, Statement, StatementFile};
use crate::model::{
    ChannelId, ChannelRequest, FailureReason, Inquiry, Operation, Outcome, RequestId, Settled,
};

pub const HEADER_TIMESTAMP: &str = "x-banksim-timestamp";
pub const HEADER_SIGNATURE: &str = "x-banksim-signature";
/// The hex SHA-256 of a statement file, sent with it.
pub const HEADER_STATEMENT_SHA256: &str = "x-banksim-statement-sha256";

/// How to reach one simulated channel.
#[derive(Clone)]
pub struct SimulatorChannelConfig {
    pub id: ChannelId,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    /// The shared secret; never logged.
    pub secret: String,
    /// Per-request HTTP timeout (the gateway adds its own around the whole call).
    pub timeout_ms: u64,
}

/// By hand: the secret prints as a mask.
impl std::fmt::Debug for SimulatorChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorChannelConfig")
            .field("id", &self.id)
            .field("base_url", &self.base_url)
            .field("secret", &"****")
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

pub struct SimulatorChannel {
    config: SimulatorChannelConfig,
    client: reqwest::Client,
}

impl std::fmt::Debug for SimulatorChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorChannel")
            .field("id", &self.config.id)
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

fn mac(secret: &str) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// The signature of a platform → channel request.
pub fn sign_request(
    secret: &str,
    timestamp: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    let mut mac = mac(secret);
    for part in
        [timestamp.as_bytes(), b"\n", method.as_bytes(), b"\n", path.as_bytes(), b"\n", body]
    {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a channel → platform callback: HMAC over `timestamp + "\n" + body`, within
/// `skew_secs` of `now_secs`. Constant time.
pub fn verify_callback(
    secret: &str,
    timestamp: &str,
    signature_hex: &str,
    body: &[u8],
    now_secs: u64,
    skew_secs: u64,
) -> bool {
    let Ok(timestamp_secs) = timestamp.parse::<u64>() else { return false };
    if now_secs.abs_diff(timestamp_secs) > skew_secs {
        return false;
    }
    let Ok(signature) = hex::decode(signature_hex) else { return false };
    let mut mac = mac(secret);
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// An operation as the simulator reports it (answer, query, callback).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct OperationView {
    pub channel: String,
    pub request_id: RequestId,
    pub channel_ref: String,
    pub operation: Operation,
    pub amount_minor: Amount,
    pub fee_minor: Amount,
    pub currency: AssetCode,
    pub status: String,
    pub failure_reason: Option<String>,
}

/// A callback's body.
#[derive(Clone, Debug, Deserialize)]
pub struct CallbackBody {
    /// Unique per event; duplicate deliveries repeat it.
    pub event_id: String,
    pub data: OperationView,
}

impl OperationView {
    /// What this report means for us.
    pub fn outcome(&self) -> Outcome {
        match self.status.as_str() {
            "succeeded" => Outcome::Succeeded(Settled {
                channel_ref: self.channel_ref.clone(),
                fee: self.fee_minor,
            }),
            "processing" => Outcome::Processing,
            "failed" => {
                let code = self.failure_reason.as_deref().unwrap_or("");
                let reason = match code {
                    "declined" => FailureReason::Declined,
                    "insufficient_funds" => FailureReason::InsufficientFunds,
                    "invalid_account" => FailureReason::InvalidAccount,
                    // A refund of an unknown debit, past its amount, a fee past the largest
                    // amount: the request was wrong, and nothing moved.
                    _ => FailureReason::RequestRejected,
                };
                Outcome::failed(reason, format!("channel says failed: {code}"))
            }
            other => Outcome::Unknown { detail: format!("unknown status {other:?}") },
        }
    }
}

#[derive(Serialize)]
struct TransferBody<'a> {
    request_id: &'a RequestId,
    account: &'a str,
    amount_minor: Amount,
    currency: AssetCode,
}

#[derive(Serialize)]
struct RefundBody<'a> {
    request_id: &'a RequestId,
    debit_request_id: &'a RequestId,
    amount_minor: Amount,
    currency: AssetCode,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl SimulatorChannel {
    pub fn new(config: SimulatorChannelConfig) -> Result<SimulatorChannel, ChannelError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|error| ChannelError::Protocol(error.to_string()))?;
        Ok(SimulatorChannel { config, client })
    }

    fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let timestamp = now_secs().to_string();
        let signature = sign_request(&self.config.secret, &timestamp, method.as_str(), path, &body);
        self.client
            .request(method, format!("{}{path}", self.config.base_url))
            .header(HEADER_TIMESTAMP, timestamp)
            .header(HEADER_SIGNATURE, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
    }

    async fn send(&self, request: &ChannelRequest) -> Outcome {
        let channel = self.config.id.as_str();
        let body = match request.operation {
            Operation::Debit | Operation::Payout => serde_json::to_vec(&TransferBody {
                request_id: &request.request_id,
                account: &request.account,
                amount_minor: request.amount,
                currency: request.asset,
            }),
            Operation::Refund => {
                let Some(debit) = &request.original_request_id else {
                    return Outcome::failed(
                        FailureReason::RequestRejected,
                        "a refund needs the debit's request id",
                    );
                };
                serde_json::to_vec(&RefundBody {
                    request_id: &request.request_id,
                    debit_request_id: debit,
                    amount_minor: request.amount,
                    currency: request.asset,
                })
            }
        };
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                return Outcome::failed(FailureReason::RequestRejected, error.to_string())
            }
        };
        let path = match request.operation {
            Operation::Debit => format!("/channels/{channel}/debits"),
            Operation::Payout => format!("/channels/{channel}/payouts"),
            Operation::Refund => format!("/channels/{channel}/refunds"),
        };
        let response = match self.signed(reqwest::Method::POST, &path, body).send().await {
            Ok(response) => response,
            // The connection was never made: the request cannot have reached the channel.
            Err(error) if error.is_connect() => {
                return Outcome::failed(FailureReason::ChannelUnavailable, error.to_string());
            }
            Err(error) => return Outcome::Unknown { detail: error.to_string() },
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return Outcome::Unknown { detail: format!("{status}: {error}") },
        };
        if status.is_success() {
            return match serde_json::from_slice::<OperationView>(&bytes) {
                Ok(view) if view.request_id == request.request_id => view.outcome(),
                Ok(view) => Outcome::Unknown {
                    detail: format!(
                        "answer for {} to request {}",
                        view.request_id, request.request_id
                    ),
                },
                Err(error) => Outcome::Unknown { detail: format!("unreadable answer: {error}") },
            };
        }
        let error = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        let (code, message) =
            error.map_or((String::new(), String::new()), |e| (e.error.code, e.error.message));
        match (status.as_u16(), code.as_str()) {
            // Refused at the door: nothing was done.
            (503, "channel_down" | "capacity_exceeded") => {
                Outcome::failed(FailureReason::ChannelUnavailable, format!("{code}: {message}"))
            }
            (400 | 401 | 404 | 409 | 422, _) => Outcome::failed(
                FailureReason::RequestRejected,
                format!("{status} {code}: {message}"),
            ),
            _ => Outcome::Unknown { detail: format!("{status} {code}: {message}") },
        }
    }

    async fn query(&self, request_id: &RequestId) -> Inquiry {
        let path = format!("/channels/{}/operations/{request_id}", self.config.id);
        let response = match self.signed(reqwest::Method::GET, &path, Vec::new()).send().await {
            Ok(response) => response,
            Err(error) => return Inquiry::Unreachable { detail: error.to_string() },
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return Inquiry::Unreachable { detail: error.to_string() },
        };
        if status.is_success() {
            return match serde_json::from_slice::<OperationView>(&bytes) {
                Ok(view) => Inquiry::Found(view.outcome()),
                Err(error) => Inquiry::Unreachable { detail: format!("unreadable: {error}") },
            };
        }
        let code =
            serde_json::from_slice::<ErrorBody>(&bytes).map(|e| e.error.code).unwrap_or_default();
        if status.as_u16() == 404 && code == "not_found" {
            Inquiry::NotFound
        } else {
            Inquiry::Unreachable { detail: format!("{status} {code}") }
        }
    }

    async fn fetch_statement(&self, day: &str) -> Result<StatementFile, ChannelError> {
        let path = format!("/channels/{}/statements/{day}", self.config.id);
        let response = self
            .signed(reqwest::Method::GET, &path, Vec::new())
            .send()
            .await
            .map_err(|error| ChannelError::Unreachable(error.to_string()))?;
        let status = response.status();
        let sha256_hex = response
            .headers()
            .get(HEADER_STATEMENT_SHA256)
            .map(|value| value.to_str().unwrap_or_default().to_owned());
        // Read at most the largest statement the format allows (and one byte more, to know
        // it was passed): a channel sending without end must not exhaust our memory.
        let limit = recon::statement::STATEMENT_BYTES_MAX;
        let mut response = response;
        let mut bytes: Vec<u8> = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|error| ChannelError::Unreachable(error.to_string()))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(ChannelError::Statement(recon::StatementError::TooLarge {
                    size_bytes: bytes.len() + chunk.len(),
                    limit_bytes: limit,
                }));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]);
            return Err(ChannelError::Protocol(format!("{status}: {text}")));
        }
        Ok(StatementFile { bytes, sha256_hex })
    }
}

/// Checks a statement file against the digest published with it and parses it whole
/// (`StatementFile::read`).
pub fn read_statement(
    bytes: &[u8],
    sha256_hex: Option<&str>,
    currencies: &[AssetCode],
) -> Result<Statement, ChannelError> {
    StatementFile { bytes: bytes.to_vec(), sha256_hex: sha256_hex.map(str::to_owned) }
        .read(currencies)
}

/// How far a callback's timestamp may be from our clock.
pub const CALLBACK_SKEW_SECS: u64 = 300;

impl Channel for SimulatorChannel {
    fn id(&self) -> &ChannelId {
        &self.config.id
    }

    fn read_callback(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<crate::channel::CallbackReport, ChannelError> {
        let header = |name: &str| {
            headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
        };
        let (Some(timestamp), Some(signature)) =
            (header(HEADER_TIMESTAMP), header(HEADER_SIGNATURE))
        else {
            return Err(ChannelError::Unauthentic("timestamp or signature header missing".into()));
        };
        if !verify_callback(
            &self.config.secret,
            timestamp,
            signature,
            body,
            now_secs(),
            CALLBACK_SKEW_SECS,
        ) {
            return Err(ChannelError::Unauthentic("signature or timestamp does not verify".into()));
        }
        let callback: CallbackBody = serde_json::from_slice(body)
            .map_err(|error| ChannelError::Protocol(format!("callback body: {error}")))?;
        if callback.data.channel != self.config.id.as_str() {
            return Err(ChannelError::Protocol(format!(
                "a callback of channel {} sent to {}",
                callback.data.channel, self.config.id
            )));
        }
        Ok(crate::channel::CallbackReport {
            outcome: callback.data.outcome(),
            event_id: callback.event_id,
            request_id: callback.data.request_id,
        })
    }

    fn execute<'a>(&'a self, request: &'a ChannelRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(self.send(request))
    }

    fn inquire<'a>(&'a self, _: Operation, request_id: &'a RequestId) -> BoxFuture<'a, Inquiry> {
        Box::pin(self.query(request_id))
    }

    fn statement_file<'a>(
        &'a self,
        day: &'a str,
    ) -> BoxFuture<'a, Result<StatementFile, ChannelError>> {
        Box::pin(self.fetch_statement(day))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_prints_its_secret_masked() {
        let config = SimulatorChannelConfig {
            id: ChannelId::new("bank_a").expect("id"),
            base_url: "http://127.0.0.1:9090".into(),
            secret: "s3cret-value".into(),
            timeout_ms: 1_000,
        };
        let printed = format!("{config:?}");
        assert!(printed.contains("****") && !printed.contains("s3cret-value"), "{printed}");
    }

    #[test]
    fn callbacks_verify_only_with_the_secret_in_the_window() {
        let body = br#"{"event_id":"e1"}"#;
        let mut mac = mac("s3cret");
        mac.update(b"1000\n");
        mac.update(body);
        let signature = hex::encode(mac.finalize().into_bytes());
        assert!(verify_callback("s3cret", "1000", &signature, body, 1_100, 300));
        assert!(!verify_callback("other", "1000", &signature, body, 1_100, 300));
        assert!(!verify_callback("s3cret", "1000", &signature, b"{}", 1_100, 300));
        assert!(!verify_callback("s3cret", "1000", &signature, body, 2_000, 300));
        assert!(!verify_callback("s3cret", "x", &signature, body, 1_000, 300));
    }

    #[test]
    fn statements_are_read_whole_and_only_with_their_digest() {
        use sha2::Digest;
        let cny = AssetCode::new("CNY").expect("CNY");
        let csv = "record,request_id,channel_ref,type,amount_minor,fee_minor,currency,booked_at_ms,status,count\n\
                   detail,r1,bank_a-00000001,debit,1000,6,CNY,1764979200123,succeeded,\n\
                   summary,,,debit,1000,6,CNY,,,1\n";
        let digest = hex::encode(Sha256::digest(csv.as_bytes()));
        let statement = read_statement(csv.as_bytes(), Some(&digest), &[cny]).expect("parse");
        assert_eq!(statement.details.len(), 1);
        assert_eq!(statement.details[0].request_id.as_deref(), Some("r1"));
        assert_eq!(
            (statement.details[0].amount.minor(), statement.details[0].fee.minor()),
            (1000, 6)
        );
        let refused = |result: Result<Statement, ChannelError>| match result {
            Err(ChannelError::Statement(error)) => error.code(),
            other => panic!("{other:?}"),
        };
        let wrong = "0".repeat(64);
        assert_eq!(
            refused(read_statement(csv.as_bytes(), Some(&wrong), &[cny])),
            "statement_checksum_mismatch"
        );
        let unbalanced = csv.replace("debit,1000,6,CNY,,,1", "debit,1001,6,CNY,,,1");
        let digest = hex::encode(Sha256::digest(unbalanced.as_bytes()));
        assert_eq!(
            refused(read_statement(unbalanced.as_bytes(), Some(&digest), &[cny])),
            "statement_summary_mismatch"
        );
        assert!(matches!(
            read_statement(csv.as_bytes(), None, &[cny]),
            Err(ChannelError::Protocol(_))
        ));
    }
}
