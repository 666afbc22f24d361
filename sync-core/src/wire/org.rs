//! The organisation: units, people, memberships, and the clock rules and
//! calendar phones compute deadlines with.

use serde::{Deserialize, Serialize};

use crate::clocks::{Calendar, ClockRules};
use crate::ids::{HouseholdId, UnitId, UserId};
use crate::org::{Membership, UnitKind};

/// A unit as `GET /api/units` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitView {
    pub id: UnitId,
    pub name: String,
    pub kind: UnitKind,
    #[serde(default)]
    pub parent: Option<UnitId>,
    /// Kept in the tree for the history that names it, but no longer in use.
    #[serde(default)]
    pub disabled: bool,
}

/// `GET /api/units`: the tree a client may see, parents before children.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitList {
    pub items: Vec<UnitView>,
}

/// `PUT /api/admin/units/{id}`: creates or edits a unit (admins over its parent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitEdit {
    pub name: String,
    pub kind: UnitKind,
    #[serde(default)]
    pub parent: Option<UnitId>,
    #[serde(default)]
    pub disabled: bool,
}

/// How an account signs in (as the organisation file spells it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum UserKindEdit {
    Staff,
    Resident,
    System,
}

/// `PUT /api/admin/users/{id}`: creates or edits a person and sets their
/// memberships to exactly these (admins over every unit involved).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserEdit {
    pub display_name: String,
    /// Defaults to `staff` with a login, else `resident`.
    #[serde(default)]
    pub kind: Option<UserKindEdit>,
    #[serde(default)]
    pub login: Option<String>,
    /// The initial password; set only if the user has none yet.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub household: Option<HouseholdId>,
    #[serde(default)]
    pub memberships: Vec<Membership>,
    /// A disabled person cannot sign in and loses every session.
    #[serde(default)]
    pub disabled: bool,
}

/// A person as the administration shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: UserId,
    pub display_name: String,
    pub kind: UserKindEdit,
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub household: Option<HouseholdId>,
    pub memberships: Vec<Membership>,
    pub disabled: bool,
}

/// `GET /api/admin/users`: the people an admin may edit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserList {
    pub items: Vec<UserView>,
}

/// What an organisation import (`POST /api/admin/import`, or one edit) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportResult {
    pub units: usize,
    pub users_created: usize,
    pub users_updated: usize,
    pub passwords_set: usize,
    pub users_disabled_changed: usize,
    pub units_disabled_changed: usize,
}

/// `GET /api/clock-rules`, `PUT /api/admin/clock-rules`: the limits per
/// channel and category and the working-day calendar, which phones use so
/// their deadlines equal the server's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClockSettings {
    pub rules: ClockRules,
    pub calendar: Calendar,
}
