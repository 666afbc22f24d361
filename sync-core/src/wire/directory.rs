//! The village directory and its coverage.

use serde::{Deserialize, Serialize};

use crate::directory::Household;
use crate::ids::{UnitId, UserId};

/// `GET /api/units/{village}/directory`: the village's households.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DirectoryView {
    pub village: UnitId,
    /// The directory document's storage id (absent until the first household is added).
    #[serde(default)]
    pub id: Option<String>,
    pub households: Vec<Household>,
}

/// `PUT /api/units/{village}/directory/households/{household}`: adds a
/// household or rewrites the fields that differ. Officers over the village
/// edit; a household is never deleted, it moves out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HouseholdEdit {
    pub name: String,
    /// The household's one contact (户主 or the literate smartphone user).
    #[serde(default)]
    pub representative: Option<UserId>,
    #[serde(default)]
    pub representative_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// Village group (村民小组).
    #[serde(default)]
    pub group_tag: Option<String>,
    /// The officer in charge of the household.
    #[serde(default)]
    pub officer: Option<UserId>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub moved_out: bool,
}

/// Coverage of one village or one officer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageRow {
    /// The village (for `villages`) or the assigned officer (for
    /// `officers`; absent for households no officer is assigned to).
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Households that still live there.
    pub households: u32,
    /// Of those, with a reachable contact: a representative with an account, or a phone.
    pub reachable: u32,
    /// `reachable / households`; absent with no households.
    #[serde(default)]
    pub rate: Option<f64>,
}

/// `GET /api/reports/coverage?unit=`: per village and per officer within a unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageReport {
    pub unit: UnitId,
    pub total: CoverageRow,
    pub villages: Vec<CoverageRow>,
    pub officers: Vec<CoverageRow>,
}
