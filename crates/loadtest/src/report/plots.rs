//! The report's three plots, drawn by `plotters` into SVG strings.
//!
//! `plotters`' SVG backend escapes every text and attribute it writes, so labels are handed
//! to it raw: escaping them here as well would show `&amp;lt;` on the page.

// Plot coordinates are floats (rates in requests per second, latencies in milliseconds);
// they only place pixels and never touch money.
#![allow(clippy::float_arithmetic)]

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{error_codes, ReportError};
use crate::stats::StepSummary;

const PLOT_SIZE_PX: (u32, u32) = (760, 420);
const CAPTION_FONT: (&str, u32) = ("sans-serif", 20);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Draws one plot into a fresh SVG string.
fn render(
    plot: &'static str,
    draw: impl FnOnce(&Area<'_>) -> Drawn,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        // The backend writes the closing `</svg>` when presented; it borrows `svg` until then.
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE_PX).into_drawing_area();
        root.fill(&WHITE)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present())
            .map_err(|error| ReportError::Plot { plot, reason: error.to_string() })?;
    }
    Ok(svg)
}

fn per_s(milli_per_s: u64) -> f64 {
    milli_per_s as f64 / 1000.0
}

fn ms(latency_us: u64) -> f64 {
    latency_us as f64 / 1000.0
}

/// An axis end a little above the largest value, and never an empty range.
fn axis_end(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.fold(0.0, f64::max);
    if max > 0.0 {
        max * 1.1
    } else {
        1.0
    }
}

fn legend(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// p50 and p99 against achieved throughput, one point per step, with the SLO as a line.
pub(super) fn latency_against_throughput(
    steps: &[StepSummary],
    slo_p99_ms: u32,
) -> Result<String, ReportError> {
    let title = "Latency against achieved throughput";
    let point = |step: &StepSummary, latency_us: u64| {
        (per_s(step.all.achieved_milli_per_s), ms(latency_us))
    };
    let p50: Vec<(f64, f64)> =
        steps.iter().map(|step| point(step, step.all.latency_us_p50)).collect();
    let p99: Vec<(f64, f64)> =
        steps.iter().map(|step| point(step, step.all.latency_us_p99)).collect();
    let slo_ms = f64::from(slo_p99_ms);
    let x_end = axis_end(p99.iter().map(|&(x, _)| x));
    let y_end = axis_end(p99.iter().map(|&(_, y)| y).chain([slo_ms]));
    render(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, CAPTION_FONT)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_end, 0.0..y_end)?;
        chart.configure_mesh().x_desc("achieved (requests/s)").y_desc("latency (ms)").draw()?;
        for (label, points, color) in [("p50", &p50, BLUE), ("p99", &p99, RED)] {
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
                .label(label)
                .legend(legend(color));
            chart.draw_series(points.iter().map(|&xy| Circle::new(xy, 3, color.filled())))?;
        }
        let grey = RGBColor(128, 128, 128);
        chart
            .draw_series(LineSeries::new([(0.0, slo_ms), (x_end, slo_ms)], grey.stroke_width(1)))?
            .label("SLO p99")
            .legend(legend(grey));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
    })
}

/// Achieved against offered rate, one point per step, with the line `achieved = offered`.
pub(super) fn achieved_against_offered(steps: &[StepSummary]) -> Result<String, ReportError> {
    let title = "Achieved against offered rate";
    let points: Vec<(f64, f64)> = steps
        .iter()
        .map(|step| (f64::from(step.offered_per_s), per_s(step.all.achieved_milli_per_s)))
        .collect();
    // One range for both axes, so that the diagonal is at 45°.
    let end = axis_end(points.iter().flat_map(|&(x, y)| [x, y]));
    render(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, CAPTION_FONT)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..end, 0.0..end)?;
        chart
            .configure_mesh()
            .x_desc("offered (requests/s)")
            .y_desc("achieved (requests/s)")
            .draw()?;
        let grey = RGBColor(128, 128, 128);
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (end, end)], grey.stroke_width(1)))?
            .label("achieved = offered")
            .legend(legend(grey));
        chart
            .draw_series(LineSeries::new(points.iter().copied(), BLUE.stroke_width(2)))?
            .label("achieved")
            .legend(legend(BLUE));
        chart.draw_series(points.iter().map(|&xy| Circle::new(xy, 3, BLUE.filled())))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
    })
}

/// One bar per step, stacked by error code, labelled with the step's offered rate.
pub(super) fn errors_by_step(steps: &[StepSummary]) -> Result<String, ReportError> {
    let title = "Errors by code per step";
    let codes = error_codes(steps);
    let n_errors_max = steps.iter().map(|step| step.all.n_errors()).max().unwrap_or(0);
    // Whole counts on the y axis; the headroom keeps the tallest bar clear of the legend.
    let y_end = n_errors_max + n_errors_max / 4 + 1;
    let n_steps = u32::try_from(steps.len()).unwrap_or(u32::MAX);
    // A discrete axis counts both ends: `0..=last` has one segment per step.
    let step_idx_last = n_steps.saturating_sub(1);
    let offered_label = |step_idx: u32| {
        let step = usize::try_from(step_idx).ok().and_then(|step_idx| steps.get(step_idx));
        step.map(|step| format!("{}/s", step.offered_per_s)).unwrap_or_default()
    };
    render(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, CAPTION_FONT)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((0..step_idx_last).into_segmented(), 0..y_end)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("step (offered rate)")
            .y_desc("errors")
            .x_label_formatter(&|value| match value {
                SegmentValue::CenterOf(step_idx) => offered_label(*step_idx),
                _ => String::new(),
            })
            .draw()?;
        // Each code's bars start where the codes before it in this step ended.
        let mut stack_tops = vec![0u64; steps.len()];
        for (code_idx, code) in codes.iter().enumerate() {
            let color = Palette99::pick(code_idx).to_rgba();
            let mut bars = Vec::new();
            for ((step_idx, step), stack_top) in (0..n_steps).zip(steps).zip(&mut stack_tops) {
                let n_errors = step.all.n_errors_by_code.get(*code).copied().unwrap_or(0);
                if n_errors == 0 {
                    continue;
                }
                let from = (SegmentValue::Exact(step_idx), *stack_top);
                *stack_top += n_errors;
                let mut bar = Rectangle::new(
                    [from, (SegmentValue::Exact(step_idx + 1), *stack_top)],
                    color.filled(),
                );
                bar.set_margin(0, 0, 8, 8);
                bars.push(bar);
            }
            chart.draw_series(bars)?.label(code.as_str()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
            });
        }
        if codes.is_empty() {
            return Ok(());
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
    })
}
