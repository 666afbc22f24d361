//! Tiers: what the tier above hands a station about its jurisdiction
//! (`GET /api/station/directory`), what a station does with it, and the
//! stations' last exchanges for reports.

use std::collections::BTreeSet;

use sync_core::relay;
use sync_core::wire::{
    AccountKind, ClockSettings, KeySet, RosterOutcome, StationDirectory, StationPerson, StationRoster,
    StationRosterResult, StationRosterResults, StationRosters,
};
use sync_core::{Principal, Timestamp, Unit};

use crate::auth::StationKeysError;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{NewUser, StationSync, StorageError, UserKind};

/// `GET /api/station/directory`: the unit tree, the clocks and the people a
/// station speaks for (`sync_core::relay::speaks_for`), with their password
/// hashes, so they sign in at the station while its uplink is down, and the
/// accounts of the stations below it (`sync_core::relay::lists`: a county
/// that is a station of the city signs its own stations in). Only for a
/// station principal, and only its own jurisdiction's people: the caller
/// checks that `who` is a station's (`sync_core::relay::is_station`).
pub async fn directory(app: &AppState, who: &Principal) -> Result<StationDirectory, StorageError> {
    let org = app.docs.org();
    let disabled = app.storage.config().disabled_units().await?;
    let units = super::org::unit_views(org.units(), &org, &disabled);
    let mut people = Vec::new();
    for (user, password_hash, memberships) in app.storage.auth().people_with_credentials().await? {
        let principal = Principal {
            user: user.id.clone(),
            memberships: memberships.clone(),
            household: user.household.clone(),
        };
        if !relay::lists(&org, who, &principal) {
            continue;
        }
        people.push(StationPerson {
            id: user.id,
            login_name: user.login_name,
            display_name: user.display_name,
            phone: user.phone,
            kind: match user.kind {
                UserKind::Staff => AccountKind::Staff,
                UserKind::Resident => AccountKind::Resident,
                UserKind::System => AccountKind::System,
            },
            household: user.household,
            disabled: user.disabled,
            password_hash,
            memberships,
        });
    }
    let rosters = app
        .storage
        .rosters()
        .all()
        .await?
        .into_iter()
        .filter(|r| relay::station_units(who).any(|s| org.is_within(&r.unit_id, s)))
        .map(|r| StationRoster {
            unit: r.unit_id,
            roster: r.roster,
            updated_by: r.updated_by,
            updated_at: r.updated_at,
        })
        .collect();
    let settings = app.docs.settings();
    Ok(StationDirectory {
        units,
        clocks: ClockSettings {
            rules: settings.rules.clone(),
            calendar: settings.calendar.clone(),
        },
        people,
        rosters,
    })
}

/// `PUT /api/station/rosters`: rosters a station's leaders set at the
/// station, sent up by its uplink. Each is checked as the tier above sees
/// the station and the editor (`sync_core::relay::may_relay_roster`: a unit
/// of the station's subtree, set by one of its leaders or admins) and as any
/// roster (its people are staff over the unit), then stored if it is the
/// later edit (`sync_core::relay::roster_wins`); a later edit held here
/// stays and reaches the station in its directory.
pub async fn put_rosters(
    app: &AppState,
    who: &Principal,
    sent: StationRosters,
) -> Result<StationRosterResults, ApiError> {
    if !relay::is_station(who) {
        return Err(ApiError::Forbidden(
            "only a station server's account sends rosters up".into(),
        ));
    }
    let org = app.docs.org();
    let mut results = Vec::with_capacity(sent.rosters.len());
    for r in sent.rosters {
        let refused = |detail: String| StationRosterResult {
            unit: r.unit.clone(),
            outcome: RosterOutcome::Refused,
            detail: Some(detail),
        };
        let editor = match app.auth.principal(&r.updated_by).await {
            Ok(p) => Some(p),
            Err(crate::auth::AuthError::UnknownUser(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if let Err((rule, detail)) = relay::may_relay_roster(&org, who, &r.unit, editor.as_ref()) {
            tracing::info!(station = %who.user, unit = %r.unit, %rule, %detail, "a station's roster refused");
            results.push(refused(format!("{rule}: {detail}")));
            continue;
        }
        if let Err(e) = super::units::check_roster(app, &org, &r.unit, &r.roster).await {
            results.push(refused(e.to_string()));
            continue;
        }
        let outcome = if take_if_later(app, &r).await? {
            RosterOutcome::Stored
        } else {
            RosterOutcome::Kept
        };
        results.push(StationRosterResult {
            unit: r.unit,
            outcome,
            detail: None,
        });
    }
    Ok(StationRosterResults { results })
}

/// The directory of `who` as the JSON body the tier above serves, with its
/// generation (`sync_core::relay::directory_generation`): the endpoint's
/// `ETag` and what every pull to the station names, so the station fetches
/// it only when it moved.
/// Only for a station principal (the caller checked).
pub async fn directory_body(app: &AppState, who: &Principal) -> Result<(Vec<u8>, u64), StorageError> {
    let dir = directory(app, who).await?;
    let body = serde_json::to_vec(&dir).expect("a directory serializes");
    let generation = relay::directory_generation(&body);
    Ok((body, generation))
}

/// `PUT /api/station/keys`: station `who` publishes the keys its tokens are
/// signed with; they verify here from then on, for the people it speaks for
/// (`AuthService::authenticate`).
pub async fn publish_keys(app: &AppState, who: &Principal, set: &KeySet) -> Result<(), ApiError> {
    if !relay::is_station(who) {
        return Err(ApiError::Forbidden(
            "only a station server's account publishes station keys".into(),
        ));
    }
    app.auth
        .keys()
        .trust_station(who.user.as_str(), set, app.clock.now())
        .await
        .map_err(|e| match e {
            StationKeysError::Invalid(why) => ApiError::BadRequest(why),
            StationKeysError::Storage(e) => e.into(),
        })?;
    tracing::info!(station = %who.user, issuer = %set.issuer, keys = set.keys.len(), "a station published its token keys");
    Ok(())
}

/// At a station: makes the local organisation, clocks and accounts what the
/// tier above says, and takes each of its rosters that is a later edit
/// than the one held here. People it no longer lists (moved away, or removed) are
/// disabled here, as are those it lists disabled; disabling revokes their
/// sessions at the station. Returns how many accounts were disabled now.
pub async fn apply_directory(app: &AppState, dir: &StationDirectory) -> Result<usize, ApiError> {
    let now = app.clock.now();
    let by = relay::upstream_user();
    let mut tx = app.storage.begin().await?;
    for u in &dir.units {
        let unit = Unit {
            id: u.id.clone(),
            name: u.name.clone(),
            kind: u.kind,
            parent: u.parent.clone(),
        };
        tx.upsert_unit(&unit, now).await?;
    }
    tx.bump_config_version(crate::storage::ORG).await?;
    let current = app.docs.settings();
    if current.rules != dir.clocks.rules || current.calendar != dir.clocks.calendar {
        tx.put_setting(super::org::CLOCK_RULES, &dir.clocks.rules.to_json(), &by, now)
            .await?;
        tx.put_setting(super::org::CALENDAR, &dir.clocks.calendar.to_json(), &by, now)
            .await?;
    }
    let mut disabled = 0;
    let listed: BTreeSet<&str> = dir.people.iter().map(|p| p.id.as_str()).collect();
    for p in &dir.people {
        let user = NewUser {
            id: p.id.clone(),
            login_name: p.login_name.clone(),
            display_name: p.display_name.clone(),
            phone: p.phone.clone(),
            kind: match p.kind {
                AccountKind::Staff => UserKind::Staff,
                AccountKind::Resident => UserKind::Resident,
                AccountKind::System => UserKind::System,
            },
            household: p.household.clone(),
        };
        tx.upsert_user(&user, now).await?;
        if let Some(hash) = &p.password_hash {
            tx.set_password_hash(&p.id, hash, now).await?;
        }
        tx.set_memberships(&p.id, &p.memberships).await?;
        if tx.set_user_disabled(&p.id, p.disabled, now).await? && p.disabled {
            disabled += 1;
        }
    }
    for (user, _, _) in app.storage.auth().people_with_credentials().await? {
        if !listed.contains(user.id.as_str()) && !user.disabled && tx.set_user_disabled(&user.id, true, now).await? {
            disabled += 1;
        }
    }
    tx.commit().await?;
    super::org::apply_config(app).await?;
    // Rosters: the later edit wins, whichever tier made it (a station's own
    // later edit stays, and its uplink sends it up).
    for r in &dir.rosters {
        take_if_later(app, r).await?;
    }
    Ok(disabled)
}

/// Stores roster `r` from the other tier if it is the later edit
/// (`relay::roster_wins`); true when it was stored.
async fn take_if_later(app: &AppState, r: &StationRoster) -> Result<bool, StorageError> {
    let held = app.storage.rosters().roster(&r.unit).await?;
    let later = relay::roster_wins(
        (r.updated_at, &r.updated_by),
        held.as_ref().map(|h| (h.updated_at, &h.updated_by)),
    );
    if later {
        app.storage
            .rosters()
            .put(&r.unit, &r.roster, &r.updated_by, Timestamp::from_millis(r.updated_at))
            .await?;
    }
    Ok(later)
}

/// Every station's last completed exchange with this server, for reports:
/// a station's petitions are as of then, so a late sync is not read as
/// late work.
pub async fn syncs(app: &AppState) -> Result<Vec<StationSync>, ApiError> {
    Ok(app.storage.stations().syncs().await?)
}
