//! The shipped Prometheus alert rules (`deploy/prometheus`) and Grafana dashboard
//! (`deploy/grafana`) name only metrics that a running `qianbao serve` exports at /metrics —
//! a renamed metric fails here instead of leaving an alert that can never fire.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::payments::World;

/// Every `qianbao_…` name in `text`, comment lines left out.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|line| !line.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("qianbao_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_metric_the_alert_rules_and_the_dashboard_name_is_exported() {
    let world = World::start(&["bank_a"], &[]);
    assert_eq!(world.topup("metrics", 1_000)["status"], json!("succeeded"));
    // A switch ever set, so its gauge has a series.
    world.ok(
        "POST",
        "/v1/ops/switches",
        json!({"target": {"switch": "bulk_off"}, "on": false, "reason": "a series for the gauge"}),
    );
    let (status, metrics) =
        crate::serve::request(world.addr(), "GET", "/metrics", "", "").expect("metrics");
    assert_eq!(status, 200);
    let exported: BTreeSet<String> = metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next().map(str::to_owned))
        .collect();
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    for file in ["prometheus/qianbao-alerts.yml", "grafana/qianbao-dashboard.json"] {
        let text = std::fs::read_to_string(deploy.join(file)).expect(file);
        if file.ends_with(".json") {
            let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
            assert!(dashboard["panels"].as_array().is_some_and(|p| !p.is_empty()), "{file}");
        }
        let named = metric_names(&text);
        assert!(!named.is_empty(), "{file} names no metric");
        let missing: Vec<&String> = named.iter().filter(|name| !exported.contains(*name)).collect();
        assert!(missing.is_empty(), "{file} names metrics /metrics lacks: {missing:?}");
    }
}
