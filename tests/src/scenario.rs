//! Sync scenarios on a real server: the demo county's organisation, petitions
//! held by officer-li's phone, offline edits on the phone and concurrent
//! edits on the server. Used by the sync tests and the sync benchmark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use automerge::{AutoCommit, Change, ChangeHash};
pub use lianxin_demo::writing::{
    Text, Writer, comment, comment_with, copy_db, doc_id, petition, petition_in, save_growth,
};
use lianxin_server::auth::{AuthSettings, SmsSender};
use lianxin_server::state::HttpSettings;
use lianxin_server::storage::Storage;
use lianxin_server::testing::TestServer;
use sync_core::batch::DocId;
use sync_core::repo_protocol::DocumentId;
use sync_core::{Principal, Timestamp, UserId};

use crate::phone::Phone;

/// The phone's user: an officer of the east station.
pub const PHONE_USER: &str = "officer-li";
/// Another officer of the same station, who works on the server side meanwhile.
pub const OTHER_USER: &str = "officer-wang";

/// A server over a SQLite database in a directory the scenario owns.
pub struct Site {
    pub dir: PathBuf,
    pub server: TestServer,
}

impl Site {
    /// Starts a server on the database in `dir` (created if missing).
    pub async fn start(dir: &Path) -> anyhow::Result<Site> {
        Site::start_with(dir, HttpSettings::default()).await
    }

    /// [`Site::start`] with HTTP settings of the caller's choosing.
    pub async fn start_with(dir: &Path, http: HttpSettings) -> anyhow::Result<Site> {
        std::fs::create_dir_all(dir)?;
        let storage = Storage::open_sqlite(&dir.join("lianxin.sqlite")).await?;
        let server = TestServer::start_with(storage, SmsSender::DevLog, AuthSettings::default(), http).await?;
        Ok(Site {
            dir: dir.to_owned(),
            server,
        })
    }

    /// Starts a server on a fresh database holding the demo county's units and people.
    pub async fn with_county(dir: &Path) -> anyhow::Result<Site> {
        Site::with_county_and(dir, HttpSettings::default()).await
    }

    /// [`Site::with_county`] with HTTP settings of the caller's choosing.
    pub async fn with_county_and(dir: &Path, http: HttpSettings) -> anyhow::Result<Site> {
        let site = Site::start_with(dir, http).await?;
        site.import_county().await?;
        Ok(site)
    }

    /// Serves `storage` (a test database of either backend, say); `dir` is
    /// only where [`Site::stop`] says the database lives.
    pub async fn serve(storage: Storage, dir: &Path) -> anyhow::Result<Site> {
        let server = TestServer::start(storage, SmsSender::DevLog).await?;
        Ok(Site {
            dir: dir.to_owned(),
            server,
        })
    }

    /// Imports the demo county's units and people.
    pub async fn import_county(&self) -> anyhow::Result<()> {
        let state = &self.server.state;
        lianxin_server::admin::import_str(&state.storage, &lianxin_demo::org_file(), false, state.clock.now()).await?;
        state.docs.reload_org().await?;
        Ok(())
    }

    /// Stops the server and closes the database, so its files can be copied.
    pub async fn stop(self) -> anyhow::Result<PathBuf> {
        let storage = self.server.state.storage.clone();
        self.server.stop().await?;
        storage.close().await;
        Ok(self.dir)
    }

    pub async fn token(&self, user: &str) -> anyhow::Result<String> {
        Ok(self
            .server
            .state
            .auth
            .mint_access_token(&UserId::new(user)?, 12 * 60 * 60 * 1000)
            .await?)
    }

    pub async fn principal(&self, user: &str) -> anyhow::Result<Principal> {
        Ok(self.server.state.auth.principal(&UserId::new(user)?).await?)
    }

    /// The batched endpoint's URL for `user`, through `addr` (a link simulator, say).
    pub async fn batch_url(&self, addr: std::net::SocketAddr, user: &str) -> anyhow::Result<String> {
        Ok(format!("ws://{addr}/batch?token={}", self.token(user).await?))
    }

    /// The automerge-repo endpoint's URL for `user`, through `addr`.
    pub async fn sync_url(&self, addr: std::net::SocketAddr, user: &str) -> anyhow::Result<String> {
        Ok(format!("ws://{addr}/sync?token={}", self.token(user).await?))
    }

    pub fn now(&self) -> Timestamp {
        self.server.state.clock.now()
    }

    /// The stored document `id` (empty if unknown), as the server has it.
    pub async fn doc(&self, id: DocId) -> anyhow::Result<AutoCommit> {
        let who = self.principal("director").await?;
        let key = DocumentId::from_bytes(id.0).to_string();
        match self.server.state.docs.read(&who, &key).await {
            Ok(d) => Ok(d),
            Err(lianxin_server::docs::DocError::NotFound) => Ok(AutoCommit::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `changes` to `id` as `user`, through the server's write path.
    pub async fn apply(&self, user: &str, id: DocId, changes: Vec<Change>) -> anyhow::Result<()> {
        let who = self.principal(user).await?;
        let key = DocumentId::from_bytes(id.0).to_string();
        let applied = self.server.state.docs.apply(&who, &key, changes).await?;
        ensure!(applied.refused.is_empty(), "refused: {:?}", applied.refused);
        Ok(())
    }

    /// How many times a change with each hash of `id` is stored (each must be 1).
    pub async fn stored_counts(&self, id: DocId) -> anyhow::Result<BTreeMap<String, usize>> {
        let key = DocumentId::from_bytes(id.0).to_string();
        let stored = self
            .server
            .state
            .storage
            .documents()
            .load_document(&key)
            .await?
            .context("document not stored")?;
        let mut counts = BTreeMap::new();
        for bytes in &stored.changes {
            let c = Change::from_bytes(bytes.clone())?;
            *counts.entry(c.hash().to_string()).or_default() += 1;
        }
        Ok(counts)
    }
}

/// The sizes of an offline-day scenario.
#[derive(Clone, Copy, Debug)]
pub struct OfflineDay {
    /// Petitions the phone holds.
    pub held: usize,
    /// Documents the phone changed offline, and its changes across them.
    pub phone_docs: usize,
    pub phone_changes: usize,
    /// Documents the server gained changes on (`new_docs` of them new to
    /// the phone), and its changes across them, creations included.
    pub server_docs: usize,
    pub new_docs: usize,
    pub server_changes: usize,
    /// What the comments say.
    pub text: Text,
}

impl OfflineDay {
    /// The design brief's scenario: 500 held; 2,000 changes up across 50
    /// petitions, 500 down across 30 others, 10 of them new to the phone.
    pub const FULL: OfflineDay = OfflineDay {
        held: 500,
        phone_docs: 50,
        phone_changes: 2000,
        server_docs: 30,
        new_docs: 10,
        server_changes: 500,
        text: Text::Phrases,
    };
}

/// An offline day, prepared: a stopped server database at the moment the
/// phone comes back into signal, and the phone as it is then.
pub struct Prepared {
    /// The database directory (copy it per run with [`copy_db`]).
    pub db: PathBuf,
    pub phone: Phone,
    /// Every document the phone must hold in the end, with its heads.
    pub all_heads: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Documents new to the phone.
    pub new_ids: Vec<DocId>,
    /// The floor: compressed save growth of every changed document, both sides.
    pub floor_bytes: usize,
}

/// Builds an offline day in `dir`: a county, `held` petitions synced to the
/// phone over the batched endpoint, then offline edits on both sides.
pub async fn prepare(dir: &Path, s: OfflineDay) -> anyhow::Result<Prepared> {
    let site = Site::with_county(dir).await?;
    let start = site.now().plus_minutes(-24 * 60);
    let mut li_server = Writer::new(PHONE_USER, 1);
    let mut wang = Writer::new(OTHER_USER, 2);
    let mut li_phone = Writer::new(PHONE_USER, 3);

    for n in 0..s.held {
        let id = doc_id(1, n);
        let mut doc = petition(&mut li_server, id, n, start)?;
        site.apply(PHONE_USER, id, doc.get_changes(&[])).await?;
    }
    let mut phone = Phone::default();
    let url = site.batch_url(site.server.addr, PHONE_USER).await?;
    phone.sync(&url, 3).await?;
    ensure!(
        phone.store.docs.len() == s.held,
        "the phone holds {} documents",
        phone.store.docs.len()
    );

    // Offline on the phone.
    let mut floor = 0;
    let mut finals: BTreeMap<DocId, AutoCommit> = BTreeMap::new();
    let at = site.now().plus_minutes(-60);
    for i in 0..s.phone_docs {
        let id = doc_id(1, i);
        let count = s.phone_changes / s.phone_docs + usize::from(i < s.phone_changes % s.phone_docs);
        let doc = phone.store.docs.get_mut(&id).context("held")?;
        let before = doc.clone();
        comment_with(doc, &mut li_phone, count, i as u64 + 1, at, s.text)?;
        floor += save_growth(&before, doc);
        finals.insert(id, doc.clone());
    }
    // Meanwhile on the server: comments on held petitions, and new petitions.
    let changed = s.server_docs - s.new_docs;
    let mut left = s.server_changes - s.new_docs;
    for j in 0..s.server_docs {
        let new = j >= changed;
        let id = if new { doc_id(2, j) } else { doc_id(1, s.held - 1 - j) };
        let mut doc = if new { AutoCommit::new() } else { site.doc(id).await? };
        let before = doc.clone();
        let heads = doc.get_heads();
        if new {
            doc = petition(&mut wang, id, 10_000 + j, at)?;
        }
        let count = left / (s.server_docs - j);
        left -= count;
        comment_with(&mut doc, &mut wang, count, 1000 + j as u64, at, s.text)?;
        site.apply(OTHER_USER, id, doc.get_changes(&heads)).await?;
        floor += save_growth(&before, &doc);
        finals.insert(id, doc);
    }
    // Unchanged documents keep the heads the phone has; changed ones end
    // with both sides' edits.
    let all_heads: BTreeMap<DocId, Vec<ChangeHash>> = phone
        .store
        .docs
        .iter()
        .chain(&finals)
        .map(|(id, d)| (*id, d.clone().get_heads()))
        .collect();
    let new_ids = (changed..s.server_docs).map(|j| doc_id(2, j)).collect();
    let db = site.stop().await?;
    Ok(Prepared {
        db,
        phone,
        all_heads,
        new_ids,
        floor_bytes: floor,
    })
}
