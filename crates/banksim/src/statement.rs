//! Daily statement files (对账单): one CSV per channel and UTC day, listing every operation
//! the channel considers done (succeeded) that day, ordered by completion time.
//!
//! Columns (header line first, `\n` line ends, no quoting needed: every field is validated to
//! contain no comma, quote or newline):
//! `request_id,channel_ref,operation,account,amount_minor,fee_minor,currency,status,completed_at,original_request_id`.

use money::AssetCode;

use crate::books::{Operation, OperationRequest, Status};
use crate::time;

pub const HEADER: &str =
    "request_id,channel_ref,operation,account,amount_minor,fee_minor,currency,status,completed_at,original_request_id";

/// The statement of `day` (days since the epoch, UTC) over an operation log.
pub fn render(operations: &[Operation], day: u64, currency: AssetCode) -> String {
    let mut lines: Vec<&Operation> = operations
        .iter()
        .filter(|op| op.status == Status::Succeeded)
        .filter(|op| op.completed_at_ms.map(time::day_of) == Some(day))
        .collect();
    lines.sort_by_key(|op| (op.completed_at_ms, op.seq));
    let mut csv = String::with_capacity(HEADER.len() + 1 + lines.len() * 128);
    csv.push_str(HEADER);
    csv.push('\n');
    for op in lines {
        let original = match &op.request {
            OperationRequest::Refund { debit_request_id, .. } => debit_request_id.as_str(),
            _ => "",
        };
        let line = format!(
            "{},{},{},{},{},{},{},succeeded,{},{}\n",
            op.request_id,
            op.channel_ref,
            op.request.kind().as_str(),
            op.account.as_ref().map_or("", |a| a.as_str()),
            op.request.amount(),
            op.fee,
            currency,
            op.completed_at_ms.map(time::rfc3339_ms).unwrap_or_default(),
            original,
        );
        csv.push_str(&line);
    }
    csv
}
