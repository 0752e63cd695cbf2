//! The balance sheet an operator reads (资产负债表): the trial balance by chart line, each
//! line named and signed the way its class is normally read, and per asset the money we
//! hold for others — customers' wallets, withdrawals on their way out, merchants' takings,
//! money not yet placed — against the reserves at the channels (备付金) that back it.
//!
//! `cover` is reserves less client money: what is ours in the reserves (fees earned, less
//! channel fees and losses). Below zero, the reserves no longer cover what we owe.

use channels::ChannelId;
use ledger::model::AccountClass;
use ledger::port::{AssetTotals, TrialBalanceLine};
use money::AssetCode;

use crate::chart::{
    ChartLine, CHART, CUSTOMER_WALLETS, MERCHANT_SETTLED, MERCHANT_UNSETTLED, SUSPENSE,
    WITHDRAWALS_IN_FLIGHT,
};

/// The lines that are money held for others, and owed to them.
pub const CLIENT_MONEY: [ChartLine; 5] =
    [CUSTOMER_WALLETS, WITHDRAWALS_IN_FLIGHT, MERCHANT_UNSETTLED, MERCHANT_SETTLED, SUSPENSE];

/// One chart line of one asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SheetLine {
    pub chart_code: u32,
    /// The line in the payment core's chart; `None` for a line defined through the ledger
    /// API alone.
    pub line: Option<ChartLine>,
    pub n_accounts: u64,
    /// Posted, in the line's normal direction: debits less credits for assets and expenses
    /// (and lines the payment core does not know), credits less debits for the rest.
    pub balance_minor: i128,
    pub debits_pending_minor: u128,
    pub credits_pending_minor: u128,
}

/// One channel's reserve in one asset: its clearing account, debits less credits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserve {
    pub channel: ChannelId,
    pub asset: AssetCode,
    pub balance_minor: i128,
}

/// One asset's sheet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetSheet {
    pub asset: AssetCode,
    /// Debits equal credits, posted and pending.
    pub balanced: bool,
    pub lines: Vec<SheetLine>,
    pub client_money_minor: i128,
    pub reserves: Vec<Reserve>,
    pub reserves_minor: i128,
    /// Reserves less client money.
    pub cover_minor: i128,
}

fn credit_normal(class: AccountClass) -> bool {
    matches!(class, AccountClass::Liability | AccountClass::Equity | AccountClass::Income)
}

/// The sheet of every asset in the trial balance, in asset order.
pub fn balance_sheet(lines: &[TrialBalanceLine], reserves: &[Reserve]) -> Vec<AssetSheet> {
    AssetTotals::of(lines)
        .into_iter()
        .map(|totals| {
            let asset = totals.asset;
            let sheet_lines: Vec<SheetLine> = lines
                .iter()
                .filter(|line| line.asset == asset)
                .map(|line| {
                    let known = CHART.iter().copied().find(|c| c.code == line.chart_code.0);
                    let debit_net =
                        line.balances.debits_posted as i128 - line.balances.credits_posted as i128;
                    let balance_minor = match known {
                        Some(known) if credit_normal(known.class) => -debit_net,
                        _ => debit_net,
                    };
                    SheetLine {
                        chart_code: line.chart_code.0,
                        line: known,
                        n_accounts: line.n_accounts,
                        balance_minor,
                        debits_pending_minor: line.balances.debits_pending,
                        credits_pending_minor: line.balances.credits_pending,
                    }
                })
                .collect();
            let client_money_minor = sheet_lines
                .iter()
                .filter(|line| CLIENT_MONEY.iter().any(|c| c.code == line.chart_code))
                .map(|line| line.balance_minor)
                .sum();
            let reserves: Vec<Reserve> =
                reserves.iter().filter(|r| r.asset == asset).cloned().collect();
            let reserves_minor = reserves.iter().map(|r| r.balance_minor).sum();
            AssetSheet {
                asset,
                balanced: totals.balanced(),
                lines: sheet_lines,
                client_money_minor,
                reserves,
                reserves_minor,
                cover_minor: reserves_minor - client_money_minor,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::chart::{CHANNEL_CLEARING, FEE_INCOME};
    use ledger::model::ChartCode;
    use ledger::port::BalanceTotals;

    fn line(asset: &str, chart: ChartLine, debits: u128, credits: u128) -> TrialBalanceLine {
        TrialBalanceLine {
            asset: AssetCode::new(asset).unwrap(),
            chart_code: ChartCode(chart.code),
            n_accounts: 1,
            balances: BalanceTotals {
                debits_posted: debits,
                credits_posted: credits,
                ..Default::default()
            },
        }
    }

    #[test]
    fn reserves_cover_client_money_and_the_rest_is_ours() {
        // A top-up of 1,000 through bank_a, a payment of 300 to a merchant with a fee of 3.
        let cny = AssetCode::new("CNY").unwrap();
        let lines = [
            line("CNY", CHANNEL_CLEARING, 1000, 0),
            line("CNY", CUSTOMER_WALLETS, 300, 1000),
            line("CNY", MERCHANT_UNSETTLED, 0, 297),
            line("CNY", FEE_INCOME, 0, 3),
        ];
        let reserves = [Reserve {
            channel: ChannelId::new("bank_a").unwrap(),
            asset: cny,
            balance_minor: 1000,
        }];
        let sheet = balance_sheet(&lines, &reserves);
        assert_eq!(sheet.len(), 1);
        let cny_sheet = &sheet[0];
        assert!(cny_sheet.balanced);
        assert_eq!(cny_sheet.lines[1].balance_minor, 700, "a liability reads credit-normal");
        assert_eq!(cny_sheet.lines[0].balance_minor, 1000, "an asset reads debit-normal");
        assert_eq!(cny_sheet.client_money_minor, 997);
        assert_eq!((cny_sheet.reserves_minor, cny_sheet.cover_minor), (1000, 3), "the fee is ours");
    }

    #[test]
    fn an_unbalanced_asset_is_told_and_assets_do_not_mix() {
        let lines = [line("CNY", CHANNEL_CLEARING, 5, 0), line("USD", CUSTOMER_WALLETS, 0, 7)];
        let sheet = balance_sheet(&lines, &[]);
        assert_eq!(sheet.iter().map(|s| s.balanced).collect::<Vec<_>>(), [false, false]);
        assert_eq!(sheet[1].cover_minor, -7, "nothing backs the dollars");
    }
}
