//! Lianxin sync-core: the sans-IO heart shared by the server and the phones.
//!
//! It holds the document schemas (petitions, rooms, notices, village
//! directories), the workflow that derives a petition's status, the policy
//! that decides who may write what, the clocks, and the sync protocol codecs
//! and state machines. It does no I/O: no sockets, no SQL, no OS clock; time
//! and randomness are arguments. The server and the phones drive it.
//!
//! # Workflow rules
//!
//! A petition's status is a pure function of its timeline
//! ([`petition::derive`]). Events are sorted by their hybrid-logical-clock
//! stamp ([`Hlc`]: wall milliseconds, counter, node), ties broken by content,
//! and folded in that order. Each event either applies or is *superseded*: it
//! stays in the timeline and in the derived outcomes with the rule that set it
//! aside (`petition::status::rules`). Because the fold depends only on the set
//! of events, every replica derives the same status and the same holder,
//! whatever order the merges came in. Writers observe every stamp in the
//! document before stamping, so an event always sorts after what its writer saw.
//!
//! | event | applies when | effect |
//! | --- | --- | --- |
//! | submitted | first submission | status `submitted`, lead = routed unit; clocks start |
//! | signed 签收 | status `submitted`, written for the lead | `signed` |
//! | transferred 流转·派单 | `submitted`, `signed` or `handling`, for the lead, to another unit | `dispatched` to the new lead with assists; signs an unsigned petition |
//! | accepted 接单 | `dispatched`, for the new lead | `handling` |
//! | returned 退单 | `dispatched`, for the new lead | back to the dispatching unit, `signed` |
//! | contacted, progress | open, for the lead or an assisting unit | records first contact time |
//! | replied 回复 | `submitted`..`handling`, for the lead | `replied` |
//! | escalated 提级 | `submitted`..`handling`, to a unit other than the lead; an automatic one only while the clock it judged runs | lead = target; `submitted` stays `submitted`, otherwise `signed` |
//! | supervised 督办 | open | flag |
//! | follow_up 回访 | `replied` or `closed` | the latest rating counts |
//! | published 公开 | `replied` or `closed` | flag |
//! | closed 办结 | `replied`, for the lead | `closed` |
//! | reopened | `replied` or `closed` | `handling`; the reply clock restarts |
//! | merged 并单 | `submitted`..`handling`, for the lead | `merged` (finished) |
//! | withdrawn | open, by the submitter | `withdrawn` (finished) |
//! | reclassified 重新分类 | open, for the lead, to another category | category (clocks and reports follow it) |
//! | assists_changed 协办调整 | open, for the lead, adding a unit other than the lead or removing an assist | assists; the lead stays |
//!
//! The conflicts this settles:
//!
//! * **Two officers sign offline.** The earlier stamp applies; the later is
//!   superseded by `already-signed` and shown as such.
//! * **A reply concurrent with a transfer.** If the transfer sorts first, the
//!   reply came from a unit that is no longer the lead: it stays visible (the
//!   resident did get the answer) but is superseded by `not-lead` and the new
//!   lead still owes a reply. If the reply sorts first, the transfer is
//!   superseded by `not-in-handling`: an answered petition is not routed on.
//! * **A resident comment concurrent with closing.** A message never changes
//!   status. A message from the submitter stamped after the last word from a
//!   handler (an applied handler event or a handler's message) sets
//!   `awaiting_handler`, also on a closed petition, so the holder is notified;
//!   only an explicit `reopened` event reopens.
//! * **An automatic escalation on a stale view.** The server's sweep writes
//!   `escalated` naming the clock that ran out (`clock`). An officer who
//!   signed or contacted offline before that, stamped on the device, syncs
//!   later (a phone's late sync, or a station whose uplink was down while
//!   the tier above swept): the step sorts before the escalation, which is
//!   then superseded by `clock-met`, on every replica alike. The sweep
//!   would not have escalated had it seen the step; the clocks already
//!   count such a step at its device stamp when that is the earlier time.
//!   A person's escalation names no clock and stands.
//! * **Events stamped before the submission** (a broken or forged clock) are
//!   superseded by `before-submission`.
//!
//! * **An online action the workflow would set aside.** A REST request is
//!   checked against the state it meets (`PetitionAction::apply_online`):
//!   signing a signed petition, transferring to the current lead, adding the
//!   lead as its own assist are refused with the rule (HTTP 409) instead of
//!   being stored as superseded events. Offline edits still merge and are
//!   set aside as above.
//!
//! Authorisation is separate ([`policy`]): it depends only on facts that
//! grow (the units a petition was ever routed to), so an edit allowed on a
//! phone offline stays allowed when it reaches the server after any merge;
//! whether it takes effect is the workflow's business, as above.

pub mod access;
pub mod author;
pub mod batch;
pub mod channel;
pub mod clocks;
pub mod directory;
pub mod doc;
pub mod error;
pub mod guard;
pub mod hlc;
pub mod ids;
pub mod kpi;
pub mod notice;
pub mod notify;
mod openapi;
pub mod org;
pub mod petition;
pub mod policy;
pub mod projection;
pub mod relay;
pub mod repo_protocol;
pub mod room;
pub mod time;
pub mod validated_sync;
pub mod wire;
pub mod write;

pub use author::Author;
pub use channel::{Category, Channel};
pub use clocks::{Calendar, ClockKind, ClockRules, ClockState, Date, Limit, LimitUnit, Weekday};
pub use doc::DocKind;
pub use error::SchemaError;
pub use hlc::{Hlc, HlcClock};
pub use ids::{EntryId, HouseholdId, UnitId, UserId};
pub use org::{Membership, OrgTree, Principal, Role, Unit, UnitKind};
pub use time::Timestamp;
