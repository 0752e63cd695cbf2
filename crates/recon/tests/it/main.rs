//! Reconciliation's property: plant differences between our records and a statement at
//! random, and the classification is exactly what was planted — nothing missed, nothing else
//! flagged — whatever the order of the inputs.

use money::{Amount, AssetCode};
use proptest::prelude::*;
use recon::{reconcile, Class, DetailLine, LineStatus, OurRecord, OurStatus, Rules, TxType};

const DAY: i64 = 20_000;

#[derive(Clone, Copy, Debug)]
enum Plant {
    None,
    DropLine,
    AmountDiff(u64),
    FeeDiff,
    Duplicate,
    OursFailed,
    OursUnknown,
    BankFailed,
    DateLag,
    RefOnly,
}

fn plant() -> impl Strategy<Value = Plant> {
    prop_oneof![
        4 => Just(Plant::None),
        1 => Just(Plant::DropLine),
        1 => (1u64..500).prop_map(Plant::AmountDiff),
        1 => Just(Plant::FeeDiff),
        1 => Just(Plant::Duplicate),
        1 => Just(Plant::OursFailed),
        1 => Just(Plant::OursUnknown),
        1 => Just(Plant::BankFailed),
        1 => Just(Plant::DateLag),
        1 => Just(Plant::RefOnly),
    ]
}

fn cny() -> AssetCode {
    AssetCode::new("CNY").expect("asset")
}

fn amount(minor: u64) -> Amount {
    Amount::new(minor).expect("amount")
}

/// Our records, the statement and the classes expected, per planted difference.
fn build(
    plants: &[(Plant, u64, u8)],
    extras: usize,
) -> (Vec<OurRecord>, Vec<DetailLine>, Vec<(Class, String)>) {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut expected = Vec::new();
    let mut line_no = 2;
    let mut push_line = |theirs: &mut Vec<DetailLine>, mut line: DetailLine| {
        line.line_no = line_no;
        line_no += 1;
        theirs.push(line);
    };
    for (i, &(plant, minor, kind)) in plants.iter().enumerate() {
        let request_id = format!("rq_{i}");
        let tx_type = TxType::ALL[usize::from(kind) % 3];
        let fee = amount(minor / 100);
        let mut record = OurRecord {
            request_id: request_id.clone(),
            channel_ref: Some(format!("ch_{i}")),
            tx_type,
            amount: amount(minor),
            fee: Some(fee),
            currency: cny(),
            business_day: DAY,
            status: OurStatus::Succeeded,
            order_id: format!("ord_{i}"),
        };
        let mut line = DetailLine {
            line_no: 0,
            request_id: Some(request_id.clone()),
            channel_ref: Some(format!("ch_{i}")),
            tx_type,
            amount: amount(minor),
            fee,
            currency: cny(),
            booked_at_ms: 0,
            status: LineStatus::Succeeded,
        };
        let class = match plant {
            Plant::None => Class::Matched,
            Plant::DropLine => Class::MissingExternal,
            Plant::AmountDiff(delta) => {
                line.amount = amount(minor + delta);
                Class::AmountMismatch
            }
            Plant::FeeDiff => {
                line.fee = amount(fee.minor() + 1);
                Class::FeeMismatch
            }
            Plant::Duplicate => {
                expected.push((Class::Duplicate, request_id.clone()));
                Class::Matched
            }
            Plant::OursFailed => {
                record.status = OurStatus::Failed;
                Class::MissingInternal
            }
            Plant::OursUnknown => {
                record.status = OurStatus::Unknown;
                record.channel_ref = None;
                Class::MissingInternal
            }
            Plant::BankFailed => {
                line.status = LineStatus::Failed;
                Class::StatusMismatch
            }
            Plant::DateLag => {
                record.business_day = DAY - 1;
                Class::Matched
            }
            Plant::RefOnly => {
                line.request_id = None;
                Class::Matched
            }
        };
        expected.push((class, request_id));
        ours.push(record);
        match plant {
            Plant::DropLine => {}
            Plant::Duplicate => {
                push_line(&mut theirs, line.clone());
                push_line(&mut theirs, line);
            }
            _ => push_line(&mut theirs, line),
        }
    }
    // Successes the channel has that we never sent.
    for n in 0..extras {
        let id = format!("stranger_{n}");
        push_line(
            &mut theirs,
            DetailLine {
                line_no: 0,
                request_id: Some(id.clone()),
                channel_ref: Some(format!("chx_{n}")),
                tx_type: TxType::Debit,
                amount: amount(999_999 + n as u64),
                fee: Amount::ZERO,
                currency: cny(),
                booked_at_ms: 0,
                status: LineStatus::Succeeded,
            },
        );
        expected.push((Class::MissingInternal, id));
    }
    (ours, theirs, expected)
}

fn rules() -> Rules {
    Rules { business_day: DAY, date_window_days: 1, amount_tolerance_minor: 0 }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_classification_is_exactly_what_was_planted(
        plants in prop::collection::vec((plant(), 100u64..1_000_000, 0u8..3), 0..80),
        extras in 0usize..5,
        rotate in 0usize..80,
    ) {
        let (mut ours, theirs, mut expected) = build(&plants, extras);
        let result = reconcile(&ours, &theirs, rules());
        let mut actual: Vec<(Class, String)> = result
            .breaks()
            .map(|l| (l.class, l.request_id.clone().unwrap_or_default()))
            .collect();
        actual.sort();
        expected.sort();
        let planted_breaks: Vec<(Class, String)> =
            expected.iter().filter(|(c, _)| c.is_break()).cloned().collect();
        prop_assert_eq!(&actual, &planted_breaks);
        // Every planted match is counted as one, and only a match that needed a rule (here
        // the date lag) is listed.
        let planted_matches = expected.len() - planted_breaks.len();
        prop_assert_eq!(result.counts[&Class::Matched], planted_matches as u64);
        let lagged: Vec<String> = plants
            .iter()
            .enumerate()
            .filter(|(_, (plant, _, _))| matches!(plant, Plant::DateLag))
            .map(|(i, _)| format!("rq_{i}"))
            .collect();
        let listed_matches: Vec<String> = result
            .lines
            .iter()
            .filter(|l| l.class == Class::Matched)
            .map(|l| l.request_id.clone().unwrap_or_default())
            .collect();
        prop_assert_eq!(listed_matches, lagged);
        // Deterministic: the order of our records does not change the result.
        if !ours.is_empty() {
            let by = rotate % ours.len();
            ours.rotate_left(by);
        }
        let again = reconcile(&ours, &theirs, rules());
        prop_assert_eq!(again.result_hash, result.result_hash);
        prop_assert_eq!(again.lines, result.lines);
    }
}

#[test]
fn a_line_naming_nothing_we_know_matches_on_amount_within_the_window() {
    let record = |id: &str, minor: u64, day: i64| OurRecord {
        request_id: id.into(),
        channel_ref: None,
        tx_type: TxType::Payout,
        amount: amount(minor),
        fee: None,
        currency: cny(),
        business_day: day,
        status: OurStatus::Succeeded,
        order_id: format!("ord_{id}"),
    };
    let line = |no: u64, reference: &str, minor: u64| DetailLine {
        line_no: no,
        request_id: None,
        channel_ref: Some(reference.into()),
        tx_type: TxType::Payout,
        amount: amount(minor),
        fee: Amount::ZERO,
        currency: cny(),
        booked_at_ms: 0,
        status: LineStatus::Succeeded,
    };
    let ours = [record("a", 500, DAY - 1), record("b", 500, DAY), record("c", 700, DAY - 5)];
    let theirs = [line(2, "x1", 500), line(3, "x2", 500), line(4, "x3", 700)];
    let result = reconcile(&ours, &theirs, rules());
    let classes: Vec<_> =
        result.lines.iter().map(|l| (l.class, l.request_id.clone(), l.date_lag, l.rule)).collect();
    assert_eq!(
        classes,
        [
            (Class::Matched, Some("a".into()), true, recon::Rule::Amount),
            (Class::Matched, Some("b".into()), false, recon::Rule::Amount),
            // Outside the window: not ours to match on this day.
            (Class::MissingInternal, None, false, recon::Rule::Unpaired),
        ]
    );
    // Totals count the day's successes on each side.
    let totals = &result.totals[0];
    assert_eq!((totals.count_ours, totals.count_theirs), (1, 3));
    assert!(!totals.agrees());
}

#[test]
fn a_difference_within_the_tolerance_matches_and_says_so() {
    let ours = [OurRecord {
        request_id: "a".into(),
        channel_ref: None,
        tx_type: TxType::Debit,
        amount: amount(1_000),
        fee: None,
        currency: cny(),
        business_day: DAY,
        status: OurStatus::Succeeded,
        order_id: "o".into(),
    }];
    let theirs = [DetailLine {
        line_no: 2,
        request_id: Some("a".into()),
        channel_ref: None,
        tx_type: TxType::Debit,
        amount: amount(1_001),
        fee: Amount::ZERO,
        currency: cny(),
        booked_at_ms: 0,
        status: LineStatus::Succeeded,
    }];
    let tolerant = Rules { amount_tolerance_minor: 1, ..rules() };
    let result = reconcile(&ours, &theirs, tolerant);
    assert_eq!(result.lines[0].class, Class::Matched);
    assert!(result.lines[0].within_tolerance);
    assert_eq!(result.lines[0].difference_minor(), 1);
    assert_eq!(reconcile(&ours, &theirs, rules()).lines[0].class, Class::AmountMismatch);
}
