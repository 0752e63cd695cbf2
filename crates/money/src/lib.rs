//! Money types shared by every domain: an [`AssetCode`] names what is counted (a currency,
//! points, a prepaid value), an [`Asset`] adds its minor-unit scale, and an [`Amount`] is a
//! count of minor units.
//!
//! Why integers only: a ledger must add up exactly, forever. Binary floating point cannot
//! represent 0.10 and silently rounds; minor units in an integer cannot drift. Arithmetic on
//! [`Amount`] is checked (`checked_add`, `checked_sub`) and there is deliberately no `Add`
//! impl: an overflow in a money path is a rejected command, never a wrapped balance.
//!
//! Why the ceiling is `i64::MAX` rather than `u64::MAX`: both storage backends keep amounts
//! and balances in a signed 64-bit column (`BIGINT`, SQLite `INTEGER`), so every value an
//! [`Amount`] can hold is representable in storage without a conversion that could fail.

use std::fmt;
use std::str::FromStr;

/// A non-negative count of minor units (fen, cents, points), at most [`Amount::MAX`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u64);

impl Amount {
    pub const ZERO: Amount = Amount(0);
    /// The largest amount or balance: `i64::MAX` minor units, so storage never overflows.
    pub const MAX: Amount = Amount(i64::MAX as u64);

    /// Returns `None` above [`Amount::MAX`].
    pub const fn new(minor: u64) -> Option<Amount> {
        if minor > Self::MAX.0 {
            None
        } else {
            Some(Amount(minor))
        }
    }

    /// From a storage column. Negative values are a corrupted store, not bad input.
    pub fn from_stored(minor: i64) -> Option<Amount> {
        u64::try_from(minor).ok().map(Amount)
    }

    pub const fn minor(self) -> u64 {
        self.0
    }

    /// The value for a signed 64-bit storage column; lossless by construction.
    pub const fn to_stored(self) -> i64 {
        self.0 as i64
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).and_then(Amount::new)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Subtraction clamped at zero, for derived quantities such as an available balance.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// JSON form: a string of decimal digits, because JavaScript clients lose precision on
/// numbers above 2^53 and balances can exceed that. Input accepts the string or a JSON
/// integer, so hand-written requests stay easy.
impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl serde::de::Visitor<'_> for AmountVisitor {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a non-negative integer amount of minor units up to {}", Amount::MAX.0)
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Amount, E> {
                Amount::new(value).ok_or_else(|| E::custom("amount exceeds the maximum"))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Amount, E> {
                Amount::from_stored(value).ok_or_else(|| E::custom("amount must not be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Amount, E> {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom("amount must be a string of decimal digits"));
                }
                let minor: u64 =
                    value.parse().map_err(|_| E::custom("amount exceeds the maximum"))?;
                self.visit_u64(minor)
            }
        }
        deserializer.deserialize_any(AmountVisitor)
    }
}

/// The longest asset code, in bytes.
pub const ASSET_CODE_LEN_MAX: usize = 12;
/// The largest minor-unit scale: 10^18 minor units per major unit still fits a `u64`.
pub const ASSET_SCALE_MAX: u8 = 18;

/// An asset's code: 1 to 12 characters of `A-Z`, `0-9` and `_`, starting with a letter
/// (`CNY`, `USD`, `POINTS`, `CARD_GIFT`). Stored inline so that it is `Copy`: asset codes sit in
/// every transfer on the hot path.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetCode {
    len: u8,
    bytes: [u8; ASSET_CODE_LEN_MAX],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssetCodeError {
    #[error("asset code must be 1 to {ASSET_CODE_LEN_MAX} characters")]
    Length,
    #[error("asset code must start with A-Z and contain only A-Z, 0-9 and _")]
    Characters,
}

impl AssetCode {
    pub fn new(code: &str) -> Result<AssetCode, AssetCodeError> {
        let raw = code.as_bytes();
        if raw.is_empty() || raw.len() > ASSET_CODE_LEN_MAX {
            return Err(AssetCodeError::Length);
        }
        let valid_char = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_';
        if !raw[0].is_ascii_uppercase() || !raw.iter().all(valid_char) {
            return Err(AssetCodeError::Characters);
        }
        let mut bytes = [0u8; ASSET_CODE_LEN_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(AssetCode { len: raw.len() as u8, bytes })
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from validated ASCII, so this cannot fail.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl FromStr for AssetCode {
    type Err = AssetCodeError;
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        AssetCode::new(code)
    }
}

impl fmt::Display for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetCode({})", self.as_str())
    }
}

impl serde::Serialize for AssetCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for AssetCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        AssetCode::new(&raw).map_err(serde::de::Error::custom)
    }
}

/// An asset: its code and how many decimal places its minor unit has (CNY: 2, JPY: 0,
/// POINTS: 0). The scale is for presentation and FX; the ledger itself only counts minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Asset {
    code: AssetCode,
    scale: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssetError {
    #[error("asset scale must be at most {ASSET_SCALE_MAX}")]
    Scale,
}

impl Asset {
    pub fn new(code: AssetCode, scale: u8) -> Result<Asset, AssetError> {
        if scale > ASSET_SCALE_MAX {
            return Err(AssetError::Scale);
        }
        Ok(Asset { code, scale })
    }

    pub fn code(&self) -> AssetCode {
        self.code
    }

    pub fn scale(&self) -> u8 {
        self.scale
    }

    /// Renders an amount in major units with exactly `scale` decimals, e.g. `12.30`.
    pub fn format(&self, amount: Amount) -> String {
        let minor = amount.minor();
        if self.scale == 0 {
            return minor.to_string();
        }
        let unit = 10u64.pow(u32::from(self.scale));
        format!("{}.{:0width$}", minor / unit, minor % unit, width = usize::from(self.scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_arithmetic_is_checked_at_the_storage_ceiling() {
        let max = Amount::MAX;
        assert_eq!(max.checked_add(Amount::new(1).unwrap()), None);
        assert_eq!(Amount::new(i64::MAX as u64 + 1), None);
        assert_eq!(Amount::ZERO.checked_sub(Amount::new(1).unwrap()), None);
        assert_eq!(Amount::from_stored(-1), None);
        assert_eq!(max.to_stored(), i64::MAX);
    }

    #[test]
    fn asset_codes_are_validated() {
        assert!(AssetCode::new("CNY").is_ok());
        assert!(AssetCode::new("POINTS_2").is_ok());
        assert_eq!(AssetCode::new(""), Err(AssetCodeError::Length));
        assert_eq!(AssetCode::new("ABCDEFGHIJKLM"), Err(AssetCodeError::Length));
        assert_eq!(AssetCode::new("cny"), Err(AssetCodeError::Characters));
        assert_eq!(AssetCode::new("1CNY"), Err(AssetCodeError::Characters));
        assert_eq!(AssetCode::new("CNY").unwrap().as_str(), "CNY");
    }

    #[test]
    fn asset_formats_major_units_exactly() {
        let cny = Asset::new(AssetCode::new("CNY").unwrap(), 2).unwrap();
        assert_eq!(cny.format(Amount::new(1230).unwrap()), "12.30");
        assert_eq!(cny.format(Amount::new(5).unwrap()), "0.05");
        let points = Asset::new(AssetCode::new("POINTS").unwrap(), 0).unwrap();
        assert_eq!(points.format(Amount::new(42).unwrap()), "42");
        assert!(Asset::new(AssetCode::new("X").unwrap(), 19).is_err());
    }
}
