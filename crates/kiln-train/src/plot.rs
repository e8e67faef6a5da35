//! `metrics.jsonl` as PNG charts: training loss (with eval loss points) and learning rate over
//! steps. A small self-contained raster plotter and PNG encoder (zlib via flate2), so the trainer
//! needs no plotting library: axes, grid, curves and min/max labels in a built-in 3x5 digit font.

use std::io::Write as _;
use std::path::Path;

use crate::error::{Result, TrainError};
use crate::trainer::StepMetrics;

const W: usize = 800;
const H: usize = 400;
const MARGIN_L: usize = 70;
const MARGIN_R: usize = 20;
const MARGIN_T: usize = 20;
const MARGIN_B: usize = 40;

type Rgb = [u8; 3];
const WHITE: Rgb = [255, 255, 255];
const GRID: Rgb = [225, 225, 225];
const AXIS: Rgb = [60, 60, 60];
const TRAIN: Rgb = [31, 119, 180];
const EVAL: Rgb = [214, 39, 40];
const LR: Rgb = [44, 160, 44];

/// An RGB raster.
struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Canvas { px: WHITE.repeat(W * H) }
    }

    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            let i = 3 * (y as usize * W + x as usize);
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb) {
        // Bresenham.
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text in the 3x5 font at scale 2 (digits, letters as capitals except `e`, a few marks;
    /// other characters blank).
    fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb) {
        let mut prev = ' ';
        for (k, ch) in s.chars().enumerate() {
            // A lower-case e after a digit is an exponent (1.00e-3) and keeps its small glyph;
            // in words it is a capital like every other letter.
            let rows = if ch == 'e' && !prev.is_ascii_digit() { glyph('E') } else { glyph(ch) };
            prev = ch;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    if bits & (0b100 >> col) != 0 {
                        for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.set(x + 8 * k as i64 + 2 * col + ox, y + 2 * r as i64 + oy, c);
                        }
                    }
                }
            }
        }
    }

    fn png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(H * (1 + 3 * W));
        for row in self.px.chunks(3 * W) {
            raw.push(0); // filter: none
            raw.extend_from_slice(row);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw).expect("writing to memory");
        let idat = z.finish().expect("writing to memory");
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend((W as u32).to_be_bytes());
        ihdr.extend((H as u32).to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter method, no interlace
        for (kind, data) in [(b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", Vec::new())] {
            out.extend((data.len() as u32).to_be_bytes());
            let mut crc = crc32fast::Hasher::new();
            crc.update(kind);
            crc.update(&data);
            out.extend(kind);
            out.extend(&data);
            out.extend(crc.finalize().to_be_bytes());
        }
        out
    }
}

/// 3x5 bitmaps, top row first, bit 0b100 = left column.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        // Lower-case e stays small: it is the exponent in axis labels (1.00e-3).
        'e' => [0, 7, 7, 4, 7],
        '#' => [5, 7, 5, 7, 5],
        '/' => [1, 1, 2, 4, 4],
        '%' => [5, 1, 2, 4, 5],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        ':' => [0, 2, 0, 2, 0],
        '_' => [0, 0, 0, 0, 7],
        c if c.is_ascii_alphabetic() => letter(c.to_ascii_uppercase()),
        _ => [0; 5],
    }
}

/// Capital letters of the 3x5 font.
fn letter(c: char) -> [u8; 5] {
    const LETTERS: [[u8; 5]; 26] = [
        [2, 5, 7, 5, 5], // A
        [6, 5, 6, 5, 6], // B
        [3, 4, 4, 4, 3], // C
        [6, 5, 5, 5, 6], // D
        [7, 4, 6, 4, 7], // E
        [7, 4, 6, 4, 4], // F
        [3, 4, 5, 5, 3], // G
        [5, 5, 7, 5, 5], // H
        [7, 2, 2, 2, 7], // I
        [1, 1, 1, 5, 2], // J
        [5, 5, 6, 5, 5], // K
        [4, 4, 4, 4, 7], // L
        [5, 7, 7, 5, 5], // M
        [6, 5, 5, 5, 5], // N
        [2, 5, 5, 5, 2], // O
        [6, 5, 6, 4, 4], // P
        [2, 5, 5, 6, 3], // Q
        [6, 5, 6, 5, 5], // R
        [3, 4, 2, 1, 6], // S
        [7, 2, 2, 2, 2], // T
        [5, 5, 5, 5, 7], // U
        [5, 5, 5, 5, 2], // V
        [5, 5, 7, 7, 5], // W
        [5, 5, 2, 5, 5], // X
        [5, 5, 2, 2, 2], // Y
        [7, 1, 2, 4, 7], // Z
    ];
    LETTERS[(c as u8 - b'A') as usize]
}

/// Colour of the bars of [`bar_chart`].
const BAR: Rgb = [31, 119, 180];

/// A horizontal bar chart PNG: one labelled bar per row (at most 16 rows, the largest first as
/// given), its value printed after it with `unit`, under a title. For tables that read better
/// as a picture (the corpus by language).
pub fn bar_chart(path: &Path, title: &str, rows: &[(String, f64)], unit: &str) -> Result<()> {
    let mut cv = Canvas::new();
    cv.text(10, 8, title, AXIS);
    let rows = &rows[..rows.len().min(16)];
    let max = rows.iter().map(|r| r.1).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let (left, right) = (170i64, (W - 110) as i64);
    let row_h = ((H - 40) / rows.len().max(1)).min(28) as i64;
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = 32 + i as i64 * row_h;
        let label: String = label.chars().take(20).collect();
        cv.text(10, y + (row_h - 10) / 2, &label, AXIS);
        let len = ((value / max).clamp(0.0, 1.0) * (right - left) as f64) as i64;
        for yy in y + 2..y + row_h - 2 {
            cv.line((left, yy), (left + len.max(1), yy), BAR);
        }
        let shown = if *value < 10.0 { format!("{value:.2} {unit}") } else { format!("{value:.1} {unit}") };
        cv.text(left + len + 6, y + (row_h - 10) / 2, &shown, AXIS);
    }
    kiln_base::fs::write_atomic(path, &cv.png()).map_err(|e| TrainError::Io { path: e.path, source: e.source })?;
    Ok(())
}

/// Colours of the series of [`line_chart`], in order (then repeated).
const PALETTE: [Rgb; 8] =
    [[31, 119, 180], [214, 39, 40], [44, 160, 44], [255, 127, 14], [148, 103, 189], [140, 86, 75], [227, 119, 194], [23, 190, 207]];

/// A horizontal bar chart PNG whose bars show a mean and a whisker its spread (mean ± spread),
/// for results over several seeds. The value axis starts at 90% of the smallest `mean -
/// spread` (said in the title line), not at zero, so differences of a few percent show.
pub fn bar_chart_with_spread(path: &Path, title: &str, rows: &[(String, f64, f64)], unit: &str) -> Result<()> {
    let mut cv = Canvas::new();
    let rows = &rows[..rows.len().min(16)];
    let finite: Vec<&(String, f64, f64)> = rows.iter().filter(|r| r.1.is_finite()).collect();
    let lo = finite.iter().map(|r| r.1 - r.2.max(0.0)).fold(f64::MAX, f64::min);
    let hi = finite.iter().map(|r| r.1 + r.2.max(0.0)).fold(f64::MIN, f64::max);
    let (lo, hi) = if finite.is_empty() { (0.0, 1.0) } else { (0.9 * lo.max(0.0), hi.max(lo + f64::MIN_POSITIVE)) };
    cv.text(10, 8, &format!("{title} (axis from {lo:.3})"), AXIS);
    let (left, right) = (170i64, (W - 130) as i64);
    let x_of = |v: f64| left + (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * (right - left) as f64) as i64;
    let row_h = ((H - 40) / rows.len().max(1)).min(28) as i64;
    for (i, (label, mean, spread)) in rows.iter().enumerate() {
        let y = 32 + i as i64 * row_h;
        let label: String = label.chars().take(20).collect();
        cv.text(10, y + (row_h - 10) / 2, &label, AXIS);
        if !mean.is_finite() {
            cv.text(left, y + (row_h - 10) / 2, "no result", AXIS);
            continue;
        }
        let end = x_of(*mean);
        for yy in y + 4..y + row_h - 4 {
            cv.line((left, yy), (end.max(left + 1), yy), BAR);
        }
        let mid = y + row_h / 2;
        let (a, b) = (x_of(mean - spread), x_of(mean + spread));
        cv.line((a, mid), (b, mid), AXIS);
        cv.line((a, mid - 4), (a, mid + 4), AXIS);
        cv.line((b, mid - 4), (b, mid + 4), AXIS);
        cv.text(b.max(end) + 6, y + (row_h - 10) / 2, &format!("{mean:.3} {unit}"), AXIS);
    }
    kiln_base::fs::write_atomic(path, &cv.png()).map_err(|e| TrainError::Io { path: e.path, source: e.source })?;
    Ok(())
}

/// A line chart PNG of several named series of (x, y) points, each in its own colour, with a
/// legend of the names in those colours under the title (e.g. the loss curves of a sweep's arms).
pub fn line_chart(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    let drawn: Vec<Series<'_>> =
        series.iter().enumerate().map(|(i, (_, pts))| (pts.as_slice(), PALETTE[i % PALETTE.len()], false)).collect();
    let mut cv = chart(&drawn, false);
    cv.text(MARGIN_L as i64 + 8, 4, title, AXIS);
    let mut x = MARGIN_L as i64 + 8;
    let mut y = 16;
    for (i, (name, _)) in series.iter().enumerate() {
        let name: String = name.chars().take(24).collect();
        let width = 8 * name.len() as i64 + 16;
        if x + width > (W - MARGIN_R) as i64 {
            (x, y) = (MARGIN_L as i64 + 8, y + 12);
        }
        cv.text(x, y, &name, PALETTE[i % PALETTE.len()]);
        x += width;
    }
    kiln_base::fs::write_atomic(path, &cv.png()).map_err(|e| TrainError::Io { path: e.path, source: e.source })?;
    Ok(())
}

/// A series to draw: its (step, value) points, its colour, and dots (true) or a line (false).
type Series<'a> = (&'a [(f64, f64)], Rgb, bool);

/// One chart: series of (step, value) points, drawn as lines (or dots for sparse series).
fn chart(series: &[Series<'_>], log_y: bool) -> Canvas {
    let mut cv = Canvas::new();
    let pts = series.iter().flat_map(|(s, _, _)| s.iter()).filter(|p| p.1.is_finite() && (!log_y || p.1 > 0.0));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        let y = if log_y { y.log10() } else { y };
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return cv; // nothing to draw
    }
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    if y1 == y0 {
        y1 = y0 + 1.0;
    }
    let (pw, ph) = ((W - MARGIN_L - MARGIN_R) as f64, (H - MARGIN_T - MARGIN_B) as f64);
    let map = |x: f64, y: f64| -> (i64, i64) {
        let y = if log_y { y.log10() } else { y };
        (MARGIN_L as i64 + ((x - x0) / (x1 - x0) * pw) as i64, (MARGIN_T as f64 + (1.0 - (y - y0) / (y1 - y0)) * ph) as i64)
    };
    for k in 0..=4 {
        let y = (MARGIN_T as f64 + ph * k as f64 / 4.0) as i64;
        cv.line((MARGIN_L as i64, y), ((W - MARGIN_R) as i64, y), GRID);
    }
    let (l, b) = (MARGIN_L as i64, (H - MARGIN_B) as i64);
    cv.line((l, MARGIN_T as i64), (l, b), AXIS);
    cv.line((l, b), ((W - MARGIN_R) as i64, b), AXIS);
    let label = |v: f64| if log_y { format!("{:.2e}", 10f64.powf(v)) } else { format!("{v:.3}") };
    cv.text(4, MARGIN_T as i64, &label(y1), AXIS);
    cv.text(4, b - 10, &label(y0), AXIS);
    cv.text(l, b + 12, &format!("{}", x0 as u64), AXIS);
    let last = format!("{}", x1 as u64);
    cv.text((W - MARGIN_R) as i64 - 8 * last.len() as i64, b + 12, &last, AXIS);
    for (s, color, dots) in series {
        let mut prev: Option<(i64, i64)> = None;
        for &(x, y) in s.iter() {
            if !y.is_finite() || (log_y && y <= 0.0) {
                prev = None;
                continue;
            }
            let p = map(x, y);
            if *dots {
                for d in -2..=2 {
                    cv.line((p.0 - 2, p.1 + d), (p.0 + 2, p.1 + d), *color);
                }
            } else if let Some(q) = prev {
                cv.line(q, p, *color);
            }
            prev = Some(p);
        }
    }
    cv
}

/// Reads `run/metrics.jsonl` and writes `run/loss.png` (train loss line, eval loss dots) and
/// `run/lr.png` (learning rate, log scale); returns the two paths.
pub fn plot_run(run: &Path) -> Result<[std::path::PathBuf; 2]> {
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
    for (file, canvas) in
        [(&loss_png, chart(&[(&train, TRAIN, false), (&eval, EVAL, true)], false)), (&lr_png, chart(&[(&lr, LR, false)], true))]
    {
        kiln_base::fs::write_atomic(file, &canvas.png()).map_err(|e| TrainError::Io { path: e.path, source: e.source })?;
    }
    Ok([loss_png, lr_png])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_pngs_with_the_curves() {
        let dir = tempfile::tempdir().unwrap();
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
        lines.push_str(
            &serde_json::to_string(&StepMetrics {
                kind: "eval".into(),
                step: 50,
                loss: f64::NAN,
                lr: 0.0,
                grad_norm: 0.0,
                tokens: 0,
                tokens_per_s: 0.0,
                skipped: false,
            })
            .unwrap()
            .replace("null", "0.5"),
        );
        lines.push('\n');
        std::fs::write(dir.path().join("metrics.jsonl"), lines).unwrap();
        let [loss, lr] = plot_run(dir.path()).unwrap();
        for p in [&loss, &lr] {
            let bytes = std::fs::read(p).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            assert_eq!(&bytes[12..16], b"IHDR");
            assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), W as u32);
            // The IDAT inflates to H rows of 1 + 3W bytes, holding curve-coloured pixels.
            let start = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
            let len = u32::from_be_bytes(bytes[start - 4..start].try_into().unwrap()) as usize;
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&bytes[start + 4..start + 4 + len]), &mut raw).unwrap();
            assert_eq!(raw.len(), H * (1 + 3 * W));
            let colour = if p == &loss { TRAIN } else { LR };
            assert!(has_colour(&raw, colour), "{} has its curve", p.display());
        }
        let bytes = std::fs::read(&loss).unwrap();
        let start = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
        let len = u32::from_be_bytes(bytes[start - 4..start].try_into().unwrap()) as usize;
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&bytes[start + 4..start + 4 + len]), &mut raw).unwrap();
        assert!(has_colour(&raw, EVAL), "eval points drawn");
        assert!(!has_colour(&raw, LR), "no LR curve on the loss chart");
    }

    #[test]
    fn bar_chart_draws_bars_proportional_to_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bars.png");
        bar_chart(&p, "Corpus by language", &[("Rust".into(), 40.0), ("Python".into(), 10.0)], "MB").unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let start = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
        let len = u32::from_be_bytes(bytes[start - 4..start].try_into().unwrap()) as usize;
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&bytes[start + 4..start + 4 + len]), &mut raw).unwrap();
        // Bar pixels per row: the first bar is four times the second.
        let widths: Vec<usize> =
            raw.chunks(1 + 3 * W).map(|row| row[1..].chunks(3).filter(|c| *c == BAR).count()).filter(|&n| n > 0).collect();
        let (long, short) = (*widths.iter().max().unwrap(), *widths.iter().min().unwrap());
        assert!((long as f64 / short as f64 - 4.0).abs() < 0.1, "{long} vs {short}");
        // Labels are drawn in the axis colour left of the bars.
        assert!(raw.chunks(1 + 3 * W).any(|row| row[1..1 + 3 * 160].chunks(3).any(|c| c == AXIS)));
    }

    #[test]
    fn spread_bars_and_line_charts_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("spread.png");
        bar_chart_with_spread(&p, "bpb", &[("a".into(), 2.0, 0.1), ("b".into(), 2.5, 0.05), ("c".into(), f64::NAN, 0.0)], "bpb").unwrap();
        let raw = pixels(&p);
        let widths: Vec<usize> =
            raw.chunks(1 + 3 * W).map(|row| row[1..].chunks(3).filter(|c| *c == BAR).count()).filter(|&n| n > 0).collect();
        assert!(widths.iter().max().unwrap() > widths.iter().min().unwrap(), "bars differ in length: {widths:?}");
        let q = dir.path().join("lines.png");
        line_chart(&q, "loss", &[("a".into(), vec![(0.0, 3.0), (10.0, 2.0)]), ("b".into(), vec![(0.0, 3.5), (10.0, 2.5)])]).unwrap();
        let raw = pixels(&q);
        assert!(has_colour(&raw, PALETTE[0]) && has_colour(&raw, PALETTE[1]) && !has_colour(&raw, PALETTE[2]));
    }

    /// The filtered scanlines of a PNG this module wrote.
    fn pixels(p: &Path) -> Vec<u8> {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let start = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
        let len = u32::from_be_bytes(bytes[start - 4..start].try_into().unwrap()) as usize;
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&bytes[start + 4..start + 4 + len]), &mut raw).unwrap();
        assert_eq!(raw.len(), H * (1 + 3 * W));
        raw
    }

    /// Whether a pixel of `colour` is in the filtered scanlines `raw` (1 filter byte per row).
    fn has_colour(raw: &[u8], colour: Rgb) -> bool {
        raw.chunks(1 + 3 * W).any(|row| row[1..].chunks(3).any(|c| c == colour))
    }
}
