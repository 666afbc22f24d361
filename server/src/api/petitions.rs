//! Petitions: submit, list, read, act.

use sync_core::access::{self, Disclosure, RoleSet};
use sync_core::petition::{
    Outcome, PetitionAction, PetitionDoc, PetitionHeader, PetitionSummary, SetAside, TimelineEvent,
};
use sync_core::policy::{PolicyContext, check_local};
use sync_core::wire::{BoardItem, BoardPage, NewPetition, PetitionListItem, PetitionPage, PetitionView, TimelineEntry};
use sync_core::{Category, Principal, SchemaError, Timestamp};

use super::{doc_error, doc_key, page_limit, refused};
use crate::docs::Once;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::PetitionQuery;

/// Filters of `GET /api/petitions`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    /// The lead unit.
    pub unit: Option<String>,
    pub category: Option<String>,
    pub channel: Option<String>,
    /// The resident who filed it.
    pub submitter: Option<String>,
    /// Submitted at or after this time (milliseconds).
    pub from: Option<i64>,
    /// Submitted before this time (milliseconds).
    pub to: Option<i64>,
    /// Only petitions whose result is (or is not) published.
    pub published: Option<bool>,
    /// Only open petitions with a deadline already passed.
    #[serde(default)]
    pub overdue: bool,
    pub limit: Option<u32>,
    /// Paging: the `next` value of the previous page.
    pub before: Option<String>,
}

/// Whether a submit stored a new petition or found the caller's earlier one.
#[derive(Clone, Debug, PartialEq)]
pub enum Submitted {
    Created(PetitionView),
    /// A retried submit: the caller's petition with this id, as stored.
    Existing(PetitionView),
}

/// Hides what a reader does not need ([`Disclosure`]): an anonymous
/// writer's identity and any contact number, from everyone but the writer,
/// its recorder and the handling units' staff. A petition holding either is
/// readable by no one else (`access::petition_units`), so this is a second
/// line, not the first.
fn mask(header: &mut PetitionHeader, events: &[TimelineEvent], who: &Principal, app: &AppState) {
    let org = app.docs.org();
    let users = access::petition_users(header);
    let users: Vec<&sync_core::UserId> = users.iter().collect();
    Disclosure::of(&org, who, &users, &access::handling_units(events)).redact_header(header);
}

/// `GET /api/petitions/{id}`.
pub async fn get(app: &AppState, who: &Principal, id: &str) -> Result<PetitionView, ApiError> {
    let key = doc_key(id)?;
    view(app, who, &key).await
}

pub(crate) async fn view(app: &AppState, who: &Principal, key: &str) -> Result<PetitionView, ApiError> {
    let doc = app.docs.read(who, key).await.map_err(doc_error)?;
    let p = PetitionDoc::view(&doc).map_err(|_| ApiError::NotFound("no such petition".into()))?;
    let mut header = p.header().map_err(|e| ApiError::Internal(e.to_string()))?;
    let events = p.events().map_err(|e| ApiError::Internal(e.to_string()))?;
    let conversation = p.messages().map_err(|e| ApiError::Internal(e.to_string()))?;
    let state = sync_core::petition::derive(&header, &events, &conversation);
    let settings = app.docs.settings();
    let receipts = app.storage.documents().entry_receipts(key).await?;
    let summary = PetitionSummary::with_receipts(
        &header,
        &state,
        &settings.rules,
        &settings.calendar,
        app.docs.now(),
        Some(&receipts),
    );
    let mut timeline: Vec<TimelineEntry> = events
        .into_iter()
        .map(|event| {
            let id = event.id();
            let outcome = state.outcome(&id).cloned().unwrap_or(Outcome::Applied);
            let received_at = receipts.get(id.as_str());
            TimelineEntry {
                id,
                event,
                outcome,
                received_at,
            }
        })
        .collect();
    timeline.sort_by(|a, b| a.event.at.cmp(&b.event.at));
    let org = app.docs.org();
    let ctx = sync_core::policy::PolicyContext {
        org: &org,
        principal: who,
        now: app.docs.now(),
    };
    let events: Vec<TimelineEvent> = timeline.iter().map(|t| t.event.clone()).collect();
    let allowed_actions = sync_core::petition::allowed_actions(&ctx, &header, &events, &conversation);
    mask(&mut header, &events, who, app);
    Ok(PetitionView {
        id: key.to_owned(),
        url: format!("automerge:{key}"),
        header,
        summary,
        timeline,
        conversation,
        allowed_actions,
    })
}

/// `POST /api/petitions`: files a petition, or returns the caller's own
/// petition when the id was already used by them (a retried submit).
pub async fn submit(app: &AppState, who: &Principal, new: NewPetition) -> Result<Submitted, ApiError> {
    let key = doc_key(&new.id)?;
    if app.docs.exists(&key).await.map_err(doc_error)? {
        let view = view(app, who, &key).await?;
        if view.header.recorded_by == who.user {
            return Ok(Submitted::Existing(view));
        }
        return Err(ApiError::Conflict(format!("document {key} already exists")));
    }
    let routed_to = match new.routed_to {
        Some(unit) => unit,
        None => app
            .docs
            .org()
            .default_route(new.channel, &new.location.unit)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "routed_to is needed: channel {} has no default unit for location {}",
                    new.channel, new.location.unit
                ))
            })?,
    };
    let header = PetitionHeader {
        id: format!("automerge:{key}"),
        channel: new.channel,
        category: new.category,
        title: new.title,
        body: new.body,
        submitter: new.submitter.unwrap_or_else(|| who.user.clone()),
        recorded_by: who.user.clone(),
        anonymous: new.anonymous,
        contact: new.contact,
        location: new.location,
        attachments: new.attachments,
        source: None,
    };
    let (actor, mut author) = app.docs.server_author(&who.user);
    let doc = PetitionDoc::create(actor, header, routed_to, &mut author, app.docs.now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let applied = app.docs.create(who, &key, doc.into_doc()).await.map_err(doc_error)?;
    refused(&applied)?;
    Ok(Submitted::Created(view(app, who, &key).await?))
}

/// `GET /api/petitions`: what the caller may see, newest first, with each
/// summary's clocks re-evaluated at the server's now.
pub async fn list(app: &AppState, who: &Principal, q: ListQuery) -> Result<PetitionPage, ApiError> {
    let org = app.docs.org();
    // Every unit in the caller's jurisdiction.
    let visible_units: Vec<String> = access::scope(&org, who, RoleSet::HANDLERS)
        .into_iter()
        .map(|u| u.to_string())
        .collect();
    if let Some(s) = &q.status {
        s.parse::<sync_core::petition::Status>()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    if let Some(c) = &q.category {
        c.parse::<Category>().map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    if let Some(c) = &q.channel {
        c.parse::<sync_core::Channel>()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let before = before_cursor(q.before.as_deref())?;
    let limit = page_limit(q.limit, 50, 200);
    let now = app.docs.now();
    let query = PetitionQuery {
        visible_units,
        visible_user: Some(who.user.clone()),
        status: q.status,
        lead_unit: q.unit,
        category: q.category,
        channel: q.channel,
        submitter: q.submitter,
        submitted_from: q.from.map(Timestamp::from_millis),
        submitted_to: q.to.map(Timestamp::from_millis),
        published: q.published,
        overdue_at: q.overdue.then_some(now),
        before,
        limit,
        ..PetitionQuery::default()
    };
    let rows = app.docs.storage().projections().list_petitions(&query).await?;
    let settings = app.docs.settings();
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for (doc_id, summary) in &rows {
        // Stored summaries were computed when the petition last changed;
        // running clocks move with time.
        let mut summary = summary.at(&settings.rules, &settings.calendar, now);
        last = Some(format!("{}~{}", summary.submitted_at.map_or(0, |t| t.millis()), doc_id));
        let disclosure = Disclosure::of(
            &org,
            who,
            &[&summary.submitter],
            summary.lead.iter().chain(&summary.assists),
        );
        // Filtering by writer must not find the anonymous letters of one.
        if disclosure == Disclosure::Masked && summary.anonymous && query.submitter.is_some() {
            continue;
        }
        disclosure.redact_summary(&mut summary);
        items.push(PetitionListItem {
            doc_id: doc_id.clone(),
            summary,
        });
    }
    let next = (rows.len() == limit as usize).then_some(last).flatten();
    Ok(PetitionPage { items, next })
}

/// `POST /api/petitions/{id}/actions`: one action, written as one event or
/// message with the caller's server-side actor; the petition as it stands after.
pub async fn act(app: &AppState, who: &Principal, id: &str, action: PetitionAction) -> Result<PetitionView, ApiError> {
    act_once(app, who, id, action, None).await
}

/// [`act`] with the client's idempotency key (the `Idempotency-Key` header):
/// an action already carried out under that key is not carried out again,
/// and the petition as it stands is the answer, so an offline client may
/// send a queued action until it hears an answer.
pub async fn act_once(
    app: &AppState,
    who: &Principal,
    id: &str,
    action: PetitionAction,
    client_key: Option<&str>,
) -> Result<PetitionView, ApiError> {
    let key = doc_key(id)?;
    let mark = client_key.map(|k| super::client_mark(who, &key, k)).transpose()?;
    if !app.docs.may_read(who, &key).await.map_err(doc_error)? {
        return Err(ApiError::NotFound("no such petition".into()));
    }
    let name = action.name();
    let org = app.docs.org();
    let mut set_aside: Option<SetAside> = None;
    let edit = |doc: &mut automerge::AutoCommit, author: &mut sync_core::Author, now: Timestamp| {
        let heads = doc.get_heads();
        let mut p = PetitionDoc::from_doc(std::mem::take(doc))?;
        let result = action.apply_online(&mut p, author, now);
        *doc = p.into_doc();
        match result? {
            Ok(_) => Ok(()),
            // Who may not act at all hears the policy's refusal (403),
            // which the write path gives when it checks the change.
            Err(_)
                if check_local(
                    &PolicyContext {
                        org: &org,
                        principal: who,
                        now,
                    },
                    &mut doc.fork(),
                    &heads,
                )
                .is_err() =>
            {
                Ok(())
            }
            Err(aside) => {
                // Nothing is stored: the edit is dropped with the error.
                let reason = format!("set aside by rule {}", aside.rule);
                set_aside = Some(aside);
                Err(SchemaError::InvalidValue {
                    field: "action".into(),
                    reason,
                })
            }
        }
    };
    let acted = match &mark {
        None => app.docs.act(who, &key, edit).await.map(|(r, a)| Some((r, a))),
        Some(mark) => app
            .docs
            .act_idempotent(who, &key, mark, edit, |_| None)
            .await
            .map(|once| match once {
                Once::Done(r, a) => Some((r, a)),
                Once::Repeat(_) => None,
            }),
    };
    if let Some(aside) = set_aside {
        let after = aside.after.map(|a| format!(" (after {a})")).unwrap_or_default();
        return Err(ApiError::SetAside {
            message: format!(
                "the workflow would set this {name} aside against the petition as it stands: rule {}{after}",
                aside.rule
            ),
            rule: aside.rule,
        });
    }
    if let Some((_, applied)) = acted.map_err(doc_error)? {
        refused(&applied)?;
    }
    view(app, who, &key).await
}

/// Reads a `before` paging cursor: `<submitted ms>~<doc id>`.
fn before_cursor(before: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    let Some(b) = before else { return Ok(None) };
    let bad = || ApiError::BadRequest("bad `before` cursor".into());
    let (t, id) = b.split_once('~').ok_or_else(bad)?;
    Ok(Some((t.parse().map_err(|_| bad())?, id.to_owned())))
}

/// Paging of `GET /api/board`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardQuery {
    /// Only results located within this unit (a village); defaults to
    /// everywhere the caller lives or works.
    pub unit: Option<String>,
    pub limit: Option<u32>,
    pub before: Option<String>,
}

/// `GET /api/board`: the public results board (公开晒单). Published results
/// located in the caller's own units (a resident's village, an officer's
/// jurisdiction) and below, newest first, with nothing that names or reaches
/// the person who asked.
pub async fn board(app: &AppState, who: &Principal, q: BoardQuery) -> Result<BoardPage, ApiError> {
    let org = app.docs.org();
    let mine: Vec<&sync_core::UnitId> = who.memberships.iter().map(|m| &m.unit).collect();
    let mut units: Vec<String> = org
        .units()
        .filter(|u| mine.iter().any(|m| org.is_within(&u.id, m)))
        .map(|u| u.id.to_string())
        .collect();
    if let Some(only) = &q.unit {
        let only = super::units::unit_id(only)?;
        units.retain(|u| org.is_within(&sync_core::UnitId::new(u.clone()).expect("stored id"), &only));
    }
    let limit = page_limit(q.limit, 50, 200);
    let query = PetitionQuery {
        public: true,
        published: Some(true),
        location_units: Some(units),
        before: before_cursor(q.before.as_deref())?,
        limit,
        ..PetitionQuery::default()
    };
    let rows = app.docs.storage().projections().list_petitions(&query).await?;
    let mut items = Vec::with_capacity(rows.len());
    for (doc_id, s) in &rows {
        let Some(publication) = s.publication.clone() else {
            continue;
        };
        items.push(BoardItem {
            doc_id: doc_id.clone(),
            title: s.title.clone(),
            category: s.category,
            location: s.location.clone(),
            submitted_at: s.submitted_at,
            replied_at: s.replied_at,
            closed_at: s.closed_at,
            publication,
            rating: s.rating,
        });
    }
    let next = (rows.len() == limit as usize)
        .then(|| rows.last())
        .flatten()
        .map(|(doc_id, summary)| {
            let at = summary.submitted_at.map_or(0, |t| t.millis());
            format!("{at}~{doc_id}")
        });
    Ok(BoardPage { items, next })
}
