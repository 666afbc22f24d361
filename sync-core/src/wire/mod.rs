//! Wire types: the JSON bodies of the HTTP API, shared by the server and the phone library.
//!
//! Every request and response envelope of `/api/*` is defined here once, so
//! the server writes and the phone library (and any Rust client) reads the
//! same type; neither walks JSON by hand. Inside the envelopes sit the
//! domain's value types whose serde form is already fixed and stable (id
//! newtypes, the text enums, timeline events, petition actions): they are
//! not copied. Each type has a round-trip test (`tests` below), and the
//! server's OpenAPI document is generated from these definitions.
//!
//! Conventions: times are milliseconds since the Unix epoch (`*_ms` or a
//! [`crate::Timestamp`]); absent optional fields may be left out; lists are
//! paged with an opaque `next` cursor that is absent on the last page.

mod close;
mod directory;
mod error;
mod inbox;
mod keys;
mod me;
mod notice;
mod org;
mod petition;
mod room;
mod station;
mod unit;

pub use close::CloseCode;
pub use directory::{CoverageReport, CoverageRow, DirectoryView, HouseholdEdit};
pub use error::{ErrorBody, ErrorDetail};
pub use inbox::{AckRequest, AckResponse, InboxItem, InboxPage};
pub use keys::{KeySet, PublicKey};
pub use me::{AccountKind, Me};
pub use notice::{
    MarkReceipt, NewNotice, NotReached, NoticeDelivery, NoticeList, NoticeReport, NoticeSummary, NoticeView,
};
pub use org::{ClockSettings, ImportResult, UnitEdit, UnitList, UnitView, UserEdit, UserKindEdit, UserList, UserView};
pub use petition::{BoardItem, BoardPage, NewPetition, PetitionListItem, PetitionPage, PetitionView, TimelineEntry};
pub use room::{
    AppealPost, AppealView, MessagePage, NewAppeal, NewMessage, NewRoom, Pin, RaiseAsPetition, Raised, Redact,
    ResolveAppeal, RoomList, RoomMember, RoomSummary, RoomView, SetMember,
};
pub use station::{
    RosterOutcome, StationDirectory, StationPerson, StationRoster, StationRosterResult, StationRosterResults,
    StationRosters,
};
pub use unit::RosterView;

#[cfg(test)]
mod tests;
