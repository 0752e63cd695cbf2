//! The shipped Prometheus alerting rules (deploy/prometheus) cover every monitor rule, and
//! pass `promtool check rules` and their `promtool test rules` unit tests. Under `CI=true`
//! promtool must be installed (.ci/run installs it); elsewhere the promtool part is skipped.

use std::path::PathBuf;
use std::process::Command;

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

#[test]
fn every_rule_has_a_prometheus_alert() {
    let path = rules_dir().join("qianbao-alerts.yml");
    let text = std::fs::read_to_string(&path).expect("the rules file");
    for rule in monitors::Rule::ALL {
        let selector = format!("qianbao_fund_alerts_firing{{rule=\"{}\"}}", rule.as_str());
        assert!(text.contains(&selector), "{} has no alert in {}", rule.as_str(), path.display());
        let severity = format!("severity: {}", rule.urgency().as_str());
        assert!(text.contains(&severity), "{severity}");
    }
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let dir = rules_dir();
    let version = Command::new("promtool").arg("--version").output();
    if version.is_err() {
        assert!(
            std::env::var("CI").map_or(true, |ci| ci != "true"),
            "promtool is not installed under CI=true (apt-get install prometheus)"
        );
        eprintln!("skipping: promtool is not installed");
        return;
    }
    for args in
        [["check", "rules", "qianbao-alerts.yml"], ["test", "rules", "qianbao-alerts.test.yml"]]
    {
        let output =
            Command::new("promtool").args(args).current_dir(&dir).output().expect("promtool");
        assert!(
            output.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
