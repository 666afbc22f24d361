//! Units: duty rosters.

use sync_core::access::{self, RoleSet};
use sync_core::notify::Roster;
use sync_core::wire::RosterView;
use sync_core::{Principal, UnitId};

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn unit_id(id: &str) -> Result<UnitId, ApiError> {
    UnitId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `PUT /api/units/{id}/roster`: replaces the unit's 7x24 roster.
pub async fn put_roster(app: &AppState, who: &Principal, id: &str, roster: Roster) -> Result<RosterView, ApiError> {
    let unit = unit_id(id)?;
    let org = app.docs.org();
    if org.get(&unit).is_none() {
        return Err(ApiError::NotFound(format!("no unit {unit}")));
    }
    if !access::acts_over(&org, who, RoleSet::LEADERS_AND_ADMINS, &unit) {
        return Err(ApiError::Forbidden(format!(
            "only an admin or a leader over {unit} may set its roster"
        )));
    }
    check_roster(app, &org, &unit, &roster).await?;
    let now = app.clock.now();
    app.storage.rosters().put(&unit, &roster, &who.user, now).await?;
    roster_view(app, &unit).await
}

/// Checks that `roster` is `unit`'s and that everyone on it may be on duty
/// there: whoever is on duty reads the unit's work, so only its own staff.
pub(crate) async fn check_roster(
    app: &AppState,
    org: &sync_core::OrgTree,
    unit: &UnitId,
    roster: &Roster,
) -> Result<(), ApiError> {
    if roster.unit() != unit {
        return Err(ApiError::BadRequest(format!(
            "the roster is for unit {}, not {unit}",
            roster.unit()
        )));
    }
    let mut members: Vec<&sync_core::UserId> = roster.shifts().iter().flat_map(|s| &s.members).collect();
    members.sort();
    members.dedup();
    for member in members {
        let staff = match app.auth.principal(member).await {
            Ok(p) => access::person_over(org, &p, RoleSet::HANDLERS, unit),
            Err(crate::auth::AuthError::UnknownUser(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if !staff {
            return Err(ApiError::BadRequest(format!(
                "{member} cannot be on duty for {unit}: not an officer, leader or department staff over it"
            )));
        }
    }
    Ok(())
}

/// `GET /api/units/{id}/roster`: the roster, who is on duty now and the next hand-over.
pub async fn roster(app: &AppState, who: &Principal, id: &str) -> Result<RosterView, ApiError> {
    let unit = unit_id(id)?;
    if !access::acts_over(&app.docs.org(), who, RoleSet::STAFF_AND_ADMINS, &unit) {
        return Err(ApiError::NotFound(format!("no roster for {unit}")));
    }
    roster_view(app, &unit).await
}

async fn roster_view(app: &AppState, unit: &UnitId) -> Result<RosterView, ApiError> {
    let row = app
        .storage
        .rosters()
        .roster(unit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no roster for {unit}")))?;
    let roster = row.roster;
    let settings = app.docs.settings();
    let cal = &settings.calendar;
    let now = app.clock.now();
    Ok(RosterView {
        unit: unit.clone(),
        on_duty: roster.on_duty(cal, now),
        shift: roster.shift_at(cal, now).and_then(|s| s.name.clone()),
        next_handover: roster.next_handover(cal, now).millis(),
        updated_by: row.updated_by,
        updated_at: row.updated_at,
        roster,
    })
}
