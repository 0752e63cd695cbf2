//! Breaks (差错) and their resolution, pure: what a break holds in suspense, how severe it is,
//! which states it may pass through, and the postings each resolution books.
//!
//! ## The money of a break
//! A channel's clearing account (1122) holds what the channel owes us. A statement line moves
//! it by its *clearing effect*: a debit (money taken from a payer) `+amount − fee`; a payout or
//! a refund `−amount − fee`; a failed line nothing. A break is the difference between the
//! statement's effect and ours, in two parts:
//!
//! - `amount_minor`: the amounts' difference (a missing line, a different amount);
//! - `fee_minor`: the fees' difference.
//!
//! While the break is open, each non-zero part sits on the channel's suspense account (挂账,
//! chart 2298), booked by one balanced transfer against clearing — a positive part debits
//! clearing and credits suspense (the channel holds money our books do not place), a negative
//! part the reverse (our books expect money the channel does not show). So the clearing
//! account then says what the statement says, and the balance sheet shows the open break.
//!
//! ## Resolution (always a new double entry, never an edit)
//! Every resolution empties the break's suspense; the fee part always goes to channel fees
//! (6602) except under a force-match. With `s` the amount part (and `f` the fee part):
//!
//! | resolution | when | postings |
//! | --- | --- | --- |
//! | `credit_customer` (补单) | `s > 0`, a debit | suspense → the customer's wallet, `s` |
//! | `refund_payer` | `s > 0` | suspense → clearing, `s` (the channel returns it to the payer) |
//! | `adjust` (fee, FX, rounding) | any | suspense ↔ channel fees, `s` |
//! | `write_off` | `s < 0` | fund losses (6711) → suspense, `−s`, entered in the loss register |
//! | `recover` | `s > 0`, names an earlier loss | suspense → loss recoveries (6301), `s` |
//! | `force_match` | any, reason required | both parts reversed against clearing: no money moves |
//! | `order_completed` | system only | nothing: the order took the channel's answer |
//! | `superseded` | system only | as `force_match`: a newer statement no longer shows it |

use money::{Amount, AssetCode};

use crate::day::BusinessDay;
use crate::matching::{Class, Classified, OurStatus};
use crate::statement::{LineStatus, TxType};

/// The platform's books a reconciliation posting touches; the caller maps each to its
/// ledger account for the break's channel and currency.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "book", content = "of", rename_all = "snake_case")]
pub enum Book {
    /// The channel's clearing account (1122).
    Clearing,
    /// The channel's reconciliation suspense (2298).
    Suspense,
    /// A customer's wallet (2241).
    Wallet(String),
    /// Channel fees (6602).
    ChannelFees,
    /// Fund losses (6711).
    Losses,
    /// Recoveries of earlier losses (6301).
    Recoveries,
}

/// One balanced movement: `amount` from `debit` to `credit`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Posting {
    /// Names the posting within its step (`amount`, `fee`), so its ledger id can be derived.
    pub leg: &'static str,
    pub debit: Book,
    pub credit: Book,
    pub amount: Amount,
}

/// What a break holds in suspense, signed: positive — the channel shows more owed to us than
/// our books do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SuspenseParts {
    pub amount_minor: i64,
    pub fee_minor: i64,
}

fn sign(tx_type: TxType) -> i128 {
    match tx_type {
        TxType::Debit => 1,
        TxType::Payout | TxType::Refund => -1,
    }
}

fn minor(amount: Option<Amount>) -> i128 {
    amount.map_or(0, |a| i128::from(a.minor()))
}

impl SuspenseParts {
    /// The parts of a classified line: the statement's clearing effect less ours.
    pub fn of(line: &Classified) -> SuspenseParts {
        let ours_booked = line.status_ours == Some(OurStatus::Succeeded);
        let theirs_booked = line.status_theirs == Some(LineStatus::Succeeded);
        let (amount_ours, fee_ours) =
            if ours_booked { (minor(line.amount_ours), minor(line.fee_ours)) } else { (0, 0) };
        let (amount_theirs, fee_theirs) = if theirs_booked {
            (minor(line.amount_theirs), minor(line.fee_theirs))
        } else {
            (0, 0)
        };
        // Amounts are at most i64::MAX each, so the differences fit an i64 only when clamped:
        // a break that large is refused by the caller long before (no channel moves 2^62).
        let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
        SuspenseParts {
            amount_minor: clamp(sign(line.tx_type) * (amount_theirs - amount_ours)),
            fee_minor: clamp(fee_ours - fee_theirs),
        }
    }

    pub fn total_minor(self) -> i128 {
        i128::from(self.amount_minor) + i128::from(self.fee_minor)
    }

    pub fn is_zero(self) -> bool {
        self.amount_minor == 0 && self.fee_minor == 0
    }

    /// The postings that put the break in suspense: one per non-zero part, against clearing.
    pub fn booking(self) -> Vec<Posting> {
        let mut postings = Vec::new();
        for (leg, part) in [("amount", self.amount_minor), ("fee", self.fee_minor)] {
            if let Some(posting) = movement(leg, part, Book::Clearing, Book::Suspense) {
                postings.push(posting);
            }
        }
        postings
    }
}

/// `part > 0`: debit `positive_debit`, credit `positive_credit`; `part < 0` the reverse.
fn movement(
    leg: &'static str,
    part: i64,
    positive_debit: Book,
    positive_credit: Book,
) -> Option<Posting> {
    let amount = Amount::new(part.unsigned_abs()).filter(|a| !a.is_zero())?;
    Some(if part > 0 {
        Posting { leg, debit: positive_debit, credit: positive_credit, amount }
    } else {
        Posting { leg, debit: positive_credit, credit: positive_debit, amount }
    })
}

/// How an operator (or the system) closes a break.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resolution {
    /// 补单: the payer was debited and we never credited them.
    CreditCustomer { customer: String },
    /// The money goes back to the payer through the channel.
    RefundPayer,
    /// A fee, FX or rounding difference taken to channel fees.
    Adjust,
    /// The money is lost: booked to fund losses and entered in the loss register.
    WriteOff,
    /// Money received against an earlier write-off.
    Recover { loss_id: String },
    /// Our books are right and the statement is wrong: the suspense booking is reversed.
    ForceMatch,
    /// System: the order took the channel's answer (a `missing_internal` whose order was unknown).
    OrderCompleted,
    /// System: a newer statement of the same day no longer shows the break.
    Superseded,
}

impl Resolution {
    pub fn name(&self) -> &'static str {
        match self {
            Resolution::CreditCustomer { .. } => "credit_customer",
            Resolution::RefundPayer => "refund_payer",
            Resolution::Adjust => "adjust",
            Resolution::WriteOff => "write_off",
            Resolution::Recover { .. } => "recover",
            Resolution::ForceMatch => "force_match",
            Resolution::OrderCompleted => "order_completed",
            Resolution::Superseded => "superseded",
        }
    }

    /// Only the platform itself resolves a break so.
    pub fn is_system(&self) -> bool {
        matches!(self, Resolution::OrderCompleted | Resolution::Superseded)
    }
}

/// Why a resolution does not fit its break.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolutionRefused {
    #[error("{resolution} needs money held for the channel (a positive amount part), the break holds {amount_minor}")]
    NeedsPositive { resolution: &'static str, amount_minor: i64 },
    #[error(
        "write_off needs money missing (a negative amount part), the break holds {amount_minor}"
    )]
    NeedsNegative { amount_minor: i64 },
    #[error("credit_customer fits a debit (money taken from a payer), this break is a {tx_type}")]
    NotADebit { tx_type: &'static str },
    #[error("{resolution} is the platform's own resolution")]
    SystemOnly { resolution: &'static str },
}

impl ResolutionRefused {
    pub fn code(&self) -> &'static str {
        match self {
            ResolutionRefused::NeedsPositive { .. } => "resolution_needs_positive_break",
            ResolutionRefused::NeedsNegative { .. } => "resolution_needs_negative_break",
            ResolutionRefused::NotADebit { .. } => "resolution_needs_debit",
            ResolutionRefused::SystemOnly { .. } => "resolution_system_only",
        }
    }
}

/// The postings that resolve a break holding `parts` (of a line of `tx_type`) by
/// `resolution`: afterwards the break's suspense is zero. Checks that the resolution fits.
pub fn resolution_postings(
    parts: SuspenseParts,
    tx_type: TxType,
    resolution: &Resolution,
) -> Result<Vec<Posting>, ResolutionRefused> {
    let s = parts.amount_minor;
    let needs_positive = |name: &'static str| {
        if s > 0 {
            Ok(())
        } else {
            Err(ResolutionRefused::NeedsPositive { resolution: name, amount_minor: s })
        }
    };
    // The amount part's destination: suspense → `to` when positive, `to` → suspense when negative.
    let amount_to = match resolution {
        Resolution::CreditCustomer { customer } => {
            if tx_type != TxType::Debit {
                return Err(ResolutionRefused::NotADebit { tx_type: tx_type.as_str() });
            }
            needs_positive("credit_customer")?;
            Book::Wallet(customer.clone())
        }
        Resolution::RefundPayer => {
            needs_positive("refund_payer")?;
            Book::Clearing
        }
        Resolution::Adjust => Book::ChannelFees,
        Resolution::WriteOff => {
            if s >= 0 {
                return Err(ResolutionRefused::NeedsNegative { amount_minor: s });
            }
            Book::Losses
        }
        Resolution::Recover { .. } => {
            needs_positive("recover")?;
            Book::Recoveries
        }
        Resolution::ForceMatch | Resolution::Superseded => {
            // Undo the booking: each part back against clearing.
            let mut postings = Vec::new();
            for (leg, part) in [("amount", parts.amount_minor), ("fee", parts.fee_minor)] {
                postings.extend(movement(leg, part, Book::Suspense, Book::Clearing));
            }
            return Ok(postings);
        }
        Resolution::OrderCompleted => return Ok(Vec::new()),
    };
    let mut postings = Vec::new();
    postings.extend(movement("amount", s, Book::Suspense, amount_to));
    postings.extend(movement("fee", parts.fee_minor, Book::Suspense, Book::ChannelFees));
    Ok(postings)
}

/// Where a break stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakState {
    Open,
    Assigned,
    /// A resolution is proposed and waits for a second person (maker–checker).
    PendingApproval,
    /// The resolution is decided; its postings are being booked (resumed after a crash).
    Resolving,
    Resolved,
}

impl BreakState {
    pub const ALL: [BreakState; 5] = [
        BreakState::Open,
        BreakState::Assigned,
        BreakState::PendingApproval,
        BreakState::Resolving,
        BreakState::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakState::Open => "open",
            BreakState::Assigned => "assigned",
            BreakState::PendingApproval => "pending_approval",
            BreakState::Resolving => "resolving",
            BreakState::Resolved => "resolved",
        }
    }

    pub fn parse(raw: &str) -> Option<BreakState> {
        BreakState::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Still needs someone: not resolved and not being resolved.
    pub fn is_open(self) -> bool {
        matches!(self, BreakState::Open | BreakState::Assigned | BreakState::PendingApproval)
    }
}

/// How urgent a break is, by its amount and its age.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] =
        [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(raw: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    fn raised(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

/// Thresholds of severity and of approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// A break of at least this much (either sign) is high.
    pub high_minor: u64,
    /// … and of at least this much critical.
    pub critical_minor: u64,
    /// Every this many days open raises a break one level.
    pub escalate_after_days: i64,
    /// A resolution that moves at least this much needs a second person's approval.
    pub approval_minor: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            high_minor: 100_000,
            critical_minor: 1_000_000,
            escalate_after_days: 2,
            approval_minor: 10_000,
        }
    }
}

impl Policy {
    /// A break holding `parts`, of `day`, seen on `today`.
    pub fn severity(&self, parts: SuspenseParts, day: BusinessDay, today: BusinessDay) -> Severity {
        let size = parts.total_minor().unsigned_abs();
        let mut severity = if size >= u128::from(self.critical_minor) {
            Severity::Critical
        } else if size >= u128::from(self.high_minor) {
            Severity::High
        } else if size > 0 {
            Severity::Medium
        } else {
            Severity::Low
        };
        let age_days = (today.days() - day.days()).max(0);
        if self.escalate_after_days > 0 {
            for _ in 0..(age_days / self.escalate_after_days).min(3) {
                severity = severity.raised();
            }
        }
        severity
    }

    /// Whether a resolution of a break holding `parts` needs a second person.
    pub fn needs_approval(&self, parts: SuspenseParts, resolution: &Resolution) -> bool {
        if resolution.is_system() {
            return false;
        }
        let moved = u128::from(parts.amount_minor.unsigned_abs())
            + u128::from(parts.fee_minor.unsigned_abs());
        // A write-off always books a loss: never one person's decision alone above zero.
        moved >= u128::from(self.approval_minor) || matches!(resolution, Resolution::WriteOff)
    }
}

/// The stable id of a break: the same difference found again (a re-run, a new version of
/// the statement that still shows it) is the same break, so its suspense is booked once.
pub fn break_id(channel: &str, day: BusinessDay, line: &Classified) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"qianbao.recon.break\0");
    for part in [
        channel,
        &day.to_string(),
        line.class.as_str(),
        line.request_id.as_deref().unwrap_or(""),
        &line.statement_line.map(|n| n.to_string()).unwrap_or_default(),
        line.tx_type.as_str(),
        line.currency.as_str(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    for amount in [line.amount_ours, line.amount_theirs, line.fee_ours, line.fee_theirs] {
        hasher.update(amount.map_or(u64::MAX, |a| a.minor()).to_be_bytes());
    }
    let digest = hasher.finalize();
    format!("brk_{}", hex::encode(&digest[..12]))
}

/// A break as found by a run (before storage gives it a state and history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundBreak {
    pub id: String,
    pub class: Class,
    pub line: Classified,
    pub parts: SuspenseParts,
    pub currency: AssetCode,
}

/// The breaks of a reconciliation of `channel` and `day`.
pub fn found_breaks(channel: &str, day: BusinessDay, lines: &[Classified]) -> Vec<FoundBreak> {
    lines
        .iter()
        .filter(|line| line.class.is_break())
        .map(|line| FoundBreak {
            id: break_id(channel, day, line),
            class: line.class,
            line: line.clone(),
            parts: SuspenseParts::of(line),
            currency: line.currency,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::Rule;

    fn cny() -> AssetCode {
        AssetCode::new("CNY").unwrap()
    }

    fn amount(minor: u64) -> Option<Amount> {
        Some(Amount::new(minor).unwrap())
    }

    fn line(class: Class, tx_type: TxType) -> Classified {
        Classified {
            class,
            rule: Rule::Unpaired,
            within_tolerance: false,
            date_lag: false,
            statement_line: Some(2),
            request_id: Some("o1:debit".into()),
            order_id: Some("o1".into()),
            tx_type,
            currency: cny(),
            amount_ours: None,
            amount_theirs: None,
            fee_ours: None,
            fee_theirs: None,
            status_ours: None,
            status_theirs: None,
        }
    }

    /// Applies postings to a map of books and returns each book's debit-minus-credit.
    fn net(postings: &[Posting]) -> std::collections::HashMap<Book, i128> {
        let mut books = std::collections::HashMap::new();
        for p in postings {
            *books.entry(p.debit.clone()).or_default() += i128::from(p.amount.minor());
            *books.entry(p.credit.clone()).or_default() -= i128::from(p.amount.minor());
        }
        books
    }

    #[test]
    fn a_missing_internal_debit_holds_the_amount_less_the_fee_in_suspense() {
        let mut l = line(Class::MissingInternal, TxType::Debit);
        l.amount_theirs = amount(10_000);
        l.fee_theirs = amount(60);
        l.status_theirs = Some(LineStatus::Succeeded);
        l.status_ours = Some(OurStatus::Failed);
        l.amount_ours = amount(10_000);
        let parts = SuspenseParts::of(&l);
        assert_eq!(parts, SuspenseParts { amount_minor: 10_000, fee_minor: -60 });
        let booked = net(&parts.booking());
        // Clearing rises by what the channel will remit: 10,000 less its fee of 60.
        assert_eq!(booked[&Book::Clearing], 9_940);
        assert_eq!(booked[&Book::Suspense], -9_940);
        // 补单: the customer gets the whole amount, the fee is ours to bear; suspense empties.
        let resolution = Resolution::CreditCustomer { customer: "alice".into() };
        let mut all = parts.booking();
        all.extend(resolution_postings(parts, TxType::Debit, &resolution).unwrap());
        let books = net(&all);
        assert_eq!(books.get(&Book::Suspense).copied().unwrap_or(0), 0);
        assert_eq!(books[&Book::Wallet("alice".into())], -10_000);
        assert_eq!(books[&Book::ChannelFees], 60);
        assert_eq!(books[&Book::Clearing], 9_940);
    }

    #[test]
    fn a_missing_external_payout_is_money_the_channel_did_not_pay() {
        let mut l = line(Class::MissingExternal, TxType::Payout);
        l.amount_ours = amount(5_000);
        l.fee_ours = amount(100);
        l.status_ours = Some(OurStatus::Succeeded);
        let parts = SuspenseParts::of(&l);
        // Ours lowered clearing by 5,100; the channel did not: clearing must rise back.
        assert_eq!(parts, SuspenseParts { amount_minor: 5_000, fee_minor: 100 });
        assert_eq!(net(&parts.booking())[&Book::Clearing], 5_100);
    }

    #[test]
    fn every_resolution_empties_suspense_or_is_refused() {
        let resolutions = [
            Resolution::CreditCustomer { customer: "c".into() },
            Resolution::RefundPayer,
            Resolution::Adjust,
            Resolution::WriteOff,
            Resolution::Recover { loss_id: "loss_1".into() },
            Resolution::ForceMatch,
            Resolution::Superseded,
        ];
        for amount_minor in [-7_000i64, -1, 0, 1, 7_000] {
            for fee_minor in [-30i64, 0, 45] {
                let parts = SuspenseParts { amount_minor, fee_minor };
                for tx_type in TxType::ALL {
                    for resolution in &resolutions {
                        let Ok(postings) = resolution_postings(parts, tx_type, resolution) else {
                            continue;
                        };
                        let mut all = parts.booking();
                        all.extend(postings);
                        let books = net(&all);
                        assert_eq!(books.values().sum::<i128>(), 0, "balanced");
                        assert_eq!(
                            books.get(&Book::Suspense).copied().unwrap_or(0),
                            0,
                            "{resolution:?} {parts:?}"
                        );
                    }
                }
            }
        }
        let positive = SuspenseParts { amount_minor: 100, fee_minor: 0 };
        let refused = resolution_postings(positive, TxType::Debit, &Resolution::WriteOff);
        assert_eq!(refused.unwrap_err().code(), "resolution_needs_negative_break");
        let refused = resolution_postings(
            positive,
            TxType::Payout,
            &Resolution::CreditCustomer { customer: "c".into() },
        );
        assert_eq!(refused.unwrap_err().code(), "resolution_needs_debit");
        // A write-off books the loss.
        let negative = SuspenseParts { amount_minor: -100, fee_minor: 0 };
        let books =
            net(&resolution_postings(negative, TxType::Debit, &Resolution::WriteOff).unwrap());
        assert_eq!(books[&Book::Losses], 100);
    }

    #[test]
    fn severity_grows_with_amount_and_age_and_approval_with_amount() {
        let policy = Policy::default();
        let day = BusinessDay::from_days(20_000);
        let small = SuspenseParts { amount_minor: 500, fee_minor: 0 };
        let big = SuspenseParts { amount_minor: -2_000_000, fee_minor: 0 };
        assert_eq!(policy.severity(SuspenseParts::default(), day, day), Severity::Low);
        assert_eq!(policy.severity(small, day, day), Severity::Medium);
        assert_eq!(policy.severity(small, day, day.next().next()), Severity::High);
        assert_eq!(policy.severity(big, day, day), Severity::Critical);
        assert!(!policy.needs_approval(small, &Resolution::Adjust));
        assert!(policy.needs_approval(small, &Resolution::WriteOff));
        assert!(policy.needs_approval(big, &Resolution::ForceMatch));
        assert!(!policy.needs_approval(big, &Resolution::OrderCompleted));
    }

    #[test]
    fn a_break_keeps_its_id_while_it_is_the_same_difference() {
        let day = BusinessDay::from_days(20_000);
        let mut l = line(Class::AmountMismatch, TxType::Debit);
        l.amount_ours = amount(100);
        l.amount_theirs = amount(90);
        let id = break_id("bank_a", day, &l);
        assert_eq!(id, break_id("bank_a", day, &l.clone()));
        assert_ne!(id, break_id("bank_b", day, &l));
        assert_ne!(id, break_id("bank_a", day.next(), &l));
        l.amount_theirs = amount(91);
        assert_ne!(id, break_id("bank_a", day, &l));
    }
}
