//! A merchant's settlement (结算, T+N): takings from unsettled to settled.

use ledger::model::NewTransfer;
use money::{Amount, AssetCode};

use super::{post, BookingState, BUSINESS_CODE_SETTLEMENT};
use crate::chart::merchant_account_id;
use crate::ids::{OrderId, Step};
use crate::{Effect, Event, IllegalTransition, Transition};

/// Moves a merchant's takings up to a cut-off from unsettled to settled (T+N).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settlement {
    pub order: OrderId,
    pub merchant: String,
    pub asset: AssetCode,
    pub amount: Amount,
    /// Payments made before this instant are in it (milliseconds since the epoch).
    pub cutoff_ms: u64,
    /// The merchant's terms when it ran: payments settle this many days after their day.
    pub settle_after_days: u32,
    pub state: BookingState,
}

impl Settlement {
    pub fn group(&self) -> Vec<NewTransfer> {
        vec![post(
            &self.order,
            Step::Settle,
            BUSINESS_CODE_SETTLEMENT,
            merchant_account_id(&self.merchant, self.asset, false),
            merchant_account_id(&self.merchant, self.asset, true),
            self.asset,
            self.amount,
        )]
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<Settlement>, IllegalTransition> {
        let (state, effects) = self.state.apply("settlement", event, || self.group())?;
        Ok(Transition { state: Settlement { state, ..self.clone() }, effects })
    }

    pub fn resume(&self) -> Vec<Effect> {
        self.state.resume(|| self.group())
    }
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// The cut-off of a T+N settlement run at `now_ms`: payments of day T are settled on day
/// T+N, so a run on day D takes payments made before the start of day D−N+1 (UTC days).
/// T+0 takes everything up to now.
pub fn settlement_cutoff_ms(now_ms: u64, settle_after_days: u32) -> u64 {
    if settle_after_days == 0 {
        return now_ms;
    }
    let today_start_ms = now_ms - now_ms % DAY_MS;
    today_start_ms.saturating_sub(u64::from(settle_after_days - 1) * DAY_MS)
}
