//! Notices: issue, list, read, receipts and delivery reports.

use automerge::AutoCommit;
use sync_core::access::{self, RoleSet};
use sync_core::notice::NoticeDoc;
use sync_core::org::Role;
use sync_core::wire::{
    MarkReceipt, NewNotice, NotReached, NoticeDelivery, NoticeList, NoticeReport, NoticeSummary, NoticeView,
};
use sync_core::{HouseholdId, Principal};

use super::{doc_error, doc_key, page_limit, refused};
use crate::error::ApiError;
use crate::state::AppState;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// The storage key of a notice the caller may read; 404 otherwise.
async fn readable(app: &AppState, who: &Principal, id: &str) -> Result<String, ApiError> {
    let key = doc_key(id)?;
    if !app.docs.may_read(who, &key).await.map_err(doc_error)? {
        return Err(ApiError::NotFound("no such notice".into()));
    }
    Ok(key)
}

fn view(key: &str, doc: &AutoCommit, who: &Principal) -> Result<NoticeView, ApiError> {
    let n = NoticeDoc::view(doc).map_err(|_| ApiError::NotFound("no such notice".into()))?;
    let info = n.info().map_err(internal)?;
    let my_receipts = match &who.household {
        Some(h) => Some(n.receipts().map_err(internal)?.remove(h).unwrap_or_default()),
        None => None,
    };
    Ok(NoticeView {
        id: key.to_owned(),
        url: format!("automerge:{key}"),
        kind: info.kind,
        title: info.title,
        body: info.body,
        unit: info.unit,
        by: info.by,
        at: info.at.timestamp(),
        audience: n.audience().map_err(internal)?,
        my_receipts,
    })
}

/// `POST /api/notices`: issues a notice from a unit (its officers); one
/// notification per audience household goes out in the same transaction.
/// A retry with the same id by the same issuer returns the notice.
pub async fn issue(app: &AppState, who: &Principal, new: NewNotice) -> Result<(bool, NoticeView), ApiError> {
    let key = doc_key(&new.id)?;
    if app.docs.exists(&key).await.map_err(doc_error)? {
        let existing = get(app, who, &key).await?;
        if existing.by == who.user {
            return Ok((false, existing));
        }
        return Err(ApiError::Conflict(format!("document {key} already exists")));
    }
    if new.audience.households.is_empty() && new.audience.rooms.is_empty() && new.audience.units.is_empty() {
        return Err(ApiError::BadRequest(
            "a notice needs an audience: households, rooms or units".into(),
        ));
    }
    let mut audience = new.audience;
    for room in &mut audience.rooms {
        *room = doc_key(room)?;
    }
    let (actor, mut author) = app.docs.server_author(&who.user);
    let notice = sync_core::notice::NewNotice {
        id: format!("automerge:{key}"),
        kind: new.kind,
        title: new.title,
        body: new.body,
        unit: new.unit,
        audience,
    };
    let doc = NoticeDoc::create(actor, notice, &mut author, app.docs.now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let applied = app.docs.create(who, &key, doc.into_doc()).await.map_err(doc_error)?;
    refused(&applied)?;
    Ok((true, get(app, who, &key).await?))
}

/// Paging of `GET /api/notices`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The `next` of the previous page.
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

/// `GET /api/notices`: notices the caller may read, newest first: those of
/// the units they handle, and for residents those sent to their household,
/// their village or their rooms.
pub async fn list(app: &AppState, who: &Principal, q: ListQuery) -> Result<NoticeList, ApiError> {
    let org = app.docs.org();
    let mut units: Vec<String> = access::scope(&org, who, RoleSet::HANDLERS)
        .into_iter()
        .map(|u| u.to_string())
        .collect();
    // A resident reads notices sent to any unit above their own.
    for m in who.memberships.iter().filter(|m| m.role == Role::Resident) {
        units.extend(org.ancestors_or_self(&m.unit).into_iter().map(|u| u.to_string()));
    }
    units.sort();
    units.dedup();
    let rooms: Vec<String> = super::rooms::list_mine(app, who)
        .await?
        .items
        .into_iter()
        .map(|r| r.id)
        .collect();
    let household = who.household.as_ref().map(|h| h.as_str());
    let limit = page_limit(q.limit, 50, 200);
    let rows = app
        .storage
        .projections()
        .notice_candidates(&units, household, &rooms, q.before, limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.created_at))
        .flatten();
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        // The candidates match by a unit, household or room; reading decides.
        let doc = match app.docs.read(who, &row.doc_id).await {
            Ok(doc) => doc,
            Err(crate::docs::DocError::NotFound) => continue,
            Err(e) => return Err(doc_error(e)),
        };
        let n = NoticeDoc::view(&doc).map_err(internal)?;
        let info = n.info().map_err(internal)?;
        items.push(NoticeSummary {
            id: row.doc_id,
            kind: info.kind,
            title: info.title,
            unit: info.unit,
            by: info.by,
            at: info.at.timestamp(),
        });
    }
    Ok(NoticeList { items, next })
}

/// `GET /api/notices/{id}`.
pub async fn get(app: &AppState, who: &Principal, id: &str) -> Result<NoticeView, ApiError> {
    let key = readable(app, who, id).await?;
    let doc = app.docs.read(who, &key).await.map_err(doc_error)?;
    view(&key, &doc, who)
}

/// `POST /api/notices/{id}/receipts`: records that a household got, read or
/// forwarded the notice. The earliest receipt of each kind counts; marking
/// again changes nothing.
pub async fn mark(app: &AppState, who: &Principal, id: &str, req: MarkReceipt) -> Result<NoticeView, ApiError> {
    let key = readable(app, who, id).await?;
    let household: HouseholdId = match req.household.or_else(|| who.household.clone()) {
        Some(h) => h,
        None => {
            return Err(ApiError::BadRequest(
                "name the household: the caller belongs to none".into(),
            ));
        }
    };
    let (_, applied) = app
        .docs
        .act(who, &key, |doc, author, now| {
            let mut n = NoticeDoc::from_doc(std::mem::take(doc))?;
            let result = n.record_receipt(author, now, &household, req.kind);
            *doc = n.into_doc();
            result
        })
        .await
        .map_err(doc_error)?;
    refused(&applied)?;
    get(app, who, &key).await
}

/// `GET /api/notices/{id}/report`: one delivery record per household, receipt
/// counts and the households not reached, for a door visit. A household
/// counts as delivered from its own receipt or from what the server itself
/// delivered to one of its people (a live push over SSE or a sync socket, an
/// acknowledged inbox, a push the gateway accepted), whichever came first.
pub async fn report(app: &AppState, who: &Principal, id: &str) -> Result<NoticeReport, ApiError> {
    let key = readable(app, who, id).await?;
    if !access::holds(who, RoleSet::STAFF_AND_ADMINS) {
        return Err(ApiError::Forbidden("delivery reports are for staff".into()));
    }
    let rows = app.storage.projections().notice_deliveries(&key).await?;
    let server = app.storage.projections().notice_server_deliveries(&key).await?;
    let deliveries = rows
        .into_iter()
        .map(|r| {
            let by_server = server.get(&r.household_id).copied();
            let delivered_at = [r.delivered_at, by_server].into_iter().flatten().min();
            Ok(NoticeDelivery {
                household_id: HouseholdId::new(r.household_id).map_err(internal)?,
                name: r.name,
                village_unit: r.village_unit,
                notified_at: r.notified_at,
                delivered_at,
                read_at: r.read_at,
                forwarded_at: r.forwarded_at,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let reached = |r: &NoticeDelivery| r.delivered_at.is_some() || r.read_at.is_some() || r.forwarded_at.is_some();
    let count = |f: &dyn Fn(&NoticeDelivery) -> bool| deliveries.iter().filter(|r| f(r)).count();
    Ok(NoticeReport {
        notice: key.clone(),
        households: deliveries.len(),
        delivered: count(&|r| r.delivered_at.is_some()),
        read: count(&|r| r.read_at.is_some()),
        forwarded: count(&|r| r.forwarded_at.is_some()),
        reached: count(&reached),
        not_reached: deliveries
            .iter()
            .filter(|r| !reached(r))
            .map(|r| NotReached {
                household_id: r.household_id.clone(),
                name: r.name.clone(),
                village_unit: r.village_unit.clone(),
            })
            .collect(),
        deliveries,
    })
}
