//! Closed business days (日切, tag `reconciliation`): each with its journal span, its hash
//! chain and its trial balance, and the day's reports as CSV.

use serde::Deserialize;

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::routes;
use crate::wire::{AmountSum, List, SignedAmount};

/// One line of a closed day's trial balance: per asset and chart code.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct DayLineView {
    pub asset: String,
    pub chart_code: u32,
    pub opening_net_minor: SignedAmount,
    pub debits_minor: AmountSum,
    pub credits_minor: AmountSum,
    pub closing_net_minor: SignedAmount,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ClosedDayView {
    /// `YYYY-MM-DD`.
    pub business_day: String,
    /// The reconciliation zone's offset from UTC (Asia/Shanghai: 480).
    pub utc_offset_minutes: i32,
    pub from_seq: u64,
    pub to_seq: u64,
    pub balanced: bool,
    pub hash: String,
    pub previous_hash: String,
    pub closed_by: String,
    pub closed_at_ms: u64,
    /// In `GET /v1/recon/days/{day}` and the close's answer; not in the list.
    #[serde(default)]
    pub lines: Option<Vec<DayLineView>>,
}

impl Client {
    /// Closed days, newest first, without their lines (`limit` 1 to 500, default 50).
    pub async fn list_days(&self, limit: Option<u32>) -> Result<List<ClosedDayView>, ClientError> {
        self.read(routes::LIST_DAYS, &[], Query::new().opt("limit", limit)).await
    }

    /// A closed day with its trial balance (404 `day_not_closed`).
    pub async fn get_day(&self, day: &str) -> Result<ClosedDayView, ClientError> {
        self.read(routes::GET_DAY, &[day], Query::new()).await
    }

    /// Closes a business day now: only after its cut-over (409 `day_not_over`) and in order
    /// (409 `day_out_of_order`); a closed day is answered as it was closed.
    pub async fn close_day(
        &self,
        day: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<ClosedDayView>, ClientError> {
        self.write::<(), _>(routes::CLOSE_DAY, &[day], None, idempotency_key).await
    }

    /// The closed day's trial balance as CSV
    /// (`asset,chart_code,opening_net_minor,debits_minor,credits_minor,closing_net_minor`).
    pub async fn get_day_csv(&self, day: &str) -> Result<String, ClientError> {
        self.read_text(routes::GET_DAY_CSV, &[day]).await
    }

    /// Each merchant's statement of the closed day as CSV.
    pub async fn get_merchants_csv(&self, day: &str) -> Result<String, ClientError> {
        self.read_text(routes::GET_MERCHANTS_CSV, &[day]).await
    }

    /// Each channel's summary of the closed day as CSV.
    pub async fn get_channels_csv(&self, day: &str) -> Result<String, ClientError> {
        self.read_text(routes::GET_CHANNELS_CSV, &[day]).await
    }
}
