//! Matching a channel's statement of one business day against our records.
//!
//! 1. **Totals first** (总分对账): count and sum per type and currency, ours against theirs.
//!    Equal totals do not prove the details equal (two errors can cancel), so the details are
//!    always matched too; the totals are what an operator reads first.
//! 2. **Detail matching** by a hash join on a ladder of keys: our request id (the id we sent
//!    the channel, so the strongest), then the channel's reference, then — for a line that
//!    carries neither we know — type, currency and amount among our records still unmatched,
//!    booked within the date window, oldest first.
//! 3. **Rules** on each matched pair: exact; within the amount tolerance; booked on another
//!    day inside the window (a date lag across the cut-over).
//!
//! Every statement line, and every record of ours that the statement should have had, ends
//! in exactly one [`Class`]; the result lists all but the plain matches, which it counts. The result is deterministic: the same inputs and [`RULE_VERSION`]
//! give the same lines in the same order and the same [`Reconciliation::result_hash`].

use std::collections::{BTreeMap, HashMap, VecDeque};

use money::{Amount, AssetCode};
use sha2::{Digest, Sha256};

use crate::statement::{DetailLine, LineStatus, TxType};

/// Bumped whenever a rule changes what a line is classified as: a stored run names the
/// version it ran under, so a re-run under new rules is told apart from a changed input.
pub const RULE_VERSION: u32 = 1;

/// What we recorded of one channel request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OurRecord {
    /// The id we sent the channel: unique per channel.
    pub request_id: String,
    /// The channel's reference, if its answer gave one.
    pub channel_ref: Option<String>,
    pub tx_type: TxType,
    pub amount: Amount,
    /// The fee we expect the channel to charge; `None` when we do not know it.
    pub fee: Option<Amount>,
    pub currency: AssetCode,
    /// Business day (days since the epoch in the configured time zone) we booked it on.
    pub business_day: i64,
    pub status: OurStatus,
    /// The order it belongs to, for the operator.
    pub order_id: String,
}

/// What our records say became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OurStatus {
    Succeeded,
    Failed,
    /// Sent, outcome not known yet (status inquiry still asking).
    Unknown,
}

impl OurStatus {
    pub const ALL: [OurStatus; 3] = [OurStatus::Succeeded, OurStatus::Failed, OurStatus::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            OurStatus::Succeeded => "succeeded",
            OurStatus::Failed => "failed",
            OurStatus::Unknown => "unknown",
        }
    }

    pub fn parse(raw: &str) -> Option<OurStatus> {
        OurStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The parameters of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The business day reconciled.
    pub business_day: i64,
    /// A record booked this many days before or after still matches (a date lag).
    pub date_window_days: i64,
    /// Amounts that differ by at most this much match (`tolerance`); zero for exact only.
    pub amount_tolerance_minor: u64,
}

/// Where a line ended.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Matched,
    /// We record a success the channel does not.
    MissingExternal,
    /// The channel records a success we do not have (failed, unknown or absent on our side).
    MissingInternal,
    AmountMismatch,
    FeeMismatch,
    /// The channel reports a failure of what we record as succeeded.
    StatusMismatch,
    /// A statement line repeating another's request id or reference.
    Duplicate,
}

impl Class {
    pub const ALL: [Class; 7] = [
        Class::Matched,
        Class::MissingExternal,
        Class::MissingInternal,
        Class::AmountMismatch,
        Class::FeeMismatch,
        Class::StatusMismatch,
        Class::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Matched => "matched",
            Class::MissingExternal => "missing_external",
            Class::MissingInternal => "missing_internal",
            Class::AmountMismatch => "amount_mismatch",
            Class::FeeMismatch => "fee_mismatch",
            Class::StatusMismatch => "status_mismatch",
            Class::Duplicate => "duplicate",
        }
    }

    /// Whether an operator must look at it.
    pub fn is_break(self) -> bool {
        self != Class::Matched
    }
}

/// Which rung of the ladder and which rule matched a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Matched on our request id.
    RequestId,
    /// Matched on the channel's reference.
    ChannelRef,
    /// Matched on type, currency and amount within the date window.
    Amount,
    /// No counterpart (a missing line, a duplicate).
    Unpaired,
}

/// One classified line: a statement line, one of our records, or both.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Classified {
    pub class: Class,
    pub rule: Rule,
    /// The amount differed but within the tolerance.
    pub within_tolerance: bool,
    /// Booked on another business day than the statement's (inside the window).
    pub date_lag: bool,
    /// The statement's line number, if a statement line is involved.
    pub statement_line: Option<u64>,
    /// Our request id, if one of our records is involved.
    pub request_id: Option<String>,
    pub order_id: Option<String>,
    pub tx_type: TxType,
    pub currency: AssetCode,
    pub amount_ours: Option<Amount>,
    pub amount_theirs: Option<Amount>,
    pub fee_ours: Option<Amount>,
    pub fee_theirs: Option<Amount>,
    /// What our record says, if one is involved.
    pub status_ours: Option<OurStatus>,
    /// What the statement line says, if one is involved.
    pub status_theirs: Option<LineStatus>,
}

impl Classified {
    /// Theirs minus ours, in minor units (what the break is worth, by side).
    pub fn difference_minor(&self) -> i128 {
        let theirs = self.amount_theirs.map_or(0, |a| i128::from(a.minor()));
        let ours = self.amount_ours.map_or(0, |a| i128::from(a.minor()));
        theirs - ours
    }
}

/// Totals of one type and currency.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TotalsRow {
    pub tx_type: TxType,
    pub currency: AssetCode,
    pub count_ours: u64,
    pub sum_ours_minor: u128,
    pub count_theirs: u64,
    pub sum_theirs_minor: u128,
}

impl TotalsRow {
    pub fn agrees(&self) -> bool {
        self.count_ours == self.count_theirs && self.sum_ours_minor == self.sum_theirs_minor
    }
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    pub rule_version: u32,
    pub totals: Vec<TotalsRow>,
    /// The lines an operator may read, in order: every break, and every match that needed
    /// a rule (a tolerance, a date lag, the amount rung, a failure we never saw). Plain
    /// matches on a key — nearly every line — are only counted and hashed: a million-line
    /// statement does not become a million records.
    pub lines: Vec<Classified>,
    /// Every line, by class.
    pub counts: BTreeMap<Class, u64>,
    /// SHA-256 over the rule version and every classified line in order, plain matches
    /// included.
    pub result_hash: [u8; 32],
}

impl Reconciliation {
    pub fn breaks(&self) -> impl Iterator<Item = &Classified> {
        self.lines.iter().filter(|line| line.class.is_break())
    }
}

/// Hash maps keyed by ids the platform and the channel wrote (no one else chooses them):
/// foldhash, several times faster than the default SipHash over a million keys, which
/// guards against keys an attacker picks to collide.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Reconciles `theirs` (the statement's detail lines of `rules.business_day`) against `ours`
/// (our records of the same channel, booked within the date window of that day).
pub fn reconcile<'a>(
    ours: &'a [OurRecord],
    theirs: &'a [DetailLine],
    rules: Rules,
) -> Reconciliation {
    let in_window = |day: i64| (day - rules.business_day).abs() <= rules.date_window_days;
    let ours: Vec<&OurRecord> = ours.iter().filter(|r| in_window(r.business_day)).collect();
    let mut by_request: FastMap<&str, usize> =
        FastMap::with_capacity_and_hasher(ours.len(), Default::default());
    let mut by_ref: FastMap<&str, usize> =
        FastMap::with_capacity_and_hasher(ours.len(), Default::default());
    for (i, record) in ours.iter().enumerate() {
        by_request.insert(record.request_id.as_str(), i);
        if let Some(reference) = record.channel_ref.as_deref() {
            by_ref.insert(reference, i);
        }
    }
    // The last rung: unmatched records by (type, currency, amount), oldest booking first.
    // Built the first time a line needs it: most statements name every line, and sorting a
    // million records for nothing is most of a run's matching time.
    let mut by_amount: Option<FastMap<(TxType, AssetCode, Amount), VecDeque<usize>>> = None;
    let amount_rung = |ours: &[&OurRecord]| {
        let mut rung: FastMap<(TxType, AssetCode, Amount), VecDeque<usize>> = FastMap::default();
        let mut order: Vec<usize> = (0..ours.len()).collect();
        order.sort_by(|&a, &b| {
            (ours[a].business_day, &ours[a].request_id)
                .cmp(&(ours[b].business_day, &ours[b].request_id))
        });
        for i in order {
            let r = ours[i];
            rung.entry((r.tx_type, r.currency, r.amount)).or_default().push_back(i);
        }
        rung
    };

    let mut paired = vec![false; ours.len()];
    // Whether a statement line already named a key, to find duplicates. A key we know is
    // marked beside our record (found by the lookup the line needs anyway); only keys we do
    // not know, which are few, go to a map of their own.
    let mut request_named = vec![false; ours.len()];
    let mut ref_named = vec![false; ours.len()];
    let mut unknown_named: FastMap<(bool, &str), ()> = FastMap::default();
    let mut tally = Tally::new();
    let mut sorted_theirs: Vec<&DetailLine> = theirs.iter().collect();
    sorted_theirs.sort_by_key(|line| line.line_no);
    for line in sorted_theirs {
        let request_id = line.request_id.as_deref();
        let channel_ref = line.channel_ref.as_deref();
        let by_id = request_id.and_then(|id| by_request.get(id).copied());
        let by_reference = channel_ref.and_then(|c| by_ref.get(c).copied());
        // Marks the key named and says whether a line before had named it.
        let mut named_before =
            |known: Option<usize>, marks: &mut [bool], key: (bool, &'a str)| match known {
                Some(i) => std::mem::replace(&mut marks[i], true),
                None => unknown_named.insert(key, ()).is_some(),
            };
        let mut repeated = false;
        if let Some(id) = request_id {
            repeated |= named_before(by_id, &mut request_named, (false, id));
        }
        if let Some(reference) = channel_ref {
            repeated |= named_before(by_reference, &mut ref_named, (true, reference));
        }
        if repeated {
            tally.push(unpaired(Class::Duplicate, line));
            continue;
        }
        let found = by_id
            .map(|i| (i, Rule::RequestId))
            .or_else(|| by_reference.map(|i| (i, Rule::ChannelRef)))
            .filter(|&(i, _)| !paired[i])
            .or_else(|| {
                // Only a line that names nothing we know falls to the amount rung.
                if by_id.is_some() || by_reference.is_some() {
                    return None;
                }
                let rung = by_amount.get_or_insert_with(|| amount_rung(&ours));
                let queue = rung.get_mut(&(line.tx_type, line.currency, line.amount))?;
                while let Some(i) = queue.pop_front() {
                    if !paired[i] && ours[i].channel_ref.is_none() {
                        return Some((i, Rule::Amount));
                    }
                }
                None
            });
        match found {
            None => {
                let class = match line.status {
                    LineStatus::Succeeded => Class::MissingInternal,
                    // A failure we have no record of moved no money on either side.
                    LineStatus::Failed => Class::Matched,
                };
                tally.push(unpaired(class, line));
            }
            Some((i, rule)) => {
                paired[i] = true;
                tally.push(pair(ours[i], line, rule, rules));
            }
        }
    }
    // Our successes of the day that the statement does not have.
    let mut missing: Vec<&OurRecord> = ours
        .iter()
        .enumerate()
        .filter(|&(i, r)| {
            !paired[i] && r.status == OurStatus::Succeeded && r.business_day == rules.business_day
        })
        .map(|(_, r)| *r)
        .collect();
    missing.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    for record in missing {
        tally.push(LineView {
            class: Class::MissingExternal,
            rule: Rule::Unpaired,
            within_tolerance: false,
            date_lag: false,
            statement_line: None,
            request_id: Some(&record.request_id),
            order_id: Some(&record.order_id),
            tx_type: record.tx_type,
            currency: record.currency,
            amount_ours: Some(record.amount),
            amount_theirs: None,
            fee_ours: record.fee,
            fee_theirs: None,
            status_ours: Some(record.status),
            status_theirs: None,
        });
    }
    let totals = totals(&ours, theirs, rules.business_day);
    let Tally { hasher, counts, lines } = tally;
    Reconciliation {
        rule_version: RULE_VERSION,
        totals,
        lines,
        counts,
        result_hash: hasher.finalize().into(),
    }
}

/// A classified line as matching sees it, borrowing from the inputs: only the lines a run
/// keeps are copied into a [`Classified`].
struct LineView<'a> {
    class: Class,
    rule: Rule,
    within_tolerance: bool,
    date_lag: bool,
    statement_line: Option<u64>,
    request_id: Option<&'a str>,
    order_id: Option<&'a str>,
    tx_type: TxType,
    currency: AssetCode,
    amount_ours: Option<Amount>,
    amount_theirs: Option<Amount>,
    fee_ours: Option<Amount>,
    fee_theirs: Option<Amount>,
    status_ours: Option<OurStatus>,
    status_theirs: Option<LineStatus>,
}

impl LineView<'_> {
    /// A plain match on a key (our request id or the channel's reference), on the day, to
    /// the minor unit: nearly every line of a statement, and nothing to read.
    fn is_plain_match(&self) -> bool {
        self.class == Class::Matched
            && matches!(self.rule, Rule::RequestId | Rule::ChannelRef)
            && !self.within_tolerance
            && !self.date_lag
    }

    fn owned(&self) -> Classified {
        Classified {
            class: self.class,
            rule: self.rule,
            within_tolerance: self.within_tolerance,
            date_lag: self.date_lag,
            statement_line: self.statement_line,
            request_id: self.request_id.map(str::to_owned),
            order_id: self.order_id.map(str::to_owned),
            tx_type: self.tx_type,
            currency: self.currency,
            amount_ours: self.amount_ours,
            amount_theirs: self.amount_theirs,
            fee_ours: self.fee_ours,
            fee_theirs: self.fee_theirs,
            status_ours: self.status_ours,
            status_theirs: self.status_theirs,
        }
    }
}

/// Every line, in order: counted by class and hashed; kept unless it is a plain match.
struct Tally {
    hasher: Sha256,
    counts: BTreeMap<Class, u64>,
    lines: Vec<Classified>,
}

impl Tally {
    fn new() -> Tally {
        let mut hasher = Sha256::new();
        hasher.update(b"qianbao.recon.result\0");
        hasher.update(RULE_VERSION.to_be_bytes());
        Tally { hasher, counts: Class::ALL.iter().map(|&c| (c, 0)).collect(), lines: Vec::new() }
    }

    fn push(&mut self, line: LineView<'_>) {
        hash_line(&mut self.hasher, &line);
        *self.counts.entry(line.class).or_default() += 1;
        if !line.is_plain_match() {
            self.lines.push(line.owned());
        }
    }
}

fn unpaired(class: Class, line: &DetailLine) -> LineView<'_> {
    LineView {
        class,
        rule: Rule::Unpaired,
        within_tolerance: false,
        date_lag: false,
        statement_line: Some(line.line_no),
        request_id: line.request_id.as_deref(),
        order_id: None,
        tx_type: line.tx_type,
        currency: line.currency,
        amount_ours: None,
        amount_theirs: Some(line.amount),
        fee_ours: None,
        fee_theirs: Some(line.fee),
        status_ours: None,
        status_theirs: Some(line.status),
    }
}

fn pair<'a>(ours: &'a OurRecord, theirs: &'a DetailLine, rule: Rule, rules: Rules) -> LineView<'a> {
    let difference = ours.amount.minor().abs_diff(theirs.amount.minor());
    let class = match (ours.status, theirs.status) {
        (OurStatus::Succeeded, LineStatus::Succeeded) => {
            if difference > rules.amount_tolerance_minor || ours.tx_type != theirs.tx_type {
                Class::AmountMismatch
            } else if ours.fee.is_some_and(|fee| fee != theirs.fee) {
                Class::FeeMismatch
            } else {
                Class::Matched
            }
        }
        (OurStatus::Failed | OurStatus::Unknown, LineStatus::Succeeded) => Class::MissingInternal,
        (OurStatus::Succeeded, LineStatus::Failed) => Class::StatusMismatch,
        (OurStatus::Failed | OurStatus::Unknown, LineStatus::Failed) => Class::Matched,
    };
    LineView {
        class,
        rule,
        within_tolerance: class == Class::Matched && difference > 0,
        date_lag: ours.business_day != rules.business_day,
        statement_line: Some(theirs.line_no),
        request_id: Some(&ours.request_id),
        order_id: Some(&ours.order_id),
        tx_type: theirs.tx_type,
        currency: theirs.currency,
        amount_ours: Some(ours.amount),
        amount_theirs: Some(theirs.amount),
        fee_ours: ours.fee,
        fee_theirs: Some(theirs.fee),
        status_ours: Some(ours.status),
        status_theirs: Some(theirs.status),
    }
}

fn totals(ours: &[&OurRecord], theirs: &[DetailLine], day: i64) -> Vec<TotalsRow> {
    let mut rows: BTreeMap<(TxType, AssetCode), TotalsRow> = BTreeMap::new();
    for record in ours.iter().filter(|r| r.status == OurStatus::Succeeded && r.business_day == day)
    {
        let entry = rows
            .entry((record.tx_type, record.currency))
            .or_insert_with(|| empty_totals(record.tx_type, record.currency));
        entry.count_ours += 1;
        entry.sum_ours_minor += u128::from(record.amount.minor());
    }
    for line in theirs.iter().filter(|l| l.status == LineStatus::Succeeded) {
        let entry = rows
            .entry((line.tx_type, line.currency))
            .or_insert_with(|| empty_totals(line.tx_type, line.currency));
        entry.count_theirs += 1;
        entry.sum_theirs_minor += u128::from(line.amount.minor());
    }
    rows.into_values().collect()
}

fn empty_totals(tx_type: TxType, currency: AssetCode) -> TotalsRow {
    TotalsRow {
        tx_type,
        currency,
        count_ours: 0,
        sum_ours_minor: 0,
        count_theirs: 0,
        sum_theirs_minor: 0,
    }
}

/// A canonical encoding of one line, field by field and length-prefixed, so that no two
/// results encode alike.
fn hash_line(hasher: &mut Sha256, line: &LineView<'_>) {
    let text = |hasher: &mut Sha256, value: Option<&str>| match value {
        None => hasher.update([0]),
        Some(value) => {
            hasher.update([1]);
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value.as_bytes());
        }
    };
    let amount = |hasher: &mut Sha256, value: Option<Amount>| match value {
        None => hasher.update([0]),
        Some(value) => {
            hasher.update([1]);
            hasher.update(value.minor().to_be_bytes());
        }
    };
    text(hasher, Some(line.class.as_str()));
    hasher.update([line.rule as u8, u8::from(line.within_tolerance), u8::from(line.date_lag)]);
    hasher.update(line.statement_line.unwrap_or(0).to_be_bytes());
    text(hasher, line.request_id);
    text(hasher, line.order_id);
    text(hasher, Some(line.tx_type.as_str()));
    text(hasher, Some(line.currency.as_str()));
    amount(hasher, line.amount_ours);
    amount(hasher, line.amount_theirs);
    amount(hasher, line.fee_ours);
    amount(hasher, line.fee_theirs);
}
