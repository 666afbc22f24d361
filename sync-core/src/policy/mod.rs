//! Policy: who may write what, decided from the decoded Automerge operations.
//!
//! The server runs [`check_changes`] on every incoming change before it
//! touches the stored document; phones run [`check_local`] on their own
//! edits before they send them. Both run the same code on the same rules, so
//! a phone refuses locally what the server would refuse.
//!
//! A change is checked in two layers:
//!
//! 1. **Structure.** Every operation targets either an object the same change
//!    created, or an existing container whose kind allows that operation:
//!    append-only lists (timeline, conversation, messages, redactions, raised)
//!    take only inserts of new maps; moderated maps (room members, tags, pins)
//!    take puts and deletes from moderators; receipt maps take a writer's own
//!    keys; the directory takes new households and field edits from officers.
//!    Anything else (rewriting an event, deleting a message, editing a header,
//!    counters, marks) is refused.
//! 2. **Meaning.** Each new entry is read back with the typed schema and
//!    checked against the user: an entry's `by` is the change's user, a
//!    handler action names a unit the user has jurisdiction over and that the
//!    petition was routed to, residents act only on their own petitions, only
//!    members speak in a room.
//! 3. **Shape and size** ([`shape`]). A new entry or document holds only its
//!    schema's fields, each written once; entries, changes and documents stay
//!    under the limits `shape` names.
//!
//! Authorisation depends only on facts that grow (the units a petition was
//! ever routed to, the entries that exist), never on derived status, so a
//! change allowed against an older state stays allowed after any merge.
//! Whether an allowed event takes effect is the workflow's business
//! ([`crate::petition::status`]): a late second signature is kept and shown
//! as superseded, not refused.

mod check;
mod facts;
mod rule;
pub mod shape;

pub use crate::access::may_read;
pub use check::{
    Checked, MAX_FUTURE_SKEW_MS, PolicyContext, check_changes, check_local, event_refusal, message_refusal,
};
pub use facts::{DocFacts, Visibility};
pub use rule::{Refusal, Rule};
