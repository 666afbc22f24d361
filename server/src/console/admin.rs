//! Administration (admins): the units (`GET /api/units`, `PUT /api/admin/units/{id}`), the
//! staff with their memberships (`GET /api/admin/users`, `PUT /api/admin/users/{id}`). Which units
//! and people an admin may change is the API's answer, said in words when it refuses.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use sync_core::org::{Role, UnitKind};

use super::{Chrome, Desk, Nav, error_page, refusal_words, unit_name, wire};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::csrf::Form;
use crate::web::{labels, pages};

struct UnitLine {
    id: String,
    name: String,
    kind: &'static str,
    depth: usize,
    disabled: bool,
}

impl UnitLine {
    /// Ideographic spaces that indent the unit under its parent.
    fn indent(&self) -> String {
        "\u{3000}".repeat(self.depth)
    }
}

struct Person {
    id: String,
    name: String,
    login: String,
    memberships: String,
    disabled: bool,
}

/// The unit form's values (blank for a new unit).
#[derive(Default)]
struct UnitForm {
    id: String,
    name: String,
    kind: String,
    parent: String,
    disabled: bool,
}

/// The person form's values; memberships as (unit, role) rows, a few blank ones added.
#[derive(Default)]
struct PersonForm {
    id: String,
    name: String,
    login: String,
    phone: String,
    disabled: bool,
    memberships: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/admin.html")]
struct AdminPage {
    chrome: Chrome,
    units: Vec<UnitLine>,
    people: Vec<Person>,
    unit_choices: Vec<(String, String)>,
    kinds: Vec<(&'static str, &'static str)>,
    roles: Vec<(&'static str, &'static str)>,
    unit_form: UnitForm,
    person_form: PersonForm,
    errors: Vec<String>,
    saved: Option<String>,
}

fn kind_code(k: UnitKind) -> &'static str {
    match k {
        UnitKind::City => "city",
        UnitKind::County => "county",
        UnitKind::Station => "station",
        UnitKind::Town => "town",
        UnitKind::Village => "village",
        UnitKind::VillageGroup => "village_group",
        UnitKind::PartyGroup => "party_group",
        UnitKind::Department => "department",
        UnitKind::TaskForce => "task_force",
    }
}

const KINDS: [UnitKind; 9] = [
    UnitKind::City,
    UnitKind::County,
    UnitKind::Station,
    UnitKind::Town,
    UnitKind::Village,
    UnitKind::VillageGroup,
    UnitKind::PartyGroup,
    UnitKind::Department,
    UnitKind::TaskForce,
];

const ROLES: [Role; 5] = [
    Role::Officer,
    Role::Leader,
    Role::DepartmentStaff,
    Role::Admin,
    Role::Resident,
];

fn role_code(r: Role) -> &'static str {
    match r {
        Role::Resident => "resident",
        Role::Officer => "officer",
        Role::Leader => "leader",
        Role::DepartmentStaff => "department_staff",
        Role::Admin => "admin",
        Role::System => "system",
        Role::StationServer => "station_server",
    }
}

/// The units in tree order, each after its parent and indented by depth; units whose parent
/// the reader cannot see start a tree of their own.
fn tree(items: &[sync_core::wire::UnitView]) -> Vec<UnitLine> {
    fn push(items: &[sync_core::wire::UnitView], u: &sync_core::wire::UnitView, depth: usize, out: &mut Vec<UnitLine>) {
        out.push(UnitLine {
            id: u.id.to_string(),
            name: u.name.clone(),
            kind: labels::unit_kind(u.kind),
            depth,
            disabled: u.disabled,
        });
        if depth < 12 {
            for c in items.iter().filter(|c| c.parent.as_ref() == Some(&u.id)) {
                push(items, c, depth + 1, out);
            }
        }
    }
    let mut out = Vec::with_capacity(items.len());
    for root in items
        .iter()
        .filter(|u| u.parent.as_ref().is_none_or(|p| !items.iter().any(|x| &x.id == p)))
    {
        push(items, root, 0, &mut out);
    }
    out
}

async fn build(
    app: &AppState,
    desk: &Desk,
    unit_form: UnitForm,
    mut person_form: PersonForm,
    errors: Vec<String>,
    saved: Option<String>,
) -> Result<AdminPage, ApiError> {
    let who = desk.principal();
    let list = crate::api::org::units(app, who).await?;
    let units = tree(&list.items);
    let people = crate::http::org::users(State(app.clone()), desk.session.auth.clone())
        .await?
        .0
        .items
        .into_iter()
        .map(|p| Person {
            id: p.id.to_string(),
            name: p.display_name,
            login: p.login.unwrap_or_default(),
            memberships: p
                .memberships
                .iter()
                .map(|m| format!("{}·{}", unit_name(app, &m.unit), labels::role(m.role)))
                .collect::<Vec<_>>()
                .join("、"),
            disabled: p.disabled,
        })
        .collect();
    for _ in 0..2 {
        person_form.memberships.push((String::new(), String::new()));
    }
    Ok(AdminPage {
        chrome: desk.chrome(Nav::Admin),
        unit_choices: units.iter().map(|u| (u.id.clone(), u.name.clone())).collect(),
        units,
        people,
        kinds: KINDS.iter().map(|k| (kind_code(*k), labels::unit_kind(*k))).collect(),
        roles: ROLES.iter().map(|r| (role_code(*r), labels::role(*r))).collect(),
        unit_form,
        person_form,
        errors,
        saved,
    })
}

/// `GET /admin?unit=&person=&saved=`: the lists, with a unit or person loaded into its form.
pub async fn page(State(app): State<AppState>, desk: Desk, RawQuery(raw): RawQuery) -> Response {
    let q = Form::parse(raw.unwrap_or_default().as_bytes());
    let who = desk.principal().clone();
    let mut unit_form = UnitForm::default();
    if let Some(id) = q.get("unit") {
        match crate::api::org::units(&app, &who).await {
            Ok(list) => {
                if let Some(u) = list.items.into_iter().find(|u| u.id.as_str() == id) {
                    unit_form = UnitForm {
                        id: u.id.to_string(),
                        name: u.name,
                        kind: kind_code(u.kind).to_owned(),
                        parent: u.parent.map(|p| p.to_string()).unwrap_or_default(),
                        disabled: u.disabled,
                    };
                }
            }
            Err(e) => return error_page(e),
        }
    }
    let mut person_form = PersonForm::default();
    if let Some(id) = q.get("person") {
        match crate::http::org::users(State(app.clone()), desk.session.auth.clone()).await {
            Ok(axum::Json(list)) => {
                if let Some(p) = list.items.into_iter().find(|p| p.id.as_str() == id) {
                    person_form = PersonForm {
                        id: p.id.to_string(),
                        name: p.display_name,
                        login: p.login.unwrap_or_default(),
                        phone: p.phone.unwrap_or_default(),
                        disabled: p.disabled,
                        memberships: p
                            .memberships
                            .iter()
                            .map(|m| (m.unit.to_string(), role_code(m.role).to_owned()))
                            .collect(),
                    };
                }
            }
            Err(e) => return error_page(e),
        }
    }
    let saved = q.get("saved").map(|s| format!("已保存：{s}"));
    match build(&app, &desk, unit_form, person_form, Vec::new(), saved).await {
        Ok(p) => pages::render(&p),
        Err(e) => error_page(e),
    }
}

async fn refused(app: &AppState, desk: &Desk, unit_form: UnitForm, person_form: PersonForm, e: ApiError) -> Response {
    match e {
        e @ (ApiError::Refused(_) | ApiError::Forbidden(_) | ApiError::BadRequest(_) | ApiError::NotFound(_)) => {
            let status = e.status_code();
            let words = match &e {
                ApiError::Forbidden(m) => vec![format!("您不能管理这一项：{m}")],
                ApiError::BadRequest(m) | ApiError::NotFound(m) => vec![format!("没有保存：{m}")],
                _ => refusal_words(&e),
            };
            match build(app, desk, unit_form, person_form, words, None).await {
                Ok(p) => pages::render_status(status, &p),
                Err(e) => error_page(e),
            }
        }
        e => error_page(e),
    }
}

/// `POST /admin/units`: creates or edits one unit.
pub async fn save_unit(State(app): State<AppState>, desk: Desk, headers: HeaderMap, form: Form) -> Response {
    let unit_form = UnitForm {
        id: form.get("id").unwrap_or_default().to_owned(),
        name: form.get("name").unwrap_or_default().to_owned(),
        kind: form.get("kind").unwrap_or_default().to_owned(),
        parent: form.get("parent").unwrap_or_default().to_owned(),
        disabled: form.get("disabled").is_some(),
    };
    let result = async {
        let mut edit = json!({ "name": unit_form.name, "kind": unit_form.kind, "disabled": unit_form.disabled });
        if !unit_form.parent.is_empty() {
            edit["parent"] = json!(unit_form.parent);
        }
        crate::api::org::put_unit(&app, desk.principal(), &unit_form.id, wire(edit)?).await
    }
    .await;
    match result {
        Ok(u) => pages::see_other(&headers, &format!("/admin?saved={}", crate::web::encode_query(&u.name))),
        Err(e) => refused(&app, &desk, unit_form, PersonForm::default(), e).await,
    }
}

/// `POST /admin/people`: creates or edits one person with their memberships (the rows with
/// a unit and a role; the password only when one is typed).
pub async fn save_person(State(app): State<AppState>, desk: Desk, headers: HeaderMap, form: Form) -> Response {
    // Blank fields are dropped by the form reader, so pair the raw rows instead.
    let rows: Vec<(String, String)> = {
        let raw_units: Vec<&str> = form
            .0
            .iter()
            .filter(|(k, _)| k == "m_unit")
            .map(|(_, v)| v.as_str())
            .collect();
        let raw_roles: Vec<&str> = form
            .0
            .iter()
            .filter(|(k, _)| k == "m_role")
            .map(|(_, v)| v.as_str())
            .collect();
        raw_units
            .iter()
            .zip(raw_roles.iter())
            .filter(|(u, r)| !u.trim().is_empty() && !r.trim().is_empty())
            .map(|(u, r)| (u.trim().to_owned(), r.trim().to_owned()))
            .collect()
    };
    let person_form = PersonForm {
        id: form.get("id").unwrap_or_default().to_owned(),
        name: form.get("name").unwrap_or_default().to_owned(),
        login: form.get("login").unwrap_or_default().to_owned(),
        phone: form.get("phone").unwrap_or_default().to_owned(),
        disabled: form.get("disabled").is_some(),
        memberships: rows.clone(),
    };
    let result = async {
        let memberships: Vec<Value> = rows.iter().map(|(u, r)| json!({ "unit": u, "role": r })).collect();
        let mut edit = json!({
            "display_name": person_form.name,
            "kind": "staff",
            "memberships": memberships,
            "disabled": person_form.disabled,
        });
        for (key, value) in [
            ("login", form.get("login")),
            ("password", form.get("password")),
            ("phone", form.get("phone")),
        ] {
            if let Some(v) = value {
                edit[key] = json!(v);
            }
        }
        crate::api::org::put_user(&app, desk.principal(), &person_form.id, wire(edit)?).await
    }
    .await;
    match result {
        Ok(_) => pages::see_other(
            &headers,
            &format!("/admin?saved={}", crate::web::encode_query(&person_form.name)),
        ),
        Err(e) => refused(&app, &desk, UnitForm::default(), person_form, e).await,
    }
}
