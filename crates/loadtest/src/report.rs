//! The output of a run: a [`Report`] that serialises to JSON for machines, and one
//! self-contained HTML page for people (inline CSS and SVG, no scripts, nothing fetched), so
//! it can be mailed, attached to an issue or opened from an air-gapped machine as it is.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::knee::{find_knee, peak_milli_per_s, Knee, StepPoint};
use crate::scenario::Scenario;
use crate::stats::{OperationSummary, StepSummary};

mod plots;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("report is not valid json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not draw the plot {plot:?}: {reason}")]
    Plot { plot: &'static str, reason: String },
}

/// Everything a run measured, step by step and operation by operation, with its knee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub scenario_name: String,
    /// When the first step started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    pub slo_p99_ms: u32,
    /// In the order they ran.
    pub steps: Vec<StepSummary>,
    pub knee: Option<Knee>,
    /// The highest achieved rate of any step, in thousandths per second; kept apart from
    /// the knee because it exists even when no step qualifies.
    pub peak_milli_per_s: u64,
    /// The fund-safety check after the run, when it was made.
    #[serde(default)]
    pub fund_check: Option<crate::safety::FundCheck>,
}

impl Report {
    pub fn new(scenario: &Scenario, started_at_ms: u64, steps: Vec<StepSummary>) -> Report {
        let points: Vec<StepPoint> = steps.iter().map(StepSummary::point).collect();
        Report {
            scenario_name: scenario.name().to_owned(),
            started_at_ms,
            slo_p99_ms: scenario.slo_p99_ms(),
            knee: find_knee(&points, scenario.slo_p99_ms()),
            peak_milli_per_s: peak_milli_per_s(&points),
            steps,
            fund_check: None,
        }
    }

    pub fn to_json(&self) -> Result<String, ReportError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn from_json(text: &str) -> Result<Report, ReportError> {
        Ok(serde_json::from_str(text)?)
    }

    /// The report as one HTML page with three plots and a table of every step.
    pub fn to_html(&self) -> Result<String, ReportError> {
        let name = escape(&self.scenario_name);
        let mut html = String::new();
        html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        html.push_str(&format!(
            "<title>Load test: {name}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        ));
        html.push_str(&format!("<h1>Load test: {name}</h1>\n"));
        html.push_str(&format!(
            "<p>Started {} · SLO: p99 ≤ {} ms · {} steps</p>\n",
            utc_text(self.started_at_ms),
            self.slo_p99_ms,
            self.steps.len()
        ));
        html.push_str(&format!("<p class=\"verdict\">{}</p>\n", escape(&self.verdict())));
        if let Some(check) = &self.fund_check {
            html.push_str(&format!("<p class=\"verdict\">{}</p>\n", escape(&check.verdict())));
        }
        let figures = [
            (
                plots::latency_against_throughput(&self.steps, self.slo_p99_ms)?,
                "Latency percentiles against achieved throughput; the grey line is the SLO.",
            ),
            (
                plots::achieved_against_offered(&self.steps)?,
                "Achieved against offered rate; on the diagonal the service keeps up.",
            ),
            (plots::errors_by_step(&self.steps)?, "Errors by code in each step."),
        ];
        for (svg, caption) in figures {
            html.push_str(&format!(
                "<figure>\n{svg}<figcaption>{}</figcaption>\n</figure>\n",
                escape(caption)
            ));
        }
        html.push_str(&self.table());
        html.push_str("</body>\n</html>\n");
        Ok(html)
    }

    fn verdict(&self) -> String {
        let peak = format!("peak {}/s", rate_text(self.peak_milli_per_s));
        match self.knee {
            Some(knee) => format!(
                "Sustainable {}/s (step {}, offered {}/s); {peak}.",
                rate_text(knee.sustainable_milli_per_s),
                knee.step_idx + 1,
                knee.offered_per_s
            ),
            None => format!("No step kept up within the SLO; {peak}."),
        }
    }

    fn table(&self) -> String {
        let mut html = String::from(
            "<table>\n<thead><tr><th>step</th><th>operation</th><th>offered/s</th><th>achieved/s</th>\
             <th>ok</th><th>errors</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th>\
             <th>max ms</th></tr></thead>\n<tbody>\n",
        );
        for (step_idx, step) in self.steps.iter().enumerate() {
            let step_number = (step_idx + 1).to_string();
            html.push_str(&row(
                "all",
                [&step_number, "all", &step.offered_per_s.to_string()],
                &step.all,
            ));
            for (operation, summary) in &step.by_operation {
                html.push_str(&row("operation", ["", operation.as_str(), ""], summary));
            }
        }
        html.push_str("</tbody>\n</table>\n");
        html
    }
}

/// One table row: `head` is the step number, the operation and the offered rate.
fn row(class: &str, head: [&str; 3], summary: &OperationSummary) -> String {
    let errors: Vec<String> = summary
        .n_errors_by_code
        .iter()
        .map(|(code, n_errors)| format!("{code} {n_errors}"))
        .collect();
    let numbers = [
        rate_text(summary.achieved_milli_per_s),
        summary.n_ok.to_string(),
        errors.join(", "),
        ms_text(summary.latency_us_p50),
        ms_text(summary.latency_us_p90),
        ms_text(summary.latency_us_p99),
        ms_text(summary.latency_us_p999),
        ms_text(summary.latency_us_max),
    ];
    let cells: String = head
        .iter()
        .copied()
        .chain(numbers.iter().map(String::as_str))
        .map(|cell| format!("<td>{}</td>", escape(cell)))
        .collect();
    format!("<tr class=\"{class}\">{cells}</tr>\n")
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
figure{margin:1.5em 0}svg{max-width:100%;height:auto;border:1px solid #ddd}\
.verdict{font-size:1.2em;font-weight:bold}\
table{border-collapse:collapse;font-size:.9em}th,td{padding:.25em .6em;text-align:right;border-bottom:1px solid #eee}\
tr.all{background:#f4f4f4;font-weight:bold}";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Thousandths per second as a decimal: 4950 → `4.950`.
fn rate_text(milli_per_s: u64) -> String {
    format!("{}.{:03}", milli_per_s / 1000, milli_per_s % 1000)
}

/// Microseconds as milliseconds: 12 345 → `12.345`.
fn ms_text(latency_us: u64) -> String {
    format!("{}.{:03}", latency_us / 1000, latency_us % 1000)
}

/// `2026-03-21 09:30:00 UTC`, from Unix milliseconds, without a date library: the days
/// since the epoch are turned into a civil date (Howard Hinnant's `civil_from_days`).
fn utc_text(unix_ms: u64) -> String {
    const MS_PER_DAY: u64 = 86_400_000;
    let (days, ms_of_day) = (unix_ms / MS_PER_DAY, unix_ms % MS_PER_DAY);
    // Shift the epoch to 0000-03-01, so that leap days fall at the end of each year.
    let shifted_days = days + 719_468;
    let era = shifted_days / 146_097;
    let day_of_era = shifted_days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    let s_of_day = ms_of_day / 1000;
    let (hour, minute, second) = (s_of_day / 3600, s_of_day / 60 % 60, s_of_day % 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

/// Every error code that occurs in any step, sorted: the stacks and the legend share it.
fn error_codes(steps: &[StepSummary]) -> BTreeSet<&crate::stats::ErrorCode> {
    steps.iter().flat_map(|step| step.all.n_errors_by_code.keys()).collect()
}

#[cfg(test)]
mod tests;
