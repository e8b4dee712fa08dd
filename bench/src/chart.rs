//! The latency-vs-concurrency chart: p50 and p99 latency (log scale) and throughput against
//! concurrency, one line per series, drawn to a PNG with plotters' bitmap backend and a TTF
//! read at run time (no system font library is linked).

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::Row;

/// The font tried when `--font` is not given (Debian's fonts-dejavu-core).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// One panel: caption, y axis description, y range, and the value plotted.
type Panel = (&'static str, &'static str, f64, f64, fn(&Row) -> f64);

/// Registers the TTF at `font` as plotters' `sans-serif`; call once before [`draw`].
pub fn load_font(font: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(font).with_context(|| format!("reading font {}", font.display()))?;
    // plotters keeps fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a usable TrueType font", font.display()))
}

/// Draws p50, p99 and throughput against concurrency for every series in `rows` to `path`.
pub fn draw(rows: &[Row], title: &str, path: &Path) -> anyhow::Result<()> {
    let mut series: Vec<&str> = rows.iter().map(|r| r.series.as_str()).collect();
    series.sort_by_key(|s| crate::report::series_rank(s));
    series.dedup();
    let max_c = rows.iter().map(|r| r.concurrency).max().unwrap_or(1).max(2) as f64;
    let lat_min = rows
        .iter()
        .map(|r| r.p50_ms)
        .fold(f64::MAX, f64::min)
        .max(0.01)
        / 1.5;
    let lat_max = rows
        .iter()
        .map(|r| r.p99_ms)
        .fold(0.0, f64::max)
        .max(lat_min * 2.0)
        * 1.5;
    let tput_min = rows
        .iter()
        .map(|r| r.throughput)
        .fold(f64::MAX, f64::min)
        .max(0.1)
        / 1.5;
    let tput_max = rows
        .iter()
        .map(|r| r.throughput)
        .fold(0.0, f64::max)
        .max(tput_min * 2.0)
        * 1.5;

    let root = BitMapBackend::new(path, (1500, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("drawing: {e}"))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| anyhow!("drawing: {e}"))?;
    let panels = root.split_evenly((1, 3));
    let panel_specs: [Panel; 3] = [
        ("p50 latency", "ms (log)", lat_min, lat_max, |r| r.p50_ms),
        ("p99 latency", "ms (log)", lat_min, lat_max, |r| r.p99_ms),
        ("throughput", "ops/s (log)", tput_min, tput_max, |r| {
            r.throughput
        }),
    ];
    for (panel, (caption, y_desc, lo, hi, value)) in panels.iter().zip(panel_specs) {
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1f64..max_c * 1.2).log_scale(), (lo..hi).log_scale())
            .map_err(|e| anyhow!("drawing: {e}"))?;
        chart
            .configure_mesh()
            .x_desc("concurrency (log)")
            .y_desc(y_desc)
            .light_line_style(WHITE)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| short_number(*y))
            .draw()
            .map_err(|e| anyhow!("drawing: {e}"))?;
        for (i, name) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.series == *name)
                .map(|r| (r.concurrency as f64, value(r)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow!("drawing: {e}"))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| anyhow!("drawing: {e}"))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| anyhow!("drawing: {e}"))?;
    }
    root.present()
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// An axis label with as few digits as its size needs.
fn short_number(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
