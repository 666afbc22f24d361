//! Loads the [`Principal`] that policy is evaluated for, from a user's stored memberships.

use sync_core::{Principal, UserId};

use super::AuthError;
use crate::storage::Storage;

pub(super) async fn load(storage: &Storage, user: &UserId) -> Result<Principal, AuthError> {
    let record = storage
        .get_user(user)
        .await?
        .ok_or_else(|| AuthError::UnknownUser(user.to_string()))?;
    let memberships = storage.memberships_of(user).await?;
    Ok(Principal {
        user: record.id,
        memberships,
        household: record.household,
    })
}
