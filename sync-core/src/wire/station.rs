//! `GET /api/station/directory`: what a station server receives from the
//! tier above about its jurisdiction (see [`crate::relay`]), so its people
//! sign in there while the uplink is down, and it computes what the tier
//! above computes.

use serde::{Deserialize, Serialize};

use super::{AccountKind, ClockSettings, UnitView};
use crate::ids::{HouseholdId, UnitId, UserId};
use crate::notify::Roster;
use crate::org::Membership;

/// The organisation, the clocks, and the people a station speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StationDirectory {
    /// The whole unit tree (routing and policy name units above the station too).
    pub units: Vec<UnitView>,
    /// The clock rules and working-day calendar every tier computes deadlines with.
    pub clocks: ClockSettings,
    /// Every account whose memberships all lie in the station's subtree.
    pub people: Vec<StationPerson>,
    /// The duty rosters of the units in the station's subtree, each with
    /// who set it and when: the later edit wins at either tier
    /// ([`crate::relay::roster_wins`]). Absent from tiers that predate it.
    #[serde(default)]
    pub rosters: Vec<StationRoster>,
}

/// One unit's duty roster as tiers exchange it: the roster and its edit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StationRoster {
    pub unit: UnitId,
    pub roster: Roster,
    /// The leader (or admin) who set it, at whichever tier.
    pub updated_by: UserId,
    /// When, in milliseconds, by the clock of the tier it was set at.
    pub updated_at: i64,
}

/// `PUT /api/station/rosters`: the rosters a station's leaders set there
/// since the directory last listed them, sent up by the station's uplink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StationRosters {
    pub rosters: Vec<StationRoster>,
}

/// What the tier above did with each roster a station sent, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StationRosterResults {
    pub results: Vec<StationRosterResult>,
}

/// What became of one roster a station sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StationRosterResult {
    pub unit: UnitId,
    /// `stored` (it is the latest), `kept` (the tier above holds a later
    /// edit, which the directory brings down) or `refused`.
    pub outcome: RosterOutcome,
    /// Why it was refused, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// See [`StationRosterResult::outcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RosterOutcome {
    Stored,
    Kept,
    Refused,
}

/// One account of the station's jurisdiction, with what signing in needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StationPerson {
    pub id: UserId,
    #[serde(default)]
    pub login_name: Option<String>,
    pub display_name: String,
    #[serde(default)]
    pub phone: Option<String>,
    pub kind: AccountKind,
    #[serde(default)]
    pub household: Option<HouseholdId>,
    /// Disabled (revoked) at the tier above: disabled at the station too,
    /// its sessions there revoked.
    #[serde(default)]
    pub disabled: bool,
    /// The password's hash (Argon2 PHC string) for staff; never the password.
    #[serde(default)]
    pub password_hash: Option<String>,
    pub memberships: Vec<Membership>,
}
