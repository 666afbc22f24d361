//! The director's dashboard: the KPI report (`GET /api/reports/kpi`) of a unit for a period,
//! by the units below it, by category and over time, drawn as SVG on the server; the
//! supervised and overdue petitions (`GET /api/petitions`); the report as CSV.
//!
//! Every figure is sync-core's (`kpi`), computed by the API's operation for the reader; the
//! page only picks the query and draws the answer.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sync_core::kpi::{KpiReport, Kpis, Median, Rate};
use sync_core::{Category, Channel, Principal, Timestamp, UnitId};

use super::queue::{ListItem, Row};
use super::{Chrome, Desk, Nav, error_page, unit_name, units_below, wire};
use crate::api::reports::KpiQuery;
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::chart::{self, Bar, Column};
use crate::web::csrf::Form;
use crate::web::{format, labels, pages};

const DAY_MS: i64 = 86_400_000;

/// The report a page or a CSV asks for, read from the query string.
struct Asked {
    unit: String,
    category: String,
    channel: String,
    /// `day`, `week` or `month`.
    period: String,
    /// `YYYY-MM-DD`, Beijing time; `to` is inclusive as people say it.
    from: String,
    to: String,
}

impl Asked {
    fn read(app: &AppState, desk: &Desk, raw: Option<&str>) -> Asked {
        let q = Form::parse(raw.unwrap_or("").as_bytes());
        let now = app.docs.now();
        let get = |k: &str| q.get(k).unwrap_or_default().to_owned();
        let unit = match q.get("unit") {
            Some(u) => u.to_owned(),
            None => default_unit(app, desk.principal()).unwrap_or_default(),
        };
        let period = match q.get("period") {
            Some(p @ ("day" | "week" | "month")) => p.to_owned(),
            _ => "day".to_owned(),
        };
        Asked {
            unit,
            category: get("category"),
            channel: get("channel"),
            period,
            from: q
                .get("from")
                .map(str::to_owned)
                .unwrap_or_else(|| format::date(Timestamp::from_millis(now.millis() - 29 * DAY_MS))),
            to: q.get("to").map(str::to_owned).unwrap_or_else(|| format::date(now)),
        }
    }

    /// The API's query, grouped by `group` (empty: the total only).
    fn query(&self, group: &str) -> Result<KpiQuery, ApiError> {
        let from = format::parse_date(&self.from)
            .ok_or_else(|| ApiError::BadRequest(format!("起始日期 {:?} 不是有效日期", self.from)))?;
        let to = format::parse_date(&self.to)
            .ok_or_else(|| ApiError::BadRequest(format!("截止日期 {:?} 不是有效日期", self.to)))?;
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(KpiQuery {
            from: from.millis(),
            to: Some(to.millis() + DAY_MS),
            unit: nonempty(&self.unit),
            category: nonempty(&self.category),
            channel: nonempty(&self.channel),
            group: nonempty(group),
            format: None,
        })
    }

    fn query_string(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("unit", &self.unit),
                ("category", &self.category),
                ("channel", &self.channel),
                ("period", &self.period),
                ("from", &self.from),
                ("to", &self.to),
            ])
            .finish()
    }
}

/// The reader's first unit with a role that reads reports: leaders first (the director's
/// county), then the rest.
pub(super) fn default_unit(app: &AppState, who: &Principal) -> Option<String> {
    use sync_core::org::Role;
    let org = app.docs.org();
    [Role::Leader, Role::Admin, Role::Officer, Role::DepartmentStaff]
        .iter()
        .find_map(|r| who.units_with(*r).find(|u| org.get(u).is_some()))
        .map(|u| u.to_string())
}

fn percent(r: &Rate) -> String {
    match r.value {
        Some(v) => format!("{:.0}%", v * 100.0),
        None => "—".to_owned(),
    }
}

fn median(m: &Median) -> String {
    m.median_ms.map(format::duration).unwrap_or_else(|| "—".to_owned())
}

/// One line of a KPI table.
struct Line {
    /// A stable id for the row (`u-station-east`, `c-help`, `total`).
    key: String,
    name: String,
    received: u32,
    response: String,
    contact: String,
    reply: String,
    completion: String,
    satisfied: String,
    to_sign: String,
    to_reply: String,
    supervised: u32,
    escalated: u32,
}

impl Line {
    fn new(key: String, name: String, k: &Kpis) -> Line {
        Line {
            key,
            name,
            received: k.received,
            response: percent(&k.response_rate),
            contact: percent(&k.contact_in_time_rate),
            reply: percent(&k.on_time_reply_rate),
            completion: percent(&k.completion_rate),
            satisfied: percent(&k.satisfaction.satisfied),
            to_sign: median(&k.median_time_to_sign),
            to_reply: median(&k.median_time_to_reply),
            supervised: k.supervised,
            escalated: k.escalated,
        }
    }
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    units: Vec<(String, String)>,
    categories: Vec<(&'static str, &'static str)>,
    channels: Vec<(&'static str, &'static str)>,
    asked_unit: String,
    asked_category: String,
    asked_channel: String,
    period: String,
    from: String,
    to: String,
    query: String,
    unit_name: String,
    total: Line,
    by_unit: Vec<Line>,
    by_category: Vec<Line>,
    unit_chart: String,
    category_chart: String,
    time_chart: String,
    supervised: Vec<Row>,
    overdue: Vec<Row>,
    /// Which times the figures were computed on, in words.
    clock_note: &'static str,
    /// Petitions with device and receipt times far apart.
    skew_flagged: u32,
    evaluated: String,
}

async fn report(app: &AppState, desk: &Desk, asked: &Asked, group: &str) -> Result<KpiReport, ApiError> {
    crate::api::reports::kpi(app, desk.principal(), &asked.query(group)?).await
}

/// Petitions of the reader's jurisdiction from the list operation, as queue rows.
async fn listed(app: &AppState, desk: &Desk, request: serde_json::Value) -> Result<Vec<ListItem>, ApiError> {
    let page = crate::api::petitions::list(app, desk.principal(), wire(request)?).await?;
    let mut out = Vec::with_capacity(page.items.len());
    for item in page.items {
        match serde_json::to_value(&item).and_then(serde_json::from_value::<ListItem>) {
            Ok(i) => out.push(i),
            Err(e) => tracing::warn!(error = %e, "list item the console cannot read"),
        }
    }
    Ok(out)
}

/// Whether a petition's holder is within the report's unit (the lead, else its location),
/// so the lists below the charts are the same petitions the figures count.
fn within(app: &AppState, item: &ListItem, unit: Option<&UnitId>) -> bool {
    let Some(unit) = unit else { return true };
    let holder = item.lead.as_ref().unwrap_or(&item.location);
    app.docs.org().is_within(holder, unit)
}

/// `GET /dashboard?unit=&category=&channel=&period=&from=&to=`.
pub async fn page(State(app): State<AppState>, desk: Desk, RawQuery(raw): RawQuery) -> Response {
    let asked = Asked::read(&app, &desk, raw.as_deref());
    let result = async {
        let total = report(&app, &desk, &asked, "").await?;
        let by_unit = report(&app, &desk, &asked, "unit").await?;
        let by_category = report(&app, &desk, &asked, "category").await?;
        let over_time = report(&app, &desk, &asked, &asked.period).await?;
        let mut base = json!({ "limit": 200 });
        for (k, v) in [("category", &asked.category), ("channel", &asked.channel)] {
            if !v.is_empty() {
                base[k] = json!(v);
            }
        }
        let recent = listed(&app, &desk, base.clone()).await?;
        let mut overdue_q = base;
        overdue_q["overdue"] = json!(true);
        let overdue = listed(&app, &desk, overdue_q).await?;
        Ok::<_, ApiError>((total, by_unit, by_category, over_time, recent, overdue))
    }
    .await;
    let (total, by_unit, by_category, over_time, recent, overdue) = match result {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let now = app.docs.now();
    let unit = total.query.unit.clone();
    let unit_lines: Vec<Line> = by_unit
        .groups
        .iter()
        .filter_map(|g| {
            let u = g.key.unit.as_ref()?;
            Some(Line::new(format!("u-{u}"), unit_name(&app, u), &g.kpis))
        })
        .collect();
    let category_lines: Vec<Line> = by_category
        .groups
        .iter()
        .filter_map(|g| {
            let c = g.key.category?;
            Some(Line::new(format!("c-{c}"), labels::category(c).to_owned(), &g.kpis))
        })
        .collect();
    let unit_chart = chart::bars(
        "各单位收件数与按时答复率",
        &unit_lines
            .iter()
            .map(|l| Bar {
                label: l.name.clone(),
                value: f64::from(l.received),
                text: format!("{}件 按时{}", l.received, l.reply),
            })
            .collect::<Vec<_>>(),
    );
    let category_chart = chart::bars(
        "各类别收件数与满意率",
        &category_lines
            .iter()
            .map(|l| Bar {
                label: l.name.clone(),
                value: f64::from(l.received),
                text: format!("{}件 满意{}", l.received, l.satisfied),
            })
            .collect::<Vec<_>>(),
    );
    let time_chart = chart::columns(
        "收件数（柱）与按时答复率（线）",
        "按时答复率",
        &over_time
            .groups
            .iter()
            .map(|g| Column {
                label: g
                    .key
                    .period
                    .clone()
                    .unwrap_or_default()
                    .trim_end_matches("/week")
                    .to_owned(),
                value: f64::from(g.kpis.received),
                rate: g.kpis.on_time_reply_rate.value,
            })
            .collect::<Vec<_>>(),
    );
    let supervised: Vec<Row> = recent
        .iter()
        .filter(|i| i.supervised && within(&app, i, unit.as_ref()))
        .map(|i| Row::new(&app, i, now))
        .collect();
    let overdue: Vec<Row> = overdue
        .iter()
        .filter(|i| within(&app, i, unit.as_ref()))
        .map(|i| Row::new(&app, i, now))
        .collect();
    let clock_note = labels::clock_basis(total.total.response_rate.clock);
    let skew_flagged = total.total.clock_skew_flagged;
    pages::render(&DashboardPage {
        chrome: desk.chrome(Nav::Dashboard),
        units: units_below(&app, desk.principal()),
        categories: Category::ALL
            .iter()
            .map(|c| (c.as_str(), labels::category(*c)))
            .collect(),
        channels: Channel::ALL.iter().map(|c| (c.as_str(), labels::channel(*c))).collect(),
        query: asked.query_string(),
        unit_name: unit.as_ref().map(|u| unit_name(&app, u)).unwrap_or_default(),
        total: Line::new("total".into(), "合计".into(), &total.total),
        by_unit: unit_lines,
        by_category: category_lines,
        unit_chart,
        category_chart,
        time_chart,
        supervised,
        overdue,
        clock_note,
        skew_flagged,
        evaluated: format::full_datetime(total.now),
        asked_unit: asked.unit,
        asked_category: asked.category,
        asked_channel: asked.channel,
        period: asked.period,
        from: asked.from,
        to: asked.to,
    })
}

/// `GET /dashboard/kpi.csv?…`: the report grouped by unit, category and period, as the API's
/// CSV (`format=csv`).
pub async fn csv(State(app): State<AppState>, desk: Desk, RawQuery(raw): RawQuery) -> Response {
    let asked = Asked::read(&app, &desk, raw.as_deref());
    let group = format!("unit,category,{}", asked.period);
    match report(&app, &desk, &asked, &group).await {
        Ok(r) => (
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8"),
                (CONTENT_DISPOSITION, "attachment; filename=\"kpi.csv\""),
            ],
            r.to_csv(),
        )
            .into_response(),
        Err(e) => error_page(e),
    }
}
