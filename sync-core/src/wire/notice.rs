//! Notices: issue, list, read, receipts and delivery reports.

use serde::{Deserialize, Serialize};

use crate::ids::{HouseholdId, UnitId, UserId};
use crate::notice::{Audience, HouseholdReceipts, NoticeKind, ReceiptKind};
use crate::time::Timestamp;

/// One household's delivery record of a notice. `delivered_at` is the
/// earliest of the household's own receipt and what the server saw: an item
/// pushed on a live connection (SSE or a sync socket), an acknowledged inbox
/// item, a push the gateway accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoticeDelivery {
    pub household_id: HouseholdId,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub village_unit: Option<String>,
    pub notified_at: i64,
    #[serde(default)]
    pub delivered_at: Option<i64>,
    #[serde(default)]
    pub read_at: Option<i64>,
    #[serde(default)]
    pub forwarded_at: Option<i64>,
}

/// A household nobody reached: for a door visit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotReached {
    pub household_id: HouseholdId,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub village_unit: Option<String>,
}

/// `GET /api/notices/{id}/report`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoticeReport {
    /// The notice's storage id.
    pub notice: String,
    /// Households the notice went to.
    pub households: usize,
    pub delivered: usize,
    pub read: usize,
    pub forwarded: usize,
    /// Households with any of the three.
    pub reached: usize,
    pub not_reached: Vec<NotReached>,
    pub deliveries: Vec<NoticeDelivery>,
}

/// `POST /api/notices`: issue a notice (anti-fraud, safety, legal publicity,
/// a general reminder) from a unit to households, rooms and units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewNotice {
    /// Client-generated document id (bs58check, 16 bytes): a retry issues once.
    pub id: String,
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    /// The issuing unit.
    pub unit: UnitId,
    pub audience: Audience,
}

/// A notice as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoticeSummary {
    pub id: String,
    pub kind: NoticeKind,
    pub title: String,
    pub unit: UnitId,
    pub by: UserId,
    /// When it was issued (the issuer's stamp).
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoticeList {
    pub items: Vec<NoticeSummary>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(default)]
    pub next: Option<i64>,
}

/// `GET /api/notices/{id}`: the notice, and the caller's household's receipts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoticeView {
    pub id: String,
    pub url: String,
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    pub unit: UnitId,
    pub by: UserId,
    pub at: Timestamp,
    pub audience: Audience,
    /// The caller's household's receipts, if they have a household.
    #[serde(default)]
    pub my_receipts: Option<HouseholdReceipts>,
}

/// `POST /api/notices/{id}/receipts`: a household got, read or forwarded the
/// notice. Residents mark their own household; officers over the issuing
/// unit mark any household of the audience (after a door visit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MarkReceipt {
    pub kind: ReceiptKind,
    /// Defaults to the caller's household.
    #[serde(default)]
    pub household: Option<HouseholdId>,
}
