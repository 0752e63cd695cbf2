//! Message authentication between the platform and a channel: HMAC-SHA256 with the
//! channel's shared secret, hex-encoded.
//!
//! - Platform → channel: over `"{timestamp}\n{METHOD}\n{path}\n{body}"`, so a signature for
//!   one endpoint cannot be replayed on another (a GET has an empty body).
//! - Channel → platform (callbacks): over `"{timestamp}\n{body}"`; the body names the
//!   channel, the request id and the event id, and the receiver's path may be rewritten by
//!   proxies in front of it.
//!
//! The timestamp is Unix seconds and must be within the configured skew of the receiver's
//! clock, which bounds how long a captured request can be replayed.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER_TIMESTAMP: &str = "x-banksim-timestamp";
pub const HEADER_SIGNATURE: &str = "x-banksim-signature";

type HmacSha256 = Hmac<Sha256>;

/// A shared secret. `Debug` prints a mask so that it never reaches a log.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this constructor cannot fail.
        match HmacSha256::new_from_slice(self.0.as_bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

fn request_mac(
    secret: &Secret,
    timestamp: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> HmacSha256 {
    let mut mac = secret.mac();
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(method.as_bytes());
    mac.update(b"\n");
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

/// The hex signature of a platform → channel request.
pub fn sign_request(
    secret: &Secret,
    timestamp: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    hex::encode(request_mac(secret, timestamp, method, path, body).finalize().into_bytes())
}

/// Checks a platform → channel request's signature in constant time.
pub fn verify_request(
    secret: &Secret,
    timestamp: &str,
    method: &str,
    path: &str,
    body: &[u8],
    signature_hex: &str,
) -> bool {
    let Ok(signature) = hex::decode(signature_hex) else { return false };
    request_mac(secret, timestamp, method, path, body).verify_slice(&signature).is_ok()
}

/// The hex signature of a channel → platform callback.
pub fn sign_callback(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_signatures_cover_every_part() {
        let secret = Secret::new("s3cret");
        let signature = sign_request(&secret, "1700000000", "POST", "/channels/a/debits", b"{}");
        assert!(verify_request(
            &secret,
            "1700000000",
            "POST",
            "/channels/a/debits",
            b"{}",
            &signature
        ));
        assert!(!verify_request(
            &secret,
            "1700000001",
            "POST",
            "/channels/a/debits",
            b"{}",
            &signature
        ));
        assert!(!verify_request(
            &secret,
            "1700000000",
            "GET",
            "/channels/a/debits",
            b"{}",
            &signature
        ));
        assert!(!verify_request(
            &secret,
            "1700000000",
            "POST",
            "/channels/a/payouts",
            b"{}",
            &signature
        ));
        assert!(!verify_request(
            &secret,
            "1700000000",
            "POST",
            "/channels/a/debits",
            b"{ }",
            &signature
        ));
        assert!(!verify_request(
            &Secret::new("other"),
            "1700000000",
            "POST",
            "/channels/a/debits",
            b"{}",
            &signature
        ));
        assert!(!verify_request(&secret, "1700000000", "POST", "/channels/a/debits", b"{}", "zz"));
        assert_eq!(format!("{secret:?}"), "Secret(****)");
    }
}
