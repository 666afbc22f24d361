//! Loads the [`Principal`] that policy is evaluated for, from a user's stored memberships.
//!
//! A disabled user has no principal: every request and connection of theirs is refused.

use sync_core::{Principal, UserId};

use super::AuthError;
use crate::storage::Storage;

pub(super) async fn load(storage: &Storage, user: &UserId) -> Result<Principal, AuthError> {
    let (record, memberships) = storage
        .auth()
        .user_with_memberships(user)
        .await?
        .ok_or_else(|| AuthError::UnknownUser(user.to_string()))?;
    if record.disabled {
        return Err(AuthError::Disabled);
    }
    Ok(Principal {
        user: record.id,
        memberships,
        household: record.household,
    })
}
