//! My queue: the petitions of the reader's jurisdiction, newest first, with each clock's state
//! in words and colour, filters, and live updates from the inbox stream.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use sync_core::clocks::{ClockKind, ClockState};
use sync_core::petition::{PetitionClock, Status};
use sync_core::{Category, Channel, Timestamp, UnitId};

use super::{Chrome, Desk, Nav, error_page, unit_name, wire};
use crate::http::ApiQuery;
use crate::state::AppState;
use crate::web::csrf::Form;
use crate::web::{format, labels, pages};

/// One petition of a list page as the API answers it (`GET /api/petitions`).
#[derive(Debug, Deserialize)]
pub struct ListItem {
    pub doc_id: String,
    pub title: String,
    pub channel: Channel,
    pub category: Category,
    pub status: Status,
    pub lead: Option<UnitId>,
    #[serde(default)]
    pub assists: Vec<UnitId>,
    pub location: UnitId,
    pub submitted_at: Option<Timestamp>,
    /// The earliest deadline of an unmet clock (sync-core's summary).
    #[serde(default)]
    pub next_due: Option<Timestamp>,
    #[serde(default)]
    pub overdue: bool,
    #[serde(default)]
    pub supervised: bool,
    #[serde(default)]
    pub escalations: u32,
    #[serde(default)]
    pub awaiting_handler: bool,
    #[serde(default)]
    pub clocks: Vec<PetitionClock>,
}

/// A clock as a coloured chip: "签收 已超时 12分钟".
pub struct Chip {
    pub text: String,
    pub class: &'static str,
}

pub fn chip(c: &PetitionClock, now: Timestamp) -> Chip {
    let (word, class) = labels::clock_state(&c.state);
    let detail = match c.state {
        ClockState::Pending { due_at } | ClockState::DueSoon { due_at } => {
            format!(
                "，还剩{}（{}截止）",
                format::duration(due_at.millis() - now.millis()),
                format::datetime(due_at)
            )
        }
        ClockState::Overdue { overdue_by_ms, .. } => format::duration(overdue_by_ms),
        ClockState::MetLate { late_by_ms, .. } => format!("，晚了{}", format::duration(late_by_ms)),
        ClockState::MetOnTime { .. } => String::new(),
    };
    Chip {
        text: format!("{}{}{}", labels::clock(c.kind), word, detail),
        class,
    }
}

pub struct Row {
    pub href: String,
    pub title: String,
    pub status: &'static str,
    pub status_code: &'static str,
    pub channel: &'static str,
    pub category: &'static str,
    pub lead: String,
    pub assists: String,
    pub submitted: String,
    pub chips: Vec<Chip>,
    pub overdue: bool,
    pub supervised: bool,
    pub escalated: bool,
    pub awaiting: bool,
}

impl Row {
    pub fn new(app: &AppState, item: &ListItem, now: Timestamp) -> Row {
        // Met-on-time clocks are noise in a queue; running and late ones are the point.
        let chips = item
            .clocks
            .iter()
            .filter(|c| {
                !matches!(c.state, ClockState::MetOnTime { .. })
                    || c.kind == ClockKind::Reply && item.status == Status::Replied
            })
            .map(|c| chip(c, now))
            .collect();
        Row {
            href: format!("/petitions/{}", item.doc_id),
            title: item.title.clone(),
            status: labels::status(item.status),
            status_code: item.status.as_str(),
            channel: labels::channel(item.channel),
            category: labels::category(item.category),
            lead: item.lead.as_ref().map_or_else(|| "—".to_owned(), |u| unit_name(app, u)),
            assists: item
                .assists
                .iter()
                .map(|u| unit_name(app, u))
                .collect::<Vec<_>>()
                .join("、"),
            submitted: item.submitted_at.map(format::datetime).unwrap_or_default(),
            chips,
            overdue: item.overdue,
            supervised: item.supervised,
            escalated: item.escalations > 0,
            awaiting: item.awaiting_handler,
        }
    }
}

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage {
    chrome: Chrome,
    rows: Vec<Row>,
    filters: Filters,
    statuses: Vec<(&'static str, &'static str)>,
    categories: Vec<(&'static str, &'static str)>,
    channels: Vec<(&'static str, &'static str)>,
    units: Vec<(String, String)>,
    /// This page's query string, for the live refresh.
    query: String,
    next: Option<String>,
}

#[derive(Default)]
struct Filters {
    status: String,
    category: String,
    channel: String,
    unit: String,
    overdue: bool,
    /// Most urgent first (the earliest unmet deadline), instead of newest first.
    urgent: bool,
}

/// How many petitions the urgent order is taken over: the API lists newest first, so the
/// page reads this many and orders them by their deadlines.
const URGENT_WINDOW: u32 = 200;

/// `GET /queue?status=&category=&channel=&unit=&overdue=1&sort=urgent&before=`.
pub async fn page(State(app): State<AppState>, desk: Desk, RawQuery(raw): RawQuery) -> Response {
    let form = Form::parse(raw.as_deref().unwrap_or("").as_bytes());
    let filters = Filters {
        status: form.get("status").unwrap_or_default().to_owned(),
        category: form.get("category").unwrap_or_default().to_owned(),
        channel: form.get("channel").unwrap_or_default().to_owned(),
        unit: form.get("unit").unwrap_or_default().to_owned(),
        overdue: form.get("overdue").is_some(),
        urgent: form.get("sort") == Some("urgent"),
    };
    let mut request = json!({ "limit": if filters.urgent { URGENT_WINDOW } else { 50 } });
    for (key, value) in [
        ("status", &filters.status),
        ("category", &filters.category),
        ("channel", &filters.channel),
        ("unit", &filters.unit),
    ] {
        if !value.is_empty() {
            request[key] = json!(value);
        }
    }
    if filters.overdue {
        request["overdue"] = json!(true);
    }
    if let Some(before) = form.get("before").filter(|_| !filters.urgent) {
        request["before"] = json!(before);
    }
    let result = async {
        let query = wire(request)?;
        crate::http::api::list_petitions(State(app.clone()), desk.session.auth.clone(), ApiQuery(query)).await
    }
    .await;
    let page = match result {
        Ok(axum::Json(page)) => page,
        Err(e) => return error_page(e),
    };
    let now = app.docs.now();
    let mut items = Vec::with_capacity(page.items.len());
    for item in page.items {
        match serde_json::to_value(&item).and_then(serde_json::from_value::<ListItem>) {
            Ok(item) => items.push(item),
            Err(e) => tracing::warn!(error = %e, "list item the console cannot read"),
        }
    }
    if filters.urgent {
        // The earliest unmet deadline first (overdue ones are the earliest); petitions with
        // no running clock last, newest first among themselves (the API's order).
        items.sort_by_key(|i| i.next_due.map_or(i64::MAX, |t| t.millis()));
    }
    let rows: Vec<Row> = items.iter().map(|i| Row::new(&app, i, now)).collect();
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, v) in [
        ("status", &filters.status),
        ("category", &filters.category),
        ("channel", &filters.channel),
        ("unit", &filters.unit),
    ] {
        if !v.is_empty() {
            query.push((k.to_owned(), v.clone()));
        }
    }
    if filters.overdue {
        query.push(("overdue".into(), "1".into()));
    }
    if filters.urgent {
        query.push(("sort".into(), "urgent".into()));
    }
    let qs = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&query)
        .finish();
    let next = page.next.filter(|_| !filters.urgent).map(|n| {
        let mut q = query.clone();
        q.push(("before".into(), n));
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&q)
            .finish()
    });
    pages::render(&QueuePage {
        chrome: desk.chrome(Nav::Queue),
        rows,
        filters,
        statuses: Status::ALL.iter().map(|s| (s.as_str(), labels::status(*s))).collect(),
        categories: Category::ALL
            .iter()
            .map(|c| (c.as_str(), labels::category(*c)))
            .collect(),
        channels: Channel::ALL.iter().map(|c| (c.as_str(), labels::channel(*c))).collect(),
        units: super::units_below(&app, desk.principal()),
        query: qs,
        next,
    })
}
