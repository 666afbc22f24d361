//! Rooms: members, tags and pins, who may post, and moderation.

use super::*;

impl Inspector<'_, '_> {
    pub(super) fn check_room_map(
        &self,
        container: &Container,
        key: Option<&str>,
        action: &OpType,
    ) -> Result<(), Refusal> {
        let DocFacts::Room {
            info,
            members,
            messages,
            ..
        } = self.facts
        else {
            return Err(self.refuse(Rule::Malformed, "not a room"));
        };
        let my_role = members.get(self.me()).copied();
        let staff = self.staff_over(OFFICERS, &info.unit);
        if !staff && !my_role.is_some_and(MemberRole::moderates) {
            return Err(self.refuse(
                Rule::NotModerator,
                format!("only moderators of the room change its {}", container_name(container)),
            ));
        }
        let key = key.unwrap_or_default();
        match (container, action) {
            (Container::Members, OpType::Put(ScalarValue::Str(_)) | OpType::Delete) => {
                let user = UserId::new(key).map_err(|e| self.malformed("member", e))?;
                if let OpType::Put(ScalarValue::Str(role)) = action {
                    role.parse::<MemberRole>()
                        .map_err(|e| self.malformed("member role", e))?;
                }
                let touches_owner = members.get(&user) == Some(&MemberRole::Owner)
                    || matches!(action, OpType::Put(ScalarValue::Str(r)) if r.as_str() == "owner");
                if touches_owner && !staff && my_role != Some(MemberRole::Owner) {
                    return Err(self.refuse(
                        Rule::NotModerator,
                        "only the owner or an officer over the room's unit changes ownership",
                    ));
                }
                Ok(())
            }
            (Container::Tags, OpType::Put(ScalarValue::Boolean(true)) | OpType::Delete) => {
                crate::doc::check_text("tag", key, crate::doc::limits::SHORT, true)
                    .map_err(|e| self.malformed("tag", e))
            }
            (Container::Pins, OpType::Put(ScalarValue::Str(_)) | OpType::Delete) => {
                if let OpType::Put(ScalarValue::Str(by)) = action
                    && by.as_str() != self.me().as_str()
                {
                    return Err(self.refuse(
                        Rule::ForgedAuthor,
                        format!("the pin says it is by {by}, but the change comes from {}", self.me()),
                    ));
                }
                if !messages.keys().any(|m| m.as_str() == key) {
                    return Err(self.refuse(Rule::Malformed, format!("there is no message {key} to pin")));
                }
                Ok(())
            }
            _ => Err(self.refuse(
                Rule::Malformed,
                format!("{} hold only their own kind of values", container_name(container)),
            )),
        }
    }

    pub(super) fn room_standing(&self) -> Result<(bool, bool), Refusal> {
        let DocFacts::Room { info, members, .. } = self.facts else {
            return Err(self.refuse(Rule::Malformed, "not a room"));
        };
        let p = self.ctx.principal;
        let staff = self.staff_over(OFFICERS, &info.unit);
        let role = members.get(&p.user).copied();
        let line_party = info.kind == RoomKind::HouseholdLine && p.household.is_some() && p.household == info.household;
        let member = staff || role.is_some() || line_party;
        let moderator = staff || role.is_some_and(MemberRole::moderates);
        Ok((member, moderator))
    }

    pub(super) fn check_room_message(&self, m: &Message) -> Result<(), Refusal> {
        let (member, moderator) = self.room_standing()?;
        if !member {
            return Err(self.refuse(Rule::NotMember, "only members write in this room"));
        }
        if m.mentions.contains(&Mention::All) && !moderator {
            return Err(self.refuse(Rule::NotModerator, "only moderators call on @all"));
        }
        if let (Some(r), DocFacts::Room { messages, .. }) = (&m.reply_to, self.facts)
            && !messages.contains_key(r)
        {
            return Err(self.refuse(Rule::Malformed, format!("reply to unknown message {r}")));
        }
        Ok(())
    }

    pub(super) fn check_moderation(&self, message: &crate::ids::EntryId, action: &str) -> Result<(), Refusal> {
        let DocFacts::Room { messages, .. } = self.facts else {
            return Err(self.refuse(Rule::Malformed, "not a room"));
        };
        let Some(author) = messages.get(message) else {
            return Err(self.refuse(Rule::Malformed, format!("there is no message {message}")));
        };
        let (_, moderator) = self.room_standing()?;
        if author == self.me() || moderator {
            Ok(())
        } else {
            Err(self.refuse(
                Rule::NotModerator,
                format!("only the author or a moderator may {action} a message"),
            ))
        }
    }
}
