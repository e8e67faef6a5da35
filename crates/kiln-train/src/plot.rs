//! Charts as PNG files, drawn with `plotters` (bitmap backend) and encoded with `png`: training
//! loss with eval points, learning rate (log scale), horizontal bar charts (the corpus by
//! language), bars with spread (an experiment's arms over seeds) and multi-series line charts
//! (an experiment's loss curves). Axis titles, legends and labels use DejaVu Sans, built into
//! the binary (`assets/DejaVuSans.ttf`, Bitstream Vera licence beside it), so no system font or
//! fontconfig is needed. Every file is written atomically.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Result, TrainError};
use crate::trainer::StepMetrics;

/// Chart size in pixels.
pub const W: u32 = 900;
/// Chart height in pixels.
pub const H: u32 = 480;

/// The font family every chart uses (registered from the embedded file on first use).
const FAMILY: &str = "sans-serif";
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Series colours (matplotlib's tab10, so the charts look like the ones users know).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
/// Training loss.
pub const TRAIN: RGBColor = PALETTE[0];
/// Eval loss points.
pub const EVAL: RGBColor = PALETTE[1];
/// Learning rate.
pub const LR: RGBColor = PALETTE[2];
/// Bars.
pub const BAR: RGBColor = PALETTE[0];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The file is ours and fixed: a failure here is a build defect, reported on first draw.
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            tracing::error!("the embedded chart font could not be read; chart text will be missing");
        }
    });
}

/// Draws on a `W` x `H` white canvas with `draw` and writes it as a PNG to `path`, atomically.
fn render(path: &Path, draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), String>) -> Result<()> {
    register_font();
    let plot_err = |message: String| TrainError::Plot { path: path.to_path_buf(), message };
    let mut rgb = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (W, H)).into_drawing_area();
        draw(&root).map_err(plot_err)?;
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, W, H);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| plot_err(e.to_string()))?;
        w.write_image_data(&rgb).map_err(|e| plot_err(e.to_string()))?;
    }
    kiln_base::fs::write_atomic(path, &png_bytes).map_err(|e| TrainError::Io { path: e.path, source: e.source })
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The (min, max) of `values`, widened when flat; `None` when there is no finite value.
fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return None;
    }
    Some(if hi - lo < 1e-12 { (lo - 0.5_f64.max(lo.abs() * 0.05), hi + 0.5_f64.max(hi.abs() * 0.05)) } else { (lo, hi) })
}

/// One named series of a line chart: its points, drawn as a line or as dots.
pub struct Series<'a> {
    /// Legend entry.
    pub name: &'a str,
    /// (x, y) points; non-finite y values are left out.
    pub points: &'a [(f64, f64)],
    /// Colour.
    pub colour: RGBColor,
    /// Dots (sparse series such as eval points) instead of a line.
    pub dots: bool,
}

/// A line chart of `series` with axis titles, a legend and (optionally) a log-scale y axis
/// (where every point must be positive; others are left out).
pub fn lines(path: &Path, title: &str, x_title: &str, y_title: &str, series: &[Series<'_>], log_y: bool) -> Result<()> {
    let keep = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!log_y || p.1 > 0.0);
    let xs = extent(series.iter().flat_map(|s| s.points.iter().filter(keep).map(|p| p.0)));
    let ys = extent(series.iter().flat_map(|s| s.points.iter().filter(keep).map(|p| p.1)));
    render(path, |root| {
        root.fill(&WHITE).map_err(s)?;
        let (Some((x0, x1)), Some((y0, y1))) = (xs, ys) else {
            root.titled(&format!("{title}: no data yet"), (FAMILY, 22)).map_err(s)?;
            return Ok(());
        };
        let pad = (y1 - y0) * 0.05;
        let mut builder = ChartBuilder::on(root);
        builder.caption(title, (FAMILY, 22)).margin(14).x_label_area_size(46).y_label_area_size(74);
        let x_range = x0..x1;
        macro_rules! draw_on {
            ($chart:expr, $fmt:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_title)
                    .y_desc(y_title)
                    .axis_desc_style((FAMILY, 16))
                    .label_style((FAMILY, 13))
                    .y_label_formatter(&$fmt)
                    .light_line_style(RGBColor(235, 235, 235))
                    .bold_line_style(RGBColor(215, 215, 215))
                    .draw()
                    .map_err(s)?;
                for sr in series {
                    let pts: Vec<(f64, f64)> = sr.points.iter().filter(keep).copied().collect();
                    let colour = sr.colour;
                    if sr.dots {
                        chart
                            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                            .map_err(s)?
                            .label(sr.name)
                            .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
                    } else {
                        chart
                            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                            .map_err(s)?
                            .label(sr.name)
                            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
                    }
                }
                chart
                    .configure_series_labels()
                    .label_font((FAMILY, 14))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(s)?;
            }};
        }
        if log_y {
            let chart = builder.build_cartesian_2d(x_range, (y0 * 0.9..y1 * 1.1).log_scale()).map_err(s)?;
            draw_on!(chart, |v: &f64| format!("{v:.1e}"));
        } else {
            let chart = builder.build_cartesian_2d(x_range, (y0 - pad)..(y1 + pad)).map_err(s)?;
            draw_on!(chart, |v: &f64| format_value(*v));
        }
        Ok(())
    })
}

/// A tick label with as many decimals as the value needs.
fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

/// A horizontal bar chart PNG: one labelled bar per row (at most 16 rows, in the order given),
/// its value printed after it with `unit`, under a title. For tables that read better as a
/// picture (the corpus by language).
pub fn bar_chart(path: &Path, title: &str, rows: &[(String, f64)], unit: &str) -> Result<()> {
    let rows: Vec<(String, f64, f64)> = rows.iter().take(16).map(|(l, v)| (l.clone(), *v, 0.0)).collect();
    bars(path, title, &rows, unit, false)
}

/// A horizontal bar chart PNG whose bars show a mean and a whisker its spread (mean ± spread),
/// for results over several seeds. The value axis starts near the smallest `mean - spread`
/// (not at zero), so differences of a few percent show; a row without a result says so.
pub fn bar_chart_with_spread(path: &Path, title: &str, rows: &[(String, f64, f64)], unit: &str) -> Result<()> {
    let rows: Vec<(String, f64, f64)> = rows.iter().take(16).cloned().collect();
    bars(path, title, &rows, unit, true)
}

fn bars(path: &Path, title: &str, rows: &[(String, f64, f64)], unit: &str, spread: bool) -> Result<()> {
    let finite: Vec<&(String, f64, f64)> = rows.iter().filter(|r| r.1.is_finite()).collect();
    let hi = finite.iter().map(|r| r.1 + r.2.max(0.0)).fold(f64::MIN, f64::max);
    let lo = if spread { finite.iter().map(|r| r.1 - r.2.max(0.0)).fold(f64::MAX, f64::min) } else { 0.0 };
    let (lo, hi) = if finite.is_empty() {
        (0.0, 1.0)
    } else if spread {
        let span = (hi - lo).max(hi.abs() * 0.02).max(1e-9);
        ((lo - span * 0.6).max(0.0), hi + span * 0.45)
    } else {
        (0.0, hi.max(f64::MIN_POSITIVE) * 1.18)
    };
    let n = rows.len().max(1);
    let labels: Vec<String> = rows.iter().map(|r| r.0.chars().take(28).collect()).collect();
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32 * 8 + 16;
    render(path, |root| {
        root.fill(&WHITE).map_err(s)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 22))
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(label_width.clamp(60, 260))
            // plotters' integer ranges include their end: 0..n-1 is n segments.
            .build_cartesian_2d(lo..hi, (0..n - 1).into_segmented())
            .map_err(s)?;
        let label_of = |v: &SegmentValue<usize>| match v {
            // Row 0 at the top.
            SegmentValue::CenterOf(i) if *i < labels.len() => labels[labels.len() - 1 - i].clone(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(unit)
            .axis_desc_style((FAMILY, 16))
            .label_style((FAMILY, 13))
            .y_labels(n)
            .y_label_formatter(&label_of)
            .x_label_formatter(&|v: &f64| format_value(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(s)?;
        let text = (FAMILY, 13).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        for (row, (_, mean, sd)) in rows.iter().enumerate() {
            let i = n - 1 - row;
            if !mean.is_finite() {
                chart.draw_series(std::iter::once(Text::new("no result", (lo, SegmentValue::CenterOf(i)), text.clone()))).map_err(s)?;
                continue;
            }
            let mut bar = Rectangle::new([(lo, SegmentValue::Exact(i)), (*mean, SegmentValue::Exact(i + 1))], BAR.filled());
            bar.set_margin(4, 4, 0, 0);
            chart.draw_series(std::iter::once(bar)).map_err(s)?;
            let mut end = *mean;
            if spread && *sd > 0.0 {
                let (a, b) = ((mean - sd).max(lo), mean + sd);
                let c = SegmentValue::CenterOf(i);
                chart.draw_series(std::iter::once(PathElement::new(vec![(a, c.clone()), (b, c)], BLACK.stroke_width(2)))).map_err(s)?;
                end = end.max(b);
            }
            let shown = if spread {
                format!("{mean:.3} ± {sd:.3} {unit}")
            } else if *mean < 10.0 {
                format!("{mean:.2} {unit}")
            } else {
                format!("{mean:.1} {unit}")
            };
            let at = end + (hi - lo) * 0.01;
            chart.draw_series(std::iter::once(Text::new(shown, (at, SegmentValue::CenterOf(i)), text.clone()))).map_err(s)?;
        }
        Ok(())
    })
}

/// A line chart of several named series of (x, y) points, each in its own colour, with a legend
/// (e.g. the loss curves of a sweep's arms).
pub fn line_chart(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    let drawn: Vec<Series<'_>> = series
        .iter()
        .enumerate()
        .map(|(i, (name, pts))| Series { name, points: pts, colour: PALETTE[i % PALETTE.len()], dots: false })
        .collect();
    lines(path, title, "step", "training loss (nats/token)", &drawn, false)
}

/// Reads `run/metrics.jsonl` and writes `run/loss.png` (train loss line, eval loss dots) and
/// `run/lr.png` (learning rate, log scale); returns the two paths.
pub fn plot_run(run: &Path) -> Result<[PathBuf; 2]> {
    plot_run_with(run, false)
}

/// [`plot_run`] with the loss on a log-scale axis when `log_loss`.
pub fn plot_run_with(run: &Path, log_loss: bool) -> Result<[PathBuf; 2]> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::Io { path: path.clone(), source: e })?;
    let mut train = Vec::new();
    let mut eval = Vec::new();
    let mut lr = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let m: StepMetrics = serde_json::from_str(line)
            .map_err(|e| TrainError::Checkpoint { path: path.clone(), message: format!("line {}: {e}", i + 1) })?;
        let x = m.step as f64;
        if m.kind == "eval" {
            eval.push((x, m.loss));
        } else {
            train.push((x, m.loss));
            lr.push((x, m.lr));
        }
    }
    let loss_png = run.join("loss.png");
    let lr_png = run.join("lr.png");
    let mut loss_series = vec![Series { name: "train loss", points: &train, colour: TRAIN, dots: false }];
    if !eval.is_empty() {
        loss_series.push(Series { name: "eval loss (val split)", points: &eval, colour: EVAL, dots: true });
    }
    lines(&loss_png, "Training loss", "step", "loss (nats/token)", &loss_series, log_loss)?;
    lines(
        &lr_png,
        "Learning rate",
        "step",
        "learning rate (log scale)",
        &[Series { name: "LR", points: &lr, colour: LR, dots: false }],
        true,
    )?;
    Ok([loss_png, lr_png])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RGB pixels of a PNG this module wrote (decoded by the `png` crate).
    fn pixels(p: &Path) -> Vec<u8> {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height, info.color_type), (W, H, png::ColorType::Rgb));
        buf.truncate(info.buffer_size());
        buf
    }

    fn count(raw: &[u8], c: RGBColor) -> usize {
        raw.chunks(3).filter(|px| px == &[c.0, c.1, c.2]).count()
    }

    /// Pixels that are neither white nor a light grid grey: text, axes, curves.
    fn dark(raw: &[u8]) -> usize {
        raw.chunks(3).filter(|px| px.iter().all(|&v| v < 120)).count()
    }

    fn metrics_file(dir: &Path) {
        let mut lines = String::new();
        for s in 1..=50u32 {
            let m = StepMetrics {
                kind: "train".into(),
                step: s as usize,
                loss: 5.0 / s as f64,
                lr: 1e-3 * (s as f64 / 50.0),
                grad_norm: 1.0,
                tokens: 0,
                tokens_per_s: 0.0,
                skipped: false,
            };
            lines.push_str(&serde_json::to_string(&m).unwrap());
            lines.push('\n');
        }
        let eval =
            StepMetrics { kind: "eval".into(), step: 50, loss: 0.5, lr: 0.0, grad_norm: 0.0, tokens: 0, tokens_per_s: 0.0, skipped: false };
        lines.push_str(&serde_json::to_string(&eval).unwrap());
        lines.push('\n');
        std::fs::write(dir.join("metrics.jsonl"), lines).unwrap();
    }

    #[test]
    fn training_charts_have_their_curves_text_and_no_stray_series() {
        let dir = tempfile::tempdir().unwrap();
        metrics_file(dir.path());
        let [loss, lr] = plot_run(dir.path()).unwrap();
        let (loss_px, lr_px) = (pixels(&loss), pixels(&lr));
        assert!(count(&loss_px, TRAIN) > 200, "the train loss line");
        assert!(count(&loss_px, EVAL) > 10, "the eval point and its legend mark");
        assert_eq!(count(&loss_px, LR), 0, "no LR curve on the loss chart");
        assert!(count(&lr_px, LR) > 200 && count(&lr_px, TRAIN) == 0);
        // Title, axis titles, tick labels and the legend are text: many dark pixels.
        assert!(dark(&loss_px) > 2000, "text drawn: {}", dark(&loss_px));
        // The log-scale loss variant draws too.
        let [log_loss, _] = plot_run_with(dir.path(), true).unwrap();
        assert!(count(&pixels(&log_loss), TRAIN) > 200);
    }

    #[test]
    fn bar_lengths_follow_the_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bars.png");
        bar_chart(&p, "Corpus by language", &[("Rust".into(), 40.0), ("Python".into(), 10.0)], "MB").unwrap();
        let raw = pixels(&p);
        // Bar pixels per row: the first bar is four times the second.
        let widths: Vec<usize> = raw.chunks(3 * W as usize).map(|row| count(row, BAR)).filter(|&n| n > 0).collect();
        let (long, short) = (*widths.iter().max().unwrap(), *widths.iter().min().unwrap());
        assert!((long as f64 / short as f64 - 4.0).abs() < 0.1, "{long} vs {short}");
    }

    #[test]
    fn spread_bars_and_line_charts_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("spread.png");
        bar_chart_with_spread(&p, "bpb", &[("a".into(), 2.0, 0.1), ("b".into(), 2.5, 0.05), ("c".into(), f64::NAN, 0.0)], "bpb").unwrap();
        let raw = pixels(&p);
        let widths: Vec<usize> = raw.chunks(3 * W as usize).map(|row| count(row, BAR)).filter(|&n| n > 0).collect();
        assert!(widths.iter().max().unwrap() > widths.iter().min().unwrap(), "bars differ in length: {widths:?}");
        let q = dir.path().join("lines.png");
        line_chart(&q, "loss", &[("a".into(), vec![(0.0, 3.0), (10.0, 2.0)]), ("b".into(), vec![(0.0, 3.5), (10.0, 2.5)])]).unwrap();
        let raw = pixels(&q);
        assert!(count(&raw, PALETTE[0]) > 0 && count(&raw, PALETTE[1]) > 0 && count(&raw, PALETTE[2]) == 0);
        // No points at all: a titled empty chart, not an error.
        let e = dir.path().join("empty.png");
        line_chart(&e, "loss", &[]).unwrap();
        assert_eq!(count(&pixels(&e), PALETTE[0]), 0);
    }
}
