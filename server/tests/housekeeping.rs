//! Housekeeping: expired sign-in state and old idempotency keys are deleted
//! (at start-up and hourly), clock actions' marks are kept, and a key still
//! within its thirty days keeps a retried request from being carried out
//! twice.

use anyhow::ensure;
use lianxin_server::auth::{AuthSettings, SmsSender};
use lianxin_server::clock::{Clock, ManualClock};
use lianxin_server::housekeeping::{self, CLIENT_KEY_RETENTION_MS, Purged};
use lianxin_server::state::HttpSettings;
use lianxin_server::testing::{TestDb, TestServer, test_notify_settings};
use serde_json::{Value, json};
use sync_core::repo_protocol::DocumentId;
use sync_core::{Timestamp, UserId};

const DAY_MS: i64 = 24 * 60 * 60_000;

async fn server_at(db: &TestDb, now: Timestamp) -> anyhow::Result<TestServer> {
    TestServer::start_full(
        db.storage.clone(),
        SmsSender::DevLog,
        AuthSettings::default(),
        HttpSettings::default(),
        test_notify_settings(),
        ManualClock::new(now),
    )
    .await
}

/// Posts a comment to petition `id` under `Idempotency-Key: key`.
async fn comment(server: &TestServer, token: &str, id: &str, key: &str) -> anyhow::Result<(u16, Value)> {
    let r = reqwest::Client::new()
        .post(server.url(&format!("/api/petitions/{id}/actions")))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"action": "comment", "text": "水还是没有来"}))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn comments(server: &TestServer, token: &str, id: &str) -> anyhow::Result<usize> {
    let (_, view) = server.get(&format!("/api/petitions/{id}"), Some(token)).await?;
    Ok(view["conversation"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["text"] == "水还是没有来")
        .count())
}

async fn old_state_is_purged_and_recent_keys_still_hold(db: &mut TestDb) -> anyhow::Result<()> {
    let start = ManualClock::starting_now().now();
    let server = server_at(db, start).await?;
    lianxin_demo::seed(&server.state).await?;
    // An officer signs in with his password (a session and a refresh token)…
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            &json!({"login": "li", "password": lianxin_demo::DEMO_PASSWORD}),
        )
        .await?;
    ensure!(status == 200, "signing in answered {status}: {body}");
    // A resident files a petition and comments on it under a key.
    let zhang = server
        .state
        .auth
        .mint_access_token(&UserId::new("res-zhang")?, 90 * DAY_MS)
        .await?;
    let id = DocumentId::from_bytes(rand::random()).to_string();
    let (status, body) = server
        .post(
            "/api/petitions",
            Some(&zhang),
            &json!({"id": id, "channel": "chief_line", "category": "help", "title": "断水",
                    "body": "泉水被引去灌溉", "location": {"unit": "village-shangping"}}),
        )
        .await?;
    ensure!(status == 201, "filing answered {status}: {body}");
    ensure!(comment(&server, &zhang, &id, "c-1").await?.0 == 200);
    // A clock action's mark, as old as anything here.
    let mut tx = db.storage.begin().await?;
    tx.mark_fired("escalate:test:sign", start).await?;
    tx.commit().await?;

    // Nothing has expired yet.
    let purged = housekeeping::purge(&server.state, server.clock.now()).await?;
    ensure!(purged == Purged::default(), "purged at once: {purged:?}");
    // Twenty-nine days on, the key still holds: the retry is not a second comment.
    server.clock.advance_millis(29 * DAY_MS);
    let purged = housekeeping::purge(&server.state, server.clock.now()).await?;
    ensure!(purged.client_keys == 0, "a key within its thirty days went: {purged:?}");
    ensure!(
        purged.auth >= 2,
        "the expired session and refresh token stayed: {purged:?}"
    );
    ensure!(comment(&server, &zhang, &id, "c-1").await?.0 == 200);
    ensure!(
        comments(&server, &zhang, &id).await? == 1,
        "a retry within the key's life was carried out again"
    );
    let mark = format!("client:res-zhang:{id}:c-1");
    ensure!(server.state.storage.clocks().is_fired(&mark).await?);
    server.stop().await?;

    // A server started past the key's thirty days deletes it at start-up;
    // the clock action's mark stays.
    let later = start.plus_millis(CLIENT_KEY_RETENTION_MS + DAY_MS);
    db.reopen().await?;
    let server = server_at(db, later).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.state.storage.clocks().is_fired(&mark).await? {
        ensure!(
            std::time::Instant::now() < deadline,
            "the key outlived its thirty days at start-up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ensure!(
        server.state.storage.clocks().is_fired("escalate:test:sign").await?,
        "housekeeping deleted a clock action's mark"
    );
    ensure!(
        housekeeping::purge(&server.state, server.clock.now()).await? == Purged::default(),
        "the start-up run left something behind"
    );
    server.stop().await
}

lianxin_server::backend_tests!(old_state_is_purged_and_recent_keys_still_hold);
