//! The duty roster of a unit: who is on duty now, the week as a 7×24 grid (gaps in red when the
//! unit promises 7×24 cover), and the shifts as a form. The roster is the API's
//! (`GET`/`PUT /api/units/{id}/roster`); which shifts are valid and who may be on them is
//! decided there.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use sync_core::notify::Roster;
use sync_core::{Timestamp, UnitId, UserId};

use super::{Chrome, Desk, Nav, error_page, staff_units, unit_name};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::csrf::Form;
use crate::web::{format, pages};

const DAYS: [(&str, &str); 7] = [
    ("monday", "周一"),
    ("tuesday", "周二"),
    ("wednesday", "周三"),
    ("thursday", "周四"),
    ("friday", "周五"),
    ("saturday", "周六"),
    ("sunday", "周日"),
];

struct ShiftRow {
    index: usize,
    name: String,
    days: Vec<bool>,
    start: String,
    end: String,
    members: String,
}

struct GridRow {
    day: &'static str,
    cells: Vec<(String, &'static str)>,
}

#[derive(Template)]
#[template(path = "console/roster.html")]
struct RosterPage {
    chrome: Chrome,
    units: Vec<(String, String)>,
    unit: String,
    unit_name: String,
    exists: bool,
    on_duty: String,
    shift: String,
    next_handover: String,
    covers_7x24: bool,
    grid: Vec<GridRow>,
    hours: Vec<u32>,
    shifts: Vec<ShiftRow>,
    days: Vec<(&'static str, &'static str)>,
    errors: Vec<String>,
}

async fn name_of(app: &AppState, id: &UserId) -> String {
    match app.storage.auth().get_user(id).await {
        Ok(Some(u)) => u.display_name,
        _ => id.to_string(),
    }
}

/// The week grid: who the roster has on duty at the start of each hour, in the calendar's
/// local time (sync-core's `Roster::on_duty`).
async fn grid(app: &AppState, roster: &Roster) -> Vec<GridRow> {
    let cal = &app.docs.settings().calendar;
    // 1970-01-05 was a Monday; its local midnight, in UTC milliseconds.
    let monday = 4 * 86_400_000 - i64::from(cal.utc_offset_minutes()) * 60_000;
    let mut names = std::collections::BTreeMap::new();
    let mut rows = Vec::with_capacity(7);
    for (d, (_, day)) in DAYS.iter().enumerate() {
        let mut cells = Vec::with_capacity(24);
        for h in 0..24 {
            let at = Timestamp::from_millis(monday + (d as i64 * 24 + h) * 3_600_000);
            let mut who = Vec::new();
            for u in roster.on_duty(cal, at) {
                if !names.contains_key(&u) {
                    let n = name_of(app, &u).await;
                    names.insert(u.clone(), n);
                }
                who.push(names[&u].clone());
            }
            let class = if who.is_empty() { "gap" } else { "duty" };
            cells.push((who.join("、"), class));
        }
        rows.push(GridRow { day, cells });
    }
    rows
}

async fn build(app: &AppState, desk: &Desk, unit: &str, view: Option<Value>, errors: Vec<String>) -> RosterPage {
    let mut page = RosterPage {
        chrome: desk.chrome(Nav::Roster),
        units: staff_units(app, desk.principal()),
        unit: unit.to_owned(),
        unit_name: UnitId::new(unit)
            .map(|u| unit_name(app, &u))
            .unwrap_or_else(|_| unit.to_owned()),
        exists: view.is_some(),
        on_duty: String::new(),
        shift: String::new(),
        next_handover: String::new(),
        covers_7x24: false,
        grid: Vec::new(),
        hours: (0..24).collect(),
        shifts: Vec::new(),
        days: DAYS.to_vec(),
        errors,
    };
    if let Some(view) = view {
        let mut on = Vec::new();
        for id in view["on_duty"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
        {
            if let Ok(u) = UserId::new(id) {
                on.push(name_of(app, &u).await);
            }
        }
        page.on_duty = if on.is_empty() {
            "无人值班".to_owned()
        } else {
            on.join("、")
        };
        page.shift = view["shift"].as_str().unwrap_or_default().to_owned();
        page.next_handover = view["next_handover"]
            .as_i64()
            .map(|t| format::datetime(Timestamp::from_millis(t)))
            .unwrap_or_default();
        if let Ok(roster) = Roster::from_json(&view["roster"].to_string()) {
            page.covers_7x24 = roster.covers_7x24();
            page.grid = grid(app, &roster).await;
            for (index, s) in roster.shifts().iter().enumerate() {
                let days = serde_json::to_value(&s.days).unwrap_or_default();
                page.shifts.push(ShiftRow {
                    index,
                    name: s.name.clone().unwrap_or_default(),
                    days: DAYS
                        .iter()
                        .map(|(code, _)| days.as_array().is_some_and(|a| a.iter().any(|d| d == code)))
                        .collect(),
                    start: serde_json::to_value(s.start)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    end: serde_json::to_value(s.end)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    members: s.members.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(" "),
                });
            }
        }
    }
    // Two blank rows for new shifts.
    for _ in 0..2 {
        let index = page.shifts.len();
        page.shifts.push(ShiftRow {
            index,
            name: String::new(),
            days: vec![false; 7],
            start: String::new(),
            end: String::new(),
            members: String::new(),
        });
    }
    page
}

async fn view(app: &AppState, desk: &Desk, unit: &str) -> Result<Option<Value>, ApiError> {
    match crate::http::inbox::get_roster(State(app.clone()), desk.session.auth.clone(), Path(unit.to_owned())).await {
        Ok(axum::Json(v)) => Ok(Some(
            serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))?,
        )),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `GET /roster?unit=`.
pub async fn page(State(app): State<AppState>, desk: Desk, RawQuery(raw): RawQuery) -> Response {
    let q = Form::parse(raw.as_deref().unwrap_or("").as_bytes());
    let mine = staff_units(&app, desk.principal());
    let Some(unit) = q
        .get("unit")
        .map(str::to_owned)
        .or_else(|| mine.first().map(|(u, _)| u.clone()))
    else {
        return pages::message(axum::http::StatusCode::NOT_FOUND, "没有值班表", "您不属于任何单位。");
    };
    match view(&app, &desk, &unit).await {
        Ok(v) => pages::render(&build(&app, &desk, &unit, v, Vec::new()).await),
        Err(e) => error_page(e),
    }
}

/// The roster JSON the form describes (`PUT /api/units/{id}/roster`): one shift per row that
/// names members or a start; blank rows are left out.
fn roster_json(unit: &str, form: &Form) -> Value {
    let mut shifts = Vec::new();
    for i in 0..64 {
        let field = |k: &str| form.get(&format!("{k}_{i}")).unwrap_or_default().to_owned();
        let members: Vec<String> = field("members")
            .split([' ', ',', '，', '、'])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if members.is_empty() && field("start").is_empty() {
            continue;
        }
        let mut shift = json!({
            "days": form.all(&format!("days_{i}")),
            "start": field("start"),
            "end": field("end"),
            "members": members,
        });
        if !field("name").is_empty() {
            shift["name"] = json!(field("name"));
        }
        shifts.push(shift);
    }
    json!({ "unit": unit, "covers_7x24": form.get("covers_7x24").is_some(), "shifts": shifts })
}

/// `POST /roster/{unit}`: replaces the roster. Refused: the form again with the reason.
pub async fn save(
    State(app): State<AppState>,
    desk: Desk,
    headers: HeaderMap,
    Path(unit): Path<String>,
    form: Form,
) -> Response {
    let body = roster_json(&unit, &form).to_string();
    match crate::http::inbox::put_roster(State(app.clone()), desk.session.auth.clone(), Path(unit.clone()), body).await
    {
        Ok(_) => pages::see_other(&headers, &format!("/roster?unit={}", crate::web::encode_query(&unit))),
        Err(e @ (ApiError::BadRequest(_) | ApiError::Forbidden(_))) => {
            let status = e.status_code();
            let words = vec![match &e {
                ApiError::Forbidden(m) => format!("您不能修改这个值班表：{m}"),
                other => format!("值班表有误：{other}"),
            }];
            match view(&app, &desk, &unit).await {
                Ok(v) => pages::render_status(status, &build(&app, &desk, &unit, v, words).await),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}
