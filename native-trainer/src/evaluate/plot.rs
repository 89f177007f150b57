//! The report's figure: accuracy against download size and against native per-query
//! latency, one colour per setting, one labelled point per model.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::report::AccuracyReport;

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

pub fn accuracy_plot(report: &AccuracyReport, settings: &[(usize, usize)], path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (1100, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let panels = root.split_evenly((1, 2));
    let accuracies = report
        .rows
        .iter()
        .flat_map(|r| r.results.iter().map(|s| 100.0 * s.accuracy));
    let (low, high) = accuracies.fold((f64::MAX, f64::MIN), |(lo, hi), a| (lo.min(a), hi.max(a)));
    let (low, high) = if low > high {
        (0.0, 100.0)
    } else {
        // Room below the points for the legend.
        ((low - 14.0).max(0.0), (high + 4.0).min(100.0))
    };

    /// (caption, x label, x value of a row)
    type Axis = (&'static str, &'static str, fn(&super::report::RowReport) -> f64);
    let axes: [Axis; 2] = [
        ("accuracy vs download size", "download (MB)", |r| {
            r.download_bytes as f64 / 1e6
        }),
        (
            "accuracy vs latency",
            "native CPU ms per query (p50, batch 1)",
            |r| r.native_query_p50_ms,
        ),
    ];
    for (panel, (caption, label, x_of)) in panels.iter().zip(axes) {
        let max_x = report.rows.iter().map(x_of).fold(0.0, f64::max).max(1e-3) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_x, low..high)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc(label)
            .y_desc("accuracy (%)")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, &(n, k)) in settings.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points: Vec<(f64, f64, String)> = report
                .rows
                .iter()
                .filter_map(|r| {
                    let s = r
                        .results
                        .iter()
                        .find(|s| s.n == n && s.k == k && (!s.relation_text || k == 0))?;
                    Some((x_of(r), 100.0 * s.accuracy, r.name.clone()))
                })
                .collect();
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|(x, y, _)| Circle::new((*x, *y), 4, colour.filled())),
                )
                .map_err(|e| anyhow!("{e}"))?
                .label(format!("{n}-way {k}-shot"))
                .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
            if i == 0 {
                chart
                    .draw_series(points.iter().map(|(x, y, name)| {
                        Text::new(name.clone(), (*x, *y), ("sans-serif", 11).into_font())
                    }))
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present()
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}
