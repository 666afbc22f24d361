//! `GET /api/station/directory`: what a station server receives from the
//! tier above about its jurisdiction (see [`crate::relay`]), so its people
//! sign in there while the uplink is down, and it computes what the tier
//! above computes.

use serde::{Deserialize, Serialize};

use super::{AccountKind, ClockSettings, UnitView};
use crate::ids::{HouseholdId, UserId};
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
