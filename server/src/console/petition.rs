//! A petition: its header (personal data masked as the API masks it), clocks, the timeline
//! with superseded events and why, the conversation, and every action as a form.
//!
//! Each form posts the fields of one `PetitionAction` (the JSON the API takes at
//! `POST /api/petitions/{id}/actions`); the answer is the API's, refusals included, said in
//! words with the rule that refused.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};
use sync_core::UserId;
use sync_core::petition::{EventBody, Outcome, PetitionAction};

use super::queue::{Chip, chip};
use super::{Chrome, Desk, Nav, error_page, refusal_words, unit_name, wire};
use crate::error::ApiError;
use crate::http::ApiJson;
use crate::state::AppState;
use crate::web::csrf::Form;
use crate::web::{format, labels, pages};
use sync_core::wire::PetitionView;

struct Entry {
    at: String,
    kind: &'static str,
    by: String,
    unit: String,
    text: String,
    superseded: Option<String>,
    /// When the server received it, if far from its own stamp.
    received: Option<String>,
}

struct Said {
    at: String,
    by: String,
    text: String,
    from_submitter: bool,
}

#[derive(Template)]
#[template(path = "console/petition.html")]
struct PetitionPage {
    chrome: Chrome,
    id: String,
    title: String,
    body: String,
    status: &'static str,
    status_code: &'static str,
    channel: &'static str,
    category: &'static str,
    submitter: String,
    contact: String,
    location: String,
    lead: String,
    assists: String,
    submitted: String,
    supervised: bool,
    chips: Vec<Chip>,
    /// Which times the clocks ran on, and each device-versus-receipt gap.
    clock_notes: Vec<String>,
    timeline: Vec<Entry>,
    conversation: Vec<Said>,
    /// A form for each action the API says the reader may take now.
    actions: Vec<ActForm>,
    /// The API allows the reader a comment.
    may_comment: bool,
    /// Every unit, for dispatch, assists and escalation.
    all_units: Vec<(String, String)>,
    /// Categories, for reclassifying.
    categories: Vec<(&'static str, &'static str)>,
    category_code: &'static str,
    /// Why the last action was refused, in words.
    errors: Vec<String>,
}

/// One action's form: its words, which fields it asks for, and the units the API says the
/// reader may take it for (the lead preselected when it is among them).
struct ActForm {
    action: String,
    label: &'static str,
    fields: &'static str,
    units: Vec<(String, String, bool)>,
    /// The reader may also take it without a unit (a writer's own follow-up or reopening).
    without_unit: bool,
}

/// The words and fields of each action's form; which forms show is the API's answer
/// (`allowed_actions`), not this table's.
fn form_of(action: &str) -> Option<(&'static str, &'static str)> {
    Some(match action {
        "sign" => ("签收", ""),
        "accept" => ("接单", ""),
        "transfer" => ("派单（主办+协办）", "transfer"),
        "return" => ("退单", "reason"),
        "contact" => ("联系来信人", "contact"),
        "progress" => ("办理进展", "note"),
        "reply" => ("回复来信人", "text"),
        "supervise" => ("督办", "note"),
        "escalate" => ("提级办理", "escalate"),
        "follow_up" => ("回访评价", "rating"),
        "publish" => ("公开晒单", "summary"),
        "close" => ("办结", "optnote"),
        "reopen" => ("重新办理", "reason"),
        "merge" => ("并单", "into"),
        "reclassify" => ("重新分类", "reclassify"),
        "change_assists" => ("调整协办", "assists"),
        "withdraw" => ("撤回诉求", "optreason"),
        _ => return None,
    })
}

fn act_forms(app: &AppState, view: &PetitionView) -> Vec<ActForm> {
    let lead = view.summary.lead.as_ref();
    view.allowed_actions
        .iter()
        .filter_map(|a| {
            let (label, fields) = form_of(&a.action)?;
            let preselect = a.units.iter().position(|u| Some(u) == lead).unwrap_or(0);
            Some(ActForm {
                action: a.action.clone(),
                label,
                fields,
                units: a
                    .units
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (u.to_string(), unit_name(app, u), i == preselect))
                    .collect(),
                without_unit: a.without_unit,
            })
        })
        .collect()
}

/// Display names of the users named on the page, looked up once each.
async fn names(app: &AppState, ids: impl Iterator<Item = &UserId>) -> BTreeMap<UserId, String> {
    let mut out = BTreeMap::new();
    for id in ids {
        if out.contains_key(id) {
            continue;
        }
        let name = match app.storage.auth().get_user(id).await {
            Ok(Some(u)) => u.display_name,
            _ => id.to_string(),
        };
        out.insert(id.clone(), name);
    }
    out
}

fn event_text(app: &AppState, body: &EventBody) -> String {
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    match body {
        EventBody::Submitted { unit } => format!("提交至{}", unit_name(app, unit)),
        EventBody::Signed | EventBody::Accepted => String::new(),
        EventBody::Transferred { to, assist, note } => {
            let mut t = format!("派给{}主办", unit_name(app, to));
            if !assist.is_empty() {
                let names: Vec<String> = assist.iter().map(|u| unit_name(app, u)).collect();
                t.push_str(&format!("，{}协办", names.join("、")));
            }
            if let Some(n) = note {
                t.push_str(&format!("。{n}"));
            }
            t
        }
        EventBody::Returned { reason } => reason.clone(),
        EventBody::Contacted { method, note } => format!("{}。{}", labels::contact_method(*method), opt(note)),
        EventBody::Progress { note } | EventBody::Supervised { note } => note.clone(),
        EventBody::Replied { text } => text.clone(),
        EventBody::Escalated { to, reason, .. } => format!("提级至{}：{reason}", unit_name(app, to)),
        EventBody::FollowUp { rating, comment } => format!("评分 {rating}/5。{}", opt(comment)),
        EventBody::Published { summary } => summary.clone(),
        EventBody::Closed { note } => opt(note),
        EventBody::Reopened { reason } => reason.clone(),
        EventBody::Merged { into } => format!("并入 {into}"),
        EventBody::Withdrawn { reason } => opt(reason),
        EventBody::Reclassified { category, reason } => format!("改为{}：{reason}", labels::category(*category)),
        EventBody::AssistsChanged { add, remove } => {
            let names = |us: &[sync_core::UnitId]| us.iter().map(|u| unit_name(app, u)).collect::<Vec<_>>().join("、");
            match (add.is_empty(), remove.is_empty()) {
                (false, true) => format!("增加协办：{}", names(add)),
                (true, false) => format!("撤回协办：{}", names(remove)),
                _ => format!("增加协办：{}；撤回协办：{}", names(add), names(remove)),
            }
        }
    }
}

async fn build(app: &AppState, desk: &Desk, view: PetitionView, errors: Vec<String>) -> PetitionPage {
    let now = app.docs.now();
    let who = names(
        app,
        view.timeline
            .iter()
            .map(|e| &e.event.by)
            .chain(view.conversation.iter().map(|m| &m.by))
            .chain(std::iter::once(&view.header.submitter)),
    )
    .await;
    let name = |u: &UserId| who.get(u).cloned().unwrap_or_else(|| u.to_string());
    let at_of: BTreeMap<String, String> = view
        .timeline
        .iter()
        .map(|e| (e.id.to_string(), format::datetime(e.event.at.timestamp())))
        .collect();
    let timeline = view
        .timeline
        .iter()
        .map(|e| Entry {
            at: format::datetime(e.event.at.timestamp()),
            kind: labels::event(e.event.kind()),
            by: name(&e.event.by),
            unit: e.event.unit.as_ref().map(|u| unit_name(app, u)).unwrap_or_default(),
            text: event_text(app, &e.event.body),
            superseded: match &e.outcome {
                Outcome::Applied => None,
                Outcome::Superseded { rule, after } => Some(match after.as_ref().and_then(|a| at_of.get(a.as_str())) {
                    Some(when) => format!("未生效：{}（因 {when} 的记录）", labels::rule(rule)),
                    None => format!("未生效：{}", labels::rule(rule)),
                }),
            },
            received: e
                .received_at
                .filter(|r| (r.millis() - e.event.at.timestamp().millis()).abs() > sync_core::clocks::SKEW_FLAG_MS)
                .map(|r| format!("服务器 {} 收到", format::datetime(r))),
        })
        .collect();
    let conversation = view
        .conversation
        .iter()
        .map(|m| Said {
            at: format::datetime(m.at.timestamp()),
            by: name(&m.by),
            text: m.text.clone(),
            from_submitter: m.by == view.header.submitter,
        })
        .collect();
    let h = &view.header;
    let s = &view.summary;
    let submitter = if h.anonymous && h.submitter.as_str() == "anonymous" {
        "匿名".to_owned()
    } else {
        let mut n = name(&h.submitter);
        if h.anonymous {
            n.push_str("（匿名来信，仅经办单位可见）");
        }
        n
    };
    let org = app.docs.org();
    let mut all_units: Vec<(String, String)> = org.units().map(|u| (u.id.to_string(), u.name.clone())).collect();
    all_units.sort_by(|a, b| a.1.cmp(&b.1));
    PetitionPage {
        chrome: desk.chrome(Nav::Queue),
        id: view.id.clone(),
        title: h.title.clone(),
        body: h.body.clone(),
        status: labels::status(s.status),
        status_code: s.status.as_str(),
        channel: labels::channel(h.channel),
        category: labels::category(h.category),
        submitter,
        contact: h.contact.clone().unwrap_or_else(|| "—".to_owned()),
        location: unit_name(app, &h.location.unit),
        lead: s.lead.as_ref().map_or_else(|| "—".to_owned(), |u| unit_name(app, u)),
        assists: s
            .assists
            .iter()
            .map(|u| unit_name(app, u))
            .collect::<Vec<_>>()
            .join("、"),
        submitted: s.submitted_at.map(format::datetime).unwrap_or_default(),
        supervised: s.supervised,
        chips: s.clocks.iter().map(|c| chip(c, now)).collect(),
        clock_notes: clock_notes(&s.clocks),
        timeline,
        conversation,
        actions: act_forms(app, &view),
        may_comment: view.allowed_actions.iter().any(|a| a.action == "comment"),
        all_units,
        categories: sync_core::Category::ALL
            .iter()
            .map(|c| (c.as_str(), labels::category(*c)))
            .collect(),
        category_code: h.category.as_str(),
        errors,
    }
}

/// The clocks' basis in words (once, the first clock's: they share the
/// submission), then each flagged gap between a device stamp and its receipt.
fn clock_notes(clocks: &[sync_core::petition::PetitionClock]) -> Vec<String> {
    let mut notes: Vec<String> = clocks
        .first()
        .map(|c| labels::clock_basis(c.basis).to_owned())
        .into_iter()
        .collect();
    for c in clocks {
        if let Some(skew) = &c.skew {
            notes.push(format!("{}：{}", labels::clock(c.kind), labels::clock_skew(skew)));
        }
    }
    notes
}

/// `GET /petitions/{id}`.
pub async fn page(State(app): State<AppState>, desk: Desk, Path(id): Path<String>) -> Response {
    match crate::http::api::get_petition(State(app.clone()), desk.session.auth.clone(), Path(id)).await {
        Ok(axum::Json(view)) => pages::render(&build(&app, &desk, view, Vec::new()).await),
        Err(e) => error_page(e),
    }
}

/// The JSON action a form describes: its fields as they are, `assist` as a list, `rating` as a
/// number, blank fields left out. The API's own decoding refuses anything else.
fn action_json(form: &Form) -> Result<Value, ApiError> {
    let name = form
        .get("action")
        .ok_or_else(|| ApiError::BadRequest("表单缺少操作类型".into()))?;
    let mut obj = Map::new();
    obj.insert("action".into(), Value::String(name.to_owned()));
    for (key, _) in &form.0 {
        if matches!(key.as_str(), "action" | crate::web::csrf::FIELD) || obj.contains_key(key) {
            continue;
        }
        let value = match key.as_str() {
            "assist" | "add" | "remove" => {
                Value::Array(form.all(key).into_iter().map(|v| Value::String(v.to_owned())).collect())
            }
            "rating" => match form.get(key) {
                Some(r) => Value::from(
                    r.parse::<u8>()
                        .map_err(|_| ApiError::BadRequest("评分应为 1 到 5".into()))?,
                ),
                None => continue,
            },
            _ => match form.get(key) {
                Some(v) => Value::String(v.to_owned()),
                None => continue,
            },
        };
        obj.insert(key.clone(), value);
    }
    Ok(Value::Object(obj))
}

/// `POST /petitions/{id}/act`: one action. Done: back to the petition. Refused: the petition
/// again, with the refusal in words.
pub async fn act(
    State(app): State<AppState>,
    desk: Desk,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let result = async {
        let action: PetitionAction = wire(action_json(&form)?)?;
        crate::http::api::act_on_petition(
            State(app.clone()),
            desk.session.auth.clone(),
            Path(id.clone()),
            crate::http::ClientKey::default(),
            ApiJson(action),
        )
        .await
    }
    .await;
    match result {
        Ok(_) => pages::see_other(&headers, &format!("/petitions/{id}")),
        Err(
            e @ (ApiError::Refused(_)
            | ApiError::Forbidden(_)
            | ApiError::BadRequest(_)
            | ApiError::Conflict(_)
            | ApiError::SetAside { .. }),
        ) => {
            let status = e.status_code();
            let words = refusal_words(&e);
            match crate::http::api::get_petition(State(app.clone()), desk.session.auth.clone(), Path(id)).await {
                Ok(axum::Json(view)) => pages::render_status(status, &build(&app, &desk, view, words).await),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}
