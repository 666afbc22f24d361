//! Notifications a room change raises: @mentions, @all, and household-line messages.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use automerge::AutoCommit;

use super::notification::{
    Notification, NotificationKind as Kind, Recipient, SNIPPET_CHARS, Source, TITLE_CHARS, clip,
};
use crate::doc::Mention;
use crate::error::SchemaError;
use crate::ids::{HouseholdId, UserId};
use crate::room::{RoomDoc, RoomKind};

/// The notifications raised by a room going from `before` (`None` for a new
/// document) to `after`.
///
/// For each new message that is not already redacted:
///
/// * each member it @mentions gets one mention notification; an `@all` is
///   one notification for every member ([`Recipient::Members`]), whoever
///   else it names (people who are not members are not told what they cannot
///   read, and the writer is never notified);
/// * on a household line (户户通), a message from the household
///   (`household_of(writer)` is the line's household) goes to the household's
///   own officer, `line_officer`: the officer the village directory assigns
///   to the line's household. A household the directory gives no officer
///   (or none the host can reach) falls back to the line's unit, whoever is
///   on duty. Any other message (an officer's) goes to the household.
///
/// `household_of` and `line_officer` answer from the host's directory and
/// principals; the room document records neither which household a user
/// belongs to nor who the household's officer is.
pub fn room_notifications<D: Borrow<AutoCommit>>(
    before: Option<&RoomDoc<D>>,
    after: &RoomDoc<D>,
    household_of: impl Fn(&UserId) -> Option<HouseholdId>,
    line_officer: Option<&UserId>,
) -> Result<Vec<Notification>, SchemaError> {
    let info = after.info()?;
    let members = after.members()?;
    let room = clip(&info.name, TITLE_CHARS);
    let mut out = Vec::new();
    for view in after.message_delta(before)?.new {
        if view.redacted.is_some() {
            continue;
        }
        let m = &view.message;
        let src = Source {
            doc: &info.id,
            segment: view.id.to_string(),
            entry: Some(view.id.clone()),
            at: m.at.timestamp(),
        };
        let snippet = if m.text.trim().is_empty() {
            "[附件]".to_owned()
        } else {
            clip(&m.text, SNIPPET_CHARS)
        };

        if m.mentions.contains(&Mention::All) {
            let people: Vec<UserId> = members.keys().filter(|u| **u != m.by).cloned().collect();
            if !people.is_empty() {
                let text = format!("{room} @所有人：{snippet}");
                out.push(src.notify(Recipient::Members(people), Kind::Mention, false, text));
            }
        } else {
            let called: BTreeSet<&UserId> = m
                .mentions
                .iter()
                .filter_map(|x| match x {
                    Mention::User(u) => (members.contains_key(u) && *u != m.by).then_some(u),
                    Mention::All => None,
                })
                .collect();
            for user in called {
                let text = format!("{room} 有人@你：{snippet}");
                out.push(src.notify(Recipient::User(user.clone()), Kind::Mention, false, text));
            }
        }

        if let (RoomKind::HouseholdLine, Some(household)) = (info.kind, &info.household) {
            if household_of(&m.by).as_ref() == Some(household) {
                let text = format!("户户通新消息（{household}）：{snippet}");
                let to = match line_officer {
                    Some(officer) if *officer != m.by => Recipient::User(officer.clone()),
                    _ => Recipient::Unit(info.unit.clone()),
                };
                out.push(src.notify(to, Kind::LineMessage, false, text));
            } else {
                let text = format!("民警回复：{snippet}");
                out.push(src.notify(Recipient::Household(household.clone()), Kind::LineMessage, false, text));
            }
        }
    }
    Ok(out)
}
