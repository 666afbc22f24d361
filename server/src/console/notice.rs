//! A notice's receipt report (`GET /api/notices/{id}/report`): how many households it reached,
//! each household's delivered / read / forwarded receipts as they arrive (the table reloads
//! itself from the live stream), and the households not reached as a list to print for a
//! door visit.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use sync_core::{Timestamp, UnitId};

use super::{Chrome, Desk, Nav, error_page, unit_name};
use crate::state::AppState;
use crate::web::{format, pages};

#[derive(Deserialize)]
struct Delivery {
    household_id: String,
    name: Option<String>,
    village_unit: Option<String>,
    delivered_at: Option<i64>,
    read_at: Option<i64>,
    forwarded_at: Option<i64>,
}

#[derive(Deserialize)]
struct Report {
    households: usize,
    delivered: usize,
    read: usize,
    forwarded: usize,
    reached: usize,
    deliveries: Vec<Delivery>,
}

struct Row {
    household: String,
    village: String,
    delivered: String,
    read: String,
    forwarded: String,
    reached: bool,
}

#[derive(Template)]
#[template(path = "console/notice.html")]
struct NoticePage {
    chrome: Chrome,
    id: String,
    title: String,
    kind: &'static str,
    body: String,
    households: usize,
    delivered: usize,
    read: usize,
    forwarded: usize,
    reached: usize,
    rows: Vec<Row>,
    printed: String,
}

/// `GET /notices/{id}`.
pub async fn page(State(app): State<AppState>, desk: Desk, Path(id): Path<String>) -> Response {
    let notice = match crate::api::notices::get(&app, desk.principal(), &id).await {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let report = match crate::api::notices::report(&app, desk.principal(), &id).await {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let report: Report = match serde_json::to_value(report).and_then(serde_json::from_value) {
        Ok(r) => r,
        Err(e) => return error_page(crate::error::ApiError::Internal(e.to_string())),
    };
    let when = |t: Option<i64>| {
        t.map(|t| format::datetime(Timestamp::from_millis(t)))
            .unwrap_or_default()
    };
    let mut rows: Vec<Row> = report
        .deliveries
        .iter()
        .map(|d| Row {
            household: d.name.clone().unwrap_or_else(|| d.household_id.clone()),
            village: d
                .village_unit
                .as_deref()
                .and_then(|u| UnitId::new(u).ok())
                .map(|u| unit_name(&app, &u))
                .unwrap_or_default(),
            delivered: when(d.delivered_at),
            read: when(d.read_at),
            forwarded: when(d.forwarded_at),
            reached: d.delivered_at.is_some() || d.read_at.is_some() || d.forwarded_at.is_some(),
        })
        .collect();
    // Not reached first: they are the door visits.
    rows.sort_by(|a, b| a.reached.cmp(&b.reached).then(a.village.cmp(&b.village)));
    pages::render(&NoticePage {
        chrome: desk.chrome(Nav::Notices),
        id,
        title: notice.title,
        kind: super::notices::kind_word(notice.kind),
        body: notice.body,
        households: report.households,
        delivered: report.delivered,
        read: report.read,
        forwarded: report.forwarded,
        reached: report.reached,
        rows,
        printed: format::full_datetime(app.clock.now()),
    })
}
