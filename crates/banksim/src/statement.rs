//! Daily statement files (对账单): one CSV bill per channel and business day, in the
//! documented statement format the platform's reconciliation reads (`docs/banksim.md`), with
//! its SHA-256 published beside it.
//!
//! ```text
//! record,request_id,channel_ref,type,amount_minor,fee_minor,currency,booked_at_ms,status,count
//! detail,topup-0001,bank_a-00000001,debit,10000,8,CNY,1764084388307,succeeded,
//! summary,,,debit,10000,8,CNY,,,1
//! ```
//!
//! Rendered by hand, not with the platform's parser: a real bank shares no code with us, so
//! the simulator depends on nothing but `money`, and a test parses what it writes.
//!
//! A bill lists the operations that succeeded (completed) on its business day, ordered by
//! completion time, then one summary row per type that has details. Statement faults
//! (`StatementFaults`) change what is printed; the summaries always add up the detail rows
//! actually printed, as a real bank's do, so only reconciliation against our own records
//! finds a fault (and only the digest shows a bad checksum).

use std::collections::BTreeMap;

use money::{Amount, AssetCode};
use sha2::{Digest, Sha256};

use crate::books::{Operation, OperationKind, Status};
use crate::faults::{stream, Draw, RowFate, StatementFaults};
use crate::time;

pub const HEADER: &str =
    "record,request_id,channel_ref,type,amount_minor,fee_minor,currency,booked_at_ms,status,count";

/// The response header that carries the bill's SHA-256, hex.
pub const HEADER_SHA256: &str = "x-banksim-statement-sha256";

/// The draw "operation" of statement faults, beside `debit`, `query`, `callback`.
pub const DRAW_STATEMENT: &str = "statement";

/// Which channel's bill, and how it is printed.
#[derive(Debug, Clone, Copy)]
pub struct BillSpec<'a> {
    pub seed: u64,
    pub channel: &'a str,
    pub currency: AssetCode,
    /// Days turn at 00:00 this many minutes east of UTC.
    pub utc_offset_minutes: i32,
    pub faults: StatementFaults,
}

/// A rendered bill and the digest published beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub csv: String,
    /// The hex SHA-256 of `csv` — or, under the `bad_checksum` fault, of something else.
    pub sha256_hex: String,
}

/// One detail row, before printing.
#[derive(Debug, Clone)]
struct Row {
    request_id: String,
    channel_ref: String,
    kind: OperationKind,
    amount: Amount,
    fee: Amount,
    booked_at_ms: u64,
    seq: u64,
}

/// The bill of business `day` (days since the epoch) over an operation log.
pub fn render(operations: &[Operation], day: i64, spec: &BillSpec<'_>) -> Bill {
    let mut rows = Vec::new();
    for op in operations.iter().filter(|op| op.status == Status::Succeeded) {
        let Some(completed_at_ms) = op.completed_at_ms else { continue };
        let natural_day = time::business_day_of(completed_at_ms, spec.utc_offset_minutes);
        // Only this day's operations and the previous day's (which may move here) matter;
        // skipping the rest before drawing keeps a long log cheap.
        if natural_day != day && natural_day.saturating_add(1) != day {
            continue;
        }
        let draw = Draw::new(spec.seed, spec.channel, DRAW_STATEMENT, op.request_id.as_str(), 0);
        let fate = spec.faults.decide(&draw);
        let printed_day =
            if fate == RowFate::NextDay { natural_day.saturating_add(1) } else { natural_day };
        if printed_day != day {
            continue;
        }
        let row = Row {
            request_id: op.request_id.as_str().to_owned(),
            channel_ref: op.channel_ref.clone(),
            kind: op.request.kind(),
            amount: op.request.amount(),
            fee: op.fee,
            booked_at_ms: completed_at_ms,
            seq: op.seq,
        };
        push_row(&mut rows, row, fate, &draw, spec.channel);
    }
    // Stable: an extra or duplicated row stays right after its original.
    rows.sort_by_key(|row| (row.booked_at_ms, row.seq));
    let csv = print(&rows, spec.currency);
    let mut digest = Sha256::new();
    digest.update(csv.as_bytes());
    if spec.faults.bad_checksum {
        // The digest of the file with one more line end: what a bank publishes when it
        // hashes a file before its last write.
        digest.update(b"\n");
    }
    Bill { csv, sha256_hex: hex::encode(digest.finalize()) }
}

/// Appends what `fate` makes of one operation's row.
fn push_row(rows: &mut Vec<Row>, row: Row, fate: RowFate, draw: &Draw, channel: &str) {
    match fate {
        RowFate::Printed | RowFate::NextDay => rows.push(row),
        RowFate::Missing => {}
        RowFate::Extra => {
            // Fresh ids that no request of ours and no real operation can have: real channel
            // references are `{channel}-{digits}`.
            let tag = draw.bits(stream::EXTRA_ROW_ID);
            let extra = Row {
                request_id: format!("bsx-{tag:016x}"),
                channel_ref: format!("{channel}-x{tag:016x}"),
                ..row.clone()
            };
            rows.push(row);
            rows.push(extra);
        }
        RowFate::Amount => rows.push(Row { amount: one_more(row.amount), ..row }),
        RowFate::Fee => rows.push(Row { fee: one_more(row.fee), ..row }),
        RowFate::Duplicate => {
            rows.push(row.clone());
            rows.push(row);
        }
    }
}

/// One minor unit more, or one less at the largest amount: different either way.
fn one_more(amount: Amount) -> Amount {
    Amount::new(1)
        .and_then(|one| amount.checked_add(one).or_else(|| amount.checked_sub(one)))
        .unwrap_or(amount)
}

fn print(rows: &[Row], currency: AssetCode) -> String {
    let mut csv = String::with_capacity(HEADER.len() + 1 + rows.len() * 96);
    csv.push_str(HEADER);
    csv.push('\n');
    // u128: a day's sums of amounts below 2^63 cannot overflow it.
    let mut totals: BTreeMap<&'static str, (u64, u128, u128)> = BTreeMap::new();
    for row in rows {
        let kind = row.kind.as_str();
        csv.push_str(&format!(
            "detail,{},{},{kind},{},{},{currency},{},succeeded,\n",
            row.request_id, row.channel_ref, row.amount, row.fee, row.booked_at_ms,
        ));
        let total = totals.entry(kind).or_default();
        total.0 += 1;
        total.1 += u128::from(row.amount.minor());
        total.2 += u128::from(row.fee.minor());
    }
    // Summaries in the type order debit, payout, refund (alphabetical, as the BTreeMap has it).
    for (kind, (count, amount, fee)) in totals {
        csv.push_str(&format!("summary,,,{kind},{amount},{fee},{currency},,,{count}\n"));
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::books::OperationRequest;
    use crate::ids::{AccountName, RequestId};

    const DAY: i64 = 19_783; // 2024-03-01
    const SHANGHAI_MINUTES: i32 = 480;

    fn cny() -> AssetCode {
        AssetCode::new("CNY").unwrap()
    }

    /// Local midnight that starts `DAY` at UTC+08:00, in Unix milliseconds.
    fn midnight_ms() -> u64 {
        19_783 * time::MS_PER_DAY - 8 * 3_600_000
    }

    fn debit(seq: u64, request_id: &str, amount: u64, fee: u64, completed_at_ms: u64) -> Operation {
        let account = AccountName::new("c1").unwrap();
        Operation {
            seq,
            request_id: RequestId::new(request_id).unwrap(),
            channel_ref: format!("bank_a-{seq:08}"),
            request: OperationRequest::Debit {
                account: account.clone(),
                amount: Amount::new(amount).unwrap(),
            },
            account: Some(account),
            status: Status::Succeeded,
            failure_reason: None,
            fee: Amount::new(fee).unwrap(),
            attempt: 0,
            created_at_ms: completed_at_ms,
            completed_at_ms: Some(completed_at_ms),
        }
    }

    fn spec(faults: StatementFaults) -> BillSpec<'static> {
        BillSpec {
            seed: 42,
            channel: "bank_a",
            currency: cny(),
            utc_offset_minutes: SHANGHAI_MINUTES,
            faults,
        }
    }

    #[test]
    fn the_day_turns_at_local_midnight() {
        let operations = [
            debit(1, "late", 100, 1, midnight_ms() - 1),
            debit(2, "early", 200, 2, midnight_ms()),
            debit(3, "last", 300, 3, midnight_ms() + time::MS_PER_DAY - 1),
        ];
        let today = render(&operations, DAY, &spec(StatementFaults::default()));
        let expected = format!(
            "{HEADER}\n\
             detail,early,bank_a-00000002,debit,200,2,CNY,{},succeeded,\n\
             detail,last,bank_a-00000003,debit,300,3,CNY,{},succeeded,\n\
             summary,,,debit,500,5,CNY,,,2\n",
            midnight_ms(),
            midnight_ms() + time::MS_PER_DAY - 1,
        );
        assert_eq!(today.csv, expected);
        assert_eq!(today.sha256_hex, hex::encode(Sha256::digest(expected.as_bytes())));
        let yesterday = render(&operations, DAY - 1, &spec(StatementFaults::default()));
        assert!(yesterday.csv.contains("detail,late,"), "{}", yesterday.csv);
        assert_eq!(yesterday.csv.lines().count(), 3);
        let empty = render(&[], DAY, &spec(StatementFaults::default()));
        assert_eq!(empty.csv, format!("{HEADER}\n"));
    }

    #[test]
    fn every_bill_parses_with_the_platform_parser() {
        let operations: Vec<Operation> =
            (1..=40).map(|i| debit(i, &format!("r{i}"), 100 * i, i, midnight_ms() + i)).collect();
        let faults = StatementFaults {
            missing_rate: 0.1,
            extra_rate: 0.1,
            amount_rate: 0.1,
            fee_rate: 0.1,
            duplicate_rate: 0.1,
            next_day_rate: 0.1,
            bad_checksum: false,
        };
        for day in [DAY, DAY + 1] {
            let bill = render(&operations, day, &spec(faults));
            let parsed =
                recon::statement::parse(bill.csv.as_bytes(), Some(&bill.sha256_hex), &[cny()]);
            let parsed = parsed.unwrap_or_else(|error| panic!("{error}\n{}", bill.csv));
            assert_eq!(parsed.details.len() + 2, bill.csv.lines().count(), "one summary row");
        }
        // The same seed and log print the same bill; another seed another one.
        assert_eq!(
            render(&operations, DAY, &spec(faults)),
            render(&operations, DAY, &spec(faults))
        );
        let other = BillSpec { seed: 43, ..spec(faults) };
        assert_ne!(render(&operations, DAY, &spec(faults)), render(&operations, DAY, &other));
    }

    #[test]
    fn a_bad_checksum_changes_only_the_digest() {
        let operations = [debit(1, "r1", 100, 1, midnight_ms())];
        let good = render(&operations, DAY, &spec(StatementFaults::default()));
        let faults = StatementFaults { bad_checksum: true, ..StatementFaults::default() };
        let bad = render(&operations, DAY, &spec(faults));
        assert_eq!(good.csv, bad.csv);
        assert_ne!(good.sha256_hex, bad.sha256_hex);
        let refused = recon::statement::parse(bad.csv.as_bytes(), Some(&bad.sha256_hex), &[cny()]);
        assert_eq!(refused.unwrap_err().code(), "statement_checksum_mismatch");
    }
}
