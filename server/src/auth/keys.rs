//! Access-token keys: this server's Ed25519 signing keys, their rotation, the
//! key set it publishes, and the key sets of other tiers it trusts.
//!
//! Tokens are EdDSA JWTs whose header names the signing key (`kid`). A
//! server verifies its own tokens with its own public keys and another
//! tier's with that tier's published keys (`GET /api/auth/keys`), so a
//! station, its county and the city verify each other's tokens without
//! sharing any secret. Keys live in the database (`signing_keys`): the
//! public key in the clear, the private key sealed with ChaCha20-Poly1305
//! under a key derived from the server secret, so a database dump alone
//! cannot sign. The newest key that is not retired signs; rotating retires
//! it, and a retired key keeps verifying for the retention (longer than any
//! token it signed lives) unless it is withdrawn, which refuses its tokens
//! at once.
//!
//! Every node reads the keys again when a token names a key it does not
//! know and at least every [`RELOAD_EVERY`], so a rotation made by the admin
//! command or another node is followed within that time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sync_core::Timestamp;
use sync_core::wire::{KeySet, PublicKey};

use super::{AccessClaims, AuthError, secrets};
use crate::storage::{SigningKeyRow, Storage};

/// How long a node uses the keys it read before reading them again.
pub const RELOAD_EVERY: Duration = Duration::from_secs(60);
/// The least time between two reads caused by unknown key ids.
const RELOAD_UNKNOWN_AFTER: Duration = Duration::from_secs(1);
/// Within this window a trusted issuer's key set is fetched at most
/// [`MAX_FETCHES`] times for unknown keys, and not again for a key id that
/// was already looked for in vain: a stream of forged key ids costs the
/// issuer a few requests, not one each.
const REFETCH_WINDOW: Duration = Duration::from_secs(10);
const MAX_FETCHES: usize = 5;

/// Where a verified token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Issuer {
    /// This server (or another node on its database).
    Local,
    /// Another tier whose keys this server trusts.
    Trusted(String),
    /// A station below this server, by its account here: its tokens hold
    /// only for the people it speaks for (`sync_core::relay::speaks_for`),
    /// which the caller checks.
    Station {
        /// The station's account at this server.
        station: String,
        /// The issuer its tokens name.
        issuer: String,
    },
}

/// Why a station's key set is not taken.
#[derive(Debug, thiserror::Error)]
pub enum StationKeysError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// One verification key.
#[derive(Clone)]
struct VerifyKey {
    decoding: DecodingKey,
    retired_at: Option<Timestamp>,
    withdrawn_at: Option<Timestamp>,
}

/// This server's keys as last read.
#[derive(Default)]
struct Own {
    read_at: Option<Instant>,
    signer: Option<(String, EncodingKey)>,
    keys: HashMap<String, VerifyKey>,
    rows: Vec<SigningKeyRow>,
}

/// The key set of a tier this server trusts.
struct Trusted {
    /// Where to fetch it again; `None` for a set given once (a file, a test).
    url: Option<String>,
    issuer: Option<String>,
    keys: HashMap<String, VerifyKey>,
    fetched_at: Option<Instant>,
    /// Fetches for unknown keys within the last [`REFETCH_WINDOW`].
    fetches: Vec<Instant>,
    /// Key ids looked for in vain, and when.
    misses: HashMap<String, Instant>,
}

/// The key sets the stations below publish, as last read.
#[derive(Default)]
struct StationKeys {
    read_at: Option<Instant>,
    /// By key id: the station's account, the issuer its tokens name, the key.
    keys: HashMap<String, (String, String, VerifyKey)>,
}

/// The server's keys and the keys it trusts; cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    seal: LessSafeKey,
    issuer: String,
    retention_ms: i64,
    own: RwLock<Arc<Own>>,
    /// Serialises key creation within the process.
    creating: tokio::sync::Mutex<()>,
    trusted: RwLock<Vec<Trusted>>,
    stations: RwLock<StationKeys>,
    http: reqwest::Client,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({})", self.inner.issuer)
    }
}

fn refused(why: impl Into<String>) -> AuthError {
    AuthError::TokenRefused(why.into())
}

fn verify_key(public_b64: &str, retired_at: Option<Timestamp>, withdrawn_at: Option<Timestamp>) -> Option<VerifyKey> {
    let raw = URL_SAFE_NO_PAD.decode(public_b64).ok()?;
    (raw.len() == 32).then(|| VerifyKey {
        decoding: DecodingKey::from_ed_der(&raw),
        retired_at,
        withdrawn_at,
    })
}

impl KeyRing {
    /// `secret` is the server secret the private keys are sealed under;
    /// `issuer` the name tokens carry in `iss`; a retired key verifies for
    /// `retention_ms` after it stopped signing.
    pub fn new(storage: Storage, secret: &[u8], issuer: String, retention_ms: i64) -> Self {
        let key = secrets::hmac_bytes(secret, &["lianxin signing-key seal v1"]);
        let seal = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key"));
        KeyRing {
            inner: Arc::new(Inner {
                storage,
                seal,
                issuer,
                retention_ms,
                own: RwLock::new(Arc::new(Own::default())),
                creating: tokio::sync::Mutex::new(()),
                trusted: RwLock::new(Vec::new()),
                stations: RwLock::new(StationKeys::default()),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("a plain HTTP client builds"),
            }),
        }
    }

    /// The issuer name this server's tokens carry.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Trusts the tokens signed by the keys of `set` (another tier's
    /// `GET /api/auth/keys`, read from a file or given by a test).
    pub fn trust(&self, set: &KeySet) {
        let trusted = trusted_of(None, set);
        self.inner.trusted.write().expect("trusted keys lock").push(trusted);
    }

    /// Trusts the issuer whose key set is served at `url`
    /// (`…/api/auth/keys`), fetched when a token names a key not known yet.
    pub fn trust_url(&self, url: String) {
        self.inner.trusted.write().expect("trusted keys lock").push(Trusted {
            url: Some(url),
            issuer: None,
            keys: HashMap::new(),
            fetched_at: None,
            fetches: Vec::new(),
            misses: HashMap::new(),
        });
    }

    /// Signs `claims` with the current key, creating one if there is none.
    pub async fn sign(&self, claims: &AccessClaims, now: Timestamp) -> Result<String, AuthError> {
        let own = self.own(false).await?;
        let own = match &own.signer {
            Some(_) => own,
            None => {
                let _one = self.inner.creating.lock().await;
                let again = self.own(true).await?;
                if again.signer.is_some() {
                    again
                } else {
                    self.rotate(now, false).await?;
                    self.own(true).await?
                }
            }
        };
        let (kid, key) = own
            .signer
            .as_ref()
            .ok_or_else(|| refused("no signing key could be made"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }

    /// Makes a new signing key and retires the one signing now; with
    /// `withdraw_previous`, every earlier key stops verifying at once.
    /// Returns the new key id.
    pub async fn rotate(&self, now: Timestamp, withdraw_previous: bool) -> Result<String, AuthError> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| refused("no randomness for a key"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| refused("a fresh key did not parse"))?;
        let kid = secrets::random_id()[..16].to_string();
        let row = SigningKeyRow {
            kid: kid.clone(),
            public_key: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            sealed_private: self.seal(&kid, pkcs8.as_ref())?,
            created_at: now,
            retired_at: None,
            withdrawn_at: None,
        };
        self.inner
            .storage
            .auth()
            .rotate_signing_key(&row, now, withdraw_previous)
            .await?;
        self.own(true).await?;
        tracing::info!(kid, withdraw_previous, "new access-token signing key");
        Ok(kid)
    }

    fn seal(&self, kid: &str, private: &[u8]) -> Result<String, AuthError> {
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| refused("no randomness for a nonce"))?;
        let mut data = private.to_vec();
        self.inner
            .seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut data,
            )
            .map_err(|_| refused("sealing a key failed"))?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    fn unseal(&self, kid: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, data) = bytes.split_at(12);
        let mut data = data.to_vec();
        let nonce = Nonce::assume_unique_for_key(nonce.try_into().ok()?);
        let plain = self
            .inner
            .seal
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut data)
            .ok()?;
        Some(plain.to_vec())
    }

    /// The keys as read, reading them again if `fresh` or they are older than [`RELOAD_EVERY`].
    async fn own(&self, fresh: bool) -> Result<Arc<Own>, AuthError> {
        let current = self.inner.own.read().expect("own keys lock").clone();
        if !fresh && current.read_at.is_some_and(|at| at.elapsed() < RELOAD_EVERY) {
            return Ok(current);
        }
        let rows = self.inner.storage.auth().signing_keys().await?;
        let mut own = Own {
            read_at: Some(Instant::now()),
            ..Own::default()
        };
        for row in &rows {
            if let Some(key) = verify_key(&row.public_key, row.retired_at, row.withdrawn_at) {
                own.keys.insert(row.kid.clone(), key);
            }
        }
        // The newest key still signing, whose private part opens under this
        // server's secret (a key sealed under another secret cannot sign here).
        if let Some(row) = rows
            .iter()
            .rev()
            .find(|r| r.retired_at.is_none() && r.withdrawn_at.is_none())
        {
            match self.unseal(&row.kid, &row.sealed_private) {
                Some(pkcs8) => own.signer = Some((row.kid.clone(), EncodingKey::from_ed_der(&pkcs8))),
                None => tracing::warn!(
                    kid = row.kid,
                    "the signing key does not open with this server's secret; a new one will be made"
                ),
            }
        }
        own.rows = rows;
        let own = Arc::new(own);
        *self.inner.own.write().expect("own keys lock") = own.clone();
        Ok(own)
    }

    /// The published key set: every key not withdrawn and within its retention, the signing one first.
    pub async fn key_set(&self, now: Timestamp) -> Result<KeySet, AuthError> {
        let own = self.own(false).await?;
        let signer = own.signer.as_ref().map(|(kid, _)| kid.as_str());
        let mut keys: Vec<PublicKey> = own
            .rows
            .iter()
            .rev()
            .filter(|r| r.withdrawn_at.is_none() && self.within_retention(r.retired_at, now))
            .map(|r| PublicKey {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
                kid: r.kid.clone(),
                x: r.public_key.clone(),
                status: if r.retired_at.is_none() { "current" } else { "retired" }.into(),
                retired_at: r.retired_at.map(|t| t.millis()),
            })
            .collect();
        keys.sort_by_key(|k| Some(k.kid.as_str()) != signer);
        Ok(KeySet {
            issuer: self.inner.issuer.clone(),
            keys,
        })
    }

    fn within_retention(&self, retired_at: Option<Timestamp>, now: Timestamp) -> bool {
        retired_at.is_none_or(|at| now.millis() < at.millis().saturating_add(self.inner.retention_ms))
    }

    /// Checks a token's header, key and signature (not its expiry or
    /// revocation) and says who issued it. Every refusal names its reason.
    pub async fn verify(&self, token: &str, now: Timestamp) -> Result<(AccessClaims, Issuer), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| refused(format!("not a signed token: {e}")))?;
        match header.alg {
            Algorithm::EdDSA => {}
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(refused(
                    "it is signed with the shared secret of an earlier version (HS256); \
                     refresh it with the refresh token or sign in again",
                ));
            }
            other => {
                return Err(refused(format!(
                    "algorithm {other:?} is not accepted; tokens are EdDSA"
                )));
            }
        }
        let kid = header.kid.ok_or_else(|| refused("its header names no key (kid)"))?;
        if let Some(key) = self.own_key(&kid).await? {
            let claims = self.check(token, &kid, &key, now)?;
            return Ok((claims, Issuer::Local));
        }
        if let Some((issuer, key)) = self.trusted_key(&kid).await {
            let claims = self.check(token, &kid, &key, now)?;
            if let (Some(iss), Some(issuer)) = (&claims.iss, &issuer)
                && iss != issuer
            {
                return Err(refused(format!(
                    "it says it was issued by {iss}, but key {kid} belongs to {issuer}"
                )));
            }
            let issuer = issuer.or(claims.iss.clone()).unwrap_or_default();
            return Ok((claims, Issuer::Trusted(issuer)));
        }
        if let Some((station, issuer, key)) = self.station_key(&kid).await? {
            let claims = self.check(token, &kid, &key, now)?;
            if let Some(iss) = &claims.iss
                && *iss != issuer
            {
                return Err(refused(format!(
                    "it says it was issued by {iss}, but key {kid} belongs to station {station} ({issuer})"
                )));
            }
            return Ok((claims, Issuer::Station { station, issuer }));
        }
        Err(refused(format!(
            "it is signed by unknown key {kid}: not a key of this server, of an issuer it trusts, \
             nor of a station below it"
        )))
    }

    /// The published key `kid` of a station below, reading the stations'
    /// key sets again (at most once a second) when it is not known yet:
    /// the station may have just published it, to another node.
    async fn station_key(&self, kid: &str) -> Result<Option<(String, String, VerifyKey)>, AuthError> {
        {
            let stations = self.inner.stations.read().expect("station keys lock");
            if let Some(found) = stations.keys.get(kid) {
                return Ok(Some(found.clone()));
            }
            if stations.read_at.is_some_and(|at| at.elapsed() < RELOAD_UNKNOWN_AFTER) {
                return Ok(None);
            }
        }
        self.read_stations().await?;
        Ok(self
            .inner
            .stations
            .read()
            .expect("station keys lock")
            .keys
            .get(kid)
            .cloned())
    }

    async fn read_stations(&self) -> Result<(), crate::storage::StorageError> {
        let rows = self.inner.storage.stations().key_sets().await?;
        let mut keys = HashMap::new();
        for (station, json) in rows {
            let Ok(set) = serde_json::from_str::<KeySet>(&json) else {
                tracing::warn!(%station, "a station's stored key set does not read");
                continue;
            };
            for (kid, key) in trusted_of(None, &set).keys {
                keys.insert(kid, (station.clone(), set.issuer.clone(), key));
            }
        }
        *self.inner.stations.write().expect("station keys lock") = StationKeys {
            read_at: Some(Instant::now()),
            keys,
        };
        Ok(())
    }

    /// Takes the key set station account `station` publishes (what its
    /// `GET /api/auth/keys` answers), replacing the one it published
    /// before: tokens its keys signed verify here from now on (for the
    /// people it speaks for; the caller of [`KeyRing::verify`] checks). A
    /// set that names no issuer, holds no key, holds a key that does not
    /// read, or reuses a key id of this server or of another station is
    /// refused. Keys, not issuer names, tell tiers apart: every tier may
    /// keep the default issuer name.
    pub async fn trust_station(&self, station: &str, set: &KeySet, now: Timestamp) -> Result<(), StationKeysError> {
        let invalid = |why: String| Err(StationKeysError::Invalid(why));
        if set.issuer.trim().is_empty() {
            return invalid("the key set names no issuer".into());
        }
        if set.keys.is_empty() {
            return invalid("the key set holds no key".into());
        }
        let parsed = trusted_of(None, set).keys;
        if let Some(bad) = set.keys.iter().find(|k| !parsed.contains_key(&k.kid)) {
            return invalid(format!(
                "key {:?} is not an Ed25519 public key (kty OKP, crv Ed25519, x: 32 bytes in base64url)",
                bad.kid
            ));
        }
        self.read_stations().await?;
        for kid in parsed.keys() {
            if self.own_key(kid).await.ok().flatten().is_some() {
                return invalid(format!("key id {kid:?} is one of this server's own"));
            }
            let stations = self.inner.stations.read().expect("station keys lock");
            if let Some((other, _, _)) = stations.keys.get(kid)
                && other != station
            {
                return invalid(format!("key id {kid:?} belongs to another station"));
            }
        }
        let json = serde_json::to_string(set).expect("a key set serializes");
        self.inner.storage.stations().put_key_set(station, &json, now).await?;
        self.read_stations().await?;
        Ok(())
    }

    fn check(&self, token: &str, kid: &str, key: &VerifyKey, now: Timestamp) -> Result<AccessClaims, AuthError> {
        if let Some(at) = key.withdrawn_at
            && at <= now
        {
            return Err(refused(format!("key {kid} was withdrawn")));
        }
        if !self.within_retention(key.retired_at, now) {
            return Err(refused(format!(
                "key {kid} was retired and its tokens are no longer accepted"
            )));
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Expiry is checked by the caller against the server's clock, which
        // tests can move; the library would read the OS clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|e| refused(format!("it does not verify with key {kid}: {e}")))
    }

    /// This server's key `kid`, reading the keys again (at most once a
    /// second) when it is not known yet: another node may have just made it.
    async fn own_key(&self, kid: &str) -> Result<Option<VerifyKey>, AuthError> {
        let own = self.own(false).await?;
        if let Some(key) = own.keys.get(kid) {
            return Ok(Some(key.clone()));
        }
        if own.read_at.is_some_and(|at| at.elapsed() < RELOAD_UNKNOWN_AFTER) {
            return Ok(None);
        }
        Ok(self.own(true).await?.keys.get(kid).cloned())
    }

    /// A trusted issuer's key `kid`. Sets served at URLs are fetched again
    /// when no set has the key (within the limits of [`REFETCH_WINDOW`]),
    /// waiting for the answer, and every [`RELOAD_EVERY`] in the
    /// background, so a tier whose uplink is down keeps verifying with the
    /// keys it last fetched.
    async fn trusted_key(&self, kid: &str) -> Option<(Option<String>, VerifyKey)> {
        let find = |trusted: &[Trusted]| {
            trusted
                .iter()
                .find_map(|t| t.keys.get(kid).map(|k| (t.issuer.clone(), k.clone())))
        };
        let (found, due) = {
            let mut trusted = self.inner.trusted.write().expect("trusted keys lock");
            let found = find(&trusted);
            let mut due = Vec::new();
            for t in trusted.iter_mut() {
                let Some(url) = t.url.clone() else { continue };
                t.fetches.retain(|at| at.elapsed() < REFETCH_WINDOW);
                t.misses.retain(|_, at| at.elapsed() < REFETCH_WINDOW);
                let stale = match &found {
                    None => !t.misses.contains_key(kid) && t.fetches.len() < MAX_FETCHES,
                    Some(_) => t.fetched_at.is_none_or(|at| at.elapsed() >= RELOAD_EVERY),
                };
                if stale {
                    t.fetched_at = Some(Instant::now());
                    if found.is_none() {
                        t.fetches.push(Instant::now());
                    }
                    due.push(url);
                }
            }
            (found, due)
        };
        if due.is_empty() {
            return found;
        }
        if found.is_some() {
            let ring = self.clone();
            tokio::spawn(async move { ring.refetch(due).await });
            return found;
        }
        self.refetch(due).await;
        let mut trusted = self.inner.trusted.write().expect("trusted keys lock");
        let found = find(&trusted);
        if found.is_none() {
            for t in trusted.iter_mut().filter(|t| t.url.is_some()) {
                t.misses.insert(kid.to_string(), Instant::now());
            }
        }
        found
    }

    async fn refetch(&self, urls: Vec<String>) {
        for url in urls {
            match self.fetch(&url).await {
                Ok(set) => {
                    let mut trusted = self.inner.trusted.write().expect("trusted keys lock");
                    if let Some(t) = trusted.iter_mut().find(|t| t.url.as_deref() == Some(url.as_str())) {
                        let fresh = trusted_of(Some(url.clone()), &set);
                        t.issuer = fresh.issuer;
                        t.keys = fresh.keys;
                    }
                }
                Err(e) => tracing::warn!(url, error = %e, "could not fetch a trusted issuer's keys"),
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<KeySet, reqwest::Error> {
        self.inner.http.get(url).send().await?.error_for_status()?.json().await
    }
}

fn trusted_of(url: Option<String>, set: &KeySet) -> Trusted {
    let keys = set
        .keys
        .iter()
        .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
        .filter_map(|k| {
            let key = verify_key(&k.x, k.retired_at.map(Timestamp::from_millis), None)?;
            Some((k.kid.clone(), key))
        })
        .collect();
    Trusted {
        fetched_at: url.as_ref().map(|_| Instant::now()),
        url,
        issuer: Some(set.issuer.clone()),
        keys,
        fetches: Vec::new(),
        misses: HashMap::new(),
    }
}
