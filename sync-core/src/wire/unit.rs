//! Units: duty rosters.

use serde::{Deserialize, Serialize};

use crate::ids::{UnitId, UserId};
use crate::notify::Roster;

/// `GET, PUT /api/units/{id}/roster`: the roster and who it puts on duty now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RosterView {
    pub unit: UnitId,
    pub roster: Roster,
    /// Who is on duty at the server's now (empty between shifts).
    pub on_duty: Vec<UserId>,
    /// The name of the shift on duty now, if it has one.
    #[serde(default)]
    pub shift: Option<String>,
    /// The next shift boundary, in milliseconds.
    pub next_handover: i64,
    pub updated_by: UserId,
    pub updated_at: i64,
}
