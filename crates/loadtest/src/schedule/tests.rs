#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::scenario::Scenario;
use crate::stats::ErrorCode;

fn parties(n_customers: u32, n_merchants: u32, hot_permille: u32, zipf_exponent: &str) -> Parties {
    let text = format!(
        r#"
        name = "parties"
        [slo]
        p99_ms = 100
        [steps]
        duration_s = 1
        rates_per_s = [1]
        [mix]
        topup = 1
        [parties]
        n_customers = {n_customers}
        n_merchants = {n_merchants}
        hot_merchant_share_permille = {hot_permille}
        zipf_exponent = "{zipf_exponent}"
        "#
    );
    Scenario::from_toml(&text).unwrap().parties()
}

fn is_sorted_within(arrivals: &[Arrival], step: Step) -> bool {
    let duration_us = u64::from(step.duration_s()) * MICROS_PER_S;
    arrivals.windows(2).all(|pair| pair[0] <= pair[1])
        && arrivals.iter().all(|arrival| arrival.intended_us() < duration_us)
}

/// How often each picked value came up, in permille of `n_draws`.
fn frequencies_permille<T: Ord>(n_draws: u64, mut draw: impl FnMut() -> T) -> BTreeMap<T, u64> {
    let mut counts = BTreeMap::new();
    for _ in 0..n_draws {
        *counts.entry(draw()).or_insert(0) += 1;
    }
    counts.into_iter().map(|(value, count)| (value, count * 1000 / n_draws)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn even_step_has_rate_times_duration_sorted_arrivals(rate_per_s in 1u32..5_000, duration_s in 1u32..20) {
        let step = Step::new(rate_per_s, duration_s).unwrap();
        let arrivals = arrivals_even(step);
        prop_assert_eq!(arrivals.len() as u64, u64::from(rate_per_s) * u64::from(duration_s));
        prop_assert!(is_sorted_within(&arrivals, step));
        prop_assert_eq!(arrivals.first().map(|arrival| arrival.intended_us()), Some(0));
    }

    #[test]
    fn poisson_step_is_sorted_within_and_near_its_rate(
        rate_per_s in 100u32..2_000,
        duration_s in 1u32..10,
        seed in any::<u64>(),
    ) {
        let step = Step::new(rate_per_s, duration_s).unwrap();
        let arrivals = arrivals_poisson(step, &mut seeded_rng(seed));
        prop_assert!(is_sorted_within(&arrivals, step));
        // The count is Poisson with mean n: 6 standard deviations (6 √n) is never exceeded.
        let n_expected = u64::from(rate_per_s) * u64::from(duration_s);
        let n_arrivals = arrivals.len() as u64;
        let deviation = n_arrivals.abs_diff(n_expected);
        prop_assert!(deviation * deviation <= 36 * n_expected, "{} arrivals, {} expected", n_arrivals, n_expected);
    }

    #[test]
    fn operation_frequencies_follow_the_weights(
        weights in proptest::collection::vec(0u32..100, Operation::ALL.len()),
    ) {
        prop_assume!(weights.iter().any(|&weight| weight > 0));
        let weights: BTreeMap<Operation, u32> = Operation::ALL.into_iter().zip(weights).collect();
        let mix = OperationMix::new(weights.clone()).unwrap();
        let picker = OperationPicker::new(&mix);
        let mut rng = seeded_rng(16);
        let frequencies = frequencies_permille(50_000, || picker.pick(&mut rng));
        for (operation, weight) in weights {
            let expected_permille = u64::from(weight) * 1000 / mix.weight_total();
            let actual_permille = frequencies.get(&operation).copied().unwrap_or(0);
            // 50 000 draws: one standard deviation is at most 2.3‰; 15‰ is over 6 of them.
            prop_assert!(
                actual_permille.abs_diff(expected_permille) <= 15,
                "{}: {}‰, expected {}‰", operation, actual_permille, expected_permille
            );
            if weight == 0 {
                prop_assert_eq!(actual_permille, 0);
            }
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_schedule() {
    let step = Step::new(500, 2).unwrap();
    let first = arrivals(step, Arrivals::Poisson, &mut seeded_rng(3));
    assert_eq!(first, arrivals(step, Arrivals::Poisson, &mut seeded_rng(3)));
    assert_ne!(first, arrivals(step, Arrivals::Poisson, &mut seeded_rng(4)));
    assert_eq!(arrivals(step, Arrivals::Even, &mut seeded_rng(3)), arrivals_even(step));
}

#[test]
fn even_arrivals_are_spaced_by_the_rate() {
    let intended_us: Vec<u64> =
        arrivals_even(Step::new(3, 1).unwrap()).iter().map(|a| a.intended_us()).collect();
    assert_eq!(intended_us, [0, 333_333, 666_666]);
}

#[test]
fn latency_runs_from_the_intended_instant() {
    // Intended at 1 s; the sender was stuck until 1.3 s and the answer came at 1.305 s.
    let completion = Completion::new(Arrival::at_us(1_000_000), 1_305_000, Outcome::Ok);
    assert_eq!(completion.latency_us(), 305_000);
    let early = Completion::new(Arrival::at_us(10), 5, Outcome::Failed(ErrorCode::TIMEOUT));
    assert_eq!(early.latency_us(), 0);
}

#[test]
fn zipf_customers_are_skewed_and_in_range() {
    let picker = CustomerPicker::new(parties(1_000, 1, 0, "1.1"));
    let mut rng = seeded_rng(5);
    let frequencies = frequencies_permille(100_000, || picker.pick(&mut rng));
    assert!(frequencies.keys().all(|&customer| customer < 1_000));
    // Classic Zipf over 1 000 with s = 1.1: customer 0 takes about 1/H ≈ 19%,
    // customer 1 about half of that.
    assert!((170..=210).contains(&frequencies[&0]), "{:?}", frequencies.get(&0));
    assert!(frequencies[&0] > frequencies[&1] && frequencies[&1] > frequencies[&9]);
}

#[test]
fn zipf_exponent_zero_is_uniform() {
    let picker = CustomerPicker::new(parties(10, 1, 0, "0"));
    let mut rng = seeded_rng(6);
    let frequencies = frequencies_permille(100_000, || picker.pick(&mut rng));
    assert_eq!(frequencies.len(), 10);
    assert!(
        frequencies.values().all(|&permille| (90..=110).contains(&permille)),
        "{frequencies:?}"
    );
}

#[test]
fn hot_merchant_takes_its_share() {
    let picker = MerchantPicker::new(parties(1, 100, 300, "1"));
    let mut rng = seeded_rng(7);
    let frequencies = frequencies_permille(100_000, || picker.pick(&mut rng));
    assert!((290..=310).contains(&frequencies[&0]), "{:?}", frequencies.get(&0));
    assert!(frequencies.keys().all(|&merchant| merchant < 100));
    // The other 70% is spread over 99 merchants: about 7‰ each.
    assert!(frequencies.iter().skip(1).all(|(_, &permille)| (4..=10).contains(&permille)));

    let single = MerchantPicker::new(parties(1, 1, 0, "1"));
    assert!((0..100).all(|_| single.pick(&mut rng) == 0));
}
