//! Notification fan-out, the pure part: what to tell whom, with a key that makes it happen once.
//!
//! The host (the server) calls these functions and does everything with
//! side effects: it persists inboxes, delivers over WebSocket, SSE, push and
//! SMS, expands unit recipients to the people on duty, and runs the scheduler.
//!
//! * [`petition_notifications`], [`room_notifications`] and
//!   [`notice_notifications`] derive notifications from a document change,
//!   given the document before it (`None` for a new document) and after it.
//!   Only what is new in `after` notifies: timeline events that newly apply
//!   (superseded events notify nobody), new messages, a new notice.
//!   [`to_household_officer`] addresses a petition filed on the household
//!   line to the household's officer, as `room_notifications` does for the
//!   household line's messages.
//! * [`Roster`] says who is on duty for a unit's shared inbox
//!   ([`Recipient::Unit`]) at a given instant, and when the next hand-over is.
//! * [`sweep`] turns a petition's clocks at `now` into due-soon and overdue
//!   notifications, and into auto-escalations when an [`EscalationPolicy`]
//!   says so.
//!
//! # Keys
//!
//! Every [`Notification`] and [`SweepAction`] has a key that depends only on
//! what it is about, never on when or where it was derived:
//!
//! ```text
//! {doc}/{source}/{what}/{target}
//!
//! p-1/1750000000000.00000.oa/assigned/unit:station-b     an entry (event or message stamp)
//! p-1/1750000000000.00002.r1/petition_message/unit:station-a
//! room-1/1750000000000.00000.oa/mention/user:r1
//! room-1/1750000000001.00000.oa/mention/all                 an @all, once for the room's members
//! notice-1/issued/notice/household:h1                     a notice, once per household
//! p-1/clock:sign:1750000000000/overdue/unit:station-a     one run of a clock (start in ms)
//! p-1/clock:sign:1750000000000/escalate/after:20m         an escalation step of that run
//! ```
//!
//! `doc` is the document's own id (petition header, room or notice info
//! `id`), with `%` and `/` percent-encoded; `source` is the entry's stamp
//! (its id), `issued`, or `clock:{kind}:{start}`; `what` is the
//! [`NotificationKind`] or `escalate`; `target` is the [`Recipient`]
//! (`user:`, `unit:` or `household:` and its id, or `all` for the members
//! an @all reached) or the escalation step.
//! The own id is what the creator minted; the host should refuse a new
//! document whose own id differs from the id it stores it under, so that one
//! document cannot shadow another's keys.
//!
//! # Idempotency contract
//!
//! The same input gives the same notifications with the same keys: two
//! server nodes deriving from the same change, a retry, or a restart that
//! derives again all produce keys the store already has. The host stores
//! notifications under a unique index on `key` (insert-or-ignore) and
//! records the keys of escalations it has written; then nothing is
//! delivered or escalated twice, and nothing is lost by deriving again.

mod notice;
mod notification;
mod petition;
mod room;
mod roster;
mod sweep;

pub use notice::notice_notifications;
pub use notification::{Notification, NotificationKind, Recipient};
pub use petition::{PetitionSnapshot, petition_changes, petition_notifications, to_household_officer};
pub use room::room_notifications;
pub use roster::{LocalTime, Roster, RosterError, Shift};
pub use sweep::{EscalationPolicy, EscalationStep, SweepAction, sweep};
