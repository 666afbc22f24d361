//! `GET /api/me`: who the token belongs to.

use serde::{Deserialize, Serialize};

use crate::ids::{HouseholdId, UserId};
use crate::org::Membership;

/// How an account signs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AccountKind {
    /// Officers, leaders, department staff, admins: login name and password.
    Staff,
    /// Residents: phone and one-time code.
    Resident,
    /// The server's own actor and other machine accounts.
    System,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    pub id: UserId,
    pub display_name: String,
    pub kind: AccountKind,
    pub memberships: Vec<Membership>,
    #[serde(default)]
    pub household: Option<HouseholdId>,
}
