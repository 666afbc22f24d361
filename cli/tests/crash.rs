//! Crashes: a `lianxin serve` process taking writes is killed with SIGKILL at random
//! moments and started again, several times; then every write it acknowledged is stored
//! exactly once (none that it did not acknowledge twice), and the database passes
//! `lianxin admin check` (SQLite's `PRAGMA integrity_check` included). On SQLite and, when
//! `LIANXIN_TEST_POSTGRES_URL` is set, on PostgreSQL.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::ensure;
use lianxin_server::auth::SmsSender;
use lianxin_server::testing::{NodeProcess, TestDb, TestServer};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sync_core::UserId;

/// Kill-and-restart rounds per backend.
const ROUNDS: usize = 4;

fn new_doc_id() -> String {
    let bytes: [u8; 16] = rand::random();
    sync_core::repo_protocol::DocumentId::from_bytes(bytes).to_string()
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

async fn killed_and_restarted(db: &mut TestDb) -> anyhow::Result<()> {
    let bin = Path::new(env!("CARGO_BIN_EXE_lianxin"));
    let seeder = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&seeder.state).await?;
    let mint = async |user: &str| {
        seeder
            .state
            .auth
            .mint_access_token(&UserId::new(user)?, 60 * 60 * 1000)
            .await
            .map_err(anyhow::Error::from)
    };
    let resident = mint("res-zhang").await?;
    let officers = [
        mint("officer-li").await?,
        mint("officer-wang").await?,
        mint("chief-east").await?,
    ];
    seeder.stop().await?;
    db.reopen().await?;

    let seed: u64 = rand::random();
    eprintln!("crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
    let env = [("LIANXIN_COMPACT_AFTER_CHANGES", "8")];

    let node = NodeProcess::start(bin, db, "node", &env).await?;
    let mut petitions = Vec::new();
    for i in 0..3 {
        let id = new_doc_id();
        let response = client
            .post(format!("{}/api/petitions", node.url))
            .bearer_auth(&resident)
            .json(&json!({
                "id": id, "channel": "chief_line", "category": "help", "title": format!("第{i}件"),
                "body": "请尽快处理。", "location": {"unit": "village-shangping"}, "routed_to": "station-east",
            }))
            .send()
            .await?;
        ensure!(response.status() == 201, "submit: {}", response.status());
        petitions.push(id);
    }
    node.kill().await?;

    // Every text sent, and whether the server acknowledged it.
    let mut sent: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for round in 0..ROUNDS {
        let node = NodeProcess::start(bin, db, "node", &env).await?;
        let mut writers = Vec::new();
        for (w, token) in officers.iter().enumerate() {
            let (client, url, token) = (client.clone(), node.url.clone(), token.clone());
            let id = petitions[w].clone();
            writers.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0.. {
                    let text = format!("r{round}-w{w}-{i:04}");
                    let body = if i % 2 == 0 {
                        json!({"action": "comment", "text": text})
                    } else {
                        json!({"action": "progress", "unit": "station-east", "note": text})
                    };
                    let result = client
                        .post(format!("{url}/api/petitions/{id}/actions"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    match result {
                        Ok(r) if r.status() == 200 => out.push((id.clone(), text, true)),
                        Ok(r) => panic!("{text}: {} {}", r.status(), r.text().await.unwrap_or_default()),
                        // The node is gone: the write may or may not have been stored.
                        Err(_) => {
                            out.push((id.clone(), text, false));
                            break;
                        }
                    }
                }
                out
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1500))).await;
        node.kill().await?;
        for w in writers {
            for (id, text, acked) in w.await? {
                sent.insert(text, (id, acked));
            }
        }
    }

    let node = NodeProcess::start(bin, db, "node", &[]).await?;
    let mut views = BTreeMap::new();
    for id in &petitions {
        let response = client
            .get(format!("{}/api/petitions/{id}", node.url))
            .bearer_auth(&officers[2])
            .send()
            .await?;
        ensure!(
            response.status() == 200,
            "read after the crashes: {}",
            response.status()
        );
        views.insert(id.clone(), response.json::<Value>().await?);
    }
    drop(node);
    let acknowledged = sent.values().filter(|(_, a)| *a).count();
    ensure!(
        acknowledged > ROUNDS,
        "too few writes acknowledged to mean anything: {acknowledged}"
    );
    for (text, (id, acked)) in &sent {
        let n = occurrences(&views[id], text);
        ensure!(n <= 1, "{text} stored {n} times");
        ensure!(
            !acked || n == 1,
            "{text} was acknowledged but is not stored (seed {seed})"
        );
    }
    eprintln!(
        "{ROUNDS} kills: {acknowledged} acknowledged writes kept, {} in flight at a kill",
        sent.len() - acknowledged
    );
    let storage = db.reopen().await?;
    let report = lianxin_server::check::check_database(&storage, &Default::default()).await?;
    ensure!(
        report.problems.is_empty(),
        "database check (seed {seed}): {:#?}",
        report.problems
    );
    Ok(())
}

lianxin_server::backend_tests!(killed_and_restarted);
