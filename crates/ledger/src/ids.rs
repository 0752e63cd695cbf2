//! Identifiers. Every entity has its own newtype over a non-zero `u128`, chosen by the client:
//! a client that picks the id before sending can retry the same command safely, because the
//! id is the idempotency key (TigerBeetle's model).

use std::fmt;
use std::num::NonZeroU128;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error("id must not be zero")]
    Zero,
    #[error("id must be a decimal integer below 2^128")]
    Syntax,
    #[error("stored id must be 16 bytes")]
    StoredLength,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(NonZeroU128);

        impl $name {
            pub fn new(raw: u128) -> Result<Self, IdError> {
                NonZeroU128::new(raw).map($name).ok_or(IdError::Zero)
            }

            pub fn get(self) -> u128 {
                self.0.get()
            }

            /// Big-endian bytes: byte order equals numeric order, so storage indexes sort ids
            /// the way people read them.
            pub fn to_bytes(self) -> [u8; 16] {
                self.0.get().to_be_bytes()
            }

            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; 16] = bytes.try_into().map_err(|_| IdError::StoredLength)?;
                Self::new(u128::from_be_bytes(array))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(raw: &str) -> Result<Self, IdError> {
                // Digits only: `u128::from_str` would also take a leading `+`, which the API's
                // documented id format (and its OpenAPI pattern) does not.
                if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IdError::Syntax);
                }
                let value: u128 = raw.parse().map_err(|_| IdError::Syntax)?;
                Self::new(value)
            }
        }

        impl serde::Serialize for $name {
            /// As a decimal string: JSON numbers lose precision above 2^53 in JavaScript.
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// An account's id.
    AccountId
);
id_type!(
    /// A transfer's id; also its idempotency key. Ids with the top bit set are reserved for
    /// records the ledger writes itself (hold expiries), so no client can take one first.
    TransferId
);

impl AccountId {
    /// Row `row` of this account's layout: itself for row 0, else an id derived from this
    /// one (a hash, so every id can have rows, whatever range its owner draws ids from).
    pub fn row(self, row: u8) -> AccountId {
        use sha2::{Digest, Sha256};
        if row == 0 {
            return self;
        }
        let digest: [u8; 32] = Sha256::new()
            .chain_update(b"qianbao.account.row\0")
            .chain_update(self.to_bytes())
            .chain_update([row])
            .finalize()
            .into();
        let mut raw = [0u8; 16];
        raw.copy_from_slice(&digest[..16]);
        AccountId::new(u128::from_be_bytes(raw)).unwrap_or(self)
    }
}

impl TransferId {
    /// The bit that marks ids of the ledger's own records.
    pub const RESERVED_BIT: u128 = 1 << 127;

    /// Whether this id is in the ledger's own range (clients get `id_reserved`).
    pub fn is_reserved(self) -> bool {
        self.get() & TransferId::RESERVED_BIT != 0
    }
}

/// The position of a record in the journal: a gapless, strictly increasing counter shared
/// by every record (account openings, status changes, transfers). "Balance as of a point"
/// means "after the record with this sequence number".
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Seq(pub u64);

/// A committed batch's position in the hash chain, starting at 1.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct BatchSeq(pub u64);

/// Microseconds since the Unix epoch, UTC.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn plus_secs(self, secs: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(u64::from(secs) * 1_000_000))
    }
}

/// Where time comes from. Injected so that tests can drive hold expiry deterministically.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(since_epoch.as_micros() as u64)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicU64::new(start.0))
    }

    pub fn advance_secs(&self, secs: u64) {
        self.0.fetch_add(secs * 1_000_000, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
