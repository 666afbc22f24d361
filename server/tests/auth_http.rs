//! Sign-in, tokens and revocation over a real socket and a real database.

use lianxin_server::auth::{AuthSettings, SmsSender, TokenEnd};
use lianxin_server::backend_tests;
use lianxin_server::clock::Clock;
use lianxin_server::state::HttpSettings;
use lianxin_server::testing::{TestDb, TestServer, WebhookRecorder, seed_staff};
use serde_json::{Value, json};
use sync_core::{Membership, Role, UnitId};

const PHONE: &str = "13800000001";

async fn staff_server(db: &TestDb) -> anyhow::Result<TestServer> {
    let station = Membership {
        unit: UnitId::new("station-1")?,
        role: Role::Officer,
    };
    seed_staff(
        &db.storage,
        "officer-zhang",
        "zhang",
        "correct horse battery",
        &[station],
    )
    .await?;
    TestServer::start(db.storage.clone(), SmsSender::DevLog).await
}

async fn login(server: &TestServer) -> anyhow::Result<Value> {
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            &json!({"login": "zhang", "password": "correct horse battery"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(body)
}

fn token(body: &Value, field: &str) -> String {
    body[field].as_str().unwrap_or_default().to_owned()
}

async fn password_login(db: &mut TestDb) -> anyhow::Result<()> {
    let server = staff_server(db).await?;
    let ok = login(&server).await?;
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], 900);
    assert_eq!(ok["user"]["id"], "officer-zhang");

    let (status, me) = server.get("/api/me", Some(&token(&ok, "access_token"))).await?;
    assert_eq!(status, 200);
    assert_eq!(me["id"], "officer-zhang");
    assert_eq!(me["memberships"], json!([{"unit": "station-1", "role": "officer"}]));

    let (s1, wrong_password) = server
        .post("/api/auth/login", None, &json!({"login": "zhang", "password": "nope"}))
        .await?;
    let (s2, unknown_user) = server
        .post("/api/auth/login", None, &json!({"login": "li", "password": "nope"}))
        .await?;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong_password, unknown_user, "no hint whether the login exists");
    assert_eq!(wrong_password["error"]["code"], "invalid_credentials");
    server.stop().await
}

async fn password_guessing_is_throttled(db: &mut TestDb) -> anyhow::Result<()> {
    let server = staff_server(db).await?;
    let guess = json!({"login": "zhang", "password": "guess"});
    for _ in 0..10 {
        let answer = server.post("/api/auth/login", None, &guess).await?;
        assert_eq!(code(&answer), (401, Some("invalid_credentials")));
    }
    let answer = server.post("/api/auth/login", None, &guess).await?;
    assert_eq!(code(&answer), (429, Some("rate_limited")));
    let right = json!({"login": "zhang", "password": "correct horse battery"});
    let answer = server.post("/api/auth/login", None, &right).await?;
    assert_eq!(
        code(&answer),
        (429, Some("rate_limited")),
        "even the right password waits"
    );
    server.clock.advance_secs(15 * 60 + 1);
    login(&server).await?;
    server.stop().await
}

async fn otp_sign_in_through_the_gateway(db: &mut TestDb) -> anyhow::Result<()> {
    let gateway = WebhookRecorder::start().await?;
    let server = TestServer::start(db.storage.clone(), gateway.sender()?).await?;
    let (status, body) = server
        .post("/api/auth/otp/request", None, &json!({"phone": PHONE}))
        .await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["expires_in"], 300);
    let sent = gateway.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["purpose"], "login");
    let code = gateway.last_code_for(PHONE).expect("code sent");
    assert_eq!(code.len(), 6);

    let (status, pair) = server
        .post("/api/auth/otp/verify", None, &json!({"phone": PHONE, "code": code}))
        .await?;
    assert_eq!(status, 200, "{pair}");
    assert_eq!(pair["user"]["kind"], "resident");
    let (status, me) = server.get("/api/me", Some(&token(&pair, "access_token"))).await?;
    assert_eq!(status, 200);
    assert_eq!(me["memberships"], json!([]));

    // A code works once.
    let (status, again) = server
        .post("/api/auth/otp/verify", None, &json!({"phone": PHONE, "code": code}))
        .await?;
    assert_eq!((status, again["error"]["code"].as_str()), (401, Some("otp_expired")));

    // Codes are rate-limited per phone.
    let (status, limited) = server
        .post("/api/auth/otp/request", None, &json!({"phone": PHONE}))
        .await?;
    assert_eq!((status, limited["error"]["code"].as_str()), (429, Some("rate_limited")));
    server.clock.advance_secs(61);
    let (status, _) = server
        .post("/api/auth/otp/request", None, &json!({"phone": PHONE}))
        .await?;
    assert_eq!(status, 202);
    // The same phone signs in as the same resident.
    let code = gateway.last_code_for(PHONE).expect("code sent");
    let (_, second) = server
        .post("/api/auth/otp/verify", None, &json!({"phone": PHONE, "code": code}))
        .await?;
    assert_eq!(second["user"]["id"], pair["user"]["id"]);
    server.stop().await
}

async fn otp_expires_and_burns_after_five_wrong_tries(db: &mut TestDb) -> anyhow::Result<()> {
    let gateway = WebhookRecorder::start().await?;
    let server = TestServer::start(db.storage.clone(), gateway.sender()?).await?;

    server
        .post("/api/auth/otp/request", None, &json!({"phone": PHONE}))
        .await?;
    let code = gateway.last_code_for(PHONE).expect("code sent");
    server.clock.advance_secs(5 * 60 + 1);
    let (status, expired) = server
        .post("/api/auth/otp/verify", None, &json!({"phone": PHONE, "code": code}))
        .await?;
    assert_eq!((status, expired["error"]["code"].as_str()), (401, Some("otp_expired")));

    server
        .post("/api/auth/otp/request", None, &json!({"phone": PHONE}))
        .await?;
    let code = gateway.last_code_for(PHONE).expect("code sent");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (1..=4).rev() {
        let (status, body) = server
            .post("/api/auth/otp/verify", None, &json!({"phone": PHONE, "code": wrong}))
            .await?;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("otp_invalid")));
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("{left} attempts"))
        );
    }
    let (_, fifth) = server
        .post("/api/auth/otp/verify", None, &json!({"phone": PHONE, "code": wrong}))
        .await?;
    assert_eq!(fifth["error"]["code"], "otp_attempts_exceeded");
    let (status, burnt) = server
        .post("/api/auth/otp/verify", None, &json!({"phone": PHONE, "code": code}))
        .await?;
    assert_eq!((status, burnt["error"]["code"].as_str()), (401, Some("otp_expired")));
    server.stop().await
}

async fn refresh(server: &TestServer, pair: &Value) -> anyhow::Result<(u16, Value)> {
    let body = json!({"refresh_token": token(pair, "refresh_token")});
    server.post("/api/auth/refresh", None, &body).await
}

fn code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"]["code"].as_str())
}

async fn refresh_rotates_and_detects_reuse(db: &mut TestDb) -> anyhow::Result<()> {
    let server = staff_server(db).await?;
    let first = login(&server).await?;
    let (status, second) = refresh(&server, &first).await?;
    assert_eq!(status, 200, "{second}");
    assert_ne!(token(&second, "refresh_token"), token(&first, "refresh_token"));
    let me = server.get("/api/me", Some(&token(&second, "access_token"))).await?;
    assert_eq!(me.0, 200);

    // Replaying the rotated token after the grace period revokes the session.
    server.clock.advance_secs(61);
    assert_eq!(code(&refresh(&server, &first).await?), (401, Some("refresh_reused")));
    assert_eq!(code(&refresh(&server, &second).await?), (401, Some("refresh_invalid")));
    let me = server.get("/api/me", Some(&token(&second, "access_token"))).await?;
    assert_eq!(code(&me), (401, Some("token_revoked")));

    let junk = server
        .post("/api/auth/refresh", None, &json!({"refresh_token": "junk"}))
        .await?;
    assert_eq!(code(&junk), (401, Some("refresh_invalid")));
    server.stop().await
}

/// On a lossy link the answer to a refresh can be lost; the client retries
/// with the same token.
async fn a_lost_refresh_answer_can_be_retried(db: &mut TestDb) -> anyhow::Result<()> {
    let server = staff_server(db).await?;
    let first = login(&server).await?;
    let (status, lost) = refresh(&server, &first).await?;
    assert_eq!(status, 200);
    server.clock.advance_secs(20);
    let (status, retried) = refresh(&server, &first).await?;
    assert_eq!(status, 200, "{retried}");
    let (status, next) = refresh(&server, &retried).await?;
    assert_eq!(status, 200, "the retried answer's token is the live one");

    // The answer that was never seen is retired: whoever presents it stole it.
    assert_eq!(code(&refresh(&server, &lost).await?), (401, Some("refresh_reused")));
    assert_eq!(code(&refresh(&server, &next).await?), (401, Some("refresh_invalid")));
    server.stop().await
}

async fn revoked_and_expired_tokens_are_refused(db: &mut TestDb) -> anyhow::Result<()> {
    let server = staff_server(db).await?;
    let a = login(&server).await?;
    let b = login(&server).await?;
    let (access_a, access_b) = (token(&a, "access_token"), token(&b, "access_token"));

    // The query parameter works for clients that cannot send headers.
    let (status, _) = server.get(&format!("/api/me?token={access_a}"), None).await?;
    assert_eq!(status, 200);

    let (status, _) = server.post("/api/auth/logout", Some(&access_a), &json!({})).await?;
    assert_eq!(status, 204);
    let (status, me) = server.get("/api/me", Some(&access_a)).await?;
    assert_eq!((status, me["error"]["code"].as_str()), (401, Some("token_revoked")));
    let (status, _) = server.get("/api/me", Some(&access_b)).await?;
    assert_eq!(status, 200, "other sessions live on");

    // Logging out everywhere ends the other session too, refresh included.
    let c = login(&server).await?;
    let (status, _) = server
        .post(
            "/api/auth/logout",
            Some(&token(&c, "access_token")),
            &json!({"all": true}),
        )
        .await?;
    assert_eq!(status, 204);
    let (status, _) = server.get("/api/me", Some(&access_b)).await?;
    assert_eq!(status, 401);
    let (status, _) = server
        .post(
            "/api/auth/refresh",
            None,
            &json!({"refresh_token": token(&b, "refresh_token")}),
        )
        .await?;
    assert_eq!(status, 401);

    // Expiry follows the server clock.
    let d = login(&server).await?;
    server.clock.advance_secs(15 * 60 + 1);
    let (status, me) = server.get("/api/me", Some(&token(&d, "access_token"))).await?;
    assert_eq!((status, me["error"]["code"].as_str()), (401, Some("token_expired")));
    let (status, _) = server.get("/api/me", Some("not-a-jwt")).await?;
    assert_eq!(status, 401);
    let (status, missing) = server.get("/api/me", None).await?;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    server.stop().await
}

/// The primitive live connections use to close when their token dies.
async fn token_watch_fires_on_revocation_and_expiry(db: &mut TestDb) -> anyhow::Result<()> {
    let server = staff_server(db).await?;
    let auth = server.state.auth.clone();
    let pair = login(&server).await?;
    let claims = auth.authenticate(&token(&pair, "access_token")).await?;
    let mut watch = auth.watch(claims.clone());
    let waiter = tokio::spawn(async move { watch.ended().await });
    let (status, _) = server
        .post("/api/auth/logout", Some(&token(&pair, "access_token")), &json!({}))
        .await?;
    assert_eq!(status, 204);
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await??;
    assert_eq!(end, TokenEnd::Revoked);

    // Revoking the user reaches watches of every session.
    let other = login(&server).await?;
    let mut watch = auth.watch(auth.authenticate(&token(&other, "access_token")).await?);
    auth.revoke_user(&sync_core::UserId::new("officer-zhang")?).await?;
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), watch.ended()).await?;
    assert_eq!(end, TokenEnd::Revoked);

    // A short-lived token's watch ends by expiry.
    let user = sync_core::UserId::new("officer-zhang")?;
    let short = auth.mint_access_token(&user, 1_000).await?;
    let mut watch = auth.watch(auth.authenticate(&short).await?);
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), watch.ended()).await?;
    assert_eq!(end, TokenEnd::Expired);
    server.stop().await
}

/// The admin command or another node revokes in the database only; the
/// node's poller finds out and ends the watches concerned.
async fn a_revocation_elsewhere_reaches_watches(db: &mut TestDb) -> anyhow::Result<()> {
    let station = Membership {
        unit: UnitId::new("station-1")?,
        role: Role::Officer,
    };
    let user = seed_staff(
        &db.storage,
        "officer-zhang",
        "zhang",
        "correct horse battery",
        &[station],
    )
    .await?;
    let settings = AuthSettings {
        revocation_recheck_ms: 50,
        ..AuthSettings::default()
    };
    let server =
        TestServer::start_with(db.storage.clone(), SmsSender::DevLog, settings, HttpSettings::default()).await?;
    let pair = login(&server).await?;
    let auth = server.state.auth.clone();
    let mut watch = auth.watch(auth.authenticate(&token(&pair, "access_token")).await?);
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), watch.ended()).await;
    assert!(quiet.is_err(), "an active token's watch keeps waiting");

    // The node checks its watches together: revoking one session in the
    // database ends that session's watch and no other.
    let other = auth
        .authenticate(&token(&login(&server).await?, "access_token"))
        .await?;
    let mut other_watch = auth.watch(other.clone());
    db.storage.auth().revoke_session(&other.sid, server.clock.now()).await?;
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), other_watch.ended()).await?;
    assert_eq!(end, TokenEnd::Revoked);
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), watch.ended()).await;
    assert!(quiet.is_err(), "the first session is still active");

    db.storage
        .auth()
        .revoke_user_sessions(&user, server.clock.now())
        .await?;
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), watch.ended()).await?;
    assert_eq!(end, TokenEnd::Revoked);
    server.stop().await
}

async fn expired_auth_state_is_purged(db: &mut TestDb) -> anyhow::Result<()> {
    let server = staff_server(db).await?;
    let pair = login(&server).await?;
    let now = server.clock.now();
    assert_eq!(
        db.storage.auth().purge_expired(now, now).await?,
        0,
        "nothing expired yet"
    );
    let later = now.plus_millis(31 * 24 * 3600 * 1000);
    assert!(
        db.storage.auth().purge_expired(later, later).await? >= 2,
        "session and refresh token"
    );
    server.clock.advance_millis(31 * 24 * 3600 * 1000);
    let (status, _) = server
        .post(
            "/api/auth/refresh",
            None,
            &json!({"refresh_token": token(&pair, "refresh_token")}),
        )
        .await?;
    assert_eq!(status, 401);
    server.stop().await
}

async fn http_errors_have_one_shape(db: &mut TestDb) -> anyhow::Result<()> {
    let http = HttpSettings {
        body_limit: 1024,
        ..HttpSettings::default()
    };
    let server = TestServer::start_with(db.storage.clone(), SmsSender::DevLog, AuthSettings::default(), http).await?;
    let (status, body) = server.get("/healthz", None).await?;
    assert_eq!((status, body), (200, Value::String("ok".into())));
    let (status, body) = server.get("/api/nope", None).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, body) = server.post("/api/auth/login", None, &json!({"login": "x"})).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")));
    let big = "x".repeat(4096);
    let (status, body) = server
        .post("/api/auth/login", None, &json!({"login": big, "password": "p"}))
        .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (status, body) = server
        .post("/api/auth/otp/request", None, &json!({"phone": "call me"}))
        .await?;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_phone")));
    server.stop().await
}

backend_tests!(
    password_login,
    password_guessing_is_throttled,
    otp_sign_in_through_the_gateway,
    otp_expires_and_burns_after_five_wrong_tries,
    refresh_rotates_and_detects_reuse,
    a_lost_refresh_answer_can_be_retried,
    revoked_and_expired_tokens_are_refused,
    token_watch_fires_on_revocation_and_expiry,
    a_revocation_elsewhere_reaches_watches,
    expired_auth_state_is_purged,
    http_errors_have_one_shape,
);
