//! The organisation and run-time configuration: the unit tree clients may
//! see, administration of units, people and memberships, the clock rules and
//! working-day calendar, and the watcher that applies changes made on any
//! node (or by `lianxin admin import`) to this running server.

use std::time::Duration;

use sync_core::org::Role;
use sync_core::wire::{
    ClockSettings, ImportResult, UnitEdit, UnitList, UnitView, UserEdit, UserKindEdit, UserList, UserView,
};
use sync_core::{Calendar, ClockRules, Principal, UnitId, UserId};

use super::units::unit_id;
use crate::admin::{ImportError, ImportFile, ImportReport};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::Storage;

/// The settings keys of the clock configuration.
pub(crate) const CLOCK_RULES: &str = "clock_rules";
pub(crate) const CALENDAR: &str = "calendar";

/// How often a server checks whether the organisation or the settings changed.
pub const CONFIG_POLL: Duration = Duration::from_secs(1);

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// `GET /api/units`: the tree the caller may see, parents first. Staff and
/// admins see every unit (they route to departments and towns anywhere);
/// residents see the units above their own and below them.
pub async fn units(app: &AppState, who: &Principal) -> Result<UnitList, ApiError> {
    let org = app.docs.org();
    let disabled = app.storage.config().disabled_units().await?;
    let sees_all = sync_core::access::holds(who, sync_core::access::RoleSet::STAFF_AND_ADMINS);
    let mine: Vec<&UnitId> = who.memberships.iter().map(|m| &m.unit).collect();
    let visible = |u: &UnitId| {
        sees_all
            || mine
                .iter()
                .any(|m| org.is_within(u, m) || org.ancestors_or_self(m).contains(&u))
    };
    Ok(UnitList {
        items: unit_views(org.units().filter(|u| visible(&u.id)), &org, &disabled),
    })
}

/// `units` as listed, parents before children (by depth, then id), each
/// marked disabled if `disabled` names it.
pub(crate) fn unit_views<'a>(
    units: impl Iterator<Item = &'a sync_core::Unit>,
    org: &sync_core::OrgTree,
    disabled: &[String],
) -> Vec<UnitView> {
    let mut units: Vec<(usize, &sync_core::Unit)> = units.map(|u| (org.ancestors_or_self(&u.id).len(), u)).collect();
    units.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    units
        .into_iter()
        .map(|(_, u)| UnitView {
            id: u.id.clone(),
            name: u.name.clone(),
            kind: u.kind,
            parent: u.parent.clone(),
            disabled: disabled.iter().any(|d| d == u.id.as_str()),
        })
        .collect()
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::Storage(s) => ApiError::from(s),
        ImportError::Auth(a) => ApiError::from(a),
        other => ApiError::BadRequest(other.to_string()),
    }
}

fn result(r: ImportReport) -> ImportResult {
    ImportResult {
        units: r.units,
        users_created: r.users_created,
        users_updated: r.users_updated,
        passwords_set: r.passwords_set,
        users_disabled_changed: r.users_disabled_changed,
        units_disabled_changed: r.units_disabled_changed,
    }
}

/// Whether `who` administers `unit` (an admin membership over it).
fn administers(app: &AppState, who: &Principal, unit: &UnitId) -> bool {
    sync_core::access::acts_over(&app.docs.org(), who, sync_core::access::RoleSet::ADMINS, unit)
}

/// `POST /api/admin/import`: the organisation file format of `lianxin admin
/// import`, applied in one transaction. The caller must administer every
/// unit the file creates or moves (through its parent, or the unit itself)
/// and every unit it grants a membership in, and every existing user it
/// changes must be theirs too. This server applies the result at once,
/// others within a second.
pub async fn import(app: &AppState, who: &Principal, file: ImportFile) -> Result<ImportResult, ApiError> {
    if !who.has_role(Role::Admin) {
        return Err(ApiError::Forbidden("the organisation is administered by admins".into()));
    }
    let scope = crate::admin::scope(&file).map_err(import_error)?;
    let org = app.docs.org();
    for (unit, parent) in &scope.units {
        let over = match (org.get(unit), parent) {
            (Some(_), _) => administers(app, who, unit) && parent.as_ref().is_none_or(|p| administers(app, who, p)),
            (None, Some(p)) => administers(app, who, p),
            (None, None) => false,
        };
        if !over {
            return Err(ApiError::Forbidden(format!(
                "{unit}: not a unit the caller administers"
            )));
        }
    }
    for unit in &scope.memberships {
        // A unit created by this same file is checked above through its parent.
        let new_here = scope.units.iter().any(|(u, _)| u == unit) && org.get(unit).is_none();
        if !new_here && !administers(app, who, unit) {
            return Err(ApiError::Forbidden(format!(
                "membership in {unit}: not a unit the caller administers"
            )));
        }
    }
    for user in &scope.users {
        if let Ok(p) = app.auth.principal(user).await
            && let Some(m) = p.memberships.iter().find(|m| !administers(app, who, &m.unit))
        {
            return Err(ApiError::Forbidden(format!(
                "{user} holds a membership in {}, which the caller does not administer",
                m.unit
            )));
        }
    }
    let report = crate::admin::import_parsed(&app.storage, file, app.clock.now())
        .await
        .map_err(import_error)?;
    apply_config(app).await?;
    Ok(result(report))
}

/// `PUT /api/admin/units/{id}`: creates or edits one unit.
pub async fn put_unit(app: &AppState, who: &Principal, id: &str, edit: UnitEdit) -> Result<UnitView, ApiError> {
    let unit = unit_id(id)?;
    let entry = serde_json::json!({
        "id": unit, "name": edit.name, "kind": edit.kind, "parent": edit.parent, "disabled": edit.disabled,
    });
    import(
        app,
        who,
        ImportFile {
            units: vec![entry],
            users: vec![],
        },
    )
    .await?;
    units(app, who)
        .await?
        .items
        .into_iter()
        .find(|u| u.id == unit)
        .ok_or_else(|| internal(format!("unit {unit} is not in the tree after its import")))
}

/// `PUT /api/admin/users/{id}`: creates or edits one person, memberships included.
pub async fn put_user(app: &AppState, who: &Principal, id: &str, edit: UserEdit) -> Result<ImportResult, ApiError> {
    let user = UserId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let memberships: Vec<serde_json::Value> = edit
        .memberships
        .iter()
        .map(|m| serde_json::json!({"unit": m.unit, "role": m.role}))
        .collect();
    let entry = serde_json::json!({
        "id": user, "display_name": edit.display_name, "kind": edit.kind, "login": edit.login,
        "password": edit.password, "phone": edit.phone, "household": edit.household,
        "memberships": memberships, "disabled": edit.disabled,
    });
    import(
        app,
        who,
        ImportFile {
            units: vec![],
            users: vec![entry],
        },
    )
    .await
}

/// `GET /api/admin/users`: the staff accounts an admin may edit: those with a membership in a
/// unit they administer (and those with none, to be given one), as `PUT /api/admin/users/{id}`
/// takes them.
pub async fn people(app: &AppState, who: &Principal) -> Result<UserList, ApiError> {
    if !who.has_role(Role::Admin) {
        return Err(ApiError::Forbidden("the organisation is administered by admins".into()));
    }
    let rows = app.storage.auth().staff_with_memberships().await?;
    let items = rows
        .into_iter()
        .filter(|(_, ms)| ms.is_empty() || ms.iter().any(|m| administers(app, who, &m.unit)))
        .map(|(u, memberships)| UserView {
            id: u.id,
            display_name: u.display_name,
            kind: match u.kind {
                crate::storage::UserKind::Staff => UserKindEdit::Staff,
                crate::storage::UserKind::Resident => UserKindEdit::Resident,
                crate::storage::UserKind::System => UserKindEdit::System,
            },
            login: u.login_name,
            phone: u.phone,
            household: u.household,
            memberships,
            disabled: u.disabled,
        })
        .collect();
    Ok(UserList { items })
}

/// The clock rules and calendar stored by the administration, if any.
pub(crate) async fn stored_clocks(storage: &Storage) -> Result<Option<(ClockRules, Calendar)>, ApiError> {
    let rules = storage.config().setting(CLOCK_RULES).await?;
    let calendar = storage.config().setting(CALENDAR).await?;
    if rules.is_none() && calendar.is_none() {
        return Ok(None);
    }
    let rules = rules
        .map(|r| ClockRules::from_json(&r))
        .transpose()
        .map_err(internal)?
        .unwrap_or_default();
    let calendar = calendar
        .map(|c| Calendar::from_json(&c))
        .transpose()
        .map_err(internal)?
        .unwrap_or_else(Calendar::china);
    Ok(Some((rules, calendar)))
}

/// `GET /api/clock-rules`: the limits and calendar in force, for phones.
pub async fn clock_settings(app: &AppState, _who: &Principal) -> Result<ClockSettings, ApiError> {
    let settings = app.docs.settings();
    Ok(ClockSettings {
        rules: settings.rules.clone(),
        calendar: settings.calendar.clone(),
    })
}

/// `PUT /api/admin/clock-rules`: stores new limits and calendar (admins of
/// a unit without a parent: the rules hold for the whole organisation).
/// This server applies them at once, others within a second.
pub async fn put_clock_settings(
    app: &AppState,
    who: &Principal,
    new: ClockSettings,
) -> Result<ClockSettings, ApiError> {
    let org = app.docs.org();
    let top_admin = who
        .memberships
        .iter()
        .any(|m| m.role == Role::Admin && org.parent(&m.unit).is_none());
    if !top_admin {
        return Err(ApiError::Forbidden(
            "clock rules hold for the whole organisation: they are set by admins of its top unit".into(),
        ));
    }
    let now = app.clock.now();
    let mut tx = app.storage.begin().await?;
    tx.put_setting(CLOCK_RULES, &new.rules.to_json(), &who.user, now)
        .await?;
    tx.put_setting(CALENDAR, &new.calendar.to_json(), &who.user, now)
        .await?;
    tx.commit().await?;
    apply_config(app).await?;
    clock_settings(app, who).await
}

/// Applies the stored organisation and clock settings to this server.
pub async fn apply_config(app: &AppState) -> Result<(), ApiError> {
    app.docs.reload_org().await.map_err(internal)?;
    if let Some((rules, calendar)) = stored_clocks(&app.storage).await? {
        let current = app.docs.settings();
        if current.rules != rules || current.calendar != calendar {
            app.docs.set_clocks(rules, calendar);
        }
    }
    Ok(())
}

/// Keeps this server's organisation and clock settings equal to the stored
/// ones: checks the version counters every [`CONFIG_POLL`] and reloads what
/// changed, whichever node or command changed it.
pub fn spawn_config_watch(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: Option<(i64, i64)> = None;
        loop {
            match app.storage.config().config_versions().await {
                Ok(versions) if Some(versions) != seen => match apply_config(&app).await {
                    Ok(()) => seen = Some(versions),
                    Err(e) => tracing::warn!(error = %e, "could not apply the stored configuration"),
                },
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not read configuration versions"),
            }
            tokio::time::sleep(CONFIG_POLL).await;
        }
    })
}
