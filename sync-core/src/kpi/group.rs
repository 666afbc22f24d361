//! A KPI report: the petitions of a period and filters, grouped as asked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KpiContext, KpiRow, Kpis, kpis};
use crate::channel::{Category, Channel};
use crate::clocks::Calendar;
use crate::ids::UnitId;
use crate::org::OrgTree;
use crate::time::Timestamp;

/// The length of a period group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PeriodLength {
    Day,
    /// Monday to Sunday, local time.
    Week,
    Month,
}

/// What a report's rows are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Dimension {
    /// The unit holding the petition (its lead), rolled up to the units
    /// directly below the report's unit: each row is a unit with its subtree.
    Unit,
    Category,
    Channel,
    /// The period the petition was submitted in.
    Period(PeriodLength),
}

impl Dimension {
    /// Reads `unit`, `category`, `channel`, `day`, `week` or `month`.
    pub fn parse(s: &str) -> Option<Dimension> {
        Some(match s {
            "unit" => Dimension::Unit,
            "category" => Dimension::Category,
            "channel" => Dimension::Channel,
            "day" => Dimension::Period(PeriodLength::Day),
            "week" => Dimension::Period(PeriodLength::Week),
            "month" => Dimension::Period(PeriodLength::Month),
            _ => return None,
        })
    }
}

/// The values of a row's grouping dimensions (absent: not grouped by it).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// `2025-03-04` (day), `2025-03-03/week` (the Monday), `2025-03` (month).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

/// One row of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KpiGroup {
    pub key: GroupKey,
    pub kpis: Kpis,
}

/// What a report covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportQuery {
    /// Submitted at or after.
    pub from: Timestamp,
    /// Submitted before.
    pub to: Timestamp,
    /// Only petitions whose lead lies in this unit's subtree.
    #[serde(default)]
    pub unit: Option<UnitId>,
    #[serde(default)]
    pub category: Option<Category>,
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub group_by: Vec<Dimension>,
}

/// A KPI report: its query, when it was evaluated, the total and the groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KpiReport {
    pub query: ReportQuery,
    /// The instant the report was evaluated at.
    pub now: Timestamp,
    pub total: Kpis,
    pub groups: Vec<KpiGroup>,
    /// At a tier with stations below it: when each station in the report's
    /// unit last completed an exchange. Its petitions are counted as of
    /// then: what it did since has not arrived, and a late sync is not late
    /// work (the clocks of what arrives late run on the station's receipts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stations: Vec<StationSync>,
}

/// One station's last exchange with the tier that made the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StationSync {
    /// The unit the station server replicates.
    pub unit: UnitId,
    /// The station server's account.
    pub station: String,
    pub last_sync_at: Timestamp,
}

/// Whether `r` falls in the query's period and filters.
fn selected(r: &KpiRow, q: &ReportQuery, org: &OrgTree) -> bool {
    r.submitted_at.is_some_and(|t| q.from <= t && t < q.to)
        && q.unit.as_ref().is_none_or(|u| org.is_within(&r.holder, u))
        && q.category.is_none_or(|c| c == r.category)
        && q.channel.is_none_or(|c| c == r.channel)
}

/// The row of `unit` under the report's unit: the ancestor of `unit` right
/// below `top` (or `top` itself); without a report unit, `unit` itself.
fn rolled_up(unit: &UnitId, top: Option<&UnitId>, org: &OrgTree) -> UnitId {
    let Some(top) = top else { return unit.clone() };
    let path = org.ancestors_or_self(unit);
    match path.iter().position(|u| *u == top) {
        Some(0) | None => top.clone(),
        Some(i) => path[i - 1].clone(),
    }
}

fn period(at: Timestamp, len: PeriodLength, cal: &Calendar) -> String {
    let d = cal.local_date(at);
    match len {
        PeriodLength::Day => d.to_string(),
        PeriodLength::Week => {
            let monday = d.plus_days(-(d.weekday().index() as i64));
            format!("{monday}/week")
        }
        PeriodLength::Month => format!("{:04}-{:02}", d.year(), d.month()),
    }
}

fn key_of(r: &KpiRow, q: &ReportQuery, org: &OrgTree, cal: &Calendar) -> GroupKey {
    let mut key = GroupKey::default();
    for d in &q.group_by {
        match d {
            Dimension::Unit => key.unit = Some(rolled_up(&r.holder, q.unit.as_ref(), org)),
            Dimension::Category => key.category = Some(r.category),
            Dimension::Channel => key.channel = Some(r.channel),
            Dimension::Period(len) => {
                key.period = r.submitted_at.map(|t| period(t, *len, cal));
            }
        }
    }
    key
}

/// The report of `rows` for `q`, evaluated at `now`: the figures of every
/// selected petition, and of each group of them (groups in key order).
/// `calendar` says where days, weeks and months begin.
pub fn report(rows: &[KpiRow], q: &ReportQuery, org: &OrgTree, calendar: &Calendar, now: Timestamp) -> KpiReport {
    let ctx = KpiContext { end: q.to.min(now) };
    let selected: Vec<&KpiRow> = rows.iter().filter(|r| selected(r, q, org)).collect();
    let mut groups: BTreeMap<GroupKey, Vec<&KpiRow>> = BTreeMap::new();
    if !q.group_by.is_empty() {
        for r in &selected {
            groups.entry(key_of(r, q, org, calendar)).or_default().push(*r);
        }
    }
    KpiReport {
        query: q.clone(),
        now,
        total: kpis(&selected, &ctx),
        groups: groups
            .into_iter()
            .map(|(key, rows)| KpiGroup {
                key,
                kpis: kpis(&rows, &ctx),
            })
            .collect(),
        stations: Vec::new(),
    }
}
