//! The village directory (households, representative, village group,
//! assigned officer, contact) and its coverage per village and per officer.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use sync_core::access::{self, RoleSet};
use sync_core::directory::{Coverage, DirectoryDoc, Household, coverage};
use sync_core::org::UnitKind;
use sync_core::repo_protocol::DocumentId;
use sync_core::wire::{CoverageReport, CoverageRow, DirectoryView, HouseholdEdit};
use sync_core::{HouseholdId, Principal, UnitId, UserId};

use super::units::unit_id;
use super::{doc_error, refused};
use crate::error::ApiError;
use crate::state::AppState;

/// Roles that read a village's directory (it holds phone numbers).
/// Who reads and keeps a village's directory: its officers and leaders.
const READERS: RoleSet = RoleSet::OFFICERS;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// The village, if the caller may read its directory; 404 otherwise.
fn village(app: &AppState, who: &Principal, id: &str) -> Result<UnitId, ApiError> {
    let unit = unit_id(id)?;
    let org = app.docs.org();
    let is_village = org.get(&unit).is_some_and(|u| u.kind == UnitKind::Village);
    if !is_village || !access::acts_over(&org, who, READERS, &unit) {
        return Err(ApiError::NotFound(format!("no directory for {unit}")));
    }
    Ok(unit)
}

/// The id a village's directory gets when the API creates it: derived from
/// the village, so two servers creating it make the same document.
fn directory_key(village: &UnitId) -> String {
    let digest = Sha256::digest(format!("lianxin-directory:{village}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    DocumentId::from_bytes(bytes).to_string()
}

/// The households of a village, read from every directory document it has
/// (officers may have started one offline), the first document's record
/// winning for a household in two.
async fn households(
    app: &AppState,
    who: &Principal,
    village: &UnitId,
) -> Result<(Option<String>, Vec<Household>), ApiError> {
    let docs = app.storage.projections().directory_docs(&[village.to_string()]).await?;
    let mut first = None;
    let mut out: BTreeMap<HouseholdId, Household> = BTreeMap::new();
    for (_, key) in docs {
        let doc = app.docs.read(who, &key).await.map_err(doc_error)?;
        let dir = DirectoryDoc::view(&doc).map_err(internal)?;
        for h in dir.households().map_err(internal)? {
            out.entry(h.id.clone()).or_insert(h);
        }
        first.get_or_insert(key);
    }
    Ok((first, out.into_values().collect()))
}

/// `GET /api/units/{village}/directory`.
pub async fn get(app: &AppState, who: &Principal, id: &str) -> Result<DirectoryView, ApiError> {
    let village = village(app, who, id)?;
    let (id, households) = households(app, who, &village).await?;
    Ok(DirectoryView {
        village,
        id,
        households,
    })
}

/// `PUT /api/units/{village}/directory/households/{household}`: adds the
/// household or rewrites the fields that differ, creating the village's
/// directory first if it has none.
pub async fn put_household(
    app: &AppState,
    who: &Principal,
    id: &str,
    household: &str,
    edit: HouseholdEdit,
) -> Result<DirectoryView, ApiError> {
    let village = village(app, who, id)?;
    let household = HouseholdId::new(household).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    for user in [&edit.representative, &edit.officer].into_iter().flatten() {
        if app.storage.auth().get_user(user).await?.is_none() {
            return Err(ApiError::BadRequest(format!("there is no user {user}")));
        }
    }
    let docs = app.storage.projections().directory_docs(&[village.to_string()]).await?;
    let key = match docs.into_iter().next() {
        Some((_, key)) => key,
        None => {
            let key = directory_key(&village);
            if !app.docs.exists(&key).await.map_err(doc_error)? {
                let doc = DirectoryDoc::create(app.docs.server_actor(&who.user), village.clone(), &who.user)
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                let applied = app.docs.create(who, &key, doc.into_doc()).await.map_err(doc_error)?;
                refused(&applied)?;
            }
            key
        }
    };
    let h = Household {
        id: household,
        name: edit.name,
        representative: edit.representative,
        representative_name: edit.representative_name,
        phone: edit.phone,
        group_tag: edit.group_tag,
        officer: edit.officer,
        address: edit.address,
        note: edit.note,
        moved_out: edit.moved_out,
    };
    let (_, applied) = app
        .docs
        .act(who, &key, |doc, author, now| {
            let mut dir = DirectoryDoc::from_doc(std::mem::take(doc))?;
            let result = dir.upsert_household(author, now, &h);
            *doc = dir.into_doc();
            result
        })
        .await
        .map_err(doc_error)?;
    refused(&applied)?;
    get(app, who, village.as_str()).await
}

fn row(id: Option<String>, name: Option<String>, c: Coverage) -> CoverageRow {
    CoverageRow {
        id,
        name,
        households: c.households,
        reachable: c.reachable,
        rate: c.rate(),
    }
}

/// `GET /api/reports/coverage?unit=`: households with a reachable contact
/// over all households, per village within `unit` and per assigned officer
/// (sync-core's `directory::coverage`).
pub async fn report(app: &AppState, who: &Principal, unit: &str) -> Result<CoverageReport, ApiError> {
    let unit = unit_id(unit)?;
    let org = app.docs.org();
    if org.get(&unit).is_none() || !access::acts_over(&org, who, READERS, &unit) {
        return Err(ApiError::NotFound(format!("no unit {unit}")));
    }
    let villages: Vec<&sync_core::Unit> = org
        .units()
        .filter(|u| u.kind == UnitKind::Village && org.is_within(&u.id, &unit))
        .collect();
    let mut all: Vec<Household> = Vec::new();
    let mut rows = Vec::new();
    for v in &villages {
        let (_, hs) = households(app, who, &v.id).await?;
        let (total, _) = coverage(&hs);
        rows.push(row(Some(v.id.to_string()), Some(v.name.clone()), total));
        all.extend(hs);
    }
    let (total, by_officer) = coverage(&all);
    let mut officers = Vec::new();
    for (officer, c) in by_officer {
        let name = match &officer {
            Some(o) => app.storage.auth().get_user(o).await?.map(|u| u.display_name),
            None => None,
        };
        officers.push(row(officer.map(|o: UserId| o.to_string()), name, c));
    }
    Ok(CoverageReport {
        total: row(Some(unit.to_string()), org.get(&unit).map(|u| u.name.clone()), total),
        unit,
        villages: rows,
        officers,
    })
}
