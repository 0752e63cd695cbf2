//! The booking products' rules: fees, shares, rates and each state machine.

use super::*;

fn amount(minor: u64) -> Amount {
    Amount::new(minor).unwrap()
}

fn payment(amount_minor: u64, fee_bps: u32) -> Payment {
    Payment::new(
        OrderId::new("pay_1").unwrap(),
        "alice".into(),
        "shop".into(),
        AssetCode::new("CNY").unwrap(),
        amount(amount_minor),
        fee_bps,
    )
}

#[test]
fn a_t_plus_n_cutoff_is_the_start_of_a_utc_day() {
    let day_3_noon = 3 * DAY_MS + DAY_MS / 2;
    assert_eq!(settlement_cutoff_ms(day_3_noon, 0), day_3_noon, "T+0: everything");
    assert_eq!(settlement_cutoff_ms(day_3_noon, 1), 3 * DAY_MS, "T+1: up to yesterday");
    assert_eq!(settlement_cutoff_ms(day_3_noon, 2), 2 * DAY_MS);
    assert_eq!(settlement_cutoff_ms(DAY_MS / 2, 9), 0);
}

#[test]
fn fees_round_half_up() {
    assert_eq!(fee_for(amount(10_000), 60), amount(60));
    assert_eq!(fee_for(amount(25), 200), amount(1), "0.5 rounds up");
    assert_eq!(fee_for(amount(24), 200), amount(0), "0.48 rounds down");
    assert_eq!(fee_for(amount(1), 10_000), amount(1));
}

#[test]
fn refund_fee_shares_sum_to_the_fee_and_never_past_the_amount() {
    let paid = payment(1_001, 60); // fee 6
    assert_eq!(paid.fee, amount(6));
    let (mut refunded, mut returned) = (Amount::ZERO, Amount::ZERO);
    for part in [333, 333, 335] {
        let share = paid.refund_fee_share(amount(part), refunded, returned).unwrap();
        refunded = refunded.checked_add(amount(part)).unwrap();
        returned = returned.checked_add(share).unwrap();
    }
    assert_eq!((refunded, returned), (paid.amount, paid.fee));
    assert_eq!(paid.refund_fee_share(amount(1), refunded, returned), None);
    assert_eq!(paid.refund_fee_share(amount(1_002), Amount::ZERO, Amount::ZERO), None);
}

#[test]
fn a_points_and_cash_payment_refunds_along_its_legs_to_the_last_point() {
    let leg = PointsLeg {
        asset: AssetCode::new("POINTS").unwrap(),
        points: amount(333),
        value_minor_per_point: 1,
    };
    let paid = payment(1_000, 0).with_points(leg).unwrap();
    assert_eq!(paid.cash(), amount(667));
    assert_eq!(paid.group().len(), 3, "cash, points, points' value");
    let (mut refunded, mut points_back) = (Amount::ZERO, Amount::ZERO);
    for part in [500, 499, 1] {
        let shares = paid.refund_shares(amount(part), refunded, Amount::ZERO, points_back).unwrap();
        assert!(shares.points_value_returned <= amount(part));
        refunded = refunded.checked_add(amount(part)).unwrap();
        points_back = points_back.checked_add(shares.points_returned).unwrap();
    }
    assert_eq!(points_back, amount(333), "every point comes back");
    // Points never turn into cash: a price paid wholly in points refunds wholly in
    // points, and a split that whole points cannot make is refused.
    let dear = PointsLeg { points: amount(1), value_minor_per_point: 100, ..leg };
    let all_points = payment(100, 0).with_points(dear).unwrap();
    assert_eq!(
        all_points.refund_shares(amount(50), Amount::ZERO, Amount::ZERO, Amount::ZERO),
        None
    );
    let whole =
        all_points.refund_shares(amount(100), Amount::ZERO, Amount::ZERO, Amount::ZERO).unwrap();
    assert_eq!(whole.points_returned, amount(1));
    let small = payment(3, 0).with_points(PointsLeg { points: amount(1), ..leg }).unwrap();
    let (mut refunded, mut points_back, mut cash_back) = (Amount::ZERO, Amount::ZERO, 0);
    for _ in 0..3 {
        let shares = small.refund_shares(amount(1), refunded, Amount::ZERO, points_back).unwrap();
        cash_back += 1 - shares.points_value_returned.minor();
        refunded = refunded.checked_add(amount(1)).unwrap();
        points_back = points_back.checked_add(shares.points_returned).unwrap();
    }
    assert_eq!((points_back, cash_back), (amount(1), 2), "each leg back exactly once");
    let too_dear = PointsLeg { value_minor_per_point: 10, ..leg };
    assert!(payment(1_000, 0).with_points(too_dear).is_none(), "worth more than the price");
}

#[test]
fn rates_parse_exactly_and_convert_rounding_up() {
    let rate = Rate::parse("7.1234").unwrap();
    assert_eq!(rate, Rate { units: 71_234, decimals: 4 });
    assert_eq!(rate.to_string(), "7.1234");
    assert_eq!(rate.convert_up(amount(1_000)), Some(amount(7_124)), "7123.4 rounds up");
    assert_eq!(rate.convert_up(amount(10_000)), Some(amount(71_234)));
    for bad in ["", "0", "0.000", "-1", "1e3", "7.", ".5", "1.12345678901", "NaN"] {
        assert_eq!(Rate::parse(bad), None, "{bad:?}");
    }
    assert_eq!(Rate::parse("0.048").unwrap().convert_up(amount(1)), Some(amount(1)));
}

#[test]
fn a_cross_currency_refund_returns_exactly_what_was_paid() {
    let usd = AssetCode::new("USD").unwrap();
    let paid = Payment::new(
        OrderId::new("pay_fx").unwrap(),
        "alice".into(),
        "shop".into(),
        usd,
        amount(1_001),
        0,
    )
    .with_fx(AssetCode::new("CNY").unwrap(), Rate::parse("7.1234").unwrap())
    .unwrap();
    let fx = paid.fx.unwrap();
    assert_eq!(fx.from_amount, amount(7_131), "7130.52… up");
    let (mut refunded, mut back) = (Amount::ZERO, Amount::ZERO);
    for part in [333, 333, 335] {
        let shares = paid.refund_shares(amount(part), refunded, Amount::ZERO, back).unwrap();
        refunded = refunded.checked_add(amount(part)).unwrap();
        back = back.checked_add(shares.fx_returned).unwrap();
    }
    assert_eq!(back, fx.from_amount);
}

#[test]
fn an_authorization_captures_part_and_releases_the_rest_or_expires() {
    let authorized = payment(1_000, 100).with_authorization(60, 100).unwrap();
    let holding = authorized.apply(&Event::Submit).unwrap();
    assert_eq!(holding.state.state, PaymentState::Authorizing);
    let held = holding.state.apply_at(&Event::LedgerPosted, 5_000).unwrap().state;
    assert_eq!(held.state, PaymentState::Authorized { until_ms: 65_000 });
    assert!(held.apply(&Event::Capture { amount: amount(1_001) }).is_err(), "past the hold");
    let capturing = held.apply(&Event::Capture { amount: amount(600) }).unwrap();
    assert_eq!(capturing.state.resume(), capturing.effects, "a crash captures the same");
    let captured = capturing.state.apply(&Event::LedgerPosted).unwrap().state;
    assert_eq!(
        (captured.state.clone(), captured.amount, captured.fee),
        (PaymentState::Succeeded, amount(600), amount(6))
    );
    let late = held.apply(&Event::Capture { amount: amount(600) }).unwrap().state;
    let gone = late.apply(&Event::LedgerRejected { code: "pending_expired".into() }).unwrap();
    assert_eq!(gone.state.state, PaymentState::Expired);
    let expiring = held.apply(&Event::Deadline).unwrap().state;
    assert_eq!(expiring.apply(&Event::LedgerPosted).unwrap().state.state, PaymentState::Expired);
    let canceling = held.apply(&Event::Cancel).unwrap().state;
    assert_eq!(canceling.apply(&Event::LedgerPosted).unwrap().state.state, PaymentState::Canceled);
}

#[test]
fn booking_is_idempotent_and_final() {
    let created = payment(500, 100);
    let posting = created.apply(&Event::Submit).unwrap();
    assert_eq!(posting.state.state, PaymentState::Posting);
    assert_eq!(posting.effects, vec![Effect::Ledger(created.group())]);
    assert_eq!(posting.state.resume(), posting.effects, "a crash re-books the same group");
    let again = posting.state.apply(&Event::Submit).unwrap();
    assert!(again.effects.is_empty());
    let done = posting.state.apply(&Event::LedgerPosted).unwrap().state;
    assert_eq!(done.state, PaymentState::Succeeded);
    assert!(done.apply(&Event::LedgerPosted).unwrap().effects.is_empty());
    assert!(done.apply(&Event::LedgerRejected { code: "x".into() }).is_err());
    assert!(done.resume().is_empty());
}

#[test]
#[should_panic(expected = "over 100%")]
fn a_fee_rate_over_the_whole_amount_is_a_broken_invariant() {
    let _ = fee_for(amount(100), 10_001);
}
