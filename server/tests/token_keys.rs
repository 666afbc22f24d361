//! Access tokens across tiers: EdDSA tokens with key ids, verified by a
//! server that trusts the issuer's published keys and refused, with the
//! reason, by one that does not; rotation keeps earlier tokens valid until
//! the retention ends; forged tokens, unknown keys and the old shared-secret
//! tokens are refused by name.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lianxin_server::auth::{AccessClaims, AuthError, AuthService, AuthSettings, SmsSender};
use lianxin_server::state::HttpSettings;
use lianxin_server::storage::UserKind;
use lianxin_server::testing::{TEST_SECRET, TestDb, TestServer};
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use sync_core::wire::KeySet;

const USER: &str = "officer-li";

async fn server(db: &TestDb, issuer: &str) -> anyhow::Result<TestServer> {
    let settings = AuthSettings {
        issuer: issuer.into(),
        ..AuthSettings::default()
    };
    let server =
        TestServer::start_with(db.storage.clone(), SmsSender::DevLog, settings, HttpSettings::default()).await?;
    lianxin_demo::seed(&server.state).await?;
    Ok(server)
}

async fn key_set(server: &TestServer) -> anyhow::Result<KeySet> {
    Ok(reqwest::get(server.url("/api/auth/keys"))
        .await?
        .error_for_status()?
        .json()
        .await?)
}

fn refusal(result: Result<AccessClaims, AuthError>) -> String {
    match result {
        Ok(claims) => panic!("accepted: {claims:?}"),
        Err(e) => e.to_string(),
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.expect("a kid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_verified_by_a_tier_that_trusts_its_issuer_and_refused_by_others() -> anyhow::Result<()> {
    let (db_a, db_b, db_c) = (
        TestDb::sqlite().await?,
        TestDb::sqlite().await?,
        TestDb::sqlite().await?,
    );
    let county = server(&db_a, "county").await?;
    let station = server(&db_b, "station-east").await?;
    let stranger = server(&db_c, "elsewhere").await?;
    let token = county.token(USER).await?;
    let header = jsonwebtoken::decode_header(&token)?;
    assert_eq!(header.alg, Algorithm::EdDSA);

    // The county's own token, and its published keys.
    assert!(county.state.auth.authenticate(&token).await?.foreign.is_none());
    let set = key_set(&county).await?;
    assert_eq!(set.issuer, "county");
    assert_eq!(set.keys[0].kid, kid_of(&token));
    assert_eq!(
        (set.keys[0].status.as_str(), set.keys[0].crv.as_str()),
        ("current", "Ed25519")
    );

    // Not trusted yet: refused, naming the key.
    let why = refusal(station.state.auth.authenticate(&token).await);
    assert!(why.contains("unknown key") && why.contains(&kid_of(&token)), "{why}");

    // The station trusts the county's key set (as fetched from its URL).
    station.state.auth.keys().trust_url(county.url("/api/auth/keys"));
    let claims = station.state.auth.authenticate(&token).await?;
    assert_eq!(claims.foreign.as_deref(), Some("county"));
    assert_eq!(claims.sub, USER);
    // The API serves the county's user at the station.
    let (status, me) = station.get("/api/me", Some(&token)).await?;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], USER);

    // A server that trusts someone else still refuses it.
    stranger.state.auth.keys().trust(&key_set(&station).await?);
    let why = refusal(stranger.state.auth.authenticate(&token).await);
    assert!(why.contains("unknown key"), "{why}");
    let (status, body) = stranger.get("/api/me", Some(&token)).await?;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("unknown key"), "{body}");

    // A token the station revoked is refused there, though the county keeps it.
    let jti = claims.jti.clone();
    let user = sync_core::UserId::new(USER)?;
    station
        .state
        .auth
        .storage()
        .auth()
        .revoke_jti(&jti, &user, claims.expires_at(), station.state.auth.now())
        .await?;
    assert!(matches!(
        station.state.auth.authenticate(&token).await,
        Err(AuthError::TokenRevoked)
    ));
    county.state.auth.authenticate(&token).await?;

    for s in [county, station, stranger] {
        s.stop().await?;
    }
    for db in [db_a, db_b, db_c] {
        db.cleanup().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_earlier_tokens_until_the_retention_ends() -> anyhow::Result<()> {
    let (db_a, db_b) = (TestDb::sqlite().await?, TestDb::sqlite().await?);
    let county = server(&db_a, "county").await?;
    let station = server(&db_b, "station-east").await?;
    station.state.auth.keys().trust_url(county.url("/api/auth/keys"));
    let user = sync_core::UserId::new(USER)?;
    let old = county.state.auth.mint_access_token(&user, 30 * 24 * 3_600_000).await?;
    station.state.auth.authenticate(&old).await?;

    let now = county.state.auth.now();
    let kid = county.state.auth.keys().rotate(now, false).await?;
    let new = county.state.auth.mint_access_token(&user, 30 * 24 * 3_600_000).await?;
    assert_eq!(kid_of(&new), kid);
    assert_ne!(kid_of(&old), kid);
    // Both verify at the county, and at the station, which fetches the
    // county's keys again when it meets the new key id.
    for token in [&old, &new] {
        county.state.auth.authenticate(token).await?;
        station.state.auth.authenticate(token).await?;
    }
    let set = key_set(&county).await?;
    assert_eq!(set.keys.len(), 2);
    assert_eq!(
        (set.keys[0].kid.as_str(), set.keys[0].status.as_str()),
        (kid.as_str(), "current")
    );
    assert_eq!(set.keys[1].status, "retired");

    // Past the retention (7 days by default) the retired key's tokens are
    // refused, with the reason; the new key's are not.
    county.clock.advance_secs(8 * 24 * 3600);
    let why = refusal(county.state.auth.authenticate(&old).await);
    assert!(why.contains("retired"), "{why}");
    county.state.auth.authenticate(&new).await?;
    assert_eq!(
        key_set(&county).await?.keys.len(),
        1,
        "a retired key is no longer published"
    );

    // Withdrawing refuses at once.
    let newest = county.state.auth.keys().rotate(county.state.auth.now(), true).await?;
    let why = refusal(county.state.auth.authenticate(&new).await);
    assert!(why.contains("withdrawn"), "{why}");
    let fresh = county.state.auth.mint_access_token(&user, 3_600_000).await?;
    assert_eq!(kid_of(&fresh), newest);
    county.state.auth.authenticate(&fresh).await?;

    county.stop().await?;
    station.stop().await?;
    db_a.cleanup().await;
    db_b.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_old_tokens_are_refused_with_their_reason() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let county = server(&db, "county").await?;
    let genuine = county.token(USER).await?;
    let claims = county.state.auth.authenticate(&genuine).await?;
    let kid = kid_of(&genuine);

    // A stranger's key claiming the county's key id.
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| anyhow::anyhow!("keygen"))?;
    let forger = EncodingKey::from_ed_der(pkcs8.as_ref());
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.clone());
    let forged = jsonwebtoken::encode(&header, &claims, &forger)?;
    let why = refusal(county.state.auth.authenticate(&forged).await);
    assert!(why.contains(&format!("does not verify with key {kid}")), "{why}");

    // A key id nobody has.
    header.kid = Some("no-such-key".into());
    let unknown = jsonwebtoken::encode(&header, &claims, &forger)?;
    let why = refusal(county.state.auth.authenticate(&unknown).await);
    assert!(why.contains("unknown key no-such-key"), "{why}");

    // No key id at all.
    header.kid = None;
    let bare = jsonwebtoken::encode(&header, &claims, &forger)?;
    let why = refusal(county.state.auth.authenticate(&bare).await);
    assert!(why.contains("names no key"), "{why}");

    // A token of the kind servers issued before, signed with the shared secret.
    let old = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &AccessClaims {
            kind: UserKind::Staff,
            ..claims.clone()
        },
        &EncodingKey::from_secret(TEST_SECRET),
    )?;
    let why = refusal(county.state.auth.authenticate(&old).await);
    assert!(why.contains("HS256") && why.contains("refresh"), "{why}");
    let (status, body) = county.get("/api/me", Some(&old)).await?;
    assert_eq!(status, 401, "{body}");

    // The signing key survives a restart (stored, sealed under the secret);
    // under another secret a new key signs and the old tokens still verify.
    let same = AuthService::new(
        db.storage.clone(),
        county.clock.clone(),
        TEST_SECRET,
        SmsSender::DevLog,
        AuthSettings::default(),
    );
    let user = sync_core::UserId::new(USER)?;
    assert_eq!(kid_of(&same.mint_access_token(&user, 60_000).await?), kid);
    let other = AuthService::new(
        db.storage.clone(),
        county.clock.clone(),
        b"another secret of at least thirty-two bytes",
        SmsSender::DevLog,
        AuthSettings::default(),
    );
    let resealed = other.mint_access_token(&user, 60_000).await?;
    assert_ne!(kid_of(&resealed), kid);
    other.authenticate(&genuine).await?;
    other.authenticate(&resealed).await?;

    county.stop().await?;
    db.cleanup().await;
    Ok(())
}
