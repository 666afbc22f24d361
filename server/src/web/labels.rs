//! Chinese words for what the API speaks in codes: statuses, channels, categories, timeline
//! events, clock states, roles and the rules behind refusals and superseded events.
//!
//! Words only: which state a petition is in, and why an action was refused, is decided by
//! sync-core and reported by the API; this module only says it in the reader's language. An
//! unknown code (a newer server) is shown as it is rather than hidden.

use sync_core::clocks::{ClockBasis, ClockKind, ClockSkew, ClockState, SkewedStep};
use sync_core::org::{Role, UnitKind};
use sync_core::petition::{ContactMethod, EventKind, Status};
use sync_core::{Category, Channel};

pub fn status(s: Status) -> &'static str {
    match s {
        Status::Submitted => "待签收",
        Status::Signed => "已签收",
        Status::Dispatched => "已派单",
        Status::Handling => "办理中",
        Status::Replied => "已回复",
        Status::Closed => "已办结",
        Status::Withdrawn => "已撤回",
        Status::Merged => "已并单",
    }
}

pub fn channel(c: Channel) -> &'static str {
    match c {
        Channel::DirectorMailbox => "局长信箱",
        Channel::ChiefLine => "所长直通",
        Channel::HouseholdLine => "户户通",
        Channel::VillageRoom => "村群议事厅",
        Channel::WalkIn => "来访",
        Channel::Api => "其他渠道",
    }
}

pub fn category(c: Category) -> &'static str {
    match c {
        Category::Consultation => "咨询",
        Category::Help => "求助",
        Category::Complaint => "投诉",
        Category::Report => "举报",
        Category::Lead => "线索",
        Category::Suggestion => "建议",
        Category::NonPolice => "非警务",
    }
}

pub fn event(k: EventKind) -> &'static str {
    match k {
        EventKind::Submitted => "提交",
        EventKind::Signed => "签收",
        EventKind::Transferred => "派单",
        EventKind::Accepted => "接单",
        EventKind::Returned => "退单",
        EventKind::Contacted => "联系来信人",
        EventKind::Progress => "办理进展",
        EventKind::Replied => "回复",
        EventKind::Escalated => "提级办理",
        EventKind::Supervised => "督办",
        EventKind::FollowUp => "回访评价",
        EventKind::Published => "公开晒单",
        EventKind::Closed => "办结",
        EventKind::Reopened => "重新办理",
        EventKind::Merged => "并单",
        EventKind::Withdrawn => "撤回",
        EventKind::Reclassified => "重新分类",
        EventKind::AssistsChanged => "协办调整",
    }
}

pub fn contact_method(m: ContactMethod) -> &'static str {
    match m {
        ContactMethod::Phone => "电话",
        ContactMethod::Visit => "上门",
        ContactMethod::Message => "消息",
    }
}

pub fn clock(k: ClockKind) -> &'static str {
    match k {
        ClockKind::Sign => "签收",
        ClockKind::Contact => "联系",
        ClockKind::Reply => "答复",
    }
}

/// Which times a clock or a figure ran on, as a sentence.
pub fn clock_basis(b: ClockBasis) -> &'static str {
    match b {
        ClockBasis::DeviceStamp => "按设备记录的时间计时。",
        ClockBasis::ServerReceipt => "按服务器收到的时间计时（设备时间更早时取设备时间）。",
        ClockBasis::Mixed => "部分诉求早于服务器记录收到时间，按设备时间计时，其余按服务器收到时间计时。",
    }
}

/// A clock's device-versus-receipt gap, as a sentence (times in minutes).
pub fn clock_skew(s: &ClockSkew) -> String {
    let what = match s.step {
        SkewedStep::Start => "起算记录",
        SkewedStep::Done => "完成记录",
    };
    let minutes = s.gap_ms().abs() / 60_000;
    if s.gap_ms() < 0 {
        format!("{what}的设备时间比服务器收到时间早 {minutes} 分钟（离线后同步，或设备时间被调早）")
    } else {
        format!("{what}的设备时间比服务器收到时间晚 {minutes} 分钟")
    }
}

/// A clock's state in words and the CSS class that colours it.
pub fn clock_state(s: &ClockState) -> (&'static str, &'static str) {
    match s {
        ClockState::Pending { .. } => ("进行中", "ok"),
        ClockState::DueSoon { .. } => ("即将到期", "warn"),
        ClockState::Overdue { .. } => ("已超时", "bad"),
        ClockState::MetOnTime { .. } => ("按时完成", "done"),
        ClockState::MetLate { .. } => ("超时完成", "late"),
    }
}

pub fn role(r: Role) -> &'static str {
    match r {
        Role::Resident => "群众",
        Role::Officer => "民警",
        Role::Leader => "领导",
        Role::DepartmentStaff => "部门工作人员",
        Role::Admin => "管理员",
        Role::System => "系统",
        Role::StationServer => "派出所服务器",
    }
}

pub fn unit_kind(k: UnitKind) -> &'static str {
    match k {
        UnitKind::City => "市局",
        UnitKind::County => "县局",
        UnitKind::Station => "派出所",
        UnitKind::Town => "乡镇",
        UnitKind::Village => "村",
        UnitKind::VillageGroup => "村民小组",
        UnitKind::PartyGroup => "党小组",
        UnitKind::Department => "部门",
        UnitKind::TaskForce => "专班",
    }
}

/// The API's error codes (`{"error": {"code"}}`) in words, for a client to say what went wrong
/// when no rule is named.
pub fn error(code: &str) -> Option<&'static str> {
    Some(match code {
        "bad_request" => "提交的内容有误。",
        "payload_too_large" => "内容太大，发不出去。",
        "timeout" => "服务器太忙，请稍后再试。",
        "unauthenticated" | "invalid_token" | "token_expired" | "token_revoked" | "refresh_invalid"
        | "refresh_reused" => "登录已过期，请重新登录。",
        "forbidden" => "您无权这样做。",
        "conflict" => "与已有的内容冲突。",
        "not_found" => "找不到这项内容，或您已无权查看（例如已不是群成员）。",
        "rate_limited" => "操作太频繁，请稍后再试。",
        "invalid_credentials" => "账号或密码不对。",
        "account_disabled" => "这个账号已停用。",
        "invalid_phone" => "手机号格式不对。",
        "otp_invalid" => "验证码不对。",
        "otp_attempts_exceeded" => "验证码输错次数太多，请重新获取。",
        "otp_expired" => "验证码已过期，请重新获取。",
        "signup_closed" => "这个手机号还没有登记，请联系村里或派出所。",
        "internal" => "服务器出错了，请稍后再试。",
        _ => return None,
    })
}

/// A rule named by a refusal (sync-core `policy::Rule`) or by a superseded timeline event
/// (`petition::rules`), as a sentence for the person who met it.
pub fn rule(code: &str) -> String {
    let words = match code {
        "not-allowed-to-create" => "您无权在这里新建这类文件。",
        "malformed" => "提交的内容格式不完整。",
        "immutable" => "这项内容创建后不能修改。",
        "append-only" => "已有的记录不能改写或删除，只能追加。",
        "forged-by" => "记录的操作人必须是您本人。",
        "not-in-jurisdiction" => "这个单位不在您的管辖范围内。",
        "not-submitter" => "只有提出诉求的群众本人可以这样做。",
        "role-required" => "这项操作需要您没有的角色（例如督办只能由领导进行）。",
        "not-member" => "只有群成员可以在群里发言。",
        "not-moderator" => "只有群管理员可以这样做。",
        "unknown-unit" => "指定的单位不存在。",
        "duplicate-entry" => "同一条记录已经存在。",
        "future-stamp" => "记录的时间超前于服务器时间太多。",
        "unsupported-op" => "不支持这种修改。",
        "creation-only" => "这只能在创建时设定。",
        "missing-dependency" | "depends-on-refused" => "这次修改依赖的内容缺失或已被拒绝。",
        "actor-bound-to-other-user" => "这个设备标识属于另一位用户。",
        "actor-reserved" => "这个设备标识由服务器专用，设备须使用自己的标识。",
        "unknown-field" => "内容里有这类记录没有的字段。",
        "written-twice" => "一次修改里同一字段只能写一次，新建的内容不能再删改。",
        "entry-too-large" => "单条记录超过了大小上限。",
        "change-too-large" => "一次提交的内容超过了上限。",
        "document-full" => "这份文件的记录已达上限，不能再添加。",
        "relay-outside-jurisdiction" => "这项修改的操作人不在本所辖区内，上级不予接收。",
        "relay-unattested" => "这项修改没有注明操作人，或操作人在上级没有登记。",
        "refused-upstream" => "上级已拒绝这项修改，已从本所撤回。",
        "before-submission" => "诉求提交之前的操作不生效。",
        "duplicate-submission" => "诉求已经提交过。",
        "already-signed" => "已经有人签收了，以最早的签收为准。",
        "not-lead" => "只有主办单位可以这样做。",
        "not-lead-or-assist" => "只有主办或协办单位可以这样做。",
        "not-dispatched" => "诉求没有派给这个单位，无需接单或退单。",
        "not-in-handling" => "诉求不在办理阶段。",
        "not-answered" => "诉求还没有答复。",
        "not-replied" => "诉求还没有回复，不能回访或公开。",
        "finished" => "诉求已经办结、撤回或并单。",
        "same-unit" => "不能派给自己单位。",
        "no-change" => "与现状相同，没有任何改动。",
        "clock-met" => "自动提级时尚未同步到此前已完成的签收或联系，提级不生效。",
        other => return format!("规则 {other}"),
    };
    words.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_rule_has_words() {
        for r in sync_core::policy::Rule::ALL {
            assert!(!rule(r.as_str()).starts_with("规则 "), "{r:?} has no words");
        }
        for code in sync_core::petition::status::rules::ALL {
            assert!(!rule(code).starts_with("规则 "), "{code} has no words");
        }
    }
}
