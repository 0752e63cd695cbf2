//! The platform's chart of accounts (会计科目) and the accounts the payment core opens, so
//! that the trial balance reads as a balance sheet:
//!
//! | code | line | class | holds |
//! | --- | --- | --- | --- |
//! | 1901 | FX position | asset | per asset: currency bought (debits) and sold (credits) by cross-currency payments |
//! | 1122 | channel clearing | asset | per channel and asset: what the channel holds or owes us (our reserve at the bank, net of money in transit) |
//! | 2241 | customer wallets | liability | per customer and asset: what we owe the customer |
//! | 2242 | customer points | liability | points owed to customers |
//! | 2245 | withdrawals in flight | liability | wallet money on its way to a bank account |
//! | 2202 | merchant payables, unsettled | liability | takings not yet settled |
//! | 2203 | merchant payables, settled | liability | takings a merchant may withdraw |
//! | 2299 | suspense | liability | money received that matches no order, until it is placed |
//! | 2298 | reconciliation suspense | liability | per channel and asset: open reconciliation breaks (挂账), the channel's statement less our books |
//! | 6711 | fund losses | expense | money lost (资损), written off from reconciliation breaks |
//! | 6301 | loss recoveries | income | money recovered against earlier losses |
//! | 6021 | fee income | income | fees we charge |
//! | 6602 | channel fees | expense | fees channels charge us |
//! | 6601 | points marketing | expense | in the points asset: points issued less points redeemed; in cash: what redeemed points cost us (paid to merchants) |
//!
//! Every account id is derived from what the account is for, so opening it twice is the
//! same command twice (idempotent in the ledger). Internal accounts have the top bit set;
//! customers' and merchants' accounts have it clear, so the two can never collide.

use channels::ChannelId;
use ledger::apply::Command;
use ledger::model::{
    AccountClass, AccountLayout, BalanceRule, BoundedText, ChartCode, ChartEntry, NewAccount,
    METADATA_LEN_MAX,
};
use ledger::AccountId;
use money::AssetCode;
use sha2::{Digest, Sha256};

/// One line of the chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChartLine {
    pub code: u32,
    pub name: &'static str,
    pub class: AccountClass,
}

pub const CHANNEL_CLEARING: ChartLine =
    ChartLine { code: 1122, name: "channel clearing", class: AccountClass::Asset };
pub const CUSTOMER_WALLETS: ChartLine =
    ChartLine { code: 2241, name: "customer wallets", class: AccountClass::Liability };
pub const WITHDRAWALS_IN_FLIGHT: ChartLine =
    ChartLine { code: 2245, name: "withdrawals in flight", class: AccountClass::Liability };
pub const CUSTOMER_POINTS: ChartLine =
    ChartLine { code: 2242, name: "customer points", class: AccountClass::Liability };
pub const MERCHANT_UNSETTLED: ChartLine =
    ChartLine { code: 2202, name: "merchant payables, unsettled", class: AccountClass::Liability };
pub const MERCHANT_SETTLED: ChartLine =
    ChartLine { code: 2203, name: "merchant payables, settled", class: AccountClass::Liability };
pub const SUSPENSE: ChartLine =
    ChartLine { code: 2299, name: "suspense", class: AccountClass::Liability };
pub const RECON_SUSPENSE: ChartLine =
    ChartLine { code: 2298, name: "reconciliation suspense", class: AccountClass::Liability };
pub const FUND_LOSSES: ChartLine =
    ChartLine { code: 6711, name: "fund losses", class: AccountClass::Expense };
pub const LOSS_RECOVERIES: ChartLine =
    ChartLine { code: 6301, name: "loss recoveries", class: AccountClass::Income };
pub const FEE_INCOME: ChartLine =
    ChartLine { code: 6021, name: "fee income", class: AccountClass::Income };
pub const CHANNEL_FEES: ChartLine =
    ChartLine { code: 6602, name: "channel fees", class: AccountClass::Expense };
pub const FX_POSITION: ChartLine =
    ChartLine { code: 1901, name: "FX position", class: AccountClass::Asset };
pub const POINTS_MARKETING: ChartLine =
    ChartLine { code: 6601, name: "points marketing", class: AccountClass::Expense };

pub const CHART: [ChartLine; 14] = [
    CHANNEL_CLEARING,
    CUSTOMER_WALLETS,
    WITHDRAWALS_IN_FLIGHT,
    CUSTOMER_POINTS,
    MERCHANT_UNSETTLED,
    MERCHANT_SETTLED,
    SUSPENSE,
    FEE_INCOME,
    CHANNEL_FEES,
    POINTS_MARKETING,
    FX_POSITION,
    RECON_SUSPENSE,
    FUND_LOSSES,
    LOSS_RECOVERIES,
];

/// Ledger commands defining the chart (idempotent).
pub fn chart_commands() -> Vec<Command> {
    CHART
        .iter()
        .map(|line| {
            Command::DefineChart(ChartEntry {
                code: ChartCode(line.code),
                name: match BoundedText::new(line.name) {
                    Ok(name) => name,
                    Err(_) => unreachable!("chart names are short constants"),
                },
                class: line.class,
            })
        })
        .collect()
}

/// The platform's own accounts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Internal {
    ChannelClearing(ChannelId),
    /// A channel's open reconciliation breaks.
    ReconSuspense(ChannelId),
    FundLosses,
    LossRecoveries,
    ChannelFees,
    FeeIncome,
    Suspense,
    WithdrawalsInFlight,
    PointsMarketing,
    FxPosition,
    /// Holds that mark a rejected transfer's id as used (see `crate::tombstone`): each is
    /// voided at once, so it never carries a balance.
    Tombstones,
}

impl Internal {
    fn line(&self) -> ChartLine {
        match self {
            Internal::ChannelClearing(_) => CHANNEL_CLEARING,
            Internal::ReconSuspense(_) => RECON_SUSPENSE,
            Internal::FundLosses => FUND_LOSSES,
            Internal::LossRecoveries => LOSS_RECOVERIES,
            Internal::ChannelFees => CHANNEL_FEES,
            Internal::FeeIncome => FEE_INCOME,
            Internal::Suspense => SUSPENSE,
            Internal::WithdrawalsInFlight => WITHDRAWALS_IN_FLIGHT,
            Internal::PointsMarketing => POINTS_MARKETING,
            Internal::FxPosition => FX_POSITION,
            Internal::Tombstones => SUSPENSE,
        }
    }

    fn key(&self) -> String {
        match self {
            Internal::ChannelClearing(channel) => format!("clearing:{channel}"),
            Internal::ReconSuspense(channel) => format!("recon_suspense:{channel}"),
            Internal::FundLosses => "fund_losses".into(),
            Internal::LossRecoveries => "loss_recoveries".into(),
            Internal::ChannelFees => "channel_fees".into(),
            Internal::FeeIncome => "fee_income".into(),
            Internal::Suspense => "suspense".into(),
            Internal::WithdrawalsInFlight => "withdrawals_in_flight".into(),
            Internal::PointsMarketing => "points_marketing".into(),
            Internal::FxPosition => "fx_position".into(),
            Internal::Tombstones => "tombstones".into(),
        }
    }
}

fn derived(kind: &str, key: &str, asset: AssetCode, internal: bool) -> AccountId {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(b"qianbao.payments.account\0")
        .chain_update(kind)
        .chain_update([0])
        .chain_update(key)
        .chain_update([0])
        .chain_update(asset.as_str())
        .finalize()
        .into();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    let top = 1u128 << 127;
    let id = u128::from_be_bytes(raw);
    let id = if internal { id | top } else { (id & !top) | 1 };
    match AccountId::new(id) {
        Ok(id) => id,
        Err(_) => unreachable!("never zero: a bit is forced on"),
    }
}

/// An account's label in the ledger. Labels are built from party keys and channel ids, which
/// the payment core bounds far below the ledger's limit before they reach the chart; a longer
/// one is a bug upstream, stopped here rather than stored as an empty label.
fn account_label(text: String) -> BoundedText<METADATA_LEN_MAX> {
    match BoundedText::<METADATA_LEN_MAX>::new(text) {
        Ok(label) => label,
        Err(too_long) => panic!("an account label: {too_long}"),
    }
}

pub fn internal_account_id(account: &Internal, asset: AssetCode) -> AccountId {
    derived("internal", &account.key(), asset, true)
}

/// The ledger account of an internal account, unbounded (its balance may go either way:
/// clearing swings with traffic; suspense and fees accumulate).
pub fn internal_account(account: &Internal, asset: AssetCode) -> NewAccount {
    NewAccount {
        id: internal_account_id(account, asset),
        asset,
        chart_code: ChartCode(account.line().code),
        rule: BalanceRule::Unbounded,
        metadata: account_label(account.key()),
        layout: Default::default(),
    }
}

pub fn wallet_account_id(customer: &str, asset: AssetCode) -> AccountId {
    derived("wallet", customer, asset, false)
}

/// A customer's wallet in `asset`: a liability that can never go negative.
pub fn wallet_account(customer: &str, asset: AssetCode) -> NewAccount {
    wallet_account_on(customer, asset, CUSTOMER_WALLETS)
}

/// A customer's account in the points asset: the same kind of account, on the points line
/// of the chart (2242).
pub fn points_account(customer: &str, asset: AssetCode) -> NewAccount {
    wallet_account_on(customer, asset, CUSTOMER_POINTS)
}

fn wallet_account_on(customer: &str, asset: AssetCode, line: ChartLine) -> NewAccount {
    NewAccount {
        id: wallet_account_id(customer, asset),
        asset,
        chart_code: ChartCode(line.code),
        rule: BalanceRule::NO_OVERDRAFT,
        metadata: account_label(format!("wallet:{customer}")),
        layout: Default::default(),
    }
}

pub fn merchant_account_id(merchant: &str, asset: AssetCode, settled: bool) -> AccountId {
    derived(if settled { "merchant_settled" } else { "merchant_unsettled" }, merchant, asset, false)
}

/// A merchant's two payables in `asset` (unsettled takings, settled takings): liabilities
/// that never go negative, so a refund can only return what the merchant still holds.
/// `unsettled_layout` spreads the unsettled payables, which every payment credits, over rows
/// for a hot merchant (热点账户); the settled payables move once a settlement run and stay
/// plain.
pub fn merchant_accounts(
    merchant: &str,
    asset: AssetCode,
    unsettled_layout: AccountLayout,
) -> [NewAccount; 2] {
    [false, true].map(|settled| NewAccount {
        id: merchant_account_id(merchant, asset, settled),
        asset,
        chart_code: ChartCode(if settled {
            MERCHANT_SETTLED.code
        } else {
            MERCHANT_UNSETTLED.code
        }),
        rule: BalanceRule::NO_OVERDRAFT,
        metadata: account_label(format!(
            "merchant:{merchant}:{}",
            if settled { "settled" } else { "unsettled" }
        )),
        layout: if settled { AccountLayout::Plain } else { unsettled_layout },
    })
}

/// Every internal account the payment core books to, for `asset` and `channels`.
pub fn internal_accounts(asset: AssetCode, channels: &[ChannelId]) -> Vec<NewAccount> {
    let mut accounts: Vec<NewAccount> = [
        Internal::ChannelFees,
        Internal::FeeIncome,
        Internal::Suspense,
        Internal::WithdrawalsInFlight,
        Internal::PointsMarketing,
        Internal::FxPosition,
        Internal::Tombstones,
        Internal::FundLosses,
        Internal::LossRecoveries,
    ]
    .iter()
    .map(|internal| internal_account(internal, asset))
    .collect();
    for channel in channels {
        accounts.push(internal_account(&Internal::ChannelClearing(channel.clone()), asset));
        accounts.push(internal_account(&Internal::ReconSuspense(channel.clone()), asset));
    }
    accounts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_stable_and_internal_ones_never_collide_with_customers() {
        let cny = AssetCode::new("CNY").unwrap();
        let clearing = Internal::ChannelClearing(ChannelId::new("bank_a").unwrap());
        assert_eq!(internal_account_id(&clearing, cny), internal_account_id(&clearing, cny));
        assert!(internal_account_id(&clearing, cny).get() >> 127 == 1);
        assert!(wallet_account_id("alice", cny).get() >> 127 == 0);
        assert_ne!(wallet_account_id("alice", cny), wallet_account_id("bob", cny));
        assert_ne!(
            wallet_account_id("alice", cny),
            wallet_account_id("alice", AssetCode::new("USD").unwrap())
        );
        assert_eq!(chart_commands().len(), CHART.len());
    }
}
