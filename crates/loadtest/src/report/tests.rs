#![allow(clippy::unwrap_used)]

use super::*;
use crate::scenario::{Operation, Step};
use crate::schedule::{arrivals_even, Completion};
use crate::stats::{ErrorCode, Outcome, StepStats};

fn scenario(name: &str) -> Scenario {
    let text = format!(
        r#"
        name = '{name}'
        [slo]
        p99_ms = 50
        [steps]
        duration_s = 2
        rates_per_s = [100, 200, 400]
        [mix]
        wallet_payment = 3
        read_balance = 1
        [parties]
        n_customers = 10
        n_merchants = 2
        zipf_exponent = "1"
        "#
    );
    Scenario::from_toml(&text).unwrap()
}

/// A service that answers in 10 ms up to 250/s and sheds the rest as `overloaded`, slowly.
fn simulated_steps(scenario: &Scenario) -> Vec<StepSummary> {
    let steps: Vec<Step> = scenario.steps().to_vec();
    steps
        .into_iter()
        .map(|step| {
            let mut stats = StepStats::new(step);
            for (arrival_idx, arrival) in arrivals_even(step).into_iter().enumerate() {
                let operation = if arrival_idx % 4 == 0 {
                    Operation::ReadBalance
                } else {
                    Operation::WalletPayment
                };
                let (latency_us, outcome) = if step.rate_per_s() > 250 && arrival_idx % 2 == 0 {
                    (80_000, Outcome::Failed(ErrorCode::OVERLOADED))
                } else if arrival_idx % 199 == 0 {
                    (5_000, Outcome::Failed(ErrorCode::http_status(500)))
                } else {
                    (10_000 + u64::from(step.rate_per_s()) * 10, Outcome::Ok)
                };
                let completion =
                    Completion::new(arrival, arrival.intended_us() + latency_us, outcome);
                stats.record(operation, &completion);
            }
            stats.summary()
        })
        .collect()
}

fn report(name: &str) -> Report {
    let scenario = scenario(name);
    Report::new(&scenario, 1_700_000_000_000, simulated_steps(&scenario))
}

#[test]
fn report_finds_the_knee_of_its_steps() {
    let report = report("shedding");
    assert_eq!(report.steps.len(), 3);
    let knee = report.knee.unwrap();
    // 200/s keeps up (1 in 199 fails: 198.5/s achieved); 400/s sheds half.
    assert_eq!((knee.step_idx, knee.offered_per_s), (1, 200));
    assert_eq!(
        report.peak_milli_per_s,
        report.steps.iter().map(|step| step.all.achieved_milli_per_s).max().unwrap()
    );
    assert_eq!(report.steps[2].all.n_errors_by_code[&ErrorCode::OVERLOADED], 400);
    // Past the knee more gets through, too slowly and with too many failures.
    assert_eq!(report.peak_milli_per_s, 199_000);
}

#[test]
fn json_round_trips() {
    let report = report("round trip");
    let json = report.to_json().unwrap();
    assert!(json.contains("\"wallet_payment\"") && json.contains("\"overloaded\""));
    assert_eq!(Report::from_json(&json).unwrap(), report);
    assert!(Report::from_json("{\"scenario_name\": 3}").is_err());
}

#[test]
fn html_is_one_self_contained_page_with_three_plots() {
    let html = report("plain").to_html().unwrap();
    assert_eq!(html.matches("<svg").count(), 3);
    assert_eq!(html.matches("</svg>").count(), 3);
    for forbidden in
        ["<script", "<link", "<img", "<iframe", " src=", "href=", "url(", "@import", "javascript:"]
    {
        assert!(!html.contains(forbidden), "{forbidden}");
    }
    assert!(html.contains("Sustainable 198.500/s (step 2, offered 200/s)"), "{html}");
    assert!(html.contains(">\noverloaded\n</text>"), "legend of the error plot");
    assert!(html.contains("<td>read_balance</td>"));
    if let Ok(path) = std::env::var("LOADTEST_REPORT_HTML") {
        // For looking at the page by eye: LOADTEST_REPORT_HTML=/tmp/report.html cargo test.
        std::fs::write(path, &html).unwrap();
    }
}

#[test]
fn html_escapes_the_scenario_name() {
    let html = report("a <b>&amp;</b> \"q\"").to_html().unwrap();
    assert!(html.contains("Load test: a &lt;b&gt;&amp;amp;&lt;/b&gt; &quot;q&quot;"));
    assert!(!html.contains("<b>"));
    assert!(!html.contains("&amp;amp;amp;"), "escaped twice");
}

#[test]
fn html_renders_without_steps_and_without_a_knee() {
    let report = Report::new(&scenario("empty"), 0, Vec::new());
    assert_eq!(report.knee, None);
    let html = report.to_html().unwrap();
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("No step kept up within the SLO; peak 0.000/s."));
    assert!(html.contains("Started 1970-01-01 00:00:00 UTC"));
}

#[test]
fn dates_are_civil_utc() {
    let cases = [
        (0, "1970-01-01 00:00:00 UTC"),
        (951_782_400_000, "2000-02-29 00:00:00 UTC"),
        (1_700_000_000_999, "2023-11-14 22:13:20 UTC"),
        (4_107_542_399_000, "2100-02-28 23:59:59 UTC"),
    ];
    for (unix_ms, expected) in cases {
        assert_eq!(utc_text(unix_ms), expected);
    }
}
