//! KPI reports: the figures sync-core's `kpi` module defines, over the
//! petitions a caller's units hold.

use sync_core::access::{self, RoleSet};
use sync_core::kpi::{Dimension, KpiReport, KpiRow, ReportQuery, report};
use sync_core::{Category, Channel, Principal, Timestamp, UnitId};

use super::units::unit_id;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::ReportRows;

/// Who reads reports: staff and administrators over the unit.
const READERS: RoleSet = RoleSet::STAFF_AND_ADMINS;

/// `GET /api/reports/kpi` parameters.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiQuery {
    /// Submitted at or after (milliseconds).
    pub from: i64,
    /// Submitted before (milliseconds); defaults to now.
    pub to: Option<i64>,
    /// The unit, with its subtree; defaults to the caller's own unit when
    /// they hold a role in exactly one.
    pub unit: Option<String>,
    pub category: Option<String>,
    pub channel: Option<String>,
    /// Comma-separated: `unit`, `category`, `channel`, `day`, `week`, `month`.
    pub group: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// The report's unit: the one asked for, or the caller's only unit.
fn report_unit(app: &AppState, who: &Principal, asked: Option<&str>) -> Result<UnitId, ApiError> {
    let org = app.docs.org();
    let unit = match asked {
        Some(u) => unit_id(u)?,
        None => {
            let mut mine: Vec<&UnitId> = who
                .memberships
                .iter()
                .filter(|m| READERS.contains(m.role))
                .map(|m| &m.unit)
                .collect();
            mine.sort();
            mine.dedup();
            match mine.as_slice() {
                [one] => (*one).clone(),
                [] => return Err(ApiError::Forbidden("reports are for staff".into())),
                _ => return Err(bad("name the unit: the caller works in several")),
            }
        }
    };
    if org.get(&unit).is_none() || !access::acts_over(&org, who, READERS, &unit) {
        return Err(ApiError::NotFound(format!("no unit {unit}")));
    }
    Ok(unit)
}

/// `GET /api/reports/kpi`: the KPI report of the petitions submitted in
/// `[from, to)` held within `unit`, filtered by category and channel and
/// grouped as asked (definitions: `sync_core::kpi`).
pub async fn kpi(app: &AppState, who: &Principal, q: &KpiQuery) -> Result<KpiReport, ApiError> {
    let unit = report_unit(app, who, q.unit.as_deref())?;
    let now = app.docs.now();
    let to = q.to.map_or(now, Timestamp::from_millis);
    let from = Timestamp::from_millis(q.from);
    if from >= to {
        return Err(bad("`from` must be before `to`"));
    }
    let category = q
        .category
        .as_deref()
        .map(str::parse::<Category>)
        .transpose()
        .map_err(bad)?;
    let channel = q
        .channel
        .as_deref()
        .map(str::parse::<Channel>)
        .transpose()
        .map_err(bad)?;
    let mut group_by = Vec::new();
    for d in q.group.as_deref().unwrap_or("").split(',').filter(|d| !d.is_empty()) {
        let dim = Dimension::parse(d.trim()).ok_or_else(|| {
            bad(format!(
                "cannot group by {d:?}: use unit, category, channel, day, week or month"
            ))
        })?;
        if !group_by.contains(&dim) {
            group_by.push(dim);
        }
    }
    let org = app.docs.org();
    let settings = app.docs.settings();
    let query = ReportQuery {
        from,
        to,
        unit: Some(unit.clone()),
        category,
        channel,
        group_by,
    };
    let mut report = run(&app.storage, &org, &settings.calendar, query, now).await?;
    // The stations below: when each last synced, so a late sync is not read as late work.
    for s in app.storage.stations().syncs().await? {
        let Ok(id) = sync_core::UserId::new(s.station.clone()) else {
            continue;
        };
        let Some((_, memberships)) = app.storage.auth().user_with_memberships(&id).await? else {
            continue;
        };
        for m in memberships.iter().filter(|m| m.role == sync_core::Role::StationServer) {
            if org.is_within(&m.unit, &unit) {
                report.stations.push(sync_core::kpi::StationSync {
                    unit: m.unit.clone(),
                    station: s.station.clone(),
                    last_sync_at: s.last_sync_at,
                });
            }
        }
    }
    Ok(report)
}

/// What a report over `query` reads.
fn rows_of(org: &sync_core::OrgTree, query: &ReportQuery) -> ReportRows {
    let units: Vec<String> = match &query.unit {
        Some(unit) => org
            .units()
            .filter(|u| org.is_within(&u.id, unit))
            .map(|u| u.id.to_string())
            .collect(),
        None => org.units().map(|u| u.id.to_string()).collect(),
    };
    ReportRows {
        units,
        from: query.from,
        to: query.to,
        category: query.category.map(|c| c.to_string()),
        channel: query.channel.map(|c| c.to_string()),
    }
}

/// Reads the KPI rows of the petitions a report selects (the columns the
/// write path keeps beside each summary) and computes it: the whole of
/// `GET /api/reports/kpi` after its checks (and what `lianxin bench kpi` times).
pub async fn run(
    storage: &crate::storage::Storage,
    org: &sync_core::OrgTree,
    calendar: &sync_core::Calendar,
    query: ReportQuery,
    now: Timestamp,
) -> Result<KpiReport, ApiError> {
    let rows = storage.projections().kpi_rows(&rows_of(org, &query)).await?;
    Ok(report(&rows, &query, org, calendar, now))
}

/// The same report from the stored summaries, decoded one by one: how
/// reports were read before the KPI columns, the baseline `lianxin bench
/// kpi` prints beside [`run`].
pub async fn run_from_summaries(
    storage: &crate::storage::Storage,
    org: &sync_core::OrgTree,
    calendar: &sync_core::Calendar,
    query: ReportQuery,
    now: Timestamp,
) -> Result<KpiReport, ApiError> {
    let stored = storage.projections().report_summaries(&rows_of(org, &query)).await?;
    let rows: Vec<KpiRow> = stored.iter().map(KpiRow::of).collect();
    Ok(report(&rows, &query, org, calendar, now))
}
