//! The API's scalar types as they travel: amounts and ids are decimal strings (docs/api.md,
//! "Conventions"), because JavaScript numbers lose precision above 2^53 and balances can
//! exceed that. Each type here holds the integer and reads and writes the string, so no
//! caller ever parses one by hand.

use std::fmt;
use std::num::NonZeroU128;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Reads and writes a type as its decimal string (and reads a JSON integer too, as the
/// service's requests allow).
macro_rules! decimal_string_serde {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                deserializer.deserialize_any(DecimalVisitor::<$name>(std::marker::PhantomData))
            }
        }
    };
}

/// The largest amount the service accepts or shows: `i64::MAX` minor units, so that every
/// amount and balance fits a signed 64-bit column in both stores.
pub const AMOUNT_MINOR_MAX: u64 = i64::MAX as u64;

/// A count of minor units (fen, cents, points): never negative, never a fraction, at most
/// [`AMOUNT_MINOR_MAX`]. Zero is representable because some fields allow it (an overdraft of
/// 0, points of 0); the service refuses a zero where an amount must be positive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u64);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// `None` above [`AMOUNT_MINOR_MAX`].
    pub const fn new(minor_units: u64) -> Option<Amount> {
        if minor_units <= AMOUNT_MINOR_MAX {
            Some(Amount(minor_units))
        } else {
            None
        }
    }

    pub const fn minor_units(self) -> u64 {
        self.0
    }
}

/// Every `u32` is a valid amount, so small literals need no `Option`.
impl From<u32> for Amount {
    fn from(minor_units: u32) -> Amount {
        Amount(u64::from(minor_units))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Amount {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Amount, ParseError> {
        let value = parse_digits::<u64>(text, "an amount")?;
        Amount::new(value).ok_or(ParseError("an amount above i64::MAX"))
    }
}

/// A signed quantity of minor units (`available_credit`, a party's `balance`, a balance
/// sheet's `cover_minor`): a decimal string that may start with `-`. 128 bits because it is
/// a difference of sums that may themselves pass 2^63.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedAmount(i128);

impl SignedAmount {
    pub const fn new(minor_units: i128) -> SignedAmount {
        SignedAmount(minor_units)
    }

    pub const fn minor_units(self) -> i128 {
        self.0
    }
}

impl fmt::Display for SignedAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for SignedAmount {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<SignedAmount, ParseError> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let magnitude = parse_digits::<i128>(digits, "a signed amount")?;
        Ok(SignedAmount(if negative { -magnitude } else { magnitude }))
    }
}

/// A sum of amounts over many accounts (the trial balance's totals), which may pass 2^63.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AmountSum(u128);

impl AmountSum {
    pub const fn new(minor_units: u128) -> AmountSum {
        AmountSum(minor_units)
    }

    pub const fn minor_units(self) -> u128 {
        self.0
    }
}

impl fmt::Display for AmountSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for AmountSum {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<AmountSum, ParseError> {
        parse_digits::<u128>(text, "a sum of amounts").map(AmountSum)
    }
}

macro_rules! nonzero_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(NonZeroU128);

        impl $name {
            /// `None` for zero: the API has no id 0.
            pub const fn new(id: u128) -> Option<$name> {
                match NonZeroU128::new(id) {
                    Some(id) => Some($name(id)),
                    None => None,
                }
            }

            pub const fn get(self) -> u128 {
                self.0.get()
            }
        }

        impl From<NonZeroU128> for $name {
            fn from(id: NonZeroU128) -> $name {
                $name(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(text: &str) -> Result<$name, ParseError> {
                let id = parse_digits::<u128>(text, $what)?;
                $name::new(id).ok_or(ParseError(concat!($what, " of zero")))
            }
        }

        decimal_string_serde!($name);
    };
}

nonzero_id!(
    /// An account id: non-zero, below 2^128. Client-chosen: choose it before sending, and a
    /// retry can never open two accounts.
    AccountId,
    "an account id"
);

nonzero_id!(
    /// A transfer id: non-zero, below 2^128. Client-chosen ids must be below 2^127 (the ledger's
    /// own records, hold expiries, use the ids above; the service refuses them with
    /// `id_reserved`), but ids the service shows may be anywhere in the range.
    TransferId,
    "a transfer id"
);

/// A journal sequence number: an entry's position, the cursor of an account's history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Seq {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Seq, ParseError> {
        parse_digits::<u64>(text, "a sequence number").map(Seq)
    }
}

decimal_string_serde!(Amount);
decimal_string_serde!(SignedAmount);
decimal_string_serde!(AmountSum);
decimal_string_serde!(Seq);

struct DecimalVisitor<T>(std::marker::PhantomData<T>);

impl<T: FromStr<Err = ParseError>> Visitor<'_> for DecimalVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal string of ASCII digits (or a JSON integer)")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }
}

/// A decimal string that is not the number its field holds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not {0}")]
pub struct ParseError(&'static str);

/// ASCII digits only, as the service writes them: no sign, no spaces, no `+`.
fn parse_digits<T: FromStr>(text: &str, what: &'static str) -> Result<T, ParseError> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ParseError(what));
    }
    text.parse().map_err(|_| ParseError(what))
}

/// Declares an enum of the API's string values with a catch-all `Unknown`, so that a value a
/// newer service adds (a new order kind, a new scope) decodes instead of failing the whole
/// response, and a caller can still send a value this client does not name yet.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
            /// A value this client does not know (a newer service's), as it was sent.
            Unknown(String),
        }

        impl $name {
            /// Every value this client knows, in the document's order.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(text) => text,
                }
            }

            pub fn parse(text: &str) -> $name {
                match text {
                    $($text => $name::$variant,)+
                    other => $name::Unknown(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Ok($name::parse(&text))
            }
        }
    };
}
pub(crate) use wire_enum;

/// A secret the service shows once (a new API key's, a new webhook endpoint's signing
/// secret). `Debug` prints a mask so that it cannot reach a log by accident;
/// [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// One page of a list: `{"object": "list", "data": [...], "has_more": bool}`. Lists that do
/// not page (the newest `limit` items, or everything) have no `has_more`: it reads `false`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct List<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

/// A page to ask for: at most `limit` items after the cursor `starting_after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<C> {
    /// 1 to 1,000 (orders, events and deliveries: 1 to 500); the service's default if absent.
    pub limit: Option<u32>,
    /// The cursor of the last item you have ([`List::next_starting_after`]).
    pub starting_after: Option<C>,
}

impl<C> Default for Page<C> {
    fn default() -> Page<C> {
        Page { limit: None, starting_after: None }
    }
}

impl<C> Page<C> {
    pub fn first(limit: u32) -> Page<C> {
        Page { limit: Some(limit), starting_after: None }
    }

    pub fn after(limit: u32, starting_after: C) -> Page<C> {
        Page { limit: Some(limit), starting_after: Some(starting_after) }
    }
}

/// An item of a paged list, with the cursor that names it for `starting_after`.
pub trait Paged {
    type Cursor;
    fn cursor(&self) -> Self::Cursor;
}

impl<T: Paged> List<T> {
    /// The `starting_after` of the next page, or `None` on the last page.
    pub fn next_starting_after(&self) -> Option<T::Cursor> {
        if self.has_more {
            self.data.last().map(Paged::cursor)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn amounts_and_ids_travel_as_decimal_strings() {
        let amount: Amount = serde_json::from_str("\"1050\"").unwrap();
        assert_eq!(amount.minor_units(), 1050);
        assert_eq!(serde_json::to_string(&amount).unwrap(), "\"1050\"");
        // Requests may carry a JSON integer; the client reads one too.
        assert_eq!(serde_json::from_str::<Amount>("7").unwrap(), Amount::from(7u32));
        assert_eq!(serde_json::from_str::<Amount>("\"007\"").unwrap(), Amount::from(7u32));
        let max = format!("\"{}\"", i64::MAX);
        assert_eq!(serde_json::from_str::<Amount>(&max).unwrap().minor_units(), AMOUNT_MINOR_MAX);
        let over = format!("\"{}\"", AMOUNT_MINOR_MAX + 1);
        assert!(serde_json::from_str::<Amount>(&over).is_err());
        for bad in ["\"-1\"", "\"1.5\"", "\"+1\"", "\"\"", "\" 1\"", "1.5", "-1"] {
            assert!(serde_json::from_str::<Amount>(bad).is_err(), "{bad}");
        }

        let signed: SignedAmount = serde_json::from_str("\"-250\"").unwrap();
        assert_eq!(signed.minor_units(), -250);
        assert_eq!(serde_json::to_string(&signed).unwrap(), "\"-250\"");
        assert!(serde_json::from_str::<SignedAmount>("\"--1\"").is_err());

        let big = format!("\"{}\"", u128::MAX);
        assert_eq!(serde_json::from_str::<AccountId>(&big).unwrap().get(), u128::MAX);
        assert_eq!(serde_json::from_str::<AmountSum>(&big).unwrap().minor_units(), u128::MAX);
        assert!(serde_json::from_str::<AccountId>("\"0\"").is_err());
        assert!(AccountId::new(0).is_none() && TransferId::new(0).is_none());
        assert_eq!(serde_json::to_string(&TransferId::new(9).unwrap()).unwrap(), "\"9\"");
        assert_eq!(serde_json::from_str::<Seq>("\"0\"").unwrap(), Seq(0));
    }

    wire_enum! {
        pub enum Colour {
            Red = "red",
            DarkBlue = "dark_blue",
        }
    }

    #[test]
    fn wire_enums_keep_values_they_do_not_know() {
        assert_eq!(serde_json::from_str::<Colour>("\"dark_blue\"").unwrap(), Colour::DarkBlue);
        let newer: Colour = serde_json::from_str("\"ultraviolet\"").unwrap();
        assert_eq!(newer, Colour::Unknown("ultraviolet".into()));
        assert_eq!(serde_json::to_string(&newer).unwrap(), "\"ultraviolet\"");
        assert_eq!(Colour::KNOWN, &["red", "dark_blue"]);
    }
}
