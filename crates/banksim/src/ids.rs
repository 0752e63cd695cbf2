//! Names that arrive from outside: request ids, account names, channel names. Each is
//! validated once, in its constructor, so the rest of the crate never re-checks them and a
//! statement line can never be broken by a comma or a newline in an id.

use std::fmt;

/// The longest request id or account name, in bytes: the statement format's bound on a
/// reference (64), so that every operation the simulator accepts can appear in its bill.
/// (Kept as a number, not imported: the simulator shares no code with the platform.)
pub const NAME_LEN_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("must be 1 to {NAME_LEN_MAX} characters")]
    Length,
    #[error("may contain only A-Z, a-z, 0-9, '-', '_', '.' and ':'")]
    Characters,
}

fn validate(raw: &str) -> Result<(), NameError> {
    if raw.is_empty() || raw.len() > NAME_LEN_MAX {
        return Err(NameError::Length);
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':');
    if !raw.bytes().all(valid) {
        return Err(NameError::Characters);
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn new(raw: &str) -> Result<$name, NameError> {
                validate(raw)?;
                Ok($name(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $name::new(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// The platform's id for one operation (OUR `request_id`): the idempotency key at the bank.
    RequestId
);
name_type!(
    /// A customer's account (or card) number at one simulated bank.
    AccountName
);
name_type!(
    /// A channel's name (`bank_a`, `fastpay`).
    ChannelName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_a_statement_reference() {
        assert!(validate(&"a".repeat(NAME_LEN_MAX)).is_ok());
        assert_eq!(validate(&"a".repeat(NAME_LEN_MAX + 1)), Err(NameError::Length));
        assert_eq!(validate("a,b"), Err(NameError::Characters));
        assert_eq!(NAME_LEN_MAX, 64, "the statement format's reference bound");
    }
}
