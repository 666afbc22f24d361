//! Charts drawn on the server as inline SVG: horizontal bars (one per unit or category) and
//! columns over time with an optional rate line. No chart library and no script: the figures
//! are the API's, this only draws them. Sized by a `viewBox` 360 units wide so a phone shows
//! the text at its natural size and a desk scales it up to the card's width.

use std::fmt::Write as _;

/// One bar: its label, its value and the text printed after it.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
}

/// One column of a time chart: the period, the count drawn as a column, and a rate (0 to 1)
/// drawn as a line point when there is one.
pub struct Column {
    pub label: String,
    pub value: f64,
    pub rate: Option<f64>,
}

const WIDTH: f64 = 360.0;

/// Escapes text for SVG (XML) content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Shortens a label to `max` characters, with an ellipsis.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Horizontal bars, longest scaled to the full width. `title` names the chart for screen
/// readers; each bar carries its label and text as a `<title>` too.
pub fn bars(title: &str, bars: &[Bar]) -> String {
    let row = 26.0;
    let label_w = 118.0;
    let text_w = 92.0;
    let span = WIDTH - label_w - text_w;
    let height = (bars.len().max(1) as f64) * row + 6.0;
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{}"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
    if bars.is_empty() {
        let _ = write!(svg, r#"<text x="4" y="18" class="axis">没有数据</text>"#);
    }
    for (i, b) in bars.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let w = if max > 0.0 {
            (b.value / max * span).max(1.0)
        } else {
            1.0
        };
        let _ = write!(
            svg,
            r#"<g><title>{label}：{text}</title><text x="{lx}" y="{ty}" class="label">{short}</text><rect x="{label_w}" y="{y}" width="{w:.1}" height="{h}" class="bar"/><text x="{vx:.1}" y="{ty}" class="value">{text}</text></g>"#,
            label = esc(&b.label),
            text = esc(&b.text),
            short = esc(&clip(&b.label, 8)),
            lx = label_w - 6.0,
            ty = y + 15.0,
            h = row - 8.0,
            vx = label_w + w + 4.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Columns over time (counts), with the rate of each period as a line on a 0–100% scale
/// when `columns` carry rates. Labels are thinned out so they never overlap.
pub fn columns(title: &str, rate_name: &str, columns: &[Column]) -> String {
    let height = 170.0;
    let (top, bottom, left, right) = (16.0, 30.0, 8.0, 8.0);
    let plot_h = height - top - bottom;
    let n = columns.len().max(1) as f64;
    // A few periods do not stretch into slabs: a column is at most 40 units wide.
    let slot = ((WIDTH - left - right) / n).min(40.0);
    let max = columns.iter().map(|c| c.value).fold(0.0_f64, f64::max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{}"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
    let _ = write!(
        svg,
        r#"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" class="axis-line"/>"#,
        y = top + plot_h,
        x2 = WIDTH - right
    );
    if columns.is_empty() {
        let _ = write!(svg, r#"<text x="{left}" y="40" class="axis">没有数据</text>"#);
    }
    // At most about eight labels fit across 360 units.
    let every = columns.len().div_ceil(8).max(1);
    let mut points = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let x = left + i as f64 * slot;
        let h = if max > 0.0 { c.value / max * plot_h } else { 0.0 };
        let rate = c
            .rate
            .map(|r| format!("，{rate_name} {:.0}%", r * 100.0))
            .unwrap_or_default();
        let _ = write!(
            svg,
            r#"<g><title>{label}：{v}件{rate}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" class="bar"/>"#,
            label = esc(&c.label),
            v = c.value,
            rate = esc(&rate),
            x = x + slot * 0.15,
            y = top + plot_h - h,
            w = slot * 0.7,
        );
        if c.value > 0.0 && slot >= 18.0 {
            let _ = write!(
                svg,
                r#"<text x="{cx:.1}" y="{ty:.1}" class="value mid">{v}</text>"#,
                cx = x + slot / 2.0,
                ty = top + plot_h - h - 3.0,
                v = c.value
            );
        }
        svg.push_str("</g>");
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{cx:.1}" y="{ty}" class="axis mid">{l}</text>"#,
                cx = x + slot / 2.0,
                ty = height - 10.0,
                l = esc(&clip(&c.label, 10))
            );
        }
        if let Some(r) = c.rate {
            points.push(format!(
                "{:.1},{:.1}",
                x + slot / 2.0,
                top + plot_h - r.clamp(0.0, 1.0) * plot_h
            ));
        }
    }
    if !points.is_empty() {
        let _ = write!(svg, r#"<polyline points="{}" class="rate"/>"#, points.join(" "));
        for p in &points {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(svg, r#"<circle cx="{x}" cy="{y}" r="2.5" class="rate-dot"/>"#);
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = bars(
            "按单位",
            &[
                Bar {
                    label: "东岭<派出所>".into(),
                    value: 4.0,
                    text: "4件".into(),
                },
                Bar {
                    label: "水利局".into(),
                    value: 2.0,
                    text: "2件".into(),
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("东岭&lt;派出所&gt;") && !svg.contains("<派出所>"));
        // 360 - 118 - 92 = 150 units for the longest bar, half that for the other.
        assert!(svg.contains(r#"width="150.0""#), "{svg}");
        assert!(svg.contains(r#"width="75.0""#), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 2);
    }

    #[test]
    fn columns_draw_counts_and_the_rate_line() {
        let cols: Vec<Column> = (0..3)
            .map(|i| Column {
                label: format!("12-0{i}"),
                value: f64::from(i),
                rate: (i > 0).then_some(0.5),
            })
            .collect();
        let svg = columns("按日", "按时答复率", &cols);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("按时答复率 50%"));
        assert!(columns("空", "率", &[]).contains("没有数据"));
    }
}
