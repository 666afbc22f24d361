//! The village directory: coverage (households with a reachable contact over all households)
//! per village and per officer within a unit (`GET /api/reports/coverage`), a village's
//! households (`GET /api/units/{village}/directory`) and the form that adds or edits one
//! (`PUT …/households/{id}`). Coverage is sync-core's (`directory::coverage`).

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use sync_core::wire::CoverageRow;

use super::{Chrome, Desk, Nav, error_page, refusal_words, units_below, wire};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::chart::{self, Bar};
use crate::web::csrf::Form;
use crate::web::pages;

struct Line {
    id: String,
    name: String,
    households: u32,
    reachable: u32,
    rate: String,
    low: bool,
}

fn line(r: &CoverageRow, fallback: &str) -> Line {
    Line {
        id: r.id.clone().unwrap_or_default(),
        name: r
            .name
            .clone()
            .or_else(|| r.id.clone())
            .unwrap_or_else(|| fallback.to_owned()),
        households: r.households,
        reachable: r.reachable,
        rate: r.rate.map_or_else(|| "—".to_owned(), |v| format!("{:.0}%", v * 100.0)),
        // Below nine in ten reachable: the village needs door visits.
        low: r.rate.is_some_and(|v| v < 0.9),
    }
}

struct House {
    id: String,
    name: String,
    representative: String,
    phone: String,
    group: String,
    officer: String,
    address: String,
    moved_out: bool,
}

#[derive(Template)]
#[template(path = "console/directory.html")]
struct DirectoryPage {
    chrome: Chrome,
    units: Vec<(String, String)>,
    unit: String,
    total: Line,
    villages: Vec<Line>,
    officers: Vec<Line>,
    chart: String,
    /// The village opened (`?village=`), its name and households.
    village: Option<(String, String)>,
    houses: Vec<House>,
    errors: Vec<String>,
}

async fn build(
    app: &AppState,
    desk: &Desk,
    unit: &str,
    village: Option<&str>,
    errors: Vec<String>,
) -> Result<DirectoryPage, ApiError> {
    let report = crate::api::directory::report(app, desk.principal(), unit).await?;
    let villages: Vec<Line> = report.villages.iter().map(|r| line(r, "")).collect();
    let officers: Vec<Line> = report.officers.iter().map(|r| line(r, "未分配民警")).collect();
    let chart = chart::bars(
        "各村联系覆盖率",
        &report
            .villages
            .iter()
            .map(|r| Bar {
                label: r.name.clone().unwrap_or_default(),
                value: r.rate.unwrap_or(0.0),
                text: format!(
                    "{}/{}户 {}",
                    r.reachable,
                    r.households,
                    r.rate.map_or_else(|| "—".to_owned(), |v| format!("{:.0}%", v * 100.0))
                ),
            })
            .collect::<Vec<_>>(),
    );
    let (village, houses) = match village {
        Some(v) => {
            let dir = crate::api::directory::get(app, desk.principal(), v).await?;
            let mut houses = Vec::with_capacity(dir.households.len());
            for h in dir.households {
                let officer = match &h.officer {
                    Some(o) => match app.storage.auth().get_user(o).await {
                        Ok(Some(u)) => u.display_name,
                        _ => o.to_string(),
                    },
                    None => String::new(),
                };
                houses.push(House {
                    id: h.id.to_string(),
                    name: h.name,
                    representative: h.representative_name.unwrap_or_default(),
                    phone: h.phone.unwrap_or_default(),
                    group: h.group_tag.unwrap_or_default(),
                    officer,
                    address: h.address.unwrap_or_default(),
                    moved_out: h.moved_out,
                });
            }
            let name = super::unit_name(app, &dir.village);
            (Some((dir.village.to_string(), name)), houses)
        }
        None => (None, Vec::new()),
    };
    Ok(DirectoryPage {
        chrome: desk.chrome(Nav::Directory),
        units: units_below(app, desk.principal()),
        unit: report.unit.to_string(),
        total: line(&report.total, ""),
        villages,
        officers,
        chart,
        village,
        houses,
        errors,
    })
}

/// `GET /directory?unit=&village=`.
pub async fn page(State(app): State<AppState>, desk: Desk, RawQuery(raw): RawQuery) -> Response {
    let q = Form::parse(raw.unwrap_or_default().as_bytes());
    let unit = q
        .get("unit")
        .map(str::to_owned)
        .or_else(|| super::dashboard::default_unit(&app, desk.principal()))
        .unwrap_or_default();
    match build(&app, &desk, &unit, q.get("village"), Vec::new()).await {
        Ok(p) => pages::render(&p),
        Err(e) => error_page(e),
    }
}

/// `POST /directory/{village}/households`: adds or edits one household.
pub async fn save(
    State(app): State<AppState>,
    desk: Desk,
    headers: HeaderMap,
    Path(village): Path<String>,
    form: Form,
) -> Response {
    let unit = form.get("unit").unwrap_or_default().to_owned();
    let result = async {
        let household = form
            .get("household")
            .ok_or_else(|| ApiError::BadRequest("请填写户编号".into()))?;
        let mut edit = json!({ "name": form.get("name").unwrap_or_default() });
        for key in ["representative_name", "phone", "group_tag", "officer", "address"] {
            if let Some(v) = form.get(key) {
                edit[key] = json!(v);
            }
        }
        edit["moved_out"] = json!(form.get("moved_out").is_some());
        let edit = wire(edit)?;
        crate::api::directory::put_household(&app, desk.principal(), &village, household, edit).await
    }
    .await;
    let here = format!(
        "/directory?unit={}&village={}",
        crate::web::encode_query(&unit),
        crate::web::encode_query(&village)
    );
    match result {
        Ok(_) => pages::see_other(&headers, &here),
        Err(e @ (ApiError::Refused(_) | ApiError::Forbidden(_) | ApiError::BadRequest(_))) => {
            let status = e.status_code();
            match build(&app, &desk, &unit, Some(&village), refusal_words(&e)).await {
                Ok(p) => pages::render_status(status, &p),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}
