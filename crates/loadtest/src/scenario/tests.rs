#![allow(clippy::unwrap_used)]

use super::file::parse_permille;
use super::*;
use crate::profile::{LatencyMs, Outage};

const WALLET_HEAVY: &str = include_str!("../../scenarios/wallet-heavy.toml");
const MERCHANT_HEAVY: &str = include_str!("../../scenarios/merchant-heavy.toml");

const MINIMAL: &str = r#"
name = "minimal"
[slo]
p99_ms = 100
[steps]
duration_s = 10
rates_per_s = [10, 20]
[mix]
topup = 1
[parties]
n_customers = 10
n_merchants = 2
zipf_exponent = "1"
"#;

fn rates_per_s(scenario: &Scenario) -> Vec<u32> {
    scenario.steps().iter().map(Step::rate_per_s).collect()
}

/// Replaces the first occurrence of `from` in the minimal scenario and returns the error's
/// message, which must name the field.
fn check_refused(from: &str, to: &str, expected: &str) {
    assert!(MINIMAL.contains(from), "{from} not in the minimal scenario");
    let text = MINIMAL.replacen(from, to, 1);
    let error = Scenario::from_toml(&text).unwrap_err().to_string();
    assert!(error.contains(expected), "{error:?} does not contain {expected:?}");
}

#[test]
fn example_scenarios_parse() {
    let wallet = Scenario::from_toml(WALLET_HEAVY).unwrap();
    assert_eq!(wallet.name(), "wallet-heavy");
    assert_eq!(rates_per_s(&wallet), [50, 75, 113, 170, 255, 383, 575, 863]);
    assert_eq!(wallet.parties().zipf_exponent_permille(), 900);
    assert_eq!(wallet.mix().weight_total(), 100);
    assert_eq!(wallet.arrivals(), Arrivals::Poisson);

    let merchant = Scenario::from_toml(MERCHANT_HEAVY).unwrap();
    assert_eq!(merchant.parties().hot_merchant_share_permille(), 300);
    assert_eq!(merchant.parties().zipf_exponent_permille(), 1100);
    assert_eq!(rates_per_s(&merchant), [100, 200, 300, 400, 600, 800]);
    assert!(merchant.steps().iter().all(|step| step.duration_s() == 45));
    // A zero weight leaves the operation out of the mix.
    assert!(merchant.mix().weights().all(|(op, _)| op != Operation::WalletTransfer));
    let unionpay = &merchant.channels()["bank_a"];
    assert_eq!(unionpay.latency, LatencyMs::Lognormal { p50_ms: 90, p99_ms: 600 });
    assert_eq!(unionpay.outages, [Outage { start_s: 150, end_s: 165 }]);
    assert_eq!(unionpay.banksim_faults(false)["capacity_per_s"], 500, "played on the simulator");
    assert_eq!(merchant.channels()["fastpay"].latency, LatencyMs::Fixed { ms: 25 });
}

#[test]
fn minimal_scenario_takes_defaults() {
    let scenario = Scenario::from_toml(MINIMAL).unwrap();
    assert_eq!((scenario.seed(), scenario.warmup_s(), scenario.slo_p99_ms()), (0, 0, 100));
    assert_eq!(scenario.parties().hot_merchant_share_permille(), 0);
    assert!(scenario.channels().is_empty());
}

#[test]
fn unknown_keys_and_operations_are_refused() {
    check_refused("p99_ms = 100", "p99_ms = 100\np95_ms = 50", "p95_ms");
    check_refused("topup = 1", "top_up = 1", "top_up");
    check_refused("name = \"minimal\"", "name = \"minimal\"\nrate = 3", "rate");
}

#[test]
fn refusals_name_the_field() {
    check_refused("name = \"minimal\"", "name = \" \"", "name: must not be empty");
    check_refused("p99_ms = 100", "p99_ms = 0", "slo.p99_ms: must be greater than zero");
    check_refused("topup = 1", "topup = 0", "mix (sum of weights): must be greater than zero");
    check_refused("[10, 20]", "[]", "steps.rates_per_s: must not be empty");
    check_refused("[10, 20]", "[10, 0]", "steps.rates_per_s[1]: must be greater than zero");
    check_refused(
        "duration_s = 10",
        "duration_s = 0",
        "steps.duration_s: must be greater than zero",
    );
    check_refused("n_customers = 10", "n_customers = 0", "parties.n_customers");
    check_refused("n_merchants = 2", "n_merchants = 0", "parties.n_merchants");
    check_refused(
        "n_merchants = 2",
        "n_merchants = 2\nhot_merchant_share_permille = 1001",
        "parties.hot_merchant_share_permille: 1001 is above the limit of 1000",
    );
    check_refused("zipf_exponent = \"1\"", "zipf_exponent = \"1.0001\"", "parties.zipf_exponent");
    check_refused("zipf_exponent = \"1\"", "zipf_exponent = \"-1\"", "parties.zipf_exponent");
    check_refused(
        "zipf_exponent = \"1\"",
        "zipf_exponent = \"1\"\nzipf_exponent_permille = 1000",
        "parties.zipf_exponent: give it either",
    );
    check_refused("zipf_exponent = \"1\"", "", "parties.zipf_exponent: missing");
    check_refused("[10, 20]", "[10, 2_000_000]", "steps.rates_per_s[1]: 2000000 is above");
}

#[test]
fn ramps_are_checked() {
    let ramp = "start_rate_per_s = 10\nfactor = \"2\"\nn_steps = 4";
    let scenario =
        Scenario::from_toml(&MINIMAL.replacen("rates_per_s = [10, 20]", ramp, 1)).unwrap();
    assert_eq!(rates_per_s(&scenario), [10, 20, 40, 80]);

    let permille = "start_rate_per_s = 10\nfactor_permille = 1250\nn_steps = 3";
    let scenario =
        Scenario::from_toml(&MINIMAL.replacen("rates_per_s = [10, 20]", permille, 1)).unwrap();
    assert_eq!(rates_per_s(&scenario), [10, 13, 16]);

    check_refused(
        "rates_per_s = [10, 20]",
        "start_rate_per_s = 10\nn_steps = 3",
        "steps.factor: missing",
    );
    check_refused("rates_per_s = [10, 20]", "", "steps: missing");
    check_refused("rates_per_s = [10, 20]", "rates_per_s = [1]\nstart_rate_per_s = 1", "not both");
    // Shrinking to nothing is refused rather than offering zero load.
    let shrinking = "start_rate_per_s = 2\nfactor = \"0.1\"\nn_steps = 3";
    check_refused(
        "rates_per_s = [10, 20]",
        shrinking,
        "steps (ramp step 1): must be greater than zero",
    );
    let exploding = "start_rate_per_s = 1000\nfactor = \"100\"\nn_steps = 5";
    check_refused("rates_per_s = [10, 20]", exploding, "steps (ramp step 2): 10000000 is above");
}

#[test]
fn channel_profiles_are_checked() {
    let channel = |profile: &str| format!("{MINIMAL}\n[channels.bank]\n{profile}\n");
    let refused = |profile: &str, expected: &str| {
        let error = Scenario::from_toml(&channel(profile)).unwrap_err().to_string();
        assert!(error.contains(expected), "{error:?} does not contain {expected:?}");
    };
    refused(
        "latency = { kind = \"uniform\", min_ms = 9, max_ms = 3 }",
        "channels.bank.latency.min_ms/max_ms",
    );
    refused(
        "latency = { kind = \"lognormal\", p50_ms = 9, p99_ms = 9 }",
        "channels.bank.latency.p50_ms/p99_ms",
    );
    refused(
        "latency = { kind = \"fixed\", ms = 1 }\ndecline_rate_permille = 1200",
        "channels.bank.decline_rate_permille",
    );
    refused(
        "latency = { kind = \"fixed\", ms = 1 }\ncapacity_per_s = 0",
        "channels.bank.capacity_per_s",
    );
    refused(
        "latency = { kind = \"fixed\", ms = 1 }\noutages = [[5, 5]]",
        "channels.bank.outages[0]",
    );
    refused("latency = { kind = \"fixed\", ms = 1, jitter_ms = 3 }", "jitter_ms");
    refused("latency = { kind = \"gamma\", ms = 1 }", "gamma");
}

#[test]
fn decimals_parse_exactly() {
    let cases = [
        ("0", Some(0)),
        ("1", Some(1000)),
        ("0.3", Some(300)),
        ("1.25", Some(1250)),
        ("12.345", Some(12_345)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_permille(text), expected, "{text}");
    }
    for text in ["", ".5", "1.", "1.2345", "1e3", "+1", "1,5", "4294968"] {
        assert_eq!(parse_permille(text), None, "{text}");
    }
}
