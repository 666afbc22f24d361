//! The `Replica` object: a signed-in user's local copy of their documents,
//! read as flat records and edited through actions checked by the local policy.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{ActorId, AutoCommit, ChangeHash};
use sync_core::batch::{BatchClient, ClientState, DocId, RefusedChange};
use sync_core::directory::{DirectoryDoc, Household};
use sync_core::notice::ReceiptKind;
use sync_core::petition::{Location, PetitionDoc, PetitionHeader};
use sync_core::policy::{PolicyContext, check_local};
use sync_core::repo_protocol::DocumentId;
use sync_core::room::RoomDoc;
use sync_core::{
    Author, EntryId, HlcClock, HouseholdId, Membership, OrgTree, Principal, Timestamp, Unit, UnitId, UserId,
};

use crate::auto::{AutoSync, Wake};
use crate::error::{ErrorKind, LianxinError, Result, guard};
use crate::index::{DirectoryIndex, NoticeIndex, RoomIndex, describe};
use crate::intent::Intent;
use crate::records::*;
use crate::store::{Store, heads_key};

/// A signed-in user's offline replica. Thread-safe: every method takes an
/// internal lock for as long as it touches local state (never while waiting
/// on the network).
#[derive(uniffi::Object)]
pub struct Replica {
    inner: Mutex<Inner>,
    /// Held by the built-in sync client, so two syncs never interleave exchanges.
    pub(crate) syncing: Mutex<()>,
    /// Wakes automatic sync after a local edit or a new token.
    pub(crate) wake: Arc<Wake>,
    pub(crate) auto: Mutex<Option<AutoSync>>,
    /// Until when the built-in client sends exchanges as `POST /batch`
    /// because a WebSocket upgrade failed.
    pub(crate) http_until: Mutex<Option<std::time::Instant>>,
}

/// The session: who is signed in, in which organisation, against which server.
pub(crate) struct Session {
    pub server_url: String,
    pub principal: Principal,
    pub org: OrgTree,
    /// The clock rules and calendar deadlines are computed with: the
    /// server's (`refresh_settings`), so a phone's deadlines equal its.
    pub clocks: sync_core::wire::ClockSettings,
}

/// What happened during the exchange under way, acted on when it completes.
#[derive(Default)]
pub(crate) struct ExchangeNotes {
    pub acked: BTreeSet<DocId>,
    pub refused: std::collections::BTreeMap<DocId, Vec<RefusedChange>>,
}

pub(crate) struct Inner {
    pub store: Store,
    pub session: Session,
    pub token: Option<String>,
    pub actor: ActorId,
    pub author: Author,
    pub client: BatchClient,
    pub next_exchange: u64,
    pub notes: ExchangeNotes,
    pub wake: Arc<Wake>,
    /// Whether `client` asks for early pulls.
    pub early_pull: bool,
}

/// The device's clock. sync-core never reads it; the replica passes it in.
pub(crate) fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| LianxinError::new(ErrorKind::Internal, format!("no randomness: {e}")))?;
    Ok(b)
}

/// Parses a document id as apps pass it: bs58check, with or without `automerge:`.
pub(crate) fn parse_doc_id(id: &str) -> Result<DocId> {
    let bare = id.strip_prefix(sync_core::repo_protocol::URL_PREFIX).unwrap_or(id);
    bare.parse::<DocumentId>()
        .map(|d| DocId(*d.as_bytes()))
        .map_err(|e| LianxinError::invalid(format!("{id:?} is not a document id: {e}")))
}

/// The id apps see: bs58check, as the REST API names documents.
pub(crate) fn doc_name(id: &DocId) -> String {
    DocumentId::from_bytes(id.0).to_string()
}

fn enum_from_text<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| LianxinError::invalid(format!("{s:?} is not a known {what}")))
}

impl Session {
    fn from_config(config: &SessionConfig) -> Result<Session> {
        let user = UserId::new(&config.user_id)?;
        let memberships = config
            .memberships
            .iter()
            .map(|m| {
                Ok(Membership {
                    unit: UnitId::new(&m.unit)?,
                    role: enum_from_text("role", &m.role)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let household = config.household.as_deref().map(HouseholdId::new).transpose()?;
        let units = config
            .units
            .iter()
            .map(|u| {
                Ok(Unit {
                    id: UnitId::new(&u.id)?,
                    name: u.name.clone(),
                    kind: enum_from_text("unit kind", &u.kind)?,
                    parent: u.parent.as_deref().map(UnitId::new).transpose()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let url = config.server_url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(LianxinError::invalid(format!(
                "server url {url:?} must start with http:// or https://"
            )));
        }
        Ok(Session {
            server_url: url,
            principal: Principal {
                user,
                memberships,
                household,
            },
            org: OrgTree::new(units),
            clocks: crate::index::default_clocks(),
        })
    }
}

impl Inner {
    /// Recomputes every petition's index entry (after the clock rules changed).
    pub fn reindex_petitions(&self) -> Result<()> {
        let now = now();
        for row in self.store.list("petition")? {
            let Some(bytes) = self.store.load(&row.id)? else {
                continue;
            };
            let Ok(mut doc) = AutoCommit::load(&bytes) else {
                continue;
            };
            let meta = describe(
                &doc,
                now,
                self.session.principal.household.as_ref(),
                &self.session.clocks,
            );
            self.store.save(&row.id, &doc.get_heads(), &bytes, &meta)?;
        }
        Ok(())
    }

    pub fn ctx(&self, now: Timestamp) -> PolicyContext<'_> {
        PolicyContext {
            org: &self.session.org,
            principal: &self.session.principal,
            now,
        }
    }

    /// Loads a document ready for local edits (written with this replica's actor).
    pub fn load_doc(&self, id: &DocId) -> Result<Option<AutoCommit>> {
        match self.store.load(id)? {
            None => Ok(None),
            Some(bytes) => {
                let doc = AutoCommit::load(&bytes).map_err(|e| {
                    LianxinError::new(
                        ErrorKind::Storage,
                        format!("document {} does not load: {e}", doc_name(id)),
                    )
                })?;
                Ok(Some(doc.with_actor(self.actor.clone())))
            }
        }
    }

    fn require_doc(&self, id: &DocId) -> Result<AutoCommit> {
        self.load_doc(id)?
            .ok_or_else(|| LianxinError::not_found(format!("no document {} in this replica", doc_name(id))))
    }

    /// A document to show, and whether it has local edits the server has not acknowledged.
    fn doc_for_view(&self, id: &DocId) -> Result<(AutoCommit, bool)> {
        let doc = self.require_doc(id)?;
        let unsynced = self.dirty()?.contains(id);
        Ok((doc, unsynced))
    }

    /// Checks the changes made since `before` with the local policy; a refused
    /// edit is rolled back and reported.
    pub fn check(&self, doc: &mut AutoCommit, before: &[ChangeHash], now: Timestamp) -> Result<()> {
        check_local(&self.ctx(now), doc, before).map_err(LianxinError::from)
    }

    /// Applies an intent to a stored document, checks it, stores it and journals it.
    pub fn edit(&mut self, id: DocId, intent: Intent, now: Timestamp) -> Result<Option<String>> {
        let mut doc = self.require_doc(&id)?;
        let before = doc.get_heads();
        let (mut doc, entry) = intent.apply(doc, &mut self.author, now)?;
        self.check(&mut doc, &before, now)?;
        self.commit(id, &mut doc, &before, &intent, now)?;
        Ok(entry)
    }

    /// Stores a checked document and journals the change it gained.
    pub fn commit(
        &self,
        id: DocId,
        doc: &mut AutoCommit,
        before: &[ChangeHash],
        intent: &Intent,
        now: Timestamp,
    ) -> Result<()> {
        let changes = doc.get_changes(before);
        let json = serde_json::to_string(intent).map_err(|e| LianxinError::new(ErrorKind::Internal, e.to_string()))?;
        self.store.transaction(|s| {
            let meta = describe(
                doc,
                now,
                self.session.principal.household.as_ref(),
                &self.session.clocks,
            );
            s.save(&id, &doc.get_heads(), &doc.save(), &meta)?;
            for c in &changes {
                s.journal_add(&id, &c.hash(), &json, now.millis())?;
            }
            Ok(())
        })?;
        self.wake.notify();
        Ok(())
    }

    /// Documents whose heads differ from what the server is known to have.
    pub fn dirty(&self) -> Result<BTreeSet<DocId>> {
        let shared = &self.client.state().shared;
        Ok(self
            .store
            .heads_index()?
            .into_iter()
            .filter(|(id, heads)| shared.get(id).is_none_or(|s| heads_key(s) != heads_key(heads)))
            .map(|(id, _)| id)
            .collect())
    }

    pub fn persist_client_state(&self) -> Result<()> {
        let json = serde_json::to_string(self.client.state())
            .map_err(|e| LianxinError::new(ErrorKind::Internal, e.to_string()))?;
        self.store.set_meta("client_state", &json)
    }

    fn new_header(&self, id: &DocId, new: &NewPetitionRecord) -> Result<(PetitionHeader, UnitId)> {
        let header = PetitionHeader {
            id: DocumentId::from_bytes(id.0).to_url(),
            channel: new.channel.parse()?,
            category: new.category.parse()?,
            title: new.title.clone(),
            body: new.body.clone(),
            submitter: match &new.submitter {
                Some(s) => UserId::new(s)?,
                None => self.session.principal.user.clone(),
            },
            recorded_by: self.session.principal.user.clone(),
            anonymous: new.anonymous,
            contact: new.contact.clone(),
            location: Location {
                unit: UnitId::new(&new.location_unit)?,
                lat: None,
                lon: None,
            },
            attachments: new.attachments.clone(),
            source: None,
        };
        header.validate()?;
        Ok((header, UnitId::new(&new.routed_to)?))
    }
}

impl Replica {
    /// Locks the state. A panic in an earlier call poisoned nothing that
    /// matters: every write goes through SQLite transactions, so the lock is recovered.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_inner(path: &str, config: &SessionConfig, wake: Arc<Wake>) -> Result<Inner> {
        let session = Session::from_config(config)?;
        let store = Store::open(Path::new(path))?;
        let user = session.principal.user.to_string();
        match store.meta("user")? {
            Some(owner) if owner != user => {
                return Err(LianxinError::new(
                    ErrorKind::Storage,
                    format!("this replica belongs to user {owner}; open a separate file for {user}"),
                ));
            }
            Some(_) => {}
            None => store.set_meta("user", &user)?,
        }
        let actor = match store.meta("actor")? {
            Some(hex) => ActorId::from(
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                    .collect::<std::result::Result<Vec<u8>, _>>()
                    .map_err(|_| LianxinError::new(ErrorKind::Storage, "the stored actor id is damaged"))?,
            ),
            None => {
                let actor = ActorId::from(random_bytes::<16>()?.as_slice());
                store.set_meta("actor", &actor.to_hex_string())?;
                actor
            }
        };
        let state: ClientState = match store.meta("client_state")? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| LianxinError::new(ErrorKind::Storage, format!("the stored sync state is damaged: {e}")))?,
            None => ClientState::default(),
        };
        let next_exchange = match store.meta("exchange")? {
            Some(n) => n.parse().unwrap_or(1),
            None => u64::from(u32::from_le_bytes(random_bytes::<4>()?)),
        };
        let node = actor.to_hex_string()[..16].to_owned();
        let author = Author::new(session.principal.user.clone(), HlcClock::new(node)?);
        let mut session = session;
        if let Some(json) = store.meta("clock_settings")? {
            session.clocks = serde_json::from_str(&json).map_err(|e| {
                LianxinError::new(ErrorKind::Storage, format!("the stored clock rules are damaged: {e}"))
            })?;
        }
        if session.org.units().next().is_none()
            && let Some(json) = store.meta("units")?
        {
            let units: sync_core::wire::UnitList = serde_json::from_str(&json)
                .map_err(|e| LianxinError::new(ErrorKind::Storage, format!("the stored unit tree is damaged: {e}")))?;
            session.org = org_of(&units);
        }
        Ok(Inner {
            store,
            session,
            token: None,
            actor,
            author,
            client: BatchClient::new(state),
            next_exchange,
            notes: ExchangeNotes::default(),
            wake,
            early_pull: false,
        })
    }

    fn list_rows(&self, kind: &str) -> Result<(Vec<crate::store::IndexRow>, BTreeSet<DocId>)> {
        let inner = self.lock();
        Ok((inner.store.list(kind)?, inner.dirty()?))
    }
}

#[uniffi::export]
impl Replica {
    /// Opens (or creates) the replica file at `path` for the signed-in user.
    /// A file belongs to one user: opening it for another fails with a storage error.
    #[uniffi::constructor]
    pub fn open(path: String, session: SessionConfig) -> Result<Arc<Replica>> {
        guard(|| {
            let wake = Arc::new(Wake::default());
            Ok(Arc::new(Replica {
                inner: Mutex::new(Self::open_inner(&path, &session, Arc::clone(&wake))?),
                syncing: Mutex::new(()),
                wake,
                auto: Mutex::new(None),
                http_until: Mutex::new(None),
            }))
        })
    }

    /// Replaces memberships, household and organisation (after `/api/me` changed).
    pub fn update_session(&self, session: SessionConfig) -> Result<()> {
        guard(|| {
            let new = Session::from_config(&session)?;
            let mut inner = self.lock();
            if new.principal.user != inner.session.principal.user {
                return Err(LianxinError::invalid(
                    "a replica belongs to one user; open another file",
                ));
            }
            let clocks = std::mem::replace(&mut inner.session.clocks, crate::index::default_clocks());
            inner.session = Session { clocks, ..new };
            Ok(())
        })
    }

    /// Sets the access token the built-in clients send (`None` signs out).
    pub fn set_access_token(&self, token: Option<String>) {
        self.lock().token = token;
        self.wake.notify();
    }

    pub fn user_id(&self) -> String {
        self.lock().session.principal.user.to_string()
    }

    // ---- petitions ----

    /// Every petition held locally, most recently active first.
    pub fn list_petitions(&self) -> Result<Vec<PetitionSummaryRecord>> {
        guard(|| {
            let (rows, dirty) = self.list_rows("petition")?;
            let now = now();
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let s: sync_core::petition::PetitionSummary = serde_json::from_str(&r.summary).ok()?;
                    let mut rec = summary_record(&s, doc_name(&r.id), dirty.contains(&r.id));
                    rec.overdue = rec.overdue || (s.status.is_open() && s.next_due.is_some_and(|d| d < now));
                    Some(rec)
                })
                .collect())
        })
    }

    /// One petition: header, timeline with outcomes, conversation, clocks at now.
    pub fn get_petition(&self, id: String) -> Result<PetitionRecord> {
        guard(|| {
            let doc_id = parse_doc_id(&id)?;
            let inner = self.lock();
            let (doc, unsynced) = inner.doc_for_view(&doc_id)?;
            drop(inner);
            let p = PetitionDoc::view(&doc)?;
            let header = p.header()?;
            let state = p.state()?;
            let clocks = self.lock().session.clocks.clone();
            let summary = p.summary(&clocks.rules, &clocks.calendar, now())?;
            let mut events = p.events()?;
            events.sort_by(|a, b| a.at.cmp(&b.at));
            let mut messages = p.messages()?;
            messages.sort_by(|a, b| a.at.cmp(&b.at));
            Ok(PetitionRecord {
                summary: summary_record(&summary, doc_name(&doc_id), unsynced),
                body: header.body,
                recorded_by: header.recorded_by.to_string(),
                anonymous: header.anonymous,
                contact: header.contact,
                assist_units: state.assists.iter().map(|u| u.to_string()).collect(),
                source_room: header.source.as_ref().map(|s| s.room.clone()),
                source_message: header.source.as_ref().map(|s| s.message.to_string()),
                timeline: events
                    .iter()
                    .map(|e| timeline_record(e, state.outcome(&e.id())))
                    .collect(),
                conversation: messages.iter().map(message_record).collect(),
            })
        })
    }

    /// Files a petition (a resident, or an officer recording a call or visit).
    /// Returns its document id. It is sent with the next sync.
    pub fn submit_petition(&self, petition: NewPetitionRecord) -> Result<String> {
        guard(|| {
            let mut inner = self.lock();
            let now = now();
            let id = DocId(random_bytes::<16>()?);
            let (header, routed) = inner.new_header(&id, &petition)?;
            let title = header.title.clone();
            let actor = inner.actor.clone();
            let mut doc = PetitionDoc::create(actor, header, routed, &mut inner.author, now)?.into_doc();
            inner.check(&mut doc, &[], now)?;
            let intent = Intent::Create {
                what: format!("petition {title:?}"),
            };
            inner.commit(id, &mut doc, &[], &intent, now)?;
            Ok(doc_name(&id))
        })
    }

    /// Does one thing to a petition (sign, transfer, contact, reply, rate,
    /// comment…). Checked by the local policy first: a refused action
    /// changes nothing and fails with `Refused`. Returns the new entry's id.
    pub fn act(&self, petition_id: String, verb: PetitionVerb) -> Result<String> {
        guard(|| {
            let id = parse_doc_id(&petition_id)?;
            let action = verb.to_action()?;
            let entry = self.lock().edit(id, Intent::Petition { action }, now())?;
            Ok(entry.unwrap_or_default())
        })
    }

    // ---- rooms ----

    pub fn list_rooms(&self) -> Result<Vec<RoomSummaryRecord>> {
        guard(|| {
            let (rows, dirty) = self.list_rows("room")?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let i: RoomIndex = serde_json::from_str(&r.summary).ok()?;
                    Some(room_summary(doc_name(&r.id), i, dirty.contains(&r.id)))
                })
                .collect())
        })
    }

    /// One room with its members and messages (redacted content removed).
    pub fn get_room(&self, id: String) -> Result<RoomRecord> {
        guard(|| {
            let doc_id = parse_doc_id(&id)?;
            let inner = self.lock();
            let (doc, unsynced) = inner.doc_for_view(&doc_id)?;
            let meta = describe(
                &doc,
                now(),
                inner.session.principal.household.as_ref(),
                &inner.session.clocks,
            );
            drop(inner);
            let r = RoomDoc::view(&doc)?;
            let info = r.info()?;
            let index: RoomIndex = serde_json::from_str(&meta.summary)
                .map_err(|_| LianxinError::invalid(format!("{id} is not a room")))?;
            Ok(RoomRecord {
                summary: room_summary(doc_name(&doc_id), index, unsynced),
                created_by: info.created_by.to_string(),
                members: r
                    .members()?
                    .into_iter()
                    .map(|(user, role)| MemberRecord {
                        user: user.to_string(),
                        role: role.as_str().into(),
                    })
                    .collect(),
                tags: r.tags()?.into_iter().collect(),
                messages: r.messages()?.iter().map(message_view_record).collect(),
            })
        })
    }

    /// Posts a message. `mentions` are user ids or `@all`; `@user-id` words in
    /// the text are mentions too. Returns the message id.
    pub fn post_message(
        &self,
        room_id: String,
        text: String,
        mentions: Vec<String>,
        reply_to: Option<String>,
    ) -> Result<String> {
        guard(|| {
            let id = parse_doc_id(&room_id)?;
            let mut all = mentions;
            for m in mentions_in(&text) {
                if !all.contains(&m) {
                    all.push(m);
                }
            }
            for m in &all {
                parse_mention(m)?;
            }
            let intent = Intent::Post {
                text,
                mentions: all,
                reply_to: reply_to.as_deref().map(EntryId::new).transpose()?,
            };
            Ok(self.lock().edit(id, intent, now())?.unwrap_or_default())
        })
    }

    /// Hides a message's content, keeping who, when and why (moderators only).
    pub fn redact_message(&self, room_id: String, message_id: String, reason: String) -> Result<String> {
        guard(|| {
            let id = parse_doc_id(&room_id)?;
            let intent = Intent::Redact {
                message: EntryId::new(message_id)?,
                reason,
            };
            Ok(self.lock().edit(id, intent, now())?.unwrap_or_default())
        })
    }

    /// Turns a room message into a petition with a link both ways. Returns the petition's id.
    pub fn raise_as_petition(
        &self,
        room_id: String,
        message_id: String,
        petition: NewPetitionRecord,
    ) -> Result<String> {
        guard(|| {
            let room_doc_id = parse_doc_id(&room_id)?;
            let message = EntryId::new(message_id)?;
            let mut inner = self.lock();
            let now = now();
            let mut room = inner.require_doc(&room_doc_id)?;
            let before = room.get_heads();
            let mut room = RoomDoc::from_doc(room)?;
            let id = DocId(random_bytes::<16>()?);
            let (header, routed) = inner.new_header(&id, &petition)?;
            let actor = inner.actor.clone();
            let mut pdoc = room
                .raise_as_petition(&mut inner.author, now, &message, actor, header, routed)?
                .into_doc();
            let mut room = room.into_doc();
            inner.check(&mut pdoc, &[], now)?;
            inner.check(&mut room, &before, now)?;
            let link = Intent::Raised {
                message,
                petition: doc_name(&id),
            };
            let create = Intent::Create {
                what: format!("petition raised from room {room_id}"),
            };
            inner.commit(id, &mut pdoc, &[], &create, now)?;
            inner.commit(room_doc_id, &mut room, &before, &link, now)?;
            Ok(doc_name(&id))
        })
    }

    // ---- notices ----

    /// Notices held locally, newest first, with this user's household's receipts.
    pub fn list_notices(&self) -> Result<Vec<NoticeRecord>> {
        guard(|| {
            let (rows, dirty) = self.list_rows("notice")?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let i: NoticeIndex = serde_json::from_str(&r.summary).ok()?;
                    Some(NoticeRecord {
                        id: doc_name(&r.id),
                        kind: i.kind,
                        title: i.title,
                        body: i.body,
                        unit: i.unit,
                        by: i.by,
                        at_ms: i.at_ms,
                        read: i.read,
                        forwarded: i.forwarded,
                        unsynced: dirty.contains(&r.id),
                    })
                })
                .collect())
        })
    }

    /// Records that the user's household received, read or forwarded a notice.
    pub fn mark_notice(&self, notice_id: String, receipt: NoticeReceipt) -> Result<()> {
        guard(|| {
            let id = parse_doc_id(&notice_id)?;
            let mut inner = self.lock();
            let household = inner
                .session
                .principal
                .household
                .clone()
                .ok_or_else(|| LianxinError::invalid("the signed-in user belongs to no household"))?;
            let kind = match receipt {
                NoticeReceipt::Delivered => ReceiptKind::Delivered,
                NoticeReceipt::Read => ReceiptKind::Read,
                NoticeReceipt::Forwarded => ReceiptKind::Forwarded,
            };
            inner.edit(id, Intent::Receipt { household, kind }, now())?;
            Ok(())
        })
    }

    // ---- village directory ----

    /// The village directories held locally.
    pub fn list_directories(&self) -> Result<Vec<DirectoryRecord>> {
        guard(|| {
            let (rows, dirty) = self.list_rows("directory")?;
            let mut out = Vec::new();
            for r in rows {
                let _: DirectoryIndex = match serde_json::from_str(&r.summary) {
                    Ok(i) => i,
                    Err(_) => continue,
                };
                let mut rec = self.get_directory(doc_name(&r.id))?;
                rec.unsynced = dirty.contains(&r.id);
                out.push(rec);
            }
            Ok(out)
        })
    }

    pub fn get_directory(&self, id: String) -> Result<DirectoryRecord> {
        guard(|| {
            let doc_id = parse_doc_id(&id)?;
            let inner = self.lock();
            let (doc, unsynced) = inner.doc_for_view(&doc_id)?;
            drop(inner);
            let d = DirectoryDoc::view(&doc)?;
            Ok(DirectoryRecord {
                id: doc_name(&doc_id),
                village: d.village()?.to_string(),
                households: d.households()?.into_iter().map(household_record).collect(),
                unsynced,
            })
        })
    }

    /// Adds a household to a village directory, or updates the fields that differ.
    pub fn add_household(&self, directory_id: String, household: HouseholdRecord) -> Result<()> {
        guard(|| {
            let id = parse_doc_id(&directory_id)?;
            let household = household_from_record(household)?;
            self.lock().edit(id, Intent::Household { household }, now())?;
            Ok(())
        })
    }
}

fn room_summary(id: String, i: RoomIndex, unsynced: bool) -> RoomSummaryRecord {
    RoomSummaryRecord {
        id,
        name: i.name,
        kind: i.kind,
        unit: i.unit,
        household: i.household,
        members: i.members,
        messages: i.messages,
        last_message_ms: i.last_message_ms,
        unsynced,
    }
}

fn household_record(h: Household) -> HouseholdRecord {
    HouseholdRecord {
        id: h.id.to_string(),
        name: h.name,
        representative: h.representative.map(|u| u.to_string()),
        representative_name: h.representative_name,
        phone: h.phone,
        group_tag: h.group_tag,
        officer: h.officer.map(|u| u.to_string()),
        address: h.address,
        note: h.note,
        moved_out: h.moved_out,
    }
}

fn household_from_record(h: HouseholdRecord) -> Result<Household> {
    let h = Household {
        id: HouseholdId::new(h.id)?,
        name: h.name,
        representative: h.representative.map(UserId::new).transpose()?,
        representative_name: h.representative_name,
        phone: h.phone,
        group_tag: h.group_tag,
        officer: h.officer.map(UserId::new).transpose()?,
        address: h.address,
        note: h.note,
        moved_out: h.moved_out,
    };
    h.validate()?;
    Ok(h)
}

/// The organisation tree of a `GET /api/units` answer.
pub(crate) fn org_of(units: &sync_core::wire::UnitList) -> OrgTree {
    OrgTree::new(units.items.iter().map(|u| Unit {
        id: u.id.clone(),
        name: u.name.clone(),
        kind: u.kind,
        parent: u.parent.clone(),
    }))
}
