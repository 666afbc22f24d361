//! Which notifications a document change raises: sync-core derives them; the host supplies
//! what the documents do not record (who belongs to which household, which households live
//! in a unit or a room).

use std::collections::BTreeSet;

use automerge::AutoCommit;
use sync_core::notice::NoticeDoc;
use sync_core::notify::{Notification, notice_notifications, petition_notifications, room_notifications};
use sync_core::petition::PetitionDoc;
use sync_core::room::RoomDoc;
use sync_core::{DocKind, HouseholdId, OrgTree, Principal, SchemaError};

use crate::storage::{Storage, StorageError};

/// Why notifications could not be derived.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The notifications raised by `who`'s change taking a document of `kind` from `before` to `after`.
pub async fn derive(
    storage: &Storage,
    org: &OrgTree,
    who: &Principal,
    kind: DocKind,
    before: &AutoCommit,
    after: &AutoCommit,
) -> Result<Vec<Notification>, DeriveError> {
    let existed = DocKind::of(before)?.is_some();
    Ok(match kind {
        DocKind::Petition => {
            let before = existed.then(|| PetitionDoc::view(before)).transpose()?;
            petition_notifications(before.as_ref(), &PetitionDoc::view(after)?)?
        }
        DocKind::Room => {
            let before = existed.then(|| RoomDoc::view(before)).transpose()?;
            // Policy binds every new entry to the user who delivered it, so the
            // writer of every new message is `who`.
            let household_of = |u: &sync_core::UserId| if *u == who.user { who.household.clone() } else { None };
            room_notifications(before.as_ref(), &RoomDoc::view(after)?, household_of)?
        }
        DocKind::Notice if !existed => {
            let notice = NoticeDoc::view(after)?;
            let expanded = audience_households(storage, org, &notice).await?;
            notice_notifications(None, &notice, &expanded)?
        }
        DocKind::Notice | DocKind::Directory => Vec::new(),
    })
}

/// The households of a notice's audience units (every village below them) and rooms.
async fn audience_households(
    storage: &Storage,
    org: &OrgTree,
    notice: &NoticeDoc<&AutoCommit>,
) -> Result<Vec<HouseholdId>, DeriveError> {
    let audience = notice.audience()?;
    let units: Vec<String> = org
        .units()
        .filter(|u| audience.units.iter().any(|a| org.is_within(&u.id, a)))
        .map(|u| u.id.to_string())
        .chain(audience.units.iter().map(|u| u.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut households: BTreeSet<String> = storage.households_in_units(&units).await?.into_iter().collect();
    for room in &audience.rooms {
        let id = room.strip_prefix(sync_core::repo_protocol::URL_PREFIX).unwrap_or(room);
        households.extend(storage.room_households(id).await?);
    }
    Ok(households
        .into_iter()
        .filter_map(|h| HouseholdId::new(h).ok())
        .collect())
}
