//! The named rules a change can be refused by, and the refusal itself.

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::channel::text_enum;

text_enum!(
    /// Why a change was refused. The text form is stable: clients act on it.
    Rule {
        /// The user may not create a document of this kind here.
        NotAllowedToCreate = "not-allowed-to-create",
        /// A new document or entry does not have the required shape.
        Malformed = "malformed",
        /// The change touches a field that never changes after creation.
        Immutable = "immutable",
        /// The change rewrites or deletes an existing entry.
        AppendOnly = "append-only",
        /// An entry's `by` is not the user who delivered the change.
        ForgedAuthor = "forged-by",
        /// The user has no jurisdiction over the unit the entry acts for.
        NotInJurisdiction = "not-in-jurisdiction",
        /// Only the resident who filed the petition may do this.
        NotSubmitter = "not-submitter",
        /// The action needs a role the user does not hold.
        RoleRequired = "role-required",
        /// Only members of the room may write in it.
        NotMember = "not-member",
        /// Only moderators of the room may do this.
        NotModerator = "not-moderator",
        /// The entry names a unit that does not exist.
        UnknownUnit = "unknown-unit",
        /// An entry with the same stamp already exists.
        DuplicateEntry = "duplicate-entry",
        /// The entry is stamped too far in the future.
        FutureStamp = "future-stamp",
        /// Counters, marks and text objects are not part of any schema.
        UnsupportedOp = "unsupported-op",
        /// Only the document's creation may do this.
        CreationOnly = "creation-only",
        /// The change's dependencies are neither stored nor in the same batch.
        MissingDependency = "missing-dependency",
        /// The change builds on a change that was refused.
        DependsOnRefused = "depends-on-refused",
        /// The change's actor id belongs to another user.
        ActorBoundToOther = "actor-bound-to-other-user",
        /// The change's actor id is one the server writes with for its own
        /// actions (or, for a server write, one a device used first).
        ActorReserved = "actor-reserved",
        /// A new entry or document holds a field its schema does not have.
        UnknownField = "unknown-field",
        /// The change writes a field twice, or deletes or overwrites inside
        /// what it creates: values nobody would see, stored all the same.
        WrittenTwice = "written-twice",
        /// A new entry is larger than `MAX_ENTRY_BYTES`.
        EntryTooLarge = "entry-too-large",
        /// The change is larger than the per-change limits.
        ChangeTooLarge = "change-too-large",
        /// The document would grow past its limits.
        DocumentFull = "document-full",
        /// A station relayed a change by someone outside its jurisdiction
        /// (or by a principal no station may speak for).
        RelayOutsideJurisdiction = "relay-outside-jurisdiction",
        /// A station relayed a change without naming its author, or named
        /// someone the tier above does not know.
        RelayUnattested = "relay-unattested",
        /// The tier above refused the change; every tier refuses it.
        RefusedUpstream = "refused-upstream",
    }
);

/// A refused change: which one, the rule that refused it, and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refusal {
    /// The change's hash, hex.
    pub change: String,
    pub rule: Rule,
    pub detail: String,
}

impl Refusal {
    pub fn new(change: &ChangeHash, rule: Rule, detail: impl Into<String>) -> Self {
        Refusal {
            change: change.to_string(),
            rule,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "change {} refused by rule {}: {}",
            self.change, self.rule, self.detail
        )
    }
}

impl std::error::Error for Refusal {}
