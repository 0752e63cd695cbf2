//! The statement file (对账单) a channel publishes for one business day, or an operator
//! uploads: CSV, a header line, then detail rows and summary rows, with the file's SHA-256
//! published beside it.
//!
//! ```text
//! record,request_id,channel_ref,type,amount_minor,fee_minor,currency,booked_at_ms,status,count
//! detail,rq_1,ch_77,debit,10000,60,CNY,1764979200123,succeeded,
//! detail,,ch_78,payout,5000,100,CNY,1764979300000,succeeded,
//! summary,,,debit,10000,60,CNY,,,1
//! summary,,,payout,5000,100,CNY,,,1
//! ```
//!
//! - `record`: `detail` or `summary`.
//! - Detail rows: `request_id` (ours, as we sent it; may be empty when a channel does not echo
//!   it), `channel_ref` (the channel's own reference; may be empty, but not both), `type`
//!   (`debit` — money taken from a payer's card or account, `payout` — money paid out,
//!   `refund` — a debit given back), amounts in minor units, `booked_at_ms` (Unix
//!   milliseconds), `status` (`succeeded` or `failed`), `count` empty.
//! - Summary rows: one per type and currency present, `amount_minor` and `fee_minor` the sums
//!   of that type's succeeded detail rows and `count` their number; the id, time and status
//!   columns empty.
//!
//! A file is taken whole or refused whole: the first bad row refuses it with its line number,
//! and so do a summary that disagrees with the details, an unknown currency, a file over
//! [`STATEMENT_BYTES_MAX`] and a checksum that does not match. A half-loaded statement would
//! be reconciled as if the missing rows were missing money.

use std::collections::BTreeMap;

use money::{Amount, AssetCode};
use sha2::{Digest, Sha256};

/// The largest statement file: 1 GiB would be ~8 million rows; a day of one channel at this
/// size is ample, and the bound keeps a hostile upload from exhausting memory.
pub const STATEMENT_BYTES_MAX: usize = 1 << 30;
/// The longest request id or channel reference.
pub const REFERENCE_LEN_MAX: usize = 64;

pub const HEADER: [&str; 10] = [
    "record",
    "request_id",
    "channel_ref",
    "type",
    "amount_minor",
    "fee_minor",
    "currency",
    "booked_at_ms",
    "status",
    "count",
];

/// What kind of money movement a line is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TxType {
    /// Money taken from a payer's card or bank account (a top-up, a card payment).
    Debit,
    /// Money paid out to a bank account (a withdrawal, a payout).
    Payout,
    /// A debit given back (a card refund).
    Refund,
}

impl TxType {
    pub const ALL: [TxType; 3] = [TxType::Debit, TxType::Payout, TxType::Refund];

    pub fn as_str(self) -> &'static str {
        match self {
            TxType::Debit => "debit",
            TxType::Payout => "payout",
            TxType::Refund => "refund",
        }
    }

    pub fn parse(raw: &str) -> Option<TxType> {
        TxType::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

/// What the channel says became of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    Succeeded,
    Failed,
}

/// One detail row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetailLine {
    /// 1-based line of the file (the header is line 1).
    pub line_no: u64,
    pub request_id: Option<String>,
    pub channel_ref: Option<String>,
    pub tx_type: TxType,
    pub amount: Amount,
    pub fee: Amount,
    pub currency: AssetCode,
    pub booked_at_ms: u64,
    pub status: LineStatus,
}

/// A parsed, checked statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// SHA-256 of the file's bytes: its identity (the same file again is a no-op).
    pub sha256: [u8; 32],
    pub details: Vec<DetailLine>,
    /// Per (type, currency): count, amount and fee of the succeeded details, as the file
    /// states them (checked equal to the details).
    pub summaries: BTreeMap<(TxType, AssetCode), (u64, Amount, Amount)>,
}

/// Why a statement file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    #[error("statement of {size_bytes} bytes is over the limit of {limit_bytes}")]
    TooLarge { size_bytes: usize, limit_bytes: usize },
    #[error("checksum mismatch: the file's SHA-256 is {actual}, {expected} was published")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("line 1: the header must be {}", HEADER.join(","))]
    Header,
    #[error("line {line}: {reason}")]
    Row { line: u64, reason: String },
    #[error("line {line}: unknown currency {currency}")]
    UnknownCurrency { line: u64, currency: String },
    #[error("summary of {tx_type} {currency} says {stated}, the details add up to {actual}")]
    SummaryMismatch { tx_type: &'static str, currency: String, stated: String, actual: String },
    #[error("the statement has no summary rows")]
    NoSummary,
}

impl StatementError {
    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            StatementError::TooLarge { .. } => "statement_too_large",
            StatementError::ChecksumMismatch { .. } => "statement_checksum_mismatch",
            StatementError::Header => "statement_bad_header",
            StatementError::Row { .. } => "statement_bad_row",
            StatementError::UnknownCurrency { .. } => "statement_unknown_currency",
            StatementError::SummaryMismatch { .. } => "statement_summary_mismatch",
            StatementError::NoSummary => "statement_no_summary",
        }
    }
}

/// Parses and checks a statement file. `expected_sha256` is the hex digest published beside
/// the file (none for an operator's upload); `currencies` are the assets the channel may use.
pub fn parse(
    bytes: &[u8],
    expected_sha256: Option<&str>,
    currencies: &[AssetCode],
) -> Result<Statement, StatementError> {
    if bytes.len() > STATEMENT_BYTES_MAX {
        return Err(StatementError::TooLarge {
            size_bytes: bytes.len(),
            limit_bytes: STATEMENT_BYTES_MAX,
        });
    }
    let sha256: [u8; 32] = Sha256::digest(bytes).into();
    if let Some(expected) = expected_sha256 {
        let actual = hex::encode(sha256);
        if !expected.trim().eq_ignore_ascii_case(&actual) {
            return Err(StatementError::ChecksumMismatch {
                expected: expected.trim().to_string(),
                actual,
            });
        }
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut records = reader.records();
    match records.next() {
        Some(Ok(header)) if header.iter().eq(HEADER.iter().copied()) => {}
        _ => return Err(StatementError::Header),
    }
    let mut details = Vec::new();
    let mut summaries = BTreeMap::new();
    for record in records {
        let record = record.map_err(|error| StatementError::Row {
            line: error.position().map_or(0, |p| p.line()),
            reason: error.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let bad = |reason: &str| StatementError::Row { line, reason: reason.to_string() };
        if record.len() != HEADER.len() {
            return Err(bad(&format!("{} fields, expected {}", record.len(), HEADER.len())));
        }
        let field = |index: usize| record.get(index).unwrap_or("");
        let tx_type =
            TxType::parse(field(3)).ok_or_else(|| bad("type must be debit, payout or refund"))?;
        let amount =
            amount(field(4)).ok_or_else(|| bad("amount_minor must be an integer 0..2^63"))?;
        let fee =
            amount_or_zero(field(5)).ok_or_else(|| bad("fee_minor must be an integer 0..2^63"))?;
        let currency =
            AssetCode::new(field(6)).ok().filter(|code| currencies.contains(code)).ok_or_else(
                || StatementError::UnknownCurrency { line, currency: field(6).to_string() },
            )?;
        match field(0) {
            "detail" => {
                let request_id = reference(field(1)).map_err(|reason| bad(&reason))?;
                let channel_ref = reference(field(2)).map_err(|reason| bad(&reason))?;
                if request_id.is_none() && channel_ref.is_none() {
                    return Err(bad("a detail needs a request_id or a channel_ref"));
                }
                if amount.is_zero() {
                    return Err(bad("amount_minor must be above zero"));
                }
                let booked_at_ms =
                    field(7).parse().map_err(|_| bad("booked_at_ms must be Unix milliseconds"))?;
                let status = match field(8) {
                    "succeeded" => LineStatus::Succeeded,
                    "failed" => LineStatus::Failed,
                    _ => return Err(bad("status must be succeeded or failed")),
                };
                if !field(9).is_empty() {
                    return Err(bad("count is for summary rows"));
                }
                details.push(DetailLine {
                    line_no: line,
                    request_id,
                    channel_ref,
                    tx_type,
                    amount,
                    fee,
                    currency,
                    booked_at_ms,
                    status,
                });
            }
            "summary" => {
                if [1, 2, 7, 8].iter().any(|&index| !field(index).is_empty()) {
                    return Err(bad("a summary has no ids, time or status"));
                }
                let count: u64 = field(9).parse().map_err(|_| bad("count must be an integer"))?;
                if summaries.insert((tx_type, currency), (count, amount, fee)).is_some() {
                    return Err(bad("a second summary of the same type and currency"));
                }
            }
            _ => return Err(bad("record must be detail or summary")),
        }
    }
    if summaries.is_empty() && !details.is_empty() {
        return Err(StatementError::NoSummary);
    }
    check_summaries(&details, &summaries)?;
    Ok(Statement { sha256, details, summaries })
}

fn amount(raw: &str) -> Option<Amount> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u64>().ok().and_then(Amount::new)
}

fn amount_or_zero(raw: &str) -> Option<Amount> {
    if raw.is_empty() {
        Some(Amount::ZERO)
    } else {
        amount(raw)
    }
}

fn reference(raw: &str) -> Result<Option<String>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"_-.:".contains(&b);
    if raw.len() > REFERENCE_LEN_MAX || !raw.bytes().all(valid) {
        return Err(format!("an id must be 1 to {REFERENCE_LEN_MAX} of A-Z a-z 0-9 _ - . :"));
    }
    Ok(Some(raw.to_string()))
}

/// The succeeded details' count, amount and fee per type and currency must equal the summary
/// rows, and every summary must have details (or state zero).
fn check_summaries(
    details: &[DetailLine],
    summaries: &BTreeMap<(TxType, AssetCode), (u64, Amount, Amount)>,
) -> Result<(), StatementError> {
    let mut actual: BTreeMap<(TxType, AssetCode), (u64, u128, u128)> = BTreeMap::new();
    for line in details.iter().filter(|l| l.status == LineStatus::Succeeded) {
        let entry = actual.entry((line.tx_type, line.currency)).or_default();
        entry.0 += 1;
        entry.1 += u128::from(line.amount.minor());
        entry.2 += u128::from(line.fee.minor());
    }
    let keys: std::collections::BTreeSet<_> = actual.keys().chain(summaries.keys()).collect();
    for key in keys {
        let (count, amount, fee) = actual.get(key).copied().unwrap_or_default();
        let (stated_count, stated_amount, stated_fee) =
            summaries.get(key).copied().unwrap_or((0, Amount::ZERO, Amount::ZERO));
        let stated =
            (stated_count, u128::from(stated_amount.minor()), u128::from(stated_fee.minor()));
        if stated != (count, amount, fee) {
            return Err(StatementError::SummaryMismatch {
                tx_type: key.0.as_str(),
                currency: key.1.to_string(),
                stated: format!("{} rows, {} minor, fees {}", stated.0, stated.1, stated.2),
                actual: format!("{count} rows, {amount} minor, fees {fee}"),
            });
        }
    }
    Ok(())
}

/// Renders a statement in the documented format, with summaries computed from the details
/// (for the simulator, for tests, and for operators who export one).
pub fn render(details: &[DetailLine]) -> String {
    let mut out = HEADER.join(",");
    out.push('\n');
    let mut totals: BTreeMap<(TxType, AssetCode), (u64, u64, u64)> = BTreeMap::new();
    for line in details {
        let status = match line.status {
            LineStatus::Succeeded => {
                let entry = totals.entry((line.tx_type, line.currency)).or_default();
                entry.0 += 1;
                entry.1 += line.amount.minor();
                entry.2 += line.fee.minor();
                "succeeded"
            }
            LineStatus::Failed => "failed",
        };
        out.push_str(&format!(
            "detail,{},{},{},{},{},{},{},{},\n",
            line.request_id.as_deref().unwrap_or(""),
            line.channel_ref.as_deref().unwrap_or(""),
            line.tx_type.as_str(),
            line.amount,
            line.fee,
            line.currency,
            line.booked_at_ms,
            status,
        ));
    }
    for ((tx_type, currency), (count, amount, fee)) in totals {
        out.push_str(&format!(
            "summary,,,{},{amount},{fee},{currency},,,{count}\n",
            tx_type.as_str()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny() -> AssetCode {
        AssetCode::new("CNY").unwrap()
    }

    const GOOD: &str = "record,request_id,channel_ref,type,amount_minor,fee_minor,currency,booked_at_ms,status,count\n\
        detail,rq_1,ch_77,debit,10000,60,CNY,1764979200123,succeeded,\n\
        detail,,ch_78,payout,5000,100,CNY,1764979300000,succeeded,\n\
        detail,rq_3,,debit,700,0,CNY,1764979300001,failed,\n\
        summary,,,debit,10000,60,CNY,,,1\n\
        summary,,,payout,5000,100,CNY,,,1\n";

    #[test]
    fn a_good_statement_parses_whole() {
        let statement = parse(GOOD.as_bytes(), None, &[cny()]).unwrap();
        assert_eq!(statement.details.len(), 3);
        assert_eq!(statement.details[0].line_no, 2);
        assert_eq!(statement.details[1].request_id, None);
        assert_eq!(statement.details[2].status, LineStatus::Failed);
        let digest = hex::encode(statement.sha256);
        assert!(parse(GOOD.as_bytes(), Some(&digest), &[cny()]).is_ok());
        // Rendering the details gives the same file back.
        assert_eq!(render(&statement.details), GOOD);
    }

    #[test]
    fn a_bad_file_is_refused_whole_with_its_line() {
        let cases: [(String, &str); 8] = [
            (GOOD.replace("debit,10000,60", "debit,ten,60"), "statement_bad_row"),
            (GOOD.replace("ch_78,payout", "ch 78,payout"), "statement_bad_row"),
            (GOOD.replace("700,0,CNY", "700,0,XYZ"), "statement_unknown_currency"),
            (
                GOOD.replace("summary,,,debit,10000", "summary,,,debit,10001"),
                "statement_summary_mismatch",
            ),
            (GOOD.replace("record,", "kind,"), "statement_bad_header"),
            (GOOD.replace(",succeeded,\n", ",done,\n"), "statement_bad_row"),
            (GOOD.replace("detail,,ch_78", "detail,,"), "statement_bad_row"),
            (
                GOOD.lines()
                    .filter(|l| !l.starts_with("summary"))
                    .map(|l| format!("{l}\n"))
                    .collect(),
                "statement_no_summary",
            ),
        ];
        for (text, code) in cases {
            let error = parse(text.as_bytes(), None, &[cny()]).unwrap_err();
            assert_eq!(error.code(), code, "{error}");
        }
        let error = parse(GOOD.replace("ch_78,payout", "ch 78,payout").as_bytes(), None, &[cny()]);
        assert_eq!(error.unwrap_err().to_string().split(':').next(), Some("line 3"));
        let error = parse(GOOD.as_bytes(), Some(&"0".repeat(64)), &[cny()]).unwrap_err();
        assert_eq!(error.code(), "statement_checksum_mismatch");
    }
}
