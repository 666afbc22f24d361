//! The CSV form of a KPI report: one line for the total, then one per group.

use super::group::{GroupKey, KpiReport};
use super::{Kpis, Median, Rate};

const HEADER: &[&str] = &[
    "row",
    "unit",
    "category",
    "channel",
    "period",
    "received",
    "response_rate",
    "response_on_time",
    "response_decided",
    "response_clock",
    "contact_in_time_rate",
    "contact_on_time",
    "contact_decided",
    "contact_clock",
    "on_time_reply_rate",
    "reply_on_time",
    "reply_decided",
    "reply_clock",
    "completion_rate",
    "completed",
    "completion_due",
    "completion_clock",
    "rated",
    "mean_rating",
    "satisfied_rate",
    "median_sign_ms",
    "median_contact_ms",
    "median_reply_ms",
    "time_clock",
    "supervised",
    "escalated",
    "clock_skew_flagged",
];

/// A field as CSV writes it: quoted when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn clock(r: &Rate) -> &'static str {
    r.clock.as_str()
}

fn rate(r: &Rate) -> [String; 4] {
    [
        opt(r.value.map(|v| format!("{v:.4}"))),
        r.numerator.to_string(),
        r.denominator.to_string(),
        clock(r).to_owned(),
    ]
}

fn median(m: &Median) -> String {
    opt(m.median_ms)
}

fn line(row: &str, key: &GroupKey, k: &Kpis) -> String {
    let mut cells = vec![
        row.to_owned(),
        opt(key.unit.as_ref()),
        opt(key.category),
        opt(key.channel),
        opt(key.period.as_ref()),
        k.received.to_string(),
    ];
    for r in [
        &k.response_rate,
        &k.contact_in_time_rate,
        &k.on_time_reply_rate,
        &k.completion_rate,
    ] {
        cells.extend(rate(r));
    }
    cells.push(k.satisfaction.rated.to_string());
    cells.push(opt(k.satisfaction.mean_rating.map(|v| format!("{v:.2}"))));
    cells.push(opt(k.satisfaction.satisfied.value.map(|v| format!("{v:.4}"))));
    cells.push(median(&k.median_time_to_sign));
    cells.push(median(&k.median_time_to_contact));
    cells.push(median(&k.median_time_to_reply));
    cells.push(clock(&k.response_rate).to_owned());
    cells.push(k.supervised.to_string());
    cells.push(k.escalated.to_string());
    cells.push(k.clock_skew_flagged.to_string());
    cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",")
}

impl KpiReport {
    /// The report as CSV (RFC 4180, `\r\n` line ends), a header line first.
    pub fn to_csv(&self) -> String {
        let mut out = HEADER.join(",");
        out.push_str("\r\n");
        out.push_str(&line("total", &GroupKey::default(), &self.total));
        out.push_str("\r\n");
        for g in &self.groups {
            out.push_str(&line("group", &g.key, &g.kpis));
            out.push_str("\r\n");
        }
        out
    }
}
