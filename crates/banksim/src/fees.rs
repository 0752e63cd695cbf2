//! What a channel charges the platform per operation: a fixed part plus basis points of the
//! amount, in integer minor units. The one division (by 10 000) rounds in the direction the
//! schedule names, so two implementations of the same schedule agree to the minor unit.

use money::Amount;

/// Basis points per whole: 1 bp = 1/10 000 of the amount.
pub const BPS_PER_WHOLE: u64 = 10_000;

/// How the basis-point part is rounded to whole minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Toward zero (truncate).
    Down,
    /// Away from zero: any fraction costs one more minor unit. Banks' usual choice.
    #[default]
    Up,
    /// To nearest, exact halves away from zero.
    HalfUp,
}

/// `fee_minor = fixed_minor + round(amount_minor * bps / 10 000)`, capped at `max_minor`
/// when set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeeRule {
    pub fixed_minor: u64,
    pub bps: u32,
    pub rounding: Rounding,
    pub max_minor: Option<u64>,
}

impl FeeRule {
    /// The fee for `amount`. `None` only when the fee would exceed [`Amount::MAX`], which a
    /// caller treats as a rejected operation, never as a wrapped number.
    pub fn fee(&self, amount: Amount) -> Option<Amount> {
        // u128 so that amount * bps cannot overflow for any valid amount and bps.
        let product = u128::from(amount.minor()) * u128::from(self.bps);
        let whole = u128::from(BPS_PER_WHOLE);
        let (quotient, remainder) = (product / whole, product % whole);
        let variable = match self.rounding {
            Rounding::Down => quotient,
            Rounding::Up => quotient + u128::from(remainder != 0),
            Rounding::HalfUp => quotient + u128::from(remainder * 2 >= whole),
        };
        let mut total = variable.checked_add(u128::from(self.fixed_minor))?;
        if let Some(max_minor) = self.max_minor {
            total = total.min(u128::from(max_minor));
        }
        Amount::new(u64::try_from(total).ok()?)
    }
}

/// One rule per operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeeSchedule {
    pub debit: FeeRule,
    pub payout: FeeRule,
    pub refund: FeeRule,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fee(fixed_minor: u64, bps: u32, rounding: Rounding, amount: u64) -> u64 {
        let rule = FeeRule { fixed_minor, bps, rounding, max_minor: None };
        rule.fee(Amount::new(amount).unwrap_or(Amount::ZERO)).map_or(u64::MAX, Amount::minor)
    }

    #[test]
    fn rounding_is_explicit() {
        // 12 345 * 25 bp = 30.8625 minor units.
        assert_eq!(fee(0, 25, Rounding::Down, 12_345), 30);
        assert_eq!(fee(0, 25, Rounding::Up, 12_345), 31);
        assert_eq!(fee(0, 25, Rounding::HalfUp, 12_345), 31);
        // 200 * 25 bp = 0.5 exactly.
        assert_eq!(fee(0, 25, Rounding::HalfUp, 200), 1);
        assert_eq!(fee(0, 25, Rounding::Down, 200), 0);
        assert_eq!(fee(7, 0, Rounding::Up, 1), 7);
        assert_eq!(fee(0, 10_000, Rounding::Up, Amount::MAX.minor()), Amount::MAX.minor());
        assert_eq!(fee(1, 10_000, Rounding::Up, Amount::MAX.minor()), u64::MAX);
    }
}
