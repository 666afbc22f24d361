//! One access rule on every path (`sync_core::access`): the server's own
//! principal reads what staff read on each list, a membership cannot claim
//! its role, and an anonymous letter is masked alike in a list and a read.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use lianxin_server::api;
use lianxin_server::auth::SmsSender;
use lianxin_server::backend_tests;
use lianxin_server::testing::{TestDb, TestServer};
use serde_json::{Value, json};
use sync_core::repo_protocol::DocumentId;
use sync_core::{Principal, Timestamp, UserId};

async fn demo_server(db: &TestDb) -> anyhow::Result<TestServer> {
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    Ok(server)
}

async fn principal(server: &TestServer, user: &str) -> anyhow::Result<Principal> {
    Ok(server.state.auth.principal(&UserId::new(user)?).await?)
}

/// The server's own principal reads, on every list, everything the
/// county's director reads (it holds the system role at the roots). The
/// notice and room lists once left it out: only policy and the petition
/// list counted it as staff.
async fn the_system_principal_reads_what_staff_read_on_every_list(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let app = &server.state;
    let system = app.notify.system_principal();
    let director = principal(&server, "director").await?;

    let notices = |who: Principal| async move {
        let list = api::notices::list(app, &who, Default::default()).await?;
        anyhow::Ok(list.items.into_iter().map(|n| n.id).collect::<BTreeSet<_>>())
    };
    let (by_system, by_director) = (notices(system.clone()).await?, notices(director.clone()).await?);
    ensure!(!by_director.is_empty(), "the demo has notices");
    ensure!(by_system.is_superset(&by_director), "{by_system:?} ⊉ {by_director:?}");

    let rooms = |who: Principal| async move {
        let list = api::rooms::list_mine(app, &who).await?;
        anyhow::Ok(list.items.into_iter().map(|r| r.id).collect::<BTreeSet<_>>())
    };
    let (by_system, by_director) = (rooms(system.clone()).await?, rooms(director.clone()).await?);
    ensure!(!by_director.is_empty(), "the demo has rooms");
    ensure!(by_system.is_superset(&by_director), "{by_system:?} ⊉ {by_director:?}");

    let petitions = |who: Principal| async move {
        let list = api::petitions::list(app, &who, Default::default()).await?;
        anyhow::Ok(list.items.into_iter().map(|p| p.doc_id).collect::<BTreeSet<_>>())
    };
    let (by_system, by_director) = (petitions(system).await?, petitions(director).await?);
    ensure!(!by_director.is_empty(), "the demo has petitions");
    ensure!(by_system.is_superset(&by_director), "{by_system:?} ⊉ {by_director:?}");
    server.stop().await
}

/// Nobody is given the server's own role by an import.
async fn no_membership_claims_the_system_role(db: &mut TestDb) -> anyhow::Result<()> {
    let file = json!({
        "units": [{"id": "city", "name": "市局", "kind": "city"}],
        "users": [{"id": "mallory", "display_name": "M", "login": "mallory", "password": "a long password",
                   "memberships": [{"unit": "city", "role": "system"}]}],
    });
    let now = Timestamp::from_millis(1_700_000_000_000);
    let err = lianxin_server::admin::import_str(&db.storage, &file.to_string(), false, now)
        .await
        .err()
        .context("an import granting the system role is refused")?;
    ensure!(err.to_string().contains("system role"), "{err}");
    ensure!(db.storage.auth().get_user(&UserId::new("mallory")?).await?.is_none());
    Ok(())
}

/// An anonymous letter to the director's mailbox about a village of the
/// east station: the station's officer and chief have the village in their
/// jurisdiction but do not handle it, and the letter holds personal data,
/// so neither a read nor a list (nor a filter by writer) finds it for them.
/// The mailbox's duty officer, who handles it, sees who wrote it and the
/// number. (Every other path: `tests/tests/personal_data.rs`.)
async fn an_anonymous_letter_is_closed_alike_to_a_list_and_a_read(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let id = {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut b);
        DocumentId::from_bytes(b).to_string()
    };
    let zhang = server.token("res-zhang").await?;
    let letter = json!({
        "id": id, "channel": "director_mailbox", "category": "report",
        "title": "匿名举报", "body": "村里有人聚众赌博。", "anonymous": true, "contact": "13800001111",
        "location": {"unit": "village-shangping"}, "routed_to": "mailbox-taskforce",
    });
    let (status, body) = server.post("/api/petitions", Some(&zhang), &letter).await?;
    ensure!(status == 201, "{body}");

    let listed = |page: Value| -> Option<Value> {
        page["items"]
            .as_array()?
            .iter()
            .find(|i| i["doc_id"] == id.as_str())
            .cloned()
    };
    for reader in ["officer-li", "chief-east"] {
        let t = server.token(reader).await?;
        let (status, view) = server.get(&format!("/api/petitions/{id}"), Some(&t)).await?;
        ensure!(status == 404, "{reader}: {view}");
        let (_, page) = server.get("/api/petitions?limit=200", Some(&t)).await?;
        ensure!(listed(page).is_none(), "{reader} lists the letter");
        let (_, page) = server
            .get("/api/petitions?limit=200&submitter=res-zhang", Some(&t))
            .await?;
        ensure!(listed(page).is_none(), "{reader} finds the letter by its writer");
    }
    let t = server.token("duty-lin").await?;
    let (_, view) = server.get(&format!("/api/petitions/{id}"), Some(&t)).await?;
    ensure!(view["header"]["submitter"] == "res-zhang", "{view}");
    ensure!(view["header"]["contact"] == "13800001111", "{view}");
    let (_, page) = server.get("/api/petitions?limit=200", Some(&t)).await?;
    ensure!(listed(page).context("duty lists it")?["submitter"] == "res-zhang");
    server.stop().await
}

backend_tests!(
    the_system_principal_reads_what_staff_read_on_every_list,
    no_membership_claims_the_system_role,
    an_anonymous_letter_is_closed_alike_to_a_list_and_a_read,
);
