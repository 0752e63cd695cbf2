//! Console sessions: a cookie sealed with HMAC-SHA256 under a key only the service holds.
//!
//! The cookie carries the SHA-256 of the operator's API key (what the key store is looked
//! up by — never the key) and an expiry; the service looks the key up on every request, so
//! revoking the key ends its sessions at once. The CSRF token is a second MAC over the
//! cookie: a page on another origin can make the browser send the cookie (it is
//! `SameSite=Strict`, so modern browsers will not even do that) but can never read the
//! token, and the service refuses the cookie without it.
//!
//! Written here rather than taken from a session crate because it is small, has no state
//! to store, and must tie into the key store's own revocation; `hmac` does the cryptography.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name.
pub const COOKIE_NAME: &str = "qianbao_console";
/// The header the console's script sends the CSRF token in.
pub const CSRF_HEADER: &str = "qianbao-csrf";
/// How long a session lasts: one operator's shift.
pub const SESSION_MS: u64 = 8 * 60 * 60 * 1000;
/// The version tag at the cookie's start, so the format can change.
const VERSION: &str = "v1";
/// MAC domain separation: a cookie's MAC can never pass as a CSRF token or the reverse.
const COOKIE_LABEL: &[u8] = b"qianbao console cookie v1\0";
const CSRF_LABEL: &[u8] = b"qianbao console csrf v1\0";

/// Why a presented cookie is not a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the console cookie is malformed")]
    Malformed,
    #[error("the console cookie's seal does not verify")]
    BadSeal,
    #[error("the console session has expired")]
    Expired,
    #[error("the CSRF token is missing or wrong")]
    BadCsrf,
}

/// A verified session: whose key, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the key's secret.
    pub key_hash: [u8; 32],
    pub expires_at_ms: u64,
}

/// A session just issued: the cookie's value and its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub cookie: String,
    pub csrf: String,
    pub expires_at_ms: u64,
}

/// Seals and opens sessions under one secret.
pub struct Sealer {
    secret: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(secret: [u8; 32]) -> Sealer {
        Sealer { secret }
    }

    fn mac(&self, label: &[u8], message: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(label);
        mac.update(message);
        mac
    }

    /// A session for the key with this hash, from `now_ms` for [`SESSION_MS`].
    pub fn issue(&self, key_hash: [u8; 32], now_ms: u64) -> Issued {
        let expires_at_ms = now_ms.saturating_add(SESSION_MS);
        let body = format!("{VERSION}.{}.{expires_at_ms}", hex::encode(key_hash));
        let seal = hex::encode(self.mac(COOKIE_LABEL, body.as_bytes()).finalize().into_bytes());
        let cookie = format!("{body}.{seal}");
        let csrf = self.csrf_of(&cookie);
        Issued { cookie, csrf, expires_at_ms }
    }

    /// The CSRF token that goes with a cookie.
    pub fn csrf_of(&self, cookie: &str) -> String {
        hex::encode(self.mac(CSRF_LABEL, cookie.as_bytes()).finalize().into_bytes())
    }

    /// The session a cookie names, if its seal verifies and it has not expired.
    pub fn open(&self, cookie: &str, now_ms: u64) -> Result<Session, SessionError> {
        let (body, seal) = cookie.rsplit_once('.').ok_or(SessionError::Malformed)?;
        let mut parts = body.split('.');
        let (Some(VERSION), Some(hash_hex), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Malformed);
        };
        let seal = hex::decode(seal).map_err(|_| SessionError::Malformed)?;
        // Constant time: the seal is compared by `verify_slice`.
        self.mac(COOKIE_LABEL, body.as_bytes())
            .verify_slice(&seal)
            .map_err(|_| SessionError::BadSeal)?;
        let mut key_hash = [0u8; 32];
        hex::decode_to_slice(hash_hex, &mut key_hash).map_err(|_| SessionError::Malformed)?;
        let expires_at_ms: u64 = expires.parse().map_err(|_| SessionError::Malformed)?;
        if now_ms >= expires_at_ms {
            return Err(SessionError::Expired);
        }
        Ok(Session { key_hash, expires_at_ms })
    }

    /// Opens a cookie presented with a CSRF token: both must verify.
    pub fn open_with_csrf(
        &self,
        cookie: &str,
        csrf: Option<&str>,
        now_ms: u64,
    ) -> Result<Session, SessionError> {
        let session = self.open(cookie, now_ms)?;
        let presented =
            csrf.and_then(|token| hex::decode(token).ok()).ok_or(SessionError::BadCsrf)?;
        self.mac(CSRF_LABEL, cookie.as_bytes())
            .verify_slice(&presented)
            .map_err(|_| SessionError::BadCsrf)?;
        Ok(session)
    }
}

/// The value of the console's cookie in a `Cookie` request header, if present.
pub fn cookie_in(header: &str) -> Option<&str> {
    header.split(';').map(str::trim).find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == COOKIE_NAME).then_some(value)
    })
}

/// The `Set-Cookie` value that stores a session: only over HTTPS (`Secure`; browsers treat
/// `localhost` as secure too), never readable by script, never sent cross-site.
pub fn set_cookie(issued: &Issued, now_ms: u64) -> String {
    let max_age_s = issued.expires_at_ms.saturating_sub(now_ms) / 1000;
    format!(
        "{COOKIE_NAME}={}; Path=/; Max-Age={max_age_s}; HttpOnly; Secure; SameSite=Strict",
        issued.cookie
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn an_issued_session_opens_with_its_token_until_it_expires() {
        let sealer = Sealer::new([7; 32]);
        let issued = sealer.issue([1; 32], NOW);
        let session = sealer.open_with_csrf(&issued.cookie, Some(&issued.csrf), NOW + 1).unwrap();
        assert_eq!(session, Session { key_hash: [1; 32], expires_at_ms: NOW + SESSION_MS });
        assert_eq!(
            sealer.open(&issued.cookie, NOW + SESSION_MS),
            Err(SessionError::Expired),
            "a shift later the cookie is refused"
        );
    }

    #[test]
    fn a_cookie_without_its_token_or_under_another_secret_is_refused() {
        let sealer = Sealer::new([7; 32]);
        let issued = sealer.issue([1; 32], NOW);
        assert_eq!(sealer.open_with_csrf(&issued.cookie, None, NOW), Err(SessionError::BadCsrf));
        let other = sealer.issue([2; 32], NOW);
        assert_eq!(
            sealer.open_with_csrf(&issued.cookie, Some(&other.csrf), NOW),
            Err(SessionError::BadCsrf),
            "a token belongs to one cookie"
        );
        assert_eq!(
            sealer.open_with_csrf(&issued.cookie, Some(&issued.cookie), NOW),
            Err(SessionError::BadCsrf)
        );
        assert_eq!(Sealer::new([8; 32]).open(&issued.cookie, NOW), Err(SessionError::BadSeal));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_set_safely() {
        assert_eq!(cookie_in("a=1; qianbao_console=v1.x.y.z; b=2"), Some("v1.x.y.z"));
        assert_eq!(cookie_in("qianbao_consoles=1"), None);
        let sealer = Sealer::new([7; 32]);
        let set = set_cookie(&sealer.issue([1; 32], NOW), NOW);
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
            assert!(set.contains(attribute), "{set} lacks {attribute}");
        }
    }

    proptest! {
        /// Any change to a cookie — its key hash, its expiry, its seal — breaks it.
        #[test]
        fn a_changed_cookie_never_opens(position in 0usize..200, replacement in "[0-9a-f.v]") {
            let sealer = Sealer::new([7; 32]);
            let issued = sealer.issue([1; 32], NOW);
            let mut bytes: Vec<char> = issued.cookie.chars().collect();
            let at = position % bytes.len();
            let new = replacement.chars().next().unwrap();
            prop_assume!(bytes[at] != new);
            bytes[at] = new;
            let changed: String = bytes.into_iter().collect();
            prop_assert!(sealer.open(&changed, NOW).is_err());
        }
    }
}
