//! Money between wallets and the platform's marketing account: a wallet transfer (转账) and
//! a points grant.

use ledger::model::NewTransfer;
use money::{Amount, AssetCode};

use super::{post, BookingState, BUSINESS_CODE_POINTS_GRANT, BUSINESS_CODE_WALLET_TRANSFER};
use crate::chart::{internal_account_id, wallet_account_id, Internal};
use crate::ids::{OrderId, Step};
use crate::{Effect, Event, IllegalTransition, Transition};

/// Points given to a customer (a reward, a promotion): the platform's marketing expense.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PointsGrant {
    pub order: OrderId,
    pub customer: String,
    /// The points asset.
    pub asset: AssetCode,
    pub amount: Amount,
    pub state: BookingState,
}

impl PointsGrant {
    pub fn group(&self) -> Vec<NewTransfer> {
        vec![post(
            &self.order,
            Step::PointsGrant,
            BUSINESS_CODE_POINTS_GRANT,
            internal_account_id(&Internal::PointsMarketing, self.asset),
            wallet_account_id(&self.customer, self.asset),
            self.asset,
            self.amount,
        )]
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<PointsGrant>, IllegalTransition> {
        let (state, effects) = self.state.apply("points grant", event, || self.group())?;
        Ok(Transition { state: PointsGrant { state, ..self.clone() }, effects })
    }

    pub fn resume(&self) -> Vec<Effect> {
        self.state.resume(|| self.group())
    }
}

/// Wallet to wallet, same asset, immediate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalletTransfer {
    pub order: OrderId,
    pub from: String,
    pub to: String,
    pub asset: AssetCode,
    pub amount: Amount,
    pub state: BookingState,
}

impl WalletTransfer {
    pub fn group(&self) -> Vec<NewTransfer> {
        vec![post(
            &self.order,
            Step::WalletTransfer,
            BUSINESS_CODE_WALLET_TRANSFER,
            wallet_account_id(&self.from, self.asset),
            wallet_account_id(&self.to, self.asset),
            self.asset,
            self.amount,
        )]
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<WalletTransfer>, IllegalTransition> {
        let (state, effects) = self.state.apply("wallet transfer", event, || self.group())?;
        Ok(Transition { state: WalletTransfer { state, ..self.clone() }, effects })
    }

    pub fn resume(&self) -> Vec<Effect> {
        self.state.resume(|| self.group())
    }
}
