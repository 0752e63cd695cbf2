//! What every handler does with a request: parse its JSON body with stable error codes, run
//! blocking store calls off the async workers, and read and bound page parameters.

use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::error::ApiError;

/// Items per page when the caller does not say.
pub const PAGE_LIMIT_DEFAULT: usize = 100;

/// Parses a JSON body: `malformed_json` when it is not JSON at all, `invalid_body` when it
/// is JSON of the wrong shape.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if holds_nul(body) {
        return Err(nul_refused());
    }
    serde_json::from_slice(body).or_else(|error| {
        // serde_json reports some shape errors (a boolean where an enum goes) as syntax
        // errors; only a body that fails to parse as any JSON at all is malformed. Checked
        // on the error path only, so valid requests parse once.
        let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
            return Err(ApiError::invalid("malformed_json", error.to_string()));
        };
        // `5.0` is the integer 5 to JSON Schema (and so to the OpenAPI document); serde
        // wants `5`. Read again with such numbers made integers, on this error path only.
        if integral_numbers_as_integers(&mut value) {
            if let Ok(parsed) = serde_json::from_value(value) {
                return Ok(parsed);
            }
        }
        Err(ApiError::invalid("invalid_body", error.to_string()))
    })
}

/// No text the API takes may hold a control character: PostgreSQL's text cannot hold NUL
/// (SQLite's can), so such a request would be a 500 on one store and stored or not found on
/// the other. Refused at the edge, the same on both: `invalid_character`.
///
/// A 422, not a 400: the request is well formed and its schema allows any text (a control
/// character is a rule of the stores, not of the schema).
fn nul_refused() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_character",
        "text in a request may not hold a control character (such as NUL, \\u0000 or %00)",
    )
}

/// Whether a JSON text holds the escape of NUL (`\u0000`): the only way JSON can carry one
/// (a raw control character in a string is not JSON). Escaped backslashes are stepped over,
/// so `"\\u0000"` (a backslash, then text) is not one.
fn holds_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            // The escaped character is not the start of another escape.
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Refuses a request whose path or query holds a percent-encoded control character (`%00` to
/// `%1F`, `%7F`): no id, filter or cursor has one. See [`nul_refused`].
pub async fn refuse_control_characters(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = request.uri();
    let encoded = |text: &str| {
        text.as_bytes().windows(3).any(|w| {
            w[0] == b'%'
                && std::str::from_utf8(&w[1..])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .is_some_and(|byte| byte < 0x20 || byte == 0x7f)
        })
    };
    if encoded(uri.path()) || uri.query().is_some_and(encoded) {
        return nul_refused().into_response();
    }
    next.run(request).await
}

/// Parses one JSON value the way [`parse`] parses a body.
pub(crate) fn parse_value<T: serde::de::DeserializeOwned>(
    mut value: Value,
) -> Result<T, serde_json::Error> {
    integral_numbers_as_integers(&mut value);
    serde_json::from_value(value)
}

/// Replaces every number with a zero fraction that fits a `u64` or an `i64` (`5.0`, `1e3`) by
/// that integer, at any depth; whether it changed anything. Numbers too large for both stay
/// as they are (and are refused where an integer goes, as their range says). The depth is
/// bounded by serde_json's own recursion limit (128), which `value` was parsed under.
fn integral_numbers_as_integers(value: &mut Value) -> bool {
    match value {
        Value::Number(number) if !number.is_u64() && !number.is_i64() => {
            let Some(float) = number.as_f64() else { return false };
            // 2^64 and -2^63 are exact in f64, so the casts below cannot saturate.
            let integer = if float.fract() != 0.0 {
                None
            } else if (0.0..18_446_744_073_709_551_616.0).contains(&float) {
                Some(Value::from(float as u64))
            } else if (-9_223_372_036_854_775_808.0..0.0).contains(&float) {
                Some(Value::from(float as i64))
            } else {
                None
            };
            match integer {
                Some(integer) => {
                    *value = integer;
                    true
                }
                None => false,
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| integral_numbers_as_integers(item) | changed),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |changed, field| integral_numbers_as_integers(field) | changed),
        _ => false,
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    run: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(run).await.map_err(ApiError::internal)?
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 1,000; default 100.
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The cursor: the last id of the previous page.
    #[param(nullable = false)]
    starting_after: Option<String>,
}

impl PageQuery {
    /// The validated limit and cursor.
    pub fn parts(self) -> Result<(usize, Option<String>), ApiError> {
        Ok((page_limit(self.limit)?, self.starting_after))
    }
}

pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    limit_within(limit, PAGE_LIMIT_DEFAULT, ledger::port::PAGE_LIMIT_MAX)
}

/// A page size: `default` when absent, else 1 to `max` (`invalid_limit` otherwise).
/// An operator's `reason` (and `ticket`, when given), as `formats` states them: 400
/// `invalid_reason` / `invalid_ticket` otherwise.
pub(crate) fn checked_words(reason: &str, ticket: Option<&str>) -> Result<(), ApiError> {
    if !crate::formats::is_reason(reason) {
        return Err(ApiError::invalid(
            "invalid_reason",
            "a reason is 1 to 500 characters, without control characters",
        )
        .with_param("reason"));
    }
    if ticket.is_some_and(|ticket| !crate::formats::is_ticket(ticket)) {
        return Err(ApiError::invalid(
            "invalid_ticket",
            "a ticket is 1 to 64 of A-Z a-z 0-9 _ . : # / -",
        )
        .with_param("ticket"));
    }
    Ok(())
}

pub(crate) fn limit_within(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match limit.unwrap_or(default) {
        limit if (1..=max).contains(&limit) => Ok(limit),
        _ => Err(ApiError::invalid("invalid_limit", format!("limit must be 1 to {max}"))
            .with_param("limit")),
    }
}

#[cfg(test)]
mod nul_tests {
    use super::holds_nul;

    #[test]
    fn only_the_escape_of_nul_is_nul() {
        assert!(holds_nul(br#"{"a":"x\u0000y"}"#));
        assert!(holds_nul(br#"["\u0000"]"#));
        assert!(!holds_nul(br#"{"a":"x\\u0000y"}"#), "a backslash, then text");
        assert!(holds_nul(br#"{"a":"x\\\u0000y"}"#), "a backslash, then NUL");
        assert!(!holds_nul(b""));
        assert!(!holds_nul(br#"{"a":"\u0001 \n \""}"#));
    }
}
