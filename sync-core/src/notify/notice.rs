//! Notifications a notice raises: one per audience household when it is issued.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use automerge::AutoCommit;

use super::notification::{Notification, NotificationKind as Kind, Recipient, Source, TITLE_CHARS, clip};
use crate::error::SchemaError;
use crate::ids::HouseholdId;
use crate::notice::{NoticeDoc, NoticeKind};

/// The notifications raised by a notice going from `before` to `after`.
///
/// A notice notifies once, when it is issued (`before` is `None`): one
/// notification per household of its audience, urgent for anti-fraud
/// notices. The households are the notice's own `audience.households` and
/// `expanded`, the households of its audience units and rooms, which the host
/// expands from its directories and room memberships. Receipts and later
/// changes notify nobody; calling again with `None` yields the same keys, so a
/// host that lost track of a fan-out can safely repeat it.
pub fn notice_notifications<D: Borrow<AutoCommit>>(
    before: Option<&NoticeDoc<D>>,
    after: &NoticeDoc<D>,
    expanded: &[HouseholdId],
) -> Result<Vec<Notification>, SchemaError> {
    if before.is_some() {
        return Ok(Vec::new());
    }
    let info = after.info()?;
    let mut households: BTreeSet<&HouseholdId> = expanded.iter().collect();
    let audience = after.audience()?;
    households.extend(&audience.households);
    let urgent = info.kind == NoticeKind::AntiFraud;
    let title = clip(&info.title, TITLE_CHARS);
    let text = match info.kind {
        NoticeKind::AntiFraud => format!("反诈提醒：{title}"),
        NoticeKind::Safety => format!("安全提示：{title}"),
        NoticeKind::Legal => format!("法治宣传：{title}"),
        NoticeKind::Reminder => format!("提醒：{title}"),
        NoticeKind::General => format!("通知：{title}"),
    };
    let src = Source {
        doc: &info.id,
        segment: "issued".to_owned(),
        entry: None,
        at: info.at.timestamp(),
    };
    Ok(households
        .into_iter()
        .map(|h| src.notify(Recipient::Household(h.clone()), Kind::Notice, urgent, text.clone()))
        .collect())
}
