//! The string formats of the API as named OpenAPI schemas: ids, amounts, asset codes, party
//! ids and references, order ids, tenants, exchange rates, webhook URLs, `Idempotency-Key`.
//!
//! Each schema is built from the bound the server checks (`u128::MAX`, `Amount::MAX`,
//! `ASSET_CODE_LEN_MAX`, …), so the document states exactly what the server accepts: a value
//! the schema allows is never refused as malformed (400), and a value it forbids always is.
//! Decimal bounds such as "below 2^128" become regular expressions ([`decimal_up_to`]),
//! because JSON Schema's `maximum` applies to numbers, and ids and amounts are strings
//! (JavaScript loses precision above 2^53).
//!
//! Patterns are ECMA-262 as JSON Schema requires, and use only what ECMA-262, Python's `re`
//! and Rust's `regex` read alike (classes, counted repeats, `^`/`$`, `\uXXXX`), so generated
//! clients and the schema-based fuzzer (`scripts/api-fuzz`) read them as the server means them.

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A regular-expression fragment (no anchors) matching exactly the canonical decimals from 1
/// to `bound`: no sign, no leading zero. It is the union of "fewer digits than `bound`" and,
/// for each position, "the same digits as `bound` up to there, then a smaller digit, then any
/// digits". The caller anchors it and decides about leading zeros.
pub fn decimal_up_to(bound: u128) -> String {
    let digits: Vec<u8> = bound.to_string().bytes().map(|digit| digit - b'0').collect();
    let n_digits = digits.len();
    let mut branches = Vec::with_capacity(n_digits + 2);
    if bound == 0 {
        // No positive decimal is at most 0: a class that matches nothing.
        return "[^\\s\\S]".to_string();
    }
    if n_digits > 1 {
        // Every positive number with fewer digits than the bound is below it.
        branches.push(format!("[1-9]{}", repeat_digits(0, n_digits - 2)));
    }
    // The digit at `digit_idx` is below the bound's, after the same prefix. The first digit
    // of a canonical decimal is never 0.
    for (digit_idx, &digit) in digits.iter().enumerate() {
        let lowest = if digit_idx == 0 { 1 } else { 0 };
        if digit <= lowest {
            continue;
        }
        let prefix: String = digits[..digit_idx].iter().map(|d| char::from(b'0' + d)).collect();
        let class = digit_class(lowest, digit - 1);
        let rest = n_digits - digit_idx - 1;
        branches.push(format!("{prefix}{class}{}", repeat_digits(rest, rest)));
    }
    // The bound itself.
    branches.push(digits.iter().map(|d| char::from(b'0' + d)).collect());
    format!("(?:{})", branches.join("|"))
}

/// `[lo-hi]`, or the one digit.
fn digit_class(lo: u8, hi: u8) -> String {
    if lo == hi {
        char::from(b'0' + lo).to_string()
    } else {
        format!("[{lo}-{hi}]")
    }
}

/// `[0-9]` repeated `min` to `max` times; nothing for zero repeats.
fn repeat_digits(min: usize, max: usize) -> String {
    match (min, max) {
        (_, 0) => String::new(),
        (1, 1) => "[0-9]".to_string(),
        (min, max) if min == max => format!("[0-9]{{{min}}}"),
        (min, max) => format!("[0-9]{{{min},{max}}}"),
    }
}

/// A whole string of decimal digits whose value is 1 to `bound`. Leading zeros are accepted,
/// as the server reads `"007"` as 7 (no sign, no spaces, no other digits).
pub fn positive_decimal_pattern(bound: u128) -> String {
    format!("^0*{}$", decimal_up_to(bound))
}

/// Like [`positive_decimal_pattern`], with zero allowed.
pub fn decimal_pattern(bound: u128) -> String {
    format!("^(?:0+|0*{})$", decimal_up_to(bound))
}

/// The largest id: ids are non-zero `u128`s.
pub const ID_MAX: u128 = u128::MAX;
/// The largest transfer id a client may choose: from 2^127 up, ids are the ledger's own.
pub const CLIENT_TRANSFER_ID_MAX: u128 = ledger::TransferId::RESERVED_BIT - 1;
/// The largest amount, in minor units.
pub const AMOUNT_MAX: u64 = money::Amount::MAX.minor();

fn string(description: &str, pattern: String, example: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .pattern(Some(pattern))
        .examples([serde_json::json!(example)])
        .into()
}

/// Declares a unit struct whose OpenAPI schema is built at run time by `$schema`.
macro_rules! format_schema {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T($schema)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

format_schema!(
    /// An account id: a non-zero decimal below 2^128.
    AccountId => string(
        "An account id: a non-zero integer below 2^128 (340282366920938463463374607431768211456), \
         as a decimal string.",
        positive_decimal_pattern(ID_MAX),
        "1001",
    )
);

format_schema!(
    /// A transfer id a client may choose: a non-zero decimal below 2^127.
    TransferId => string(
        "A transfer id: a non-zero integer below 2^127 (170141183460469231731687303715884105728), \
         as a decimal string. Ids from 2^127 up are the ledger's own (hold expiries) and are \
         refused with `id_reserved`.",
        positive_decimal_pattern(CLIENT_TRANSFER_ID_MAX),
        "7001",
    )
);

format_schema!(
    /// Any transfer's id, the ledger's own included: a non-zero decimal below 2^128.
    AnyTransferId => string(
        "A transfer's id: a non-zero integer below 2^128, as a decimal string (ids from 2^127 \
         up are the ledger's own records, such as hold expiries).",
        positive_decimal_pattern(ID_MAX),
        "7001",
    )
);

fn amount(description: &str, minimum: u64) -> Schema {
    let pattern = if minimum == 0 {
        decimal_pattern(u128::from(AMOUNT_MAX))
    } else {
        positive_decimal_pattern(u128::from(AMOUNT_MAX))
    };
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some(pattern))
                .examples([serde_json::json!("2500")]),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some(minimum))
                .maximum(Some(AMOUNT_MAX)),
        )
        .description(Some(description))
        .into()
}

format_schema!(
    /// A positive amount of minor units.
    Amount => amount(
        "Minor units (fen, cents, points), above zero and at most 9223372036854775807 \
         (i64::MAX): a decimal string, or a JSON integer.",
        1,
    )
);

format_schema!(
    /// An amount of minor units that may be zero.
    AmountOrZero => amount(
        "Minor units, 0 to 9223372036854775807 (i64::MAX): a decimal string, or a JSON integer.",
        0,
    )
);

format_schema!(
    /// An asset code.
    AssetCode => string(
        "An asset code: 1 to 12 of `A-Z 0-9 _`, starting with a letter.",
        format!("^[A-Z][A-Z0-9_]{{0,{}}}$", money::ASSET_CODE_LEN_MAX - 1),
        "CNY",
    )
);

format_schema!(
    /// A customer's or merchant's id, or a client's reference of an order.
    PartyId => string(
        "1 to 64 of `A-Z a-z 0-9 _ . -`.",
        format!("^[A-Za-z0-9_.-]{{1,{}}}$", executor::PARTY_ID_LEN_MAX),
        "alice",
    )
);

format_schema!(
    /// An order reference: the client's own number for the order.
    Reference => string(
        "Your own number for the order, 1 to 64 of `A-Z a-z 0-9 _ . -`: a retry with the same \
         reference is the same order.",
        format!("^[A-Za-z0-9_.-]{{1,{}}}$", executor::PARTY_ID_LEN_MAX),
        "order-8841",
    )
);

format_schema!(
    /// An order's id (`pay_…`, `top_…`, `pb_…`).
    OrderId => string(
        "An order's id: 1 to 48 of `A-Z a-z 0-9 _ -` (`pay_…`, `top_…`, `pb_…`).",
        format!("^[A-Za-z0-9_-]{{1,{}}}$", payments::ids::ORDER_ID_LEN_MAX),
        "pay_3f9a1c0b7d2e4a51",
    )
);

format_schema!(
    /// A tenant's name.
    TenantName => string(
        "A tenant: 1 to 64 of `a-z 0-9 _ -`.",
        format!("^[a-z0-9_-]{{1,{}}}$", access::TENANT_LEN_MAX),
        "acme",
    )
);

format_schema!(
    /// An exchange rate.
    FxRate => string(
        "Minor units of the funding asset per minor unit of the payment's asset: a positive \
         decimal below 1,000,000,000 with at most 10 decimals (`7.1234`).",
        rate_pattern(),
        "7.1234",
    )
);

/// A positive decimal whose whole part is below 10^`RATE_WHOLE_DIGITS_MAX` (leading zeros
/// aside) with at most `RATE_DECIMALS_MAX` decimals: either the whole part has a non-zero
/// digit, or it is zero and the fraction has one.
pub fn rate_pattern() -> String {
    let whole_digits = payments::booking::RATE_WHOLE_DIGITS_MAX as usize;
    let decimals = payments::booking::RATE_DECIMALS_MAX as usize;
    let nonzero_fractions: Vec<String> = (0..decimals)
        .map(|zeros| {
            let leading = if zeros == 0 { String::new() } else { format!("0{{{zeros}}}") };
            format!("{leading}[1-9]{}", repeat_digits(0, decimals - zeros - 1))
        })
        .collect();
    format!(
        "^(?:0*[1-9]{}(?:\\.{})?|0+\\.(?:{}))$",
        repeat_digits(0, whole_digits - 1),
        repeat_digits(1, decimals),
        nonzero_fractions.join("|"),
    )
}

format_schema!(
    /// A journal sequence number as a cursor.
    Seq => string(
        "A journal sequence number (an entry's `seq`), 0 to 18446744073709551615, as a \
         decimal string.",
        decimal_pattern(u128::from(u64::MAX)),
        "42",
    )
);

/// A decimal string of ASCII digits as a `u64` (no sign: `u64::from_str` takes a `+`).
pub fn parse_decimal_u64(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// An RFC 3339 date-time (`2026-11-24T04:15:00Z`, `2026-11-24t12:15:00.123456789+08:00`) as
/// microseconds since the Unix epoch, negative before 1970; `None` unless it is one. Exactly
/// JSON Schema's `date-time`: any offset, `T`/`Z` in either case, any number of fraction
/// digits (cut to microseconds), a leap second read as the second before it.
pub fn parse_rfc3339_micros(raw: &str) -> Option<i128> {
    let bytes = raw.as_bytes();
    let number = |from: usize, len: usize| -> Option<i64> {
        let digits = bytes.get(from..from + len)?;
        digits.iter().try_fold(0i64, |value, &b| {
            b.is_ascii_digit().then(|| value * 10 + i64::from(b - b'0'))
        })
    };
    let at = |index: usize, expected: &[u8]| bytes.get(index).is_some_and(|b| expected.contains(b));
    let separators = at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":");
    if !separators {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    let leap_year = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap_year => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // The fraction: `.` and at least one digit; the digits past microseconds are cut.
    let mut index = 19;
    let mut micros = 0i64;
    if at(index, b".") {
        index += 1;
        let start = index;
        while bytes.get(index).is_some_and(u8::is_ascii_digit) {
            if index - start < 6 {
                micros = micros * 10 + i64::from(bytes[index] - b'0');
            }
            index += 1;
        }
        let n_digits = index - start;
        if n_digits == 0 {
            return None;
        }
        for _ in n_digits..6 {
            micros *= 10;
        }
    }
    let offset_secs = match bytes.get(index..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(index + 1, 2)?, number(index + 4, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = hours * 3_600 + minutes * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second.min(59) - offset_secs;
    Some(i128::from(secs) * 1_000_000 + i128::from(micros))
}

/// The characters Rust's `char::is_whitespace` names (Unicode White_Space), spelled out:
/// `\s` means three different sets in ECMA-262, Python and Rust.
pub const WHITESPACE_CLASS: &str =
    "\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";

/// A webhook endpoint's URL as the server checks it.
/// The scheme, then a non-empty authority: whether the host parses is not a regular
/// language (IPv6 literals, ports, IDNA), so a URL that passes this and still does not parse
/// is refused as 422 `url_unparseable`.
pub fn webhook_url_pattern() -> String {
    format!("^https?://[^{WHITESPACE_CLASS}/?#]+(?:[/?#][^{WHITESPACE_CLASS}]*)?$")
}

/// The `Idempotency-Key` header: visible ASCII (0x21 to 0x7e).
pub fn idempotency_key_pattern() -> String {
    format!("^[!-~]{{1,{}}}$", crate::idempotency::IDEMPOTENCY_KEY_LEN_MAX)
}

format_schema!(
    /// A webhook endpoint's URL.
    WebhookUrl => ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(
            "An `http://` or `https://` URL with a host, without whitespace, at most 2,048 \
             characters.",
        ))
        .pattern(Some(webhook_url_pattern()))
        .max_length(Some(crate::webhooks_api::URL_LEN_MAX))
        .examples([serde_json::json!("https://shop.example/qianbao-events")])
        .into()
);

format_schema!(
    /// The `Idempotency-Key` header.
    IdempotencyKey => string(
        "1 to 255 visible ASCII characters (0x21 to 0x7e).",
        idempotency_key_pattern(),
        "topup-2026-0001",
    )
);

format_schema!(
    /// A channel's name.
    ChannelName => string(
        "A channel: 1 to 32 of `A-Z a-z 0-9 _ . : -`.",
        format!("^[A-Za-z0-9_.:-]{{1,{}}}$", channels::model::CHANNEL_ID_LEN_MAX),
        "bank_a",
    )
);

/// A calendar date from 1970 on, `YYYY-MM-DD`: months 01-12, days 01-31 (a day the month
/// lacks, such as 02-30, has this shape and is refused as 422 `day_not_in_calendar`).
pub fn business_day_pattern() -> String {
    "^(?:19[7-9][0-9]|[2-9][0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$".to_string()
}

format_schema!(
    /// A business day (会计日).
    BusinessDate => string(
        "A business day, `YYYY-MM-DD` (1970 or later): 00:00 to 24:00 in the platform's \
         reconciliation zone (default Asia/Shanghai).",
        business_day_pattern(),
        "2026-12-05",
    )
);

/// The longest id of a reconciliation object (`stm_…`, `run_…`, `brk_…`, `loss_…`).
pub const RECON_ID_LEN_MAX: usize = 64;

format_schema!(
    /// The id of a statement, run, break or loss.
    ReconId => string(
        "A reconciliation id (`stm_…`, `run_…`, `brk_…`, `loss_…`): 1 to 64 of `A-Z a-z 0-9 _`.",
        format!("^[A-Za-z0-9_]{{1,{RECON_ID_LEN_MAX}}}$"),
        "brk_5d41402abc4b2a76b9719d91",
    )
);

/// The longest name of a break's assignee.
pub const ASSIGNEE_LEN_MAX: usize = 64;

format_schema!(
    /// Who works on a break.
    Assignee => string(
        "An operator: 1 to 64 of `A-Z a-z 0-9 _ . @ : -` (a name, an e-mail, a key id).",
        format!("^[A-Za-z0-9_.@:-]{{1,{ASSIGNEE_LEN_MAX}}}$"),
        "li.wei@ops",
    )
);

/// The longest reason an operator gives, in characters.
pub const REASON_LEN_MAX: usize = 500;

format_schema!(
    /// Why an operator decided as they did.
    Reason => ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some("1 to 500 characters, without C0 control characters (U+0000 to U+001F) or DEL."))
        .pattern(Some(reason_pattern()))
        .min_length(Some(1))
        .max_length(Some(REASON_LEN_MAX))
        .examples([serde_json::json!("bank confirmed the debit on its portal, ticket 4471")])
        .into()
);

/// The longest evidence an operator records, in characters.
pub const EVIDENCE_LEN_MAX: usize = operators::desk::EVIDENCE_LEN_MAX;

format_schema!(
    /// The bank's evidence for an operator's action.
    Evidence => ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some("1 to 2,000 characters, without C0 control characters or DEL: where \
            the bank's answer is (a statement line, a portal screen, a call with its desk)."))
        .pattern(Some(reason_pattern()))
        .min_length(Some(1))
        .max_length(Some(EVIDENCE_LEN_MAX))
        .examples([serde_json::json!("bank_a statement 2026-12-06 line 4471: PAID a-8812")])
        .into()
);

/// Whether `text` is valid [`Evidence`].
pub fn is_evidence(text: &str) -> bool {
    let length = text.chars().count();
    (1..=EVIDENCE_LEN_MAX).contains(&length)
        && !text.chars().any(|c| c.is_control() && c < '\u{80}')
}

/// The longest ticket reference, in characters.
pub const TICKET_LEN_MAX: usize = 64;

format_schema!(
    /// An incident or change ticket.
    Ticket => string(
        "A ticket: 1 to 64 of `A-Z a-z 0-9 _ . : # / -`.",
        format!("^[A-Za-z0-9_.:#/-]{{1,{TICKET_LEN_MAX}}}$"),
        "INC-4471",
    )
);

/// Whether `text` is a valid [`Ticket`].
pub fn is_ticket(text: &str) -> bool {
    (1..=TICKET_LEN_MAX).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:#/-".contains(&b))
}

/// No C0 control character and no DEL: an operator's text is shown, logged and stored as
/// JSON, where a NUL is refused by PostgreSQL.
pub fn reason_pattern() -> String {
    "^[^\\u0000-\\u001f\\u007f]*$".to_string()
}

/// Whether `text` is a valid [`Reason`].
pub fn is_reason(text: &str) -> bool {
    let length = text.chars().count();
    (1..=REASON_LEN_MAX).contains(&length) && !text.chars().any(|c| c.is_control() && c < '\u{80}')
}

#[cfg(test)]
mod tests {
    use regex_automata::meta::Regex;

    use super::*;

    fn matches(pattern: &str, value: &str) -> bool {
        Regex::new(pattern).expect("pattern compiles").is_match(value)
    }

    /// What the server reads: only ASCII digits, then `u128` parsing and the bound.
    fn server_accepts(value: &str, bound: u128, zero_ok: bool) -> bool {
        !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_digit())
            && value.parse::<u128>().is_ok_and(|v| v <= bound && (zero_ok || v > 0))
    }

    fn edges(bound: u128) -> Vec<String> {
        let mut values: Vec<String> =
            ["", "0", "00", "1", "01", "+1", "-1", " 1", "1 ", "1\n", "١"]
                .into_iter()
                .map(str::to_string)
                .collect();
        for delta in 0..3u128 {
            values.push(bound.saturating_sub(delta).to_string());
            values.push(format!("000{}", bound.saturating_sub(delta)));
        }
        values.push(format!("{bound}0"));
        // One past the bound, in decimal even where u128 cannot hold it.
        values.push(if bound == u128::MAX {
            "340282366920938463463374607431768211456".to_string()
        } else {
            (bound + 1).to_string()
        });
        for power in 0..=38u32 {
            let p = 10u128.pow(power);
            for value in [p - 1, p, p + 1, p.saturating_mul(9)] {
                values.push(value.to_string());
            }
        }
        values.push("9".repeat(40));
        values
    }

    #[test]
    fn decimal_patterns_agree_with_the_parser_at_the_edges() {
        let bounds = [
            1,
            9,
            10,
            19,
            100,
            1_000,
            12_345,
            u128::from(AMOUNT_MAX),
            u128::from(u64::MAX),
            CLIENT_TRANSFER_ID_MAX,
            ID_MAX,
        ];
        for bound in bounds {
            let positive = positive_decimal_pattern(bound);
            let any = decimal_pattern(bound);
            for value in edges(bound) {
                assert_eq!(
                    matches(&positive, &value),
                    server_accepts(&value, bound, false),
                    "bound {bound}, value {value:?}, pattern {positive}"
                );
                assert_eq!(
                    matches(&any, &value),
                    server_accepts(&value, bound, true),
                    "bound {bound}, value {value:?}, pattern {any}"
                );
            }
        }
    }

    #[test]
    fn every_decimal_up_to_a_small_bound_is_exactly_the_range() {
        for bound in [1u128, 7, 10, 99, 100, 101, 190, 909] {
            let pattern = positive_decimal_pattern(bound);
            for value in 0..=1_100u128 {
                assert_eq!(matches(&pattern, &value.to_string()), (1..=bound).contains(&value));
            }
        }
    }

    #[test]
    fn rfc3339_times_read_as_json_schema_date_times() {
        let micros = |raw: &str| parse_rfc3339_micros(raw);
        let epoch_plus = |secs: i128| Some(secs * 1_000_000);
        assert_eq!(micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(micros("2025-11-24T16:00:00Z"), epoch_plus(1_764_000_000));
        assert_eq!(micros("2025-11-25t00:00:00+08:00"), epoch_plus(1_764_000_000));
        assert_eq!(micros("2025-11-24T15:30:00-00:30"), epoch_plus(1_764_000_000));
        assert_eq!(micros("2025-11-24T16:00:00.1234567z"), Some(1_764_000_000_123_456));
        assert_eq!(micros("2024-02-29T00:00:00Z"), epoch_plus(1_709_164_800));
        assert_eq!(micros("1969-12-31T23:59:59Z"), epoch_plus(-1));
        assert_eq!(micros("0001-01-01T00:00:00Z"), epoch_plus(-62_135_596_800));
        assert_eq!(micros("2016-12-31T23:59:60Z"), micros("2016-12-31T23:59:59Z"));
        for bad in [
            "",
            "2025-11-24",
            "2025-11-24 16:00:00Z",
            "2025-11-24T16:00:00",
            "2025-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-11-31T00:00:00Z",
            "2025-11-24T24:00:00Z",
            "2025-11-24T16:00:00.Z",
            "2025-11-24T16:00:00+0800",
            "2025-11-24T16:00:00+24:00",
            "2025-11-24T16:00:00Z ",
            "+2025-11-24T16:00:00Z",
        ] {
            assert_eq!(micros(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn business_day_pattern_is_what_the_server_reads_as_a_day() {
        let pattern = business_day_pattern();
        let mut cases: Vec<String> = [
            "1970-01-01",
            "1969-12-31",
            "2026-12-05",
            "2026-02-30",
            "2026-13-01",
            "2026-00-10",
            "2026-12-00",
            "2026-12-32",
            "9999-12-31",
            "0001-01-01",
            "2026-1-05",
            "2026/12/05",
            "2026-12-05 ",
            "+026-12-05",
            "20261205",
            "",
            "2026-12-0a",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for year in [1969, 1970, 1999, 2000, 2026, 9999] {
            for month in 0..=13 {
                for day in [0, 1, 9, 10, 19, 20, 29, 30, 31, 32] {
                    cases.push(format!("{year:04}-{month:02}-{day:02}"));
                }
            }
        }
        for case in &cases {
            assert_eq!(matches(&pattern, case), crate::recon_api::day_shaped(case), "{case:?}");
        }
    }

    #[test]
    fn reason_pattern_is_what_the_server_reads_as_a_reason() {
        let pattern = reason_pattern();
        for case in [
            "ok",
            "tab\there",
            "nul\0",
            "del\u{7f}",
            "c1 \u{85} is kept",
            "中文 原因",
            " ",
            "line\n",
        ] {
            assert_eq!(matches(&pattern, case), is_reason(case), "{case:?}");
        }
        assert!(!is_reason(""));
        assert!(is_reason(&"a".repeat(REASON_LEN_MAX)));
        assert!(!is_reason(&"a".repeat(REASON_LEN_MAX + 1)));
    }

    #[test]
    fn rate_pattern_is_what_rates_parse() {
        let pattern = rate_pattern();
        for value in [
            "1",
            "7.1234",
            "0.5",
            "00.5",
            "0.0000000001",
            "999999999",
            "999999999.9999999999",
            "0.00000000001",
            "1000000000",
            "0",
            "0.0",
            ".5",
            "5.",
            "1e3",
            "-1",
            "+1",
            "1.5.5",
            "0001",
            "",
            " 1",
        ] {
            assert_eq!(
                matches(&pattern, value),
                payments::booking::Rate::parse(value).is_some(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn asset_code_pattern_is_what_asset_codes_parse() {
        let pattern = match AssetCode::schema() {
            RefOr::T(Schema::Object(object)) => object.pattern.expect("pattern"),
            _ => unreachable!("a string schema"),
        };
        for value in
            ["CNY", "A", "POINTS_2", "ABCDEFGHIJKL", "ABCDEFGHIJKLM", "cny", "1CNY", "", "C-1"]
        {
            assert_eq!(matches(&pattern, value), money::AssetCode::new(value).is_ok(), "{value:?}");
        }
    }
}
