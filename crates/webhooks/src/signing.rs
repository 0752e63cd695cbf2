//! The signature on every delivery: `Qianbao-Signature: t=<unix seconds>,v1=<hex>` where the
//! hex is HMAC-SHA256(endpoint secret, "<t>.<body>"). Receivers recompute it, compare in
//! constant time, and refuse a `t` far from their clock (replays).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER_SIGNATURE: &str = "qianbao-signature";
pub const HEADER_EVENT_ID: &str = "qianbao-event-id";

fn mac(secret: &str) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// The header value for `body` sent at `timestamp_secs`.
pub fn sign(secret: &str, timestamp_secs: u64, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp_secs},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a header value: well formed, within `tolerance_secs` of `now_secs`, and a valid
/// signature of `body`.
pub fn verify(secret: &str, header: &str, body: &[u8], now_secs: u64, tolerance_secs: u64) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<u64>().ok(),
            Some(("v1", value)) => signature = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else { return false };
    if now_secs.abs_diff(timestamp) > tolerance_secs {
        return false;
    }
    let mut mac = mac(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let header = sign("whsec_1", 1_700_000_000, b"{\"a\":1}");
        assert!(verify("whsec_1", &header, b"{\"a\":1}", 1_700_000_100, 300));
        assert!(!verify("whsec_2", &header, b"{\"a\":1}", 1_700_000_100, 300), "other secret");
        assert!(!verify("whsec_1", &header, b"{\"a\":2}", 1_700_000_100, 300), "other body");
        assert!(!verify("whsec_1", &header, b"{\"a\":1}", 1_700_001_000, 300), "too old");
        assert!(!verify("whsec_1", "t=1,v1=zz", b"", 1, 300), "garbage");
    }
}
