//! A KPI report: the petitions of a period and filters, grouped as asked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KpiContext, KpiInput, Kpis, kpis};
use crate::channel::{Category, Channel};
use crate::clocks::{Calendar, ClockRules};
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
}

/// The unit a petition counts for: its lead (its location while it has none).
fn holder<'a>(i: &'a KpiInput<'_>) -> &'a UnitId {
    i.summary.lead.as_ref().unwrap_or(&i.summary.location)
}

/// Whether `i` falls in the query's period and filters.
fn selected(i: &KpiInput<'_>, q: &ReportQuery, org: &OrgTree) -> bool {
    let s = i.summary;
    s.submitted_at.is_some_and(|t| q.from <= t && t < q.to)
        && q.unit.as_ref().is_none_or(|u| org.is_within(holder(i), u))
        && q.category.is_none_or(|c| c == s.category)
        && q.channel.is_none_or(|c| c == s.channel)
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

fn key_of(i: &KpiInput<'_>, q: &ReportQuery, org: &OrgTree, cal: &Calendar) -> GroupKey {
    let mut key = GroupKey::default();
    for d in &q.group_by {
        match d {
            Dimension::Unit => key.unit = Some(rolled_up(holder(i), q.unit.as_ref(), org)),
            Dimension::Category => key.category = Some(i.summary.category),
            Dimension::Channel => key.channel = Some(i.summary.channel),
            Dimension::Period(len) => {
                key.period = i.summary.submitted_at.map(|t| period(t, *len, cal));
            }
        }
    }
    key
}

/// The report of `inputs` for `q`, evaluated at `now`: the figures of every
/// selected petition, and of each group of them (groups in key order).
pub fn report(
    inputs: &[KpiInput<'_>],
    q: &ReportQuery,
    org: &OrgTree,
    rules: &ClockRules,
    calendar: &Calendar,
    now: Timestamp,
) -> KpiReport {
    let ctx = KpiContext {
        rules,
        calendar,
        end: q.to.min(now),
    };
    let selected: Vec<KpiInput<'_>> = inputs.iter().copied().filter(|i| selected(i, q, org)).collect();
    let mut groups: BTreeMap<GroupKey, Vec<KpiInput<'_>>> = BTreeMap::new();
    if !q.group_by.is_empty() {
        for i in &selected {
            groups.entry(key_of(i, q, org, calendar)).or_default().push(*i);
        }
    }
    KpiReport {
        query: q.clone(),
        now,
        total: kpis(&selected, &ctx),
        groups: groups
            .into_iter()
            .map(|(key, inputs)| KpiGroup {
                key,
                kpis: kpis(&inputs, &ctx),
            })
            .collect(),
    }
}
