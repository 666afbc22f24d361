//! Petitions: who may record each timeline event and who may write to the
//! conversation, for incoming changes and for the actions a reader is
//! offered alike.

use super::*;

impl Inspector<'_, '_> {
    pub(super) fn check_event(&self, e: &TimelineEvent) -> Result<(), Refusal> {
        let DocFacts::Petition {
            submitter, involved, ..
        } = self.facts
        else {
            return Err(self.refuse(Rule::Malformed, "not a petition"));
        };
        event_refusal(self.ctx, submitter, involved, e).map_err(|(rule, detail)| self.refuse(rule, detail))
    }

    pub(super) fn check_petition_message(&self) -> Result<(), Refusal> {
        let DocFacts::Petition {
            submitter, involved, ..
        } = self.facts
        else {
            return Err(self.refuse(Rule::Malformed, "not a petition"));
        };
        message_refusal(self.ctx, submitter, involved).map_err(|(rule, detail)| self.refuse(rule, detail))
    }
}

/// Whether `ctx.principal` may record `e` on a petition filed by
/// `submitter` and routed to `involved`: the rule and why not, if not.
/// What `check_changes` applies to each new timeline event, and what
/// `petition::allowed_actions` asks of each action a reader might take.
pub fn event_refusal(
    ctx: &PolicyContext<'_>,
    submitter: &UserId,
    involved: &BTreeSet<UnitId>,
    e: &TimelineEvent,
) -> Result<(), (Rule, String)> {
    let p = ctx.principal;
    let staff_over = |roles: RoleSet, unit: &UnitId| crate::access::acts_over(ctx.org, p, roles, unit);
    let unit_exists = |unit: &UnitId| {
        if ctx.org.get(unit).is_some() {
            Ok(())
        } else {
            Err((Rule::UnknownUnit, format!("there is no unit {unit}")))
        }
    };
    let kind = e.kind();
    match kind {
        EventKind::Submitted => {
            return Err((
                Rule::CreationOnly,
                "a petition is submitted once, when it is created".into(),
            ));
        }
        EventKind::Withdrawn if p.user != *submitter => {
            return Err((
                Rule::NotSubmitter,
                "only the resident who filed the petition withdraws it".into(),
            ));
        }
        EventKind::Withdrawn => return Ok(()),
        EventKind::FollowUp | EventKind::Reopened if e.unit.is_none() => {
            if p.user != *submitter {
                return Err((
                    Rule::NotSubmitter,
                    format!("a {kind} without a unit comes from the resident who filed the petition"),
                ));
            }
            return Ok(());
        }
        _ => {}
    }
    let Some(unit) = &e.unit else {
        return Err((Rule::Malformed, format!("a {kind} event names the unit acted for")));
    };
    if !p.is_staff() {
        return Err((Rule::RoleRequired, format!("residents do not record {kind} events")));
    }
    let roles = match kind {
        EventKind::Supervised => RoleSet::LEADERS,
        EventKind::Transferred | EventKind::Escalated | EventKind::AssistsChanged => OFFICERS,
        _ => HANDLERS,
    };
    if !involved.contains(unit) {
        return Err((
            Rule::NotInJurisdiction,
            format!("the petition was never routed to {unit}"),
        ));
    }
    if !staff_over(roles, unit) {
        let rule = if staff_over(HANDLERS, unit) {
            Rule::RoleRequired
        } else {
            Rule::NotInJurisdiction
        };
        return Err((rule, format!("{} may not record a {kind} for {unit}", p.user)));
    }
    match &e.body {
        EventBody::Transferred { to, assist, .. } => {
            unit_exists(to)?;
            assist.iter().try_for_each(&unit_exists)
        }
        EventBody::Escalated { to, .. } => unit_exists(to),
        EventBody::AssistsChanged { add, .. } => add.iter().try_for_each(unit_exists),
        _ => Ok(()),
    }
}

/// Whether `ctx.principal` may write in the conversation of a petition filed
/// by `submitter` and routed to `involved`.
pub fn message_refusal(
    ctx: &PolicyContext<'_>,
    submitter: &UserId,
    involved: &BTreeSet<UnitId>,
) -> Result<(), (Rule, String)> {
    let p = ctx.principal;
    let staff_over = |roles: RoleSet, unit: &UnitId| crate::access::acts_over(ctx.org, p, roles, unit);
    if p.user == *submitter || involved.iter().any(|u| staff_over(HANDLERS, u)) {
        Ok(())
    } else if p.is_staff() {
        Err((
            Rule::NotInJurisdiction,
            "the petition is outside the writer's jurisdiction".into(),
        ))
    } else {
        Err((Rule::NotSubmitter, "residents write only on their own petitions".into()))
    }
}
