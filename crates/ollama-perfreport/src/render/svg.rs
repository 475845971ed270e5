//! Inline SVG charts: line charts (linear or log x axis), a change chart with confidence
//! intervals and threshold bands, and paired before/after bars.
//!
//! Hand-written because the page must open offline with no script or font: every chart is
//! plain SVG text with the page's own font stack, sized by `viewBox` so it scales.

use std::fmt::Write as _;

use crate::verdict::Verdict;

/// Base ("before") colour.
pub(crate) const BASE: &str = "#5b6b8c";
/// Candidate ("after") colour.
pub(crate) const CANDIDATE: &str = "#e0702b";
/// Colours for several series (trends, throughput groups).
pub(crate) const PALETTE: [&str; 8] = [
    "#1f77b4", "#e0702b", "#2ca02c", "#9467bd", "#8c564b", "#d62728", "#17becf", "#7f7f7f",
];

pub(crate) fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Regressed => "#c62828",
        Verdict::Improved => "#2e7d32",
        Verdict::Unchanged => "#757575",
        Verdict::Inconclusive => "#d99a00",
    }
}

/// Escapes text for SVG and HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number in about four significant digits, without trailing zeros.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    let s = if a == 0.0 {
        return "0".into();
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        return format!("{v:.2e}");
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// One line of a line chart.
pub(crate) struct Line {
    pub(crate) label: String,
    pub(crate) colour: String,
    /// `(x, y)` points in drawing order.
    pub(crate) points: Vec<(f64, f64)>,
    /// Optional vertical error bars `(x, lo, hi)`.
    pub(crate) bars: Vec<(f64, f64, f64)>,
    /// Draw markers at the points (for sparse series).
    pub(crate) markers: bool,
}

/// Axis settings of a line chart.
pub(crate) struct Axes<'a> {
    pub(crate) title: &'a str,
    pub(crate) x_label: &'a str,
    pub(crate) y_label: &'a str,
    pub(crate) x_log: bool,
    /// Tick labels for the x axis instead of numbers (index -> text), for trends.
    pub(crate) x_names: Option<&'a [String]>,
    /// Force the y range to start at zero.
    pub(crate) y_zero: bool,
}

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 64.0;

/// "Nice" linear ticks covering `[lo, hi]`.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    // Up to the first tick at or above `hi`, so the axis ends on a labelled value.
    let mut t = Vec::new();
    let mut v = start;
    while t.len() < 20 {
        t.push(v);
        if v >= hi - step * 1e-9 {
            break;
        }
        v += step;
    }
    t
}

/// Ticks at 1, 2, 5 times powers of ten within `[lo, hi]` (both positive).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut t = Vec::new();
    let mut p = 10f64.powf(lo.log10().floor());
    while p <= hi * 1.0001 && t.len() < 40 {
        for m in [1.0, 2.0, 5.0] {
            let v = p * m;
            if v >= lo * 0.9999 && v <= hi * 1.0001 {
                t.push(v);
            }
        }
        p *= 10.0;
    }
    t
}

/// A line chart; returns `None` when there is nothing to draw.
pub(crate) fn line_chart(axes: &Axes<'_>, lines: &[Line]) -> Option<String> {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|l| {
        l.points
            .iter()
            .map(|p| p.1)
            .chain(l.bars.iter().flat_map(|b| [b.1, b.2]))
    });
    let xs: Vec<f64> = xs
        .filter(|x| x.is_finite() && (!axes.x_log || *x > 0.0))
        .collect();
    let ys: Vec<f64> = ys.filter(|y| y.is_finite()).collect();
    if xs.is_empty() || ys.is_empty() {
        return None;
    }
    let (mut x0, mut x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let (mut y0, mut y1) = (
        ys.iter().copied().fold(f64::INFINITY, f64::min),
        ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    if axes.y_zero {
        y0 = y0.min(0.0);
    }
    if axes.x_names.is_some() {
        // Categories: half a step of room on both sides so end labels are not clipped.
        x0 -= 0.5;
        x1 += 0.5;
    } else if !axes.x_log && x1 > x0 {
        // Room for markers at the ends.
        let pad = (x1 - x0) * 0.05;
        x0 -= pad;
        x1 += pad;
    } else if x1 <= x0 {
        if axes.x_log {
            x0 /= 2.0;
            x1 *= 2.0;
        } else {
            x0 -= 1.0;
            x1 += 1.0;
        }
    }
    if y1 <= y0 {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
        y0 -= pad;
        y1 += pad;
    }
    let y_ticks = linear_ticks(y0, y1);
    y0 = y0.min(*y_ticks.first().unwrap_or(&y0));
    y1 = y1.max(*y_ticks.last().unwrap_or(&y1));
    let x_ticks = if axes.x_log && x1 / x0 < 10.0 {
        // Less than a decade: 1-2-5 ticks would leave the axis bare; linear ones still
        // read correctly on a log axis.
        linear_ticks(x0, x1)
            .into_iter()
            .filter(|t| *t >= x0 && *t <= x1)
            .collect()
    } else if axes.x_log {
        log_ticks(x0, x1)
    } else if axes.x_names.is_some() {
        (0..xs.len())
            .map(|i| i as f64)
            .filter(|i| *i <= x1)
            .collect()
    } else {
        linear_ticks(x0, x1)
    };
    if !axes.x_log && axes.x_names.is_none() {
        x0 = x0.min(*x_ticks.first().unwrap_or(&x0));
        x1 = x1.max(*x_ticks.last().unwrap_or(&x1));
    }
    let (lx0, lx1) = if axes.x_log {
        (x0.log10(), x1.log10())
    } else {
        (x0, x1)
    };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| {
        let v = if axes.x_log { x.log10() } else { x };
        LEFT + (v - lx0) / (lx1 - lx0) * pw
    };
    let sy = |y: f64| TOP + (1.0 - (y - y0) / (y1 - y0)) * ph;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(axes.title)
    );
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="18" class="ct">{}</text>"#,
        esc(axes.title)
    );
    for &t in &y_ticks {
        let y = sy(t);
        let _ = write!(
            s,
            r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            num(t)
        );
    }
    for (i, &t) in x_ticks.iter().enumerate() {
        let x = sx(t);
        let label = match axes.x_names {
            Some(names) => names.get(t as usize).cloned().unwrap_or_default(),
            None => num(t),
        };
        // Dense log ticks: label only 1, 2, 5 when few, else only powers of ten.
        let show = if axes.x_log && x_ticks.len() > 9 {
            (t.log10().fract()).abs() < 1e-9
        } else {
            axes.x_names
                .is_none_or(|_| i % x_ticks.len().div_ceil(8).max(1) == 0)
        };
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" class="grid"/>"#,
            H - BOTTOM
        );
        if show {
            let _ = write!(
                s,
                r#"<text x="{x:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                H - BOTTOM + 16.0,
                esc(&label)
            );
        }
    }
    let _ = write!(
        s,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="frame"/>"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - BOTTOM + 34.0,
        esc(axes.x_label)
    );
    let _ = write!(
        s,
        r#"<text transform="translate(14 {}) rotate(-90)" class="axis" text-anchor="middle">{}</text>"#,
        TOP + ph / 2.0,
        esc(axes.y_label)
    );
    for l in lines {
        let pts: Vec<String> = l
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && (!axes.x_log || p.0 > 0.0))
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        if pts.len() > 1 {
            let _ = write!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                pts.join(" "),
                l.colour
            );
        }
        for &(x, lo, hi) in &l.bars {
            let _ = write!(
                s,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{c}" stroke-width="1.5"/><line x1="{:.1}" x2="{:.1}" y1="{lo:.1}" y2="{lo:.1}" stroke="{c}"/><line x1="{:.1}" x2="{:.1}" y1="{hi:.1}" y2="{hi:.1}" stroke="{c}"/>"#,
                sy(lo),
                sy(hi),
                sx(x) - 4.0,
                sx(x) + 4.0,
                sx(x) - 4.0,
                sx(x) + 4.0,
                x = sx(x),
                lo = sy(lo),
                hi = sy(hi),
                c = l.colour
            );
        }
        if l.markers || pts.len() == 1 {
            for &(x, y) in &l.points {
                if x.is_finite() && y.is_finite() && (!axes.x_log || x > 0.0) {
                    let _ = write!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"#,
                        sx(x),
                        sy(y),
                        l.colour
                    );
                }
            }
        }
    }
    // Legend under the axis label, wrapping onto as many rows as it needs; the SVG grows
    // by one row height per extra row.
    let mut lx = LEFT;
    let mut ly = H - 12.0;
    for l in lines {
        let width = 26.0 + 6.5 * l.label.chars().count() as f64;
        if lx > LEFT && lx + width > W {
            lx = LEFT;
            ly += 16.0;
        }
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="{}" width="14" height="4" fill="{}"/><text x="{:.1}" y="{ly}" class="legend">{}</text>"#,
            ly - 5.0,
            l.colour,
            lx + 18.0,
            esc(&l.label)
        );
        lx += width + 12.0;
    }
    s.push_str("</svg>");
    let height = ly + 8.0;
    if height > H {
        s = s.replacen(
            &format!(r#"viewBox="0 0 {W} {H}""#),
            &format!(r#"viewBox="0 0 {W} {height}""#),
            1,
        );
    }
    Some(s)
}

/// One row of a change chart.
pub(crate) struct ChangeRow {
    pub(crate) label: String,
    /// Relative change, percent, oriented so that positive is worse.
    pub(crate) worse_pct: f64,
    /// Its interval, same orientation.
    pub(crate) ci: Option<(f64, f64)>,
    /// Threshold, percent.
    pub(crate) threshold: f64,
    pub(crate) verdict: Verdict,
}

/// A forest plot of changes ("worse" to the right), with each row's threshold band.
pub(crate) fn change_chart(title: &str, rows: &[ChangeRow]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let row_h = 22.0;
    let left = 150.0;
    let right = 96.0;
    let top = 40.0;
    let height = top + row_h * rows.len() as f64 + 30.0;
    // Range: the data and the thresholds, clamped so one huge change does not flatten the
    // rest; values past the edge are drawn at the edge with an arrow.
    let mut extent: f64 = 10.0;
    for r in rows {
        // A threshold widened past 100% by a noise floor would flatten every other row;
        // such a band is simply drawn to the edge.
        if r.threshold <= 100.0 {
            extent = extent.max(r.threshold * 1.2);
        }
        extent = extent.max(r.worse_pct.abs().min(200.0) * 1.1);
        if let Some((lo, hi)) = r.ci {
            extent = extent
                .max(lo.abs().min(200.0) * 1.05)
                .max(hi.abs().min(200.0) * 1.05);
        }
    }
    let pw = W - left - right;
    let sx = |v: f64| left + (v.clamp(-extent, extent) + extent) / (2.0 * extent) * pw;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{t}"><title>{t}</title><text x="{left}" y="18" class="ct">{t}</text>"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="32" class="tick" text-anchor="start">← better</text><text x="{:.1}" y="32" class="tick" text-anchor="end">worse →</text>"#,
        left,
        left + pw
    );
    for t in linear_ticks(-extent, extent) {
        if t.abs() > extent {
            continue;
        }
        let x = sx(t);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{}%</text>"#,
            height - 26.0,
            height - 12.0,
            num(t)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}" stroke="#333" stroke-width="1"/>"##,
        height - 26.0,
        x = sx(0.0)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64 + row_h / 2.0;
        let c = verdict_colour(r.verdict);
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#e8eef7"/>"##,
            sx(-r.threshold),
            y - row_h / 2.0 + 2.0,
            sx(r.threshold) - sx(-r.threshold),
            row_h - 4.0
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + 4.0,
            esc(&r.label)
        );
        if let Some((lo, hi)) = r.ci {
            let _ = write!(
                s,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{c}" stroke-width="3" stroke-linecap="round"/>"#,
                sx(lo),
                sx(hi)
            );
        }
        let _ = write!(
            s,
            r#"<circle cx="{:.1}" cy="{y:.1}" r="4.5" fill="{c}"/>"#,
            sx(r.worse_pct)
        );
        if r.worse_pct.abs() > extent {
            // Off the scale: an arrow at the edge and the value beside it, inside the plot.
            let (anchor, dx, arrow) = if r.worse_pct > 0.0 {
                ("end", -8.0, "▶")
            } else {
                ("start", 8.0, "◀")
            };
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" class="tick" fill="{c}" text-anchor="{anchor}">{:+.0}%</text><text x="{:.1}" y="{:.1}" class="tick" fill="{c}" text-anchor="middle">{arrow}</text>"#,
                sx(r.worse_pct) + dx,
                y + 4.0,
                r.worse_pct,
                sx(r.worse_pct),
                y - 6.0
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="vt" fill="{c}">{}</text>"#,
            left + pw + 14.0,
            y + 4.0,
            r.verdict
        );
    }
    s.push_str("</svg>");
    Some(s)
}

/// One pair of bars: a metric before and after.
pub(crate) struct BarPair {
    pub(crate) label: String,
    pub(crate) unit: String,
    pub(crate) base: f64,
    pub(crate) candidate: f64,
    pub(crate) verdict: Verdict,
}

/// Paired horizontal bars, each pair scaled to its own larger value (units differ by row).
pub(crate) fn bar_pairs(title: &str, pairs: &[BarPair]) -> Option<String> {
    if pairs.is_empty() {
        return None;
    }
    let pair_h = 34.0;
    let left = 150.0;
    let right = 200.0;
    let top = 40.0;
    let height = top + pair_h * pairs.len() as f64 + 12.0;
    let pw = W - left - right;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{t}"><title>{t}</title><text x="{left}" y="18" class="ct">{t}</text>"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r#"<rect x="{left}" y="26" width="14" height="8" fill="{BASE}"/><text x="{:.1}" y="34" class="legend">base</text><rect x="{:.1}" y="26" width="14" height="8" fill="{CANDIDATE}"/><text x="{:.1}" y="34" class="legend">candidate</text>"#,
        left + 18.0,
        left + 70.0,
        left + 88.0
    );
    for (i, p) in pairs.iter().enumerate() {
        let y = top + pair_h * i as f64 + 4.0;
        let max = p.base.abs().max(p.candidate.abs()).max(f64::MIN_POSITIVE);
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + 16.0,
            esc(&p.label)
        );
        for (j, (v, c)) in [(p.base, BASE), (p.candidate, CANDIDATE)]
            .into_iter()
            .enumerate()
        {
            let by = y + j as f64 * 13.0;
            let w = (v.abs() / max * pw).max(1.0);
            let _ = write!(
                s,
                r#"<rect x="{left}" y="{by:.1}" width="{w:.1}" height="11" fill="{c}"/><text x="{:.1}" y="{:.1}" class="tick">{} {}</text>"#,
                left + w + 4.0,
                by + 10.0,
                num(v),
                esc(&p.unit)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="vt" fill="{}" text-anchor="end">{}</text>"#,
            W - 4.0,
            y + 16.0,
            verdict_colour(p.verdict),
            p.verdict
        );
    }
    s.push_str("</svg>");
    Some(s)
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_cover_the_range() {
        let t = linear_ticks(0.0, 97.0);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap_or(&0.0) >= 97.0);
        assert!(t.len() <= 8);
        let l = log_ticks(3.0, 900.0);
        assert_eq!(l, vec![5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]);
        assert_eq!(num(5.0), "5");
        assert_eq!(num(100.0), "100");
        assert_eq!(num(0.62), "0.62");
        assert_eq!(num(1234.4), "1234");
    }

    #[test]
    fn text_is_escaped_and_empty_charts_are_none() {
        assert_eq!(esc("<a&b>\""), "&lt;a&amp;b&gt;&quot;");
        let axes = Axes {
            title: "t",
            x_label: "x",
            y_label: "y",
            x_log: true,
            x_names: None,
            y_zero: false,
        };
        assert!(line_chart(&axes, &[]).is_none());
        let svg = line_chart(
            &axes,
            &[Line {
                label: "<s>".into(),
                colour: BASE.into(),
                points: vec![(1.0, 0.0), (10.0, 50.0), (100.0, 100.0)],
                bars: Vec::new(),
                markers: false,
            }],
        )
        .unwrap_or_default();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("&lt;s&gt;") && !svg.contains("<s>"));
        assert!(change_chart("c", &[]).is_none());
        assert!(bar_pairs("b", &[]).is_none());
    }
}
