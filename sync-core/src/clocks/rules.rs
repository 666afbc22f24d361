//! Time limits per clock, configurable per channel and category.
//!
//! The JSON form is shown on [`ClockRules::from_json`]; every part of it is
//! optional, and missing defaults are the built-in ones.
//!
//! An override sets any of the three limits; each limit is looked up on its
//! own, with precedence channel+category > category > channel > default.
//! Category comes before channel because what a petition is about decides its
//! urgency more than how it arrived.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::calendar::Calendar;
use super::{ClockKind, ClockState};
use crate::channel::{Category, Channel};
use crate::error::SchemaError;
use crate::time::Timestamp;

/// A month of wall time; longer limits are configuration mistakes.
const MAX_WALL_MINUTES: u32 = 31 * 24 * 60;
/// About a year and a half of working days.
const MAX_WORKING_DAYS: u32 = 366;

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitUnit {
    /// Calendar minutes, night, weekend and holiday included (7x24 duty).
    WallMinutes,
    /// Working days of a [`Calendar`]; see [`Calendar::add_working_days`].
    WorkingDays,
}

/// One time limit and its due-soon threshold, in the same unit.
///
/// * Wall minutes: due `amount` minutes after the start, due soon
///   `due_soon_before` minutes before that (`1 <= due_soon_before < amount`).
/// * Working days: due at the end of the `amount`-th working day after the
///   start's local day, due soon from local midnight at the start of the
///   `due_soon_before`-th last working day of the window
///   (`1 <= due_soon_before <= amount`). With the default of 1, a reply is due
///   soon for the whole of its last working day, and a weekend or holiday in
///   between never makes it due soon early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "LimitFile", into = "LimitFile")]
pub struct Limit {
    unit: LimitUnit,
    amount: u32,
    due_soon_before: u32,
}

impl Limit {
    /// A limit of `minutes` wall minutes, due soon `due_soon_before` minutes
    /// before its deadline.
    pub fn wall_minutes(minutes: u32, due_soon_before: u32) -> Result<Limit, SchemaError> {
        Limit {
            unit: LimitUnit::WallMinutes,
            amount: minutes,
            due_soon_before,
        }
        .checked("limit")
    }

    /// A limit of `days` working days, due soon from the start of the
    /// `due_soon_before`-th last of them.
    pub fn working_days(days: u32, due_soon_before: u32) -> Result<Limit, SchemaError> {
        Limit {
            unit: LimitUnit::WorkingDays,
            amount: days,
            due_soon_before,
        }
        .checked("limit")
    }

    /// What the amount and the due-soon threshold count.
    pub fn unit(&self) -> LimitUnit {
        self.unit
    }

    /// Minutes or working days, depending on [`Limit::unit`].
    pub fn amount(&self) -> u32 {
        self.amount
    }

    /// The due-soon threshold, in the same unit as the amount.
    pub fn due_soon_before(&self) -> u32 {
        self.due_soon_before
    }

    /// The deadline of a clock started at `start`: the last millisecond that
    /// is still on time.
    pub fn due_at(&self, cal: &Calendar, start: Timestamp) -> Timestamp {
        match self.unit {
            LimitUnit::WallMinutes => plus_minutes(start, i64::from(self.amount)),
            LimitUnit::WorkingDays => cal.add_working_days(start, self.amount),
        }
    }

    /// The first instant at which a clock started at `start` is due soon.
    pub fn due_soon_at(&self, cal: &Calendar, start: Timestamp) -> Timestamp {
        match self.unit {
            LimitUnit::WallMinutes => plus_minutes(start, i64::from(self.amount) - i64::from(self.due_soon_before)),
            LimitUnit::WorkingDays => {
                // Validation keeps `due_soon_before` within `1..=amount`, so
                // this working day is within the window, at the latest its last.
                let nth = i64::from(self.amount) - i64::from(self.due_soon_before) + 1;
                let day = cal.nth_working_day_after(cal.local_date(start), nth);
                cal.start_of_day(day)
            }
        }
    }

    /// The state at `now` of a clock started at `start` and done at `done_at`.
    pub fn state(&self, cal: &Calendar, start: Timestamp, done_at: Option<Timestamp>, now: Timestamp) -> ClockState {
        ClockState::evaluate(self.due_at(cal, start), self.due_soon_at(cal, start), done_at, now)
    }

    fn checked(self, field: &str) -> Result<Limit, SchemaError> {
        let (name, max, soon_max, soon_rule) = match self.unit {
            LimitUnit::WallMinutes => (
                "wall_minutes",
                MAX_WALL_MINUTES,
                self.amount.saturating_sub(1),
                "1 to one less than the limit",
            ),
            LimitUnit::WorkingDays => ("working_days", MAX_WORKING_DAYS, self.amount, "1 to the limit"),
        };
        if !(1..=max).contains(&self.amount) {
            return Err(invalid(
                format!("{field}.{name}"),
                format!("{} is outside 1..={max}", self.amount),
            ));
        }
        if !(1..=soon_max).contains(&self.due_soon_before) {
            return Err(invalid(
                format!("{field}.due_soon_before"),
                format!(
                    "{} is not within {soon_rule} ({name} is {})",
                    self.due_soon_before, self.amount
                ),
            ));
        }
        Ok(self)
    }
}

fn plus_minutes(t: Timestamp, minutes: i64) -> Timestamp {
    Timestamp::from_millis(t.millis().saturating_add(minutes * 60_000))
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SchemaError {
    SchemaError::InvalidValue {
        field: field.into(),
        reason: reason.into(),
    }
}

/// One limit per [`ClockKind`], indexed by it; `None` where an override
/// leaves the limit to a less specific rule.
type Limits = [Option<Limit>; 3];

/// The time limits for every clock, with per-channel and per-category
/// overrides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RulesFile", into = "RulesFile")]
pub struct ClockRules {
    default: [Limit; 3],
    overrides: BTreeMap<(Option<Channel>, Option<Category>), Limits>,
}

impl Default for ClockRules {
    /// Sign within 10 minutes (due soon 3 minutes before), contact within 30
    /// minutes (due soon 10 minutes before), reply within 5 working days (due
    /// soon on the last of them); no overrides.
    fn default() -> Self {
        ClockRules {
            default: [
                Limit::wall_minutes(10, 3).expect("valid default"),
                Limit::wall_minutes(30, 10).expect("valid default"),
                Limit::working_days(5, 1).expect("valid default"),
            ],
            overrides: BTreeMap::new(),
        }
    }
}

impl ClockRules {
    /// Reads rules from their JSON form, naming the offending field on error.
    ///
    /// ```
    /// use sync_core::{Category, Channel, ClockKind, ClockRules};
    ///
    /// let rules = ClockRules::from_json(
    ///     r#"{
    ///       "default": {
    ///         "sign":    { "wall_minutes": 10, "due_soon_before": 3 },
    ///         "contact": { "wall_minutes": 30, "due_soon_before": 10 },
    ///         "reply":   { "working_days": 5,  "due_soon_before": 1 }
    ///       },
    ///       "overrides": [
    ///         { "channel": "director_mailbox", "category": "complaint",
    ///           "reply": { "working_days": 3, "due_soon_before": 1 } },
    ///         { "category": "lead", "sign": { "wall_minutes": 5, "due_soon_before": 2 } }
    ///       ]
    ///     }"#,
    /// )?;
    /// let reply = rules.limit(ClockKind::Reply, Channel::DirectorMailbox, Category::Complaint);
    /// assert_eq!(reply.amount(), 3);
    /// let sign = rules.limit(ClockKind::Sign, Channel::WalkIn, Category::Lead);
    /// assert_eq!(sign.amount(), 5);
    /// # Ok::<(), sync_core::SchemaError>(())
    /// ```
    pub fn from_json(json: &str) -> Result<ClockRules, SchemaError> {
        let file: RulesFile = serde_json::from_str(json).map_err(|e| invalid("clock_rules", e.to_string()))?;
        ClockRules::try_from(file)
    }

    /// The JSON form read by [`ClockRules::from_json`].
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("clock rules always serialize")
    }

    /// The limit that applies to `kind` for a petition of this channel and
    /// category: channel+category, else category, else channel, else default.
    pub fn limit(&self, kind: ClockKind, channel: Channel, category: Category) -> Limit {
        [
            (Some(channel), Some(category)),
            (None, Some(category)),
            (Some(channel), None),
        ]
        .iter()
        .find_map(|key| self.overrides.get(key)?[kind.index()])
        .unwrap_or(self.default[kind.index()])
    }

    /// The deadline (last on-time millisecond) of the `kind` clock of a
    /// petition of this channel and category whose clock started at `start`.
    pub fn deadline(
        &self,
        cal: &Calendar,
        kind: ClockKind,
        channel: Channel,
        category: Category,
        start: Timestamp,
    ) -> Timestamp {
        self.limit(kind, channel, category).due_at(cal, start)
    }
}

/// The JSON form of a [`Limit`]: exactly one of the two units.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wall_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    working_days: Option<u32>,
    due_soon_before: u32,
}

impl LimitFile {
    fn into_limit(self, field: &str) -> Result<Limit, SchemaError> {
        let (unit, amount) = match (self.wall_minutes, self.working_days) {
            (Some(m), None) => (LimitUnit::WallMinutes, m),
            (None, Some(d)) => (LimitUnit::WorkingDays, d),
            _ => {
                return Err(invalid(field, "needs exactly one of wall_minutes and working_days"));
            }
        };
        Limit {
            unit,
            amount,
            due_soon_before: self.due_soon_before,
        }
        .checked(field)
    }
}

impl TryFrom<LimitFile> for Limit {
    type Error = SchemaError;
    fn try_from(file: LimitFile) -> Result<Limit, SchemaError> {
        file.into_limit("limit")
    }
}

impl From<Limit> for LimitFile {
    fn from(limit: Limit) -> LimitFile {
        let amount = Some(limit.amount);
        let (wall_minutes, working_days) = match limit.unit {
            LimitUnit::WallMinutes => (amount, None),
            LimitUnit::WorkingDays => (None, amount),
        };
        LimitFile {
            wall_minutes,
            working_days,
            due_soon_before: limit.due_soon_before,
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sign: Option<LimitFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact: Option<LimitFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<LimitFile>,
}

impl LimitsFile {
    fn into_limits(self, field: &str) -> Result<Limits, SchemaError> {
        let one = |kind: ClockKind, file: Option<LimitFile>| {
            file.map(|f| f.into_limit(&format!("{field}.{kind}"))).transpose()
        };
        Ok([
            one(ClockKind::Sign, self.sign)?,
            one(ClockKind::Contact, self.contact)?,
            one(ClockKind::Reply, self.reply)?,
        ])
    }

    fn from_limits(limits: Limits) -> LimitsFile {
        let [sign, contact, reply] = limits.map(|l| l.map(LimitFile::from));
        LimitsFile { sign, contact, reply }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    category: Option<Category>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sign: Option<LimitFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact: Option<LimitFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<LimitFile>,
}

/// The JSON form of [`ClockRules`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    default: LimitsFile,
    #[serde(default)]
    overrides: Vec<OverrideFile>,
}

impl TryFrom<RulesFile> for ClockRules {
    type Error = SchemaError;

    fn try_from(file: RulesFile) -> Result<ClockRules, SchemaError> {
        let builtin = ClockRules::default().default;
        let given = file.default.into_limits("clock_rules.default")?;
        let default = [0, 1, 2].map(|i| given[i].unwrap_or(builtin[i]));

        let mut overrides = BTreeMap::new();
        for (i, o) in file.overrides.into_iter().enumerate() {
            let field = format!("clock_rules.overrides[{i}]");
            let key = (o.channel, o.category);
            if key == (None, None) {
                return Err(invalid(
                    field,
                    "names neither a channel nor a category (limits for all petitions go under default)",
                ));
            }
            let limits = LimitsFile {
                sign: o.sign,
                contact: o.contact,
                reply: o.reply,
            }
            .into_limits(&field)?;
            if limits.iter().all(Option::is_none) {
                return Err(invalid(field, "sets none of sign, contact and reply"));
            }
            if overrides.insert(key, limits).is_some() {
                return Err(invalid(
                    field,
                    "repeats the channel and category of an earlier override",
                ));
            }
        }
        Ok(ClockRules { default, overrides })
    }
}

impl From<ClockRules> for RulesFile {
    fn from(rules: ClockRules) -> RulesFile {
        RulesFile {
            default: LimitsFile::from_limits(rules.default.map(Some)),
            overrides: rules
                .overrides
                .into_iter()
                .map(|((channel, category), limits)| {
                    let LimitsFile { sign, contact, reply } = LimitsFile::from_limits(limits);
                    OverrideFile {
                        channel,
                        category,
                        sign,
                        contact,
                        reply,
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    /// An instant in China local time (UTC+8), `YYYY-MM-DD HH:MM`.
    fn cst(s: &str) -> Timestamp {
        let cal = Calendar::default();
        let (d, hm) = s.split_once(' ').unwrap();
        let (h, m) = hm.split_once(':').unwrap();
        let minutes = h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap();
        plus_minutes(cal.start_of_day(d.parse().unwrap()), minutes)
    }

    fn end_cst(d: &str) -> Timestamp {
        Timestamp::from_millis(cst(&format!("{d} 00:00")).millis() + 86_400_000 - 1)
    }

    fn rules(json: &str) -> ClockRules {
        ClockRules::from_json(json).unwrap()
    }

    fn error(json: &str) -> String {
        match ClockRules::from_json(json) {
            Err(SchemaError::InvalidValue { field, reason }) => format!("{field}: {reason}"),
            other => panic!("{json} gave {other:?}"),
        }
    }

    const ANY: (Channel, Category) = (Channel::ChiefLine, Category::Help);

    #[test]
    fn defaults_are_the_published_limits() {
        let r = ClockRules::default();
        let (ch, cat) = ANY;
        assert_eq!(r.limit(ClockKind::Sign, ch, cat), Limit::wall_minutes(10, 3).unwrap());
        assert_eq!(
            r.limit(ClockKind::Contact, ch, cat),
            Limit::wall_minutes(30, 10).unwrap()
        );
        assert_eq!(r.limit(ClockKind::Reply, ch, cat), Limit::working_days(5, 1).unwrap());
        assert_eq!(rules("{}"), r);
    }

    #[test]
    fn wall_minute_clocks_run_through_nights_and_holidays() {
        let (r, cal) = (ClockRules::default(), Calendar::china());
        let (ch, cat) = ANY;
        // 23:55 on the eve of the National Day holiday.
        let start = cst("2025-09-30 23:55");
        assert_eq!(
            r.deadline(&cal, ClockKind::Sign, ch, cat, start),
            cst("2025-10-01 00:05")
        );
        assert_eq!(
            r.deadline(&cal, ClockKind::Contact, ch, cat, start),
            cst("2025-10-01 00:25")
        );
        let sign = r.limit(ClockKind::Sign, ch, cat);
        assert_eq!(sign.due_soon_at(&cal, start), cst("2025-10-01 00:02"));
        let contact = r.limit(ClockKind::Contact, ch, cat);
        assert_eq!(contact.due_soon_at(&cal, start), cst("2025-10-01 00:15"));
    }

    #[test]
    fn sign_clock_transitions_at_exact_minutes() {
        let (cal, sign) = (Calendar::china(), Limit::wall_minutes(10, 3).unwrap());
        let start = cst("2025-10-02 03:00");
        let due = cst("2025-10-02 03:10");
        let state = |now: Timestamp| sign.state(&cal, start, None, now);
        assert_eq!(
            state(cst("2025-10-02 03:07").plus_millis(-1)),
            ClockState::Pending { due_at: due }
        );
        assert_eq!(state(cst("2025-10-02 03:07")), ClockState::DueSoon { due_at: due });
        assert_eq!(state(due), ClockState::DueSoon { due_at: due });
        assert_eq!(
            state(due.plus_millis(1)),
            ClockState::Overdue {
                due_at: due,
                overdue_by_ms: 1
            }
        );
        assert_eq!(
            sign.state(&cal, start, Some(due), due.plus_millis(5 * MINUTE)),
            ClockState::MetOnTime { done_at: due }
        );
        assert_eq!(
            sign.state(&cal, start, Some(due.plus_millis(MINUTE)), due.plus_millis(5 * MINUTE)),
            ClockState::MetLate {
                done_at: due.plus_millis(MINUTE),
                late_by_ms: MINUTE
            }
        );
    }

    #[test]
    fn reply_clock_across_national_day_turns_due_soon_at_local_midnight() {
        let (r, cal) = (ClockRules::default(), Calendar::china());
        let (ch, cat) = ANY;
        let reply = r.limit(ClockKind::Reply, ch, cat);
        // Day 1 is 9 October, day 3 the make-up Saturday 11 October, day 5
        // Tuesday 14 October.
        let start = cst("2025-09-30 10:00");
        let due = end_cst("2025-10-14");
        assert_eq!(r.deadline(&cal, ClockKind::Reply, ch, cat, start), due);
        assert_eq!(reply.due_soon_at(&cal, start), cst("2025-10-14 00:00"));
        let state = |now: Timestamp| reply.state(&cal, start, None, now);
        assert_eq!(state(end_cst("2025-10-13")), ClockState::Pending { due_at: due });
        assert_eq!(state(cst("2025-10-14 00:00")), ClockState::DueSoon { due_at: due });
        assert_eq!(state(due), ClockState::DueSoon { due_at: due });
        assert_eq!(
            state(cst("2025-10-15 00:00")),
            ClockState::Overdue {
                due_at: due,
                overdue_by_ms: 1
            }
        );
        // Due soon 2 working days before: from the start of Monday 13 October,
        // not from the Sunday before it.
        let two = Limit::working_days(5, 2).unwrap();
        assert_eq!(two.due_soon_at(&cal, start), cst("2025-10-13 00:00"));
        // Due soon as many days before as the limit: from the start of day 1.
        let all = Limit::working_days(5, 5).unwrap();
        assert_eq!(all.due_soon_at(&cal, start), cst("2025-10-09 00:00"));
    }

    #[test]
    fn overrides_take_precedence_channel_and_category_then_category_then_channel() {
        let r = rules(
            r#"{
              "default": { "reply": { "working_days": 7, "due_soon_before": 2 } },
              "overrides": [
                { "channel": "director_mailbox",
                  "sign": { "wall_minutes": 5, "due_soon_before": 2 },
                  "reply": { "working_days": 3, "due_soon_before": 1 } },
                { "category": "complaint",
                  "contact": { "wall_minutes": 20, "due_soon_before": 5 },
                  "reply": { "working_days": 4, "due_soon_before": 1 } },
                { "channel": "director_mailbox", "category": "complaint",
                  "reply": { "working_days": 2, "due_soon_before": 1 } },
                { "category": "lead", "sign": { "wall_minutes": 3, "due_soon_before": 1 } }
              ]
            }"#,
        );
        let amount = |kind, ch, cat| r.limit(kind, ch, cat).amount();
        use Category::*;
        use Channel::*;
        use ClockKind::*;
        // Channel+category for reply, category for contact, channel for sign.
        assert_eq!(amount(Reply, DirectorMailbox, Complaint), 2);
        assert_eq!(amount(Contact, DirectorMailbox, Complaint), 20);
        assert_eq!(amount(Sign, DirectorMailbox, Complaint), 5);
        // Category beats channel; channel beats default.
        assert_eq!(amount(Sign, DirectorMailbox, Lead), 3);
        assert_eq!(amount(Reply, DirectorMailbox, Lead), 3);
        assert_eq!(amount(Contact, DirectorMailbox, Lead), 30);
        assert_eq!(amount(Reply, ChiefLine, Complaint), 4);
        assert_eq!(amount(Sign, ChiefLine, Complaint), 10);
        // Nothing matches: the given default, and the built-in ones it omits.
        assert_eq!(r.limit(Reply, ChiefLine, Help), Limit::working_days(7, 2).unwrap());
        assert_eq!(amount(Sign, ChiefLine, Help), 10);
        assert_eq!(amount(Contact, ChiefLine, Help), 30);
        assert_eq!(ClockRules::from_json(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn limit_units_are_chosen_by_the_json_key() {
        let r = rules(
            r#"{"overrides": [{"category": "lead",
                 "reply": {"wall_minutes": 120, "due_soon_before": 30}}]}"#,
        );
        let lead = r.limit(ClockKind::Reply, Channel::WalkIn, Category::Lead);
        assert_eq!(lead.unit(), LimitUnit::WallMinutes);
        let start = cst("2025-10-01 09:00");
        let cal = Calendar::china();
        assert_eq!(lead.due_at(&cal, start), cst("2025-10-01 11:00"));
        assert_eq!(lead.due_soon_at(&cal, start), cst("2025-10-01 10:30"));
        let serde_round_trip: ClockRules = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(serde_round_trip, r);
    }

    #[test]
    fn bad_rules_are_refused_with_the_field_named() {
        let e = error(r#"{"default": {"sign": {"wall_minutes": 10, "working_days": 1, "due_soon_before": 3}}}"#);
        assert!(e.starts_with("clock_rules.default.sign: needs exactly one"), "{e}");
        let e = error(r#"{"default": {"sign": {"due_soon_before": 3}}}"#);
        assert!(e.starts_with("clock_rules.default.sign: needs exactly one"), "{e}");
        let e = error(r#"{"default": {"sign": {"wall_minutes": 10, "due_soon_before": 10}}}"#);
        assert!(e.starts_with("clock_rules.default.sign.due_soon_before"), "{e}");
        let e = error(r#"{"default": {"reply": {"working_days": 5, "due_soon_before": 6}}}"#);
        assert!(e.starts_with("clock_rules.default.reply.due_soon_before"), "{e}");
        let e = error(r#"{"default": {"reply": {"working_days": 5, "due_soon_before": 0}}}"#);
        assert!(e.starts_with("clock_rules.default.reply.due_soon_before"), "{e}");
        let e = error(r#"{"default": {"reply": {"working_days": 0, "due_soon_before": 0}}}"#);
        assert!(e.starts_with("clock_rules.default.reply.working_days"), "{e}");
        let e = error(r#"{"default": {"sign": {"wall_minutes": 100000, "due_soon_before": 3}}}"#);
        assert!(e.starts_with("clock_rules.default.sign.wall_minutes"), "{e}");
        let e = error(r#"{"default": {"sign": {"wall_minutes": -10, "due_soon_before": 3}}}"#);
        assert!(e.starts_with("clock_rules:"), "{e}");
        let e = error(r#"{"overrides": [{"sign": {"wall_minutes": 5, "due_soon_before": 1}}]}"#);
        assert!(e.starts_with("clock_rules.overrides[0]: names neither"), "{e}");
        let e = error(r#"{"overrides": [{"channel": "api"}]}"#);
        assert!(e.starts_with("clock_rules.overrides[0]: sets none"), "{e}");
        let e = error(
            r#"{"overrides": [
                {"channel": "api", "sign": {"wall_minutes": 5, "due_soon_before": 1}},
                {"channel": "api", "reply": {"working_days": 3, "due_soon_before": 1}}]}"#,
        );
        assert!(e.starts_with("clock_rules.overrides[1]: repeats"), "{e}");
        let e = error(
            r#"{"overrides": [{"category": "lead",
                 "contact": {"wall_minutes": 5, "due_soon_before": 9}}]}"#,
        );
        assert!(e.starts_with("clock_rules.overrides[0].contact.due_soon_before"), "{e}");
        let e = error(r#"{"overrides": [{"channel": "fax", "sign": {"wall_minutes": 5, "due_soon_before": 1}}]}"#);
        assert!(e.starts_with("clock_rules:") && e.contains("fax"), "{e}");
        let e = error(r#"{"default": {"answer": {"working_days": 5, "due_soon_before": 1}}}"#);
        assert!(e.contains("unknown field `answer`"), "{e}");
        let e = error(r#"{"default": "#);
        assert!(e.starts_with("clock_rules:"), "{e}");
        assert!(Limit::wall_minutes(0, 0).is_err());
        assert!(Limit::working_days(MAX_WORKING_DAYS + 1, 1).is_err());
    }
}
