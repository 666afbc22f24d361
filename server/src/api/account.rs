//! The caller's own account.

use sync_core::Principal;
use sync_core::wire::{AccountKind, Me};

use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::UserKind;

/// `GET /api/me`: who the token belongs to, with memberships and household.
pub async fn me(app: &AppState, who: &Principal) -> Result<Me, ApiError> {
    let user = app
        .storage
        .auth()
        .get_user(&who.user)
        .await?
        .ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    Ok(Me {
        id: user.id,
        display_name: user.display_name,
        kind: match user.kind {
            UserKind::Staff => AccountKind::Staff,
            UserKind::Resident => AccountKind::Resident,
            UserKind::System => AccountKind::System,
        },
        memberships: who.memberships.clone(),
        household: who.household.clone(),
    })
}
