//! The write path under concurrency, on several nodes. Two document services on one database
//! in one process (both backends), and two `lianxin serve` processes on one PostgreSQL schema,
//! take comments and progress notes on one petition from several officers at once (one of them
//! writing through both nodes), with compaction due every few changes; then a cold node and a
//! rebuild from the stored snapshot and changes must hold every acknowledged write exactly once,
//! and every projection row must equal what the stored document says. The process test is
//! skipped (with a line saying so) without `LIANXIN_TEST_POSTGRES_URL`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, ensure};
use lianxin_server::auth::SmsSender;
use lianxin_server::docs::{DocService, DocSettings, WriteStats};
use lianxin_server::testing::{NodeProcess, TestDb, TestServer, postgres_skipped, run_test};
use serde_json::{Value, json};
use sync_core::petition::{PetitionAction, PetitionDoc};
use sync_core::{UnitId, UserId};
use tokio::sync::Mutex;

/// Writes per writer task.
const WRITES: usize = 30;
/// Compaction is due this often, so the run crosses it many times.
const COMPACT_EVERY: &str = "8";

/// One writer: a user, the nodes it writes through (in turn), and a name for its texts.
struct Writer {
    user: &'static str,
    nodes: Vec<usize>,
    name: String,
}

async fn tokens(db: &mut TestDb, users: &[&'static str]) -> anyhow::Result<BTreeMap<&'static str, String>> {
    // Seed the county in-process, mint tokens, then leave the database to the nodes.
    let seeder = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&seeder.state).await?;
    let mut out = BTreeMap::new();
    for user in users {
        let token = seeder
            .state
            .auth
            .mint_access_token(&UserId::new(*user)?, 60 * 60 * 1000)
            .await?;
        out.insert(*user, token);
    }
    seeder.stop().await?;
    db.reopen().await?;
    Ok(out)
}

fn new_doc_id() -> String {
    let bytes: [u8; 16] = rand::random();
    sync_core::repo_protocol::DocumentId::from_bytes(bytes).to_string()
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let response = client.post(url).bearer_auth(token).json(body).send().await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// How often `text` appears as a whole JSON string in `value`.
fn occurrences(value: &Value, text: &str) -> usize {
    match value {
        Value::String(s) => usize::from(s == text),
        Value::Array(items) => items.iter().map(|v| occurrences(v, text)).sum(),
        Value::Object(map) => map.values().map(|v| occurrences(v, text)).sum(),
        _ => 0,
    }
}

async fn two_nodes_one_petition(db: &mut TestDb) -> anyhow::Result<()> {
    let bin = Path::new(env!("CARGO_BIN_EXE_lianxin"));
    let tokens = tokens(db, &["res-zhang", "officer-li", "officer-wang", "chief-east"]).await?;
    let env = [("LIANXIN_COMPACT_AFTER_CHANGES", COMPACT_EVERY)];
    let nodes = [
        NodeProcess::start(bin, db, "a", &env).await?,
        NodeProcess::start(bin, db, "b", &env).await?,
    ];
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let client = reqwest::Client::new();

    let id = new_doc_id();
    let (status, body) = post(
        &client,
        format!("{}/api/petitions", urls[0]),
        &tokens["res-zhang"],
        &json!({
            "id": id, "channel": "chief_line", "category": "help", "title": "两个节点写同一份诉求",
            "body": "请尽快处理。", "location": {"unit": "village-shangping"}, "routed_to": "station-east",
        }),
    )
    .await?;
    ensure!(status == 201, "submit: {status} {body}");
    let (status, body) = post(
        &client,
        format!("{}/api/petitions/{id}/actions", urls[1]),
        &tokens["chief-east"],
        &json!({"action": "sign", "unit": "station-east"}),
    )
    .await?;
    ensure!(status == 200, "sign: {status} {body}");

    let writers = vec![
        Writer {
            user: "officer-li",
            nodes: vec![0],
            name: "li-a1".into(),
        },
        Writer {
            user: "officer-li",
            nodes: vec![0],
            name: "li-a2".into(),
        },
        Writer {
            user: "officer-wang",
            nodes: vec![1],
            name: "wang-b1".into(),
        },
        Writer {
            user: "officer-wang",
            nodes: vec![1],
            name: "wang-b2".into(),
        },
        // One user through both nodes.
        Writer {
            user: "chief-east",
            nodes: vec![0, 1],
            name: "chief-ab".into(),
        },
    ];
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for w in writers {
        let (client, urls, id) = (client.clone(), urls.clone(), id.clone());
        let token = tokens[w.user].clone();
        let (acknowledged, failures) = (acknowledged.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..WRITES {
                let text = format!("{}-{i:03}", w.name);
                let body = if i % 2 == 0 {
                    json!({"action": "comment", "text": text})
                } else {
                    json!({"action": "progress", "unit": "station-east", "note": text})
                };
                let node = w.nodes[i % w.nodes.len()];
                match post(
                    &client,
                    format!("{}/api/petitions/{id}/actions", urls[node]),
                    &token,
                    &body,
                )
                .await
                {
                    Ok((200, _)) => acknowledged.lock().await.push(text),
                    Ok((status, body)) => failures.lock().await.push(format!("{text}: {status} {body}")),
                    Err(e) => failures.lock().await.push(format!("{text}: {e}")),
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let failures = failures.lock().await.clone();
    ensure!(
        failures.is_empty(),
        "{} writes failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let acknowledged = acknowledged.lock().await.clone();
    ensure!(acknowledged.len() == 5 * WRITES, "acknowledged {}", acknowledged.len());
    let (status, body) = post(
        &client,
        format!("{}/api/petitions/{id}/actions", urls[1]),
        &tokens["chief-east"],
        &json!({"action": "reply", "unit": "station-east", "text": "已处理完毕。"}),
    )
    .await?;
    ensure!(status == 200, "reply: {status} {body}");
    drop(nodes);

    // A cold third node serves every acknowledged write exactly once.
    let cold = NodeProcess::start(bin, db, "c", &[]).await?;
    let response = client
        .get(format!("{}/api/petitions/{id}", cold.url))
        .bearer_auth(&tokens["chief-east"])
        .send()
        .await?;
    ensure!(response.status() == 200, "cold read: {}", response.status());
    let view: Value = response.json().await?;
    let wrong: Vec<(String, usize)> = acknowledged
        .iter()
        .map(|t| (t.clone(), occurrences(&view, t)))
        .filter(|(_, n)| *n != 1)
        .collect();
    ensure!(
        wrong.is_empty(),
        "{} of {} acknowledged writes not present exactly once on a cold node, e.g. {:?}",
        wrong.len(),
        acknowledged.len(),
        &wrong[..wrong.len().min(5)]
    );
    ensure!(
        view["summary"]["status"] == "replied",
        "status {}",
        view["summary"]["status"]
    );
    drop(cold);

    // The stored snapshot and changes rebuild the same document, and every
    // projection row equals a recomputation from it.
    let storage = db.reopen().await?;
    let report = lianxin_server::check::check_database(&storage, &Default::default())
        .await
        .context("checking the database")?;
    ensure!(report.problems.is_empty(), "database check: {:#?}", report.problems);
    ensure!(report.documents > 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_keep_every_acknowledged_write() -> anyhow::Result<()> {
    match TestDb::postgres().await? {
        Some(db) => run_test(db, two_nodes_one_petition).await,
        None => {
            postgres_skipped("write_path::two_nodes_keep_every_acknowledged_write");
            Ok(())
        }
    }
}

/// Two document services on one database, as two nodes would be, with compaction due every
/// four changes: every acknowledged write is stored exactly once, whichever node took it.
async fn two_services_one_database(db: &mut TestDb) -> anyhow::Result<()> {
    let settings = DocSettings {
        compact_after_changes: 4,
        ..DocSettings::default()
    };
    two_services(db, settings).await.map(|_| ())
}

/// The same with every write computed and stored under the change-log lock (what a write does
/// after losing the race to the other node a few times): nothing lost, nothing twice, and
/// every write counted as exclusive.
async fn two_services_under_the_change_log_lock(db: &mut TestDb) -> anyhow::Result<()> {
    let settings = DocSettings {
        compact_after_changes: 4,
        optimistic_attempts: 0,
        ..DocSettings::default()
    };
    let (writes, stats) = two_services(db, settings).await?;
    let exclusive: u64 = stats.iter().map(|s| s.exclusive).sum();
    ensure!(
        exclusive as usize == writes + 1,
        "{exclusive} of {} writes (the creation and {writes} more) under the lock: {stats:?}",
        writes + 1
    );
    ensure!(
        stats.iter().all(|s| s.retries == 0),
        "a write under the lock was stale: {stats:?}"
    );
    Ok(())
}

/// Five writers through two services; returns the acknowledged writes and each service's
/// counters.
async fn two_services(db: &mut TestDb, settings: DocSettings) -> anyhow::Result<(usize, Vec<WriteStats>)> {
    const PER_WRITER: usize = 24;
    let seeder = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&seeder.state).await?;
    let clock = seeder.state.clock.clone();
    let nodes = [
        DocService::new(db.storage.clone(), clock.clone(), settings.clone()).await?,
        DocService::new(db.storage.clone(), clock.clone(), settings.clone()).await?,
    ];
    let auth = &seeder.state.auth;
    let principal = async |user: &str| auth.principal(&UserId::new(user)?).await.map_err(anyhow::Error::from);

    let id = new_doc_id();
    let resident = principal("res-zhang").await?;
    let (actor, mut author) = nodes[0].server_author(&resident.user);
    let header = serde_json::from_value(json!({
        "id": format!("automerge:{id}"), "channel": "chief_line", "category": "help",
        "title": "两个服务写同一份诉求", "body": "请尽快处理。", "submitter": "res-zhang",
        "recorded_by": "res-zhang", "anonymous": false, "contact": null,
        "location": {"unit": "village-shangping"}, "attachments": [], "source": null,
    }))?;
    let doc = PetitionDoc::create(actor, header, UnitId::new("station-east")?, &mut author, nodes[0].now())?;
    let applied = nodes[0].create(&resident, &id, doc.into_doc()).await?;
    ensure!(applied.refused.is_empty(), "{:?}", applied.refused);

    let mut tasks = Vec::new();
    for (w, (user, node)) in [
        ("officer-li", 0usize),
        ("officer-li", 1),
        ("officer-wang", 1),
        ("chief-east", 0),
        ("chief-east", 1),
    ]
    .into_iter()
    .enumerate()
    {
        let who = principal(user).await?;
        let docs = nodes[node].clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..PER_WRITER {
                let text = format!("w{w}-{i:03}");
                let action = if i % 2 == 0 {
                    PetitionAction::Comment {
                        text: text.clone(),
                        attachments: vec![],
                        reply_to: None,
                    }
                } else {
                    PetitionAction::Progress {
                        unit: UnitId::new("station-east")?,
                        note: text.clone(),
                    }
                };
                let (_, applied) = docs
                    .act(&who, &id, |doc, author, now| {
                        let mut p = PetitionDoc::from_doc(std::mem::take(doc))?;
                        let result = action.apply(&mut p, author, now);
                        *doc = p.into_doc();
                        result.map(|_| ())
                    })
                    .await?;
                ensure!(applied.refused.is_empty(), "{text}: {:?}", applied.refused);
                acknowledged.push(text);
            }
            anyhow::Ok(acknowledged)
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await??);
    }
    for node in &nodes {
        node.compactions_done().await;
    }
    let stats: Vec<_> = nodes.iter().map(DocService::write_stats).collect();
    eprintln!("two services, {} writes: {stats:?}", acknowledged.len());
    ensure!(
        stats.iter().map(|s| s.compactions).sum::<u64>() >= 10,
        "compaction ran: {stats:?}"
    );

    // A cold node holds every acknowledged write once.
    let cold = DocService::new(db.storage.clone(), clock, DocSettings::default()).await?;
    let doc = cold.read(&principal("chief-east").await?, &id).await?;
    let petition = PetitionDoc::view(&doc)?;
    let mut texts: Vec<String> = petition.messages()?.into_iter().map(|m| m.text).collect();
    texts.extend(petition.events()?.into_iter().filter_map(|e| match e.body {
        sync_core::petition::EventBody::Progress { note } => Some(note),
        _ => None,
    }));
    let mut counts = BTreeMap::<&str, usize>::new();
    for t in &texts {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let wrong: Vec<_> = acknowledged
        .iter()
        .filter(|t| counts.get(t.as_str()) != Some(&1))
        .collect();
    ensure!(
        wrong.is_empty(),
        "{} of {} writes not present once: {:?}",
        wrong.len(),
        acknowledged.len(),
        &wrong[..wrong.len().min(5)]
    );
    ensure!(
        texts.len() == acknowledged.len(),
        "{} texts for {} writes",
        texts.len(),
        acknowledged.len()
    );

    let report = lianxin_server::check::check_database(&db.storage, &Default::default()).await?;
    ensure!(report.problems.is_empty(), "database check: {:#?}", report.problems);
    seeder.stop().await?;
    Ok((acknowledged.len(), stats))
}

/// The actors the server writes with for a user cannot be taken from it: a resident who
/// delivers a change under the actor the server used to derive from an officer's user id does
/// not lock the officer out of REST writes, and nobody, the officer's own phone included, may
/// write with an actor the server wrote with.
async fn server_actors_are_unguessable_and_reserved(db: &mut TestDb) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    let docs = &server.state.docs;
    let auth = &server.state.auth;
    let resident = auth.principal(&UserId::new("res-he")?).await?;
    let officer = auth.principal(&UserId::new("officer-zhao")?).await?;
    let token = |user: &str| {
        let user = UserId::new(user);
        async move { Ok::<_, anyhow::Error>(auth.mint_access_token(&user?, 3_600_000).await?) }
    };

    let id = new_doc_id();
    let (status, body) = server
        .post(
            "/api/petitions",
            Some(&token("res-he").await?),
            &json!({
                "id": id, "channel": "chief_line", "category": "help", "title": "路灯不亮",
                "body": "村口路灯坏了。", "location": {"unit": "village-baishi"}, "routed_to": "station-west",
            }),
        )
        .await?;
    ensure!(status == 201, "submit: {status} {body}");

    // The resident's phone writes a comment under the officer's old derived REST actor.
    let digest = Sha256::digest(b"lianxin-rest-actor:officer-zhao");
    let squatted = automerge::ActorId::from(&digest[..16]);
    let mut doc = docs.read(&resident, &id).await?;
    let heads = doc.get_heads();
    let mut phone = doc.fork().with_actor(squatted);
    let mut author = sync_core::Author::new(resident.user.clone(), sync_core::HlcClock::new("a1b2c3d4e5f60718")?);
    let mut p = PetitionDoc::from_doc(phone)?;
    p.post(
        &mut author,
        docs.now(),
        sync_core::doc::Message::draft("我先占了这个编号"),
    )?;
    phone = p.into_doc();
    let applied = docs.apply(&resident, &id, phone.get_changes(&heads)).await?;
    ensure!(
        applied.refused.is_empty(),
        "the resident's own comment: {:?}",
        applied.refused
    );

    // The officer still writes through REST.
    let (status, body) = server
        .post(
            &format!("/api/petitions/{id}/actions"),
            Some(&token("officer-zhao").await?),
            &json!({"action": "sign", "unit": "station-west"}),
        )
        .await?;
    ensure!(
        status == 200,
        "the officer's REST write after the squat: {status} {body}"
    );

    // The actor the server wrote with is reserved: the officer's own phone may not use it.
    let server_actor = docs.server_actor(&officer.user);
    doc = docs.read(&officer, &id).await?;
    let heads = doc.get_heads();
    let mut borrowed = doc.fork().with_actor(server_actor);
    let mut author = sync_core::Author::new(officer.user.clone(), sync_core::HlcClock::new("0f1e2d3c4b5a6978")?);
    let mut p = PetitionDoc::from_doc(borrowed)?;
    p.post(
        &mut author,
        docs.now(),
        sync_core::doc::Message::draft("借用服务器的编号"),
    )?;
    borrowed = p.into_doc();
    let applied = docs.apply(&officer, &id, borrowed.get_changes(&heads)).await?;
    ensure!(
        applied.refused.len() == 1 && applied.refused[0].rule == sync_core::policy::Rule::ActorReserved,
        "a phone writing with the server's actor: {:?}",
        applied.refused
    );
    server.stop().await?;
    Ok(())
}

lianxin_server::backend_tests!(
    two_services_one_database,
    two_services_under_the_change_log_lock,
    server_actors_are_unguessable_and_reserved
);
