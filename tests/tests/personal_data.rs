//! Personal data on every path: a petition holding a contact number or an
//! anonymous writer is read only by its writer, its recorder and the staff
//! of the units handling it. The east station's officer and chief have the
//! village in their jurisdiction but do not handle a letter sent to the
//! director's mailbox, so no path hands it to them: REST get and list,
//! `/sync` (automerge-repo), `/batch` (a simulated phone), the phone
//! library's own replica, the inbox (the same items SSE and the push and SMS
//! gateways carry).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use automerge::{AutoCommit, ReadDoc};
use lianxin_server::auth::SmsSender;
use lianxin_server::backend_tests;
use lianxin_server::testing::{TestDb, TestServer};
use lianxin_tests::phone::Phone;
use serde_json::{Value, json};
use sync_core::batch::DocId;
use sync_core::repo_protocol::DocumentId;

const CONTACT: &str = "13800001111";
/// Readers with the village in their jurisdiction who do not handle the letter.
const OUTSIDERS: [&str; 2] = ["officer-li", "chief-east"];
/// The mailbox's duty officer, who handles it.
const HANDLER: &str = "duty-lin";
const WRITER: &str = "res-zhang";

fn new_id() -> DocumentId {
    DocumentId::from_bytes(rand::random())
}

/// Files a letter about a village of the east station to the director's
/// mailbox as `res-zhang`.
async fn letter(server: &TestServer, anonymous: bool) -> anyhow::Result<DocumentId> {
    let id = new_id();
    let body = json!({
        "id": id.to_string(), "channel": "director_mailbox", "category": "report",
        "title": "举报聚众赌博", "body": "村里有人聚众赌博。", "anonymous": anonymous, "contact": CONTACT,
        "location": {"unit": "village-shangping"}, "routed_to": "mailbox-taskforce",
    });
    let (status, view) = server
        .post("/api/petitions", Some(&server.token(WRITER).await?), &body)
        .await?;
    ensure!(status == 201, "{view}");
    Ok(id)
}

/// Whether a text names the writer or the number.
fn leaks(text: &str) -> bool {
    text.contains(CONTACT) || text.contains(WRITER)
}

/// The document as `user` receives it over `/sync`, if the server sends it.
async fn over_sync(server: &TestServer, user: &str, id: DocumentId) -> anyhow::Result<Option<AutoCommit>> {
    let url = format!("ws://{}/sync?token={}", server.addr, server.token(user).await?);
    let doc_id = DocId(*id.as_bytes());
    let system = server.state.notify.system_principal();
    let heads = server.state.docs.read(&system, &id.to_string()).await?.get_heads();
    let target = BTreeMap::from([(doc_id, heads)]);
    let mut docs = BTreeMap::new();
    let out = lianxin_tests::stock::sync(&url, &mut docs, &[doc_id], &target, Duration::from_secs(3)).await?;
    let mut doc = docs.remove(&doc_id).unwrap_or_default();
    if doc.get_heads().is_empty() {
        ensure!(
            out.errors.iter().any(|e| e.contains("unavailable")),
            "{user}: neither the document nor doc-unavailable: {:?}",
            out.errors
        );
        return Ok(None);
    }
    Ok(Some(doc))
}

/// What `user`'s phone holds of the document after a `/batch` sync from scratch.
async fn over_batch(server: &TestServer, user: &str, id: DocumentId) -> anyhow::Result<Option<AutoCommit>> {
    let url = format!("ws://{}/batch?token={}", server.addr, server.token(user).await?);
    let mut phone = Phone::default();
    phone.sync(&url, 3).await?;
    ensure!(!phone.store.docs.is_empty(), "{user}'s phone received nothing at all");
    Ok(phone.store.docs.remove(&DocId(*id.as_bytes())))
}

/// Every string value in a document's header, as JSON text.
fn header_text(doc: &AutoCommit) -> String {
    let Ok(Some((_, header))) = doc.get(automerge::ROOT, "header") else {
        return String::new();
    };
    let mut out = String::new();
    for key in doc.keys(&header) {
        if let Ok(Some((v, _))) = doc.get(&header, &key) {
            out.push_str(&format!("{key}={v};"));
        }
    }
    out
}

/// What the phone library shows `user` of the petition after syncing a new
/// replica with the server: its contact number and writer, if it has it.
async fn on_phone(server: &TestServer, user: &str, id: DocumentId) -> anyhow::Result<Option<(Option<String>, String)>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("replica.sqlite").display().to_string();
    let session = lianxin_mobile::SessionConfig {
        server_url: format!("http://{}", server.addr),
        user_id: user.to_owned(),
        memberships: vec![],
        household: None,
        units: vec![],
    };
    let token = server.token(user).await?;
    let id = id.to_string();
    let seen = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let replica = lianxin_mobile::Replica::open(path, session)?;
        replica.set_access_token(Some(token));
        replica.sync_now()?;
        ensure!(
            !replica.list_petitions()?.is_empty(),
            "the replica received no petition at all"
        );
        match replica.get_petition(id) {
            Ok(p) => Ok(Some((p.contact, p.summary.submitter))),
            Err(lianxin_mobile::LianxinError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await??;
    drop(dir);
    Ok(seen)
}

async fn rest_view(server: &TestServer, user: &str, id: DocumentId) -> anyhow::Result<(u16, Value)> {
    server
        .get(&format!("/api/petitions/{id}"), Some(&server.token(user).await?))
        .await
}

async fn listed(server: &TestServer, user: &str, id: DocumentId, query: &str) -> anyhow::Result<Option<Value>> {
    let (status, page) = server
        .get(
            &format!("/api/petitions?limit=200{query}"),
            Some(&server.token(user).await?),
        )
        .await?;
    ensure!(status == 200, "{page}");
    Ok(page["items"]
        .as_array()
        .context("items")?
        .iter()
        .find(|i| i["doc_id"] == id.to_string())
        .cloned())
}

async fn inbox(server: &TestServer, user: &str) -> anyhow::Result<Vec<Value>> {
    let (status, page) = server
        .get("/api/inbox?limit=500", Some(&server.token(user).await?))
        .await?;
    ensure!(status == 200, "{page}");
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// An anonymous letter and a signed one with a contact number: neither
/// reaches a reader who does not handle it, on any path; the handler and
/// the writer read both in full.
async fn personal_data_reaches_only_the_writer_and_the_handlers_on_every_path(db: &mut TestDb) -> anyhow::Result<()> {
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    for anonymous in [true, false] {
        let id = letter(&server, anonymous).await?;
        // The handler signs it, so the inbox has items about it.
        let handler = server.token(HANDLER).await?;
        let (status, view) = server
            .post(
                &format!("/api/petitions/{id}/actions"),
                Some(&handler),
                &json!({"action": "sign", "unit": "mailbox-taskforce"}),
            )
            .await?;
        ensure!(status == 200, "{view}");

        // Notifications about it go only to those who may read it, and
        // their texts (the inbox, SSE, push and SMS all carry the same) name
        // neither the writer nor the number. (Read before the phones below
        // sync: a phone acknowledges its user's inbox.)
        let items = inbox(&server, WRITER).await?;
        ensure!(
            items.iter().any(|i| i["doc_id"] == id.to_string()),
            "the writer is told it was signed: {items:?}"
        );
        for user in OUTSIDERS.into_iter().chain([HANDLER, WRITER]) {
            for item in inbox(&server, user).await? {
                let about = item["doc_id"] == id.to_string();
                ensure!(!about || !OUTSIDERS.contains(&user), "{user} is notified of it: {item}");
                ensure!(!leaks(item["text"].as_str().unwrap_or_default()), "{user}: {item}");
            }
        }

        for user in OUTSIDERS {
            let (status, view) = rest_view(&server, user, id).await?;
            ensure!(
                status == 404,
                "REST get, {user}, anonymous={anonymous}: {status} {view}"
            );
            ensure!(listed(&server, user, id, "").await?.is_none(), "REST list, {user}");
            ensure!(
                listed(&server, user, id, &format!("&submitter={WRITER}"))
                    .await?
                    .is_none(),
                "REST list by writer, {user}"
            );
            if let Some(doc) = over_sync(&server, user, id).await? {
                anyhow::bail!("/sync hands {user} the letter: {}", header_text(&doc));
            }
            if let Some(doc) = over_batch(&server, user, id).await? {
                anyhow::bail!("/batch hands {user}'s phone the letter: {}", header_text(&doc));
            }
            if let Some(seen) = on_phone(&server, user, id).await? {
                anyhow::bail!("{user}'s phone replica shows the letter: {seen:?}");
            }
        }

        for user in [HANDLER, WRITER] {
            let (status, view) = rest_view(&server, user, id).await?;
            ensure!(status == 200, "{user}: {view}");
            ensure!(view["header"]["contact"] == CONTACT, "{user}: {view}");
            ensure!(view["header"]["submitter"] == WRITER, "{user}: {view}");
            ensure!(listed(&server, user, id, "").await?.is_some(), "{user} lists it");
            let doc = over_sync(&server, user, id)
                .await?
                .with_context(|| format!("/sync to {user}"))?;
            ensure!(header_text(&doc).contains(CONTACT), "{user}");
            let doc = over_batch(&server, user, id)
                .await?
                .with_context(|| format!("/batch to {user}"))?;
            ensure!(header_text(&doc).contains(CONTACT), "{user}");
            let seen = on_phone(&server, user, id)
                .await?
                .with_context(|| format!("{user}'s replica"))?;
            ensure!(
                seen == (Some(CONTACT.to_owned()), WRITER.to_owned()),
                "{user}: {seen:?}"
            );
        }
    }
    server.stop().await
}

/// Petitions stored before the rule kept the village's access rows: the
/// load-time step closes them when the server starts again.
async fn a_stored_petition_is_closed_when_the_server_starts(db: &mut TestDb) -> anyhow::Result<()> {
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    let id = letter(&server, true).await?;
    let key = id.to_string();
    // As the rule before stored it: the village it is about could read it.
    let mut rows = db.storage.projections().doc_access(&key).await?;
    ensure!(!rows.iter().any(|r| r.subject == "village-shangping"), "{rows:?}");
    rows.push(sync_core::projection::AccessRow {
        kind: sync_core::projection::AccessKind::Unit,
        subject: "village-shangping".into(),
    });
    let mut tx = db.storage.begin().await?;
    tx.replace_doc_access(&key, &rows).await?;
    tx.forget_load_step(lianxin_server::docs::PRIVATE_PETITIONS_STEP)
        .await?;
    tx.commit().await?;
    let (status, _) = rest_view(&server, "officer-li", id).await?;
    ensure!(status == 200, "the old rows open it to the station");
    server.stop().await?;

    let storage = db.reopen().await?;
    let server = TestServer::start(storage, SmsSender::DevLog).await?;
    let (status, view) = rest_view(&server, "officer-li", id).await?;
    ensure!(status == 404, "{view}");
    ensure!(over_sync(&server, "officer-li", id).await?.is_none());
    let (status, _) = rest_view(&server, HANDLER, id).await?;
    ensure!(status == 200);
    server.stop().await
}

backend_tests!(
    personal_data_reaches_only_the_writer_and_the_handlers_on_every_path,
    a_stored_petition_is_closed_when_the_server_starts,
);
