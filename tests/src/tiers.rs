//! Helpers for tests of tiers (stations below a county below a city): one
//! tier's HTTP API, what a tier stores of each document (to check that every
//! change is there once), a relay sent straight to a tier's `/batch` as
//! a station would send it, forged or not, and what one pull names.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, ensure};
use automerge::{ActorId, AutoCommit, ChangeHash};
use futures_util::{SinkExt, StreamExt};
use lianxin_server::storage::Storage;
use serde_json::{Value, json};
use sync_core::batch::{DocId, DocPush, Encoding, Frame, Push, encode_changes};
use sync_core::repo_protocol::DocumentId;
use tokio_tungstenite::tungstenite::Message;

/// One tier's HTTP API at `base` (`http://127.0.0.1:PORT`).
#[derive(Clone, Debug)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// One request; the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.with_context(|| format!("{}{path}", self.base))?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    pub async fn get(&self, token: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::POST, path, Some(token), Some(&body)).await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::PUT, path, Some(token), Some(&body)).await
    }

    /// `POST /api/auth/login` as it answers.
    pub async fn login(&self, login: &str, password: &str) -> anyhow::Result<(u16, Value)> {
        let body = json!({"login": login, "password": password});
        self.call(reqwest::Method::POST, "/api/auth/login", None, Some(&body))
            .await
    }

    /// Signs in and returns the access token; fails unless it succeeds.
    pub async fn sign_in(&self, login: &str, password: &str) -> anyhow::Result<String> {
        let (status, body) = self.login(login, password).await?;
        ensure!(
            status == 200,
            "{login} signing in at {} answered {status}: {body}",
            self.base
        );
        Ok(body["access_token"].as_str().context("an access token")?.to_owned())
    }

    /// Files a petition (`fields` without its id) and returns its new id.
    pub async fn file(&self, token: &str, mut fields: Value) -> anyhow::Result<String> {
        let id = new_id();
        fields["id"] = json!(id);
        let (status, body) = self.post(token, "/api/petitions", fields).await?;
        ensure!(status == 201, "filing at {} answered {status}: {body}", self.base);
        Ok(id)
    }

    /// Carries out a petition action; fails unless it is accepted.
    pub async fn act(&self, token: &str, id: &str, action: Value) -> anyhow::Result<()> {
        let (status, body) = self
            .post(token, &format!("/api/petitions/{id}/actions"), action.clone())
            .await?;
        ensure!(
            status == 200,
            "{action} on {id} at {} answered {status}: {body}",
            self.base
        );
        Ok(())
    }

    /// A petition's timeline as (kind, by) pairs.
    pub async fn timeline(&self, token: &str, id: &str) -> anyhow::Result<Vec<(String, String)>> {
        let (status, body) = self.get(token, &format!("/api/petitions/{id}")).await?;
        ensure!(status == 200, "reading {id} at {} answered {status}: {body}", self.base);
        Ok(body["timeline"]
            .as_array()
            .context("a timeline")?
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap_or_default().to_owned(),
                    e["by"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// What a petition's clocks run on, as the caller reads it here: the
    /// view's status times and deadlines, the deadlines of its row in the
    /// list (the stored projection KPIs count), and each timeline event's
    /// receipt. Tiers that agree on receipts give equal values.
    pub async fn clocks(&self, token: &str, id: &str) -> anyhow::Result<Value> {
        let (status, v) = self.get(token, &format!("/api/petitions/{id}")).await?;
        ensure!(status == 200, "reading {id} at {} answered {status}: {v}", self.base);
        let s = &v["summary"];
        let receipts: Vec<Value> = v["timeline"]
            .as_array()
            .context("a timeline")?
            .iter()
            .map(|e| json!([e["kind"], e["received_at"]]))
            .collect();
        let (status, page) = self.get(token, "/api/petitions?limit=200").await?;
        ensure!(status == 200, "listing at {} answered {status}: {page}", self.base);
        let row = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["doc_id"] == id)
            .with_context(|| format!("{id} is not listed at {}", self.base))?;
        ensure!(
            row["sign_due"].is_i64(),
            "{id}'s row at {} has no sign deadline: {row}",
            self.base
        );
        Ok(json!({
            "view": [s["submitted_at"], s["signed_at"], s["contacted_at"], s["replied_at"],
                     s["sign_due"], s["contact_due"], s["reply_due"]],
            "row": [row["sign_due"], row["contact_due"], row["reply_due"], row["overdue"]],
            "receipts": receipts,
        }))
    }

    /// The caller's notifications as (kind, document) pairs, oldest first.
    pub async fn inbox(&self, token: &str) -> anyhow::Result<Vec<(String, String)>> {
        let (status, body) = self.get(token, "/api/inbox?limit=500").await?;
        ensure!(status == 200, "the inbox at {} answered {status}: {body}", self.base);
        Ok(body["items"]
            .as_array()
            .context("inbox items")?
            .iter()
            .map(|i| {
                (
                    i["kind"].as_str().unwrap_or_default().to_owned(),
                    i["doc_id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// The batched-sync WebSocket URL for `token`.
    pub fn batch_url(&self, token: &str) -> String {
        format!("{}/batch?token={token}", self.base.replacen("http://", "ws://", 1))
    }
}

/// A fresh document id.
pub fn new_id() -> String {
    DocumentId::from_bytes(rand::random()).to_string()
}

pub fn doc_id(id: &str) -> anyhow::Result<DocId> {
    Ok(DocId(*id.parse::<DocumentId>()?.as_bytes()))
}

/// What a tier stores of one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The heads of the document its snapshot and change rows rebuild.
    pub heads: BTreeSet<ChangeHash>,
    /// Every change of its history.
    pub changes: BTreeSet<ChangeHash>,
    /// Changes stored more than once: a change row repeated, or a row
    /// repeating a change the snapshot already holds.
    pub repeated: Vec<ChangeHash>,
}

/// Document `id` as `storage` holds it (its snapshot and change rows).
pub async fn load(storage: &Storage, id: &str) -> anyhow::Result<Option<AutoCommit>> {
    let Some(doc) = storage.documents().load_document(id).await? else {
        return Ok(None);
    };
    let mut am = match &doc.snapshot {
        Some(bytes) => AutoCommit::load(bytes).with_context(|| format!("the snapshot of {id}"))?,
        None => AutoCommit::new(),
    };
    for bytes in &doc.changes {
        am.load_incremental(bytes)
            .with_context(|| format!("a stored change of {id}"))?;
    }
    Ok(Some(am))
}

/// What `storage` holds of document `id`, read from its snapshot and change rows.
pub async fn stored(storage: &Storage, id: &str) -> anyhow::Result<Option<Stored>> {
    let Some(doc) = storage.documents().load_document(id).await? else {
        return Ok(None);
    };
    let mut am = match &doc.snapshot {
        Some(bytes) => AutoCommit::load(bytes).with_context(|| format!("the snapshot of {id}"))?,
        None => AutoCommit::new(),
    };
    let mut seen: BTreeSet<ChangeHash> = am.get_changes(&[]).iter().map(|c| c.hash()).collect();
    let mut repeated = Vec::new();
    for (bytes, hash) in doc.changes.iter().zip(&doc.hashes) {
        let hash: ChangeHash = hash.parse().with_context(|| format!("a change hash of {id}"))?;
        if !seen.insert(hash) {
            repeated.push(hash);
        }
        am.load_incremental(bytes)
            .with_context(|| format!("a stored change of {id}"))?;
    }
    let changes: BTreeSet<ChangeHash> = am.get_changes(&[]).iter().map(|c| c.hash()).collect();
    ensure!(changes == seen, "{id}: the stored rows and the rebuilt history differ");
    Ok(Some(Stored {
        heads: am.get_heads().into_iter().collect(),
        changes,
        repeated,
    }))
}

/// What `storage` holds of every document, by id.
pub async fn stored_all(storage: &Storage) -> anyhow::Result<BTreeMap<String, Stored>> {
    let mut out = BTreeMap::new();
    let mut after = String::new();
    loop {
        let ids = storage.documents().document_ids(&after, 500).await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for id in ids {
            if let Some(s) = stored(storage, &id).await? {
                out.insert(id, s);
            }
        }
    }
    Ok(out)
}

/// Pushes the changes of `doc` since `base` to document `id` straight to a
/// tier's `/batch` (`batch_url`, signed in as a station's account), attesting
/// `authors`, as a station's uplink would; returns the rules of the
/// refusals the acknowledgement names (empty when all were accepted).
pub async fn relay_directly(
    batch_url: &str,
    id: &str,
    mut doc: AutoCommit,
    base: Vec<ChangeHash>,
    authors: Vec<(ActorId, String)>,
) -> anyhow::Result<Vec<String>> {
    let changes = doc.get_changes(&base);
    let (encoding, data) = encode_changes(&doc, &changes, &[Encoding::Changes]);
    let push = Push {
        last: true,
        encodings: vec![Encoding::Changes],
        docs: vec![DocPush {
            id: doc_id(id)?,
            base,
            encoding,
            data,
            receipts: vec![],
        }],
        authors,
        ..Push::new(rand::random(), 0, 0)
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(batch_url).await?;
    ws.send(Message::Binary(Frame::Push(push).encode().into())).await?;
    loop {
        match ws.next().await.context("an answer")?? {
            Message::Binary(b) => {
                if let Frame::Ack(ack) = Frame::decode(&b)? {
                    return Ok(ack.docs[0].refused.iter().map(|r| r.rule.clone()).collect());
                }
            }
            Message::Close(f) => anyhow::bail!("closed: {f:?}"),
            _ => {}
        }
    }
}

/// What one pull of a tier's `/batch` (`batch_url`) names to a client at
/// `cursor` that pushes nothing: each document (its id as the API names
/// it) with the changes it says are refused. What a client learns of the
/// documents there, whatever it holds.
pub async fn pulled_from(batch_url: &str, cursor: u64) -> anyhow::Result<Vec<(String, Vec<ChangeHash>)>> {
    let push = Push {
        last: true,
        ..Push::new(rand::random(), 0, cursor)
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(batch_url).await?;
    ws.send(Message::Binary(Frame::Push(push).encode().into())).await?;
    loop {
        match ws.next().await.context("an answer")?? {
            Message::Binary(b) => {
                if let Frame::Pull(pull) = Frame::decode(&b)?
                    && !pull.early
                {
                    return Ok(pull
                        .docs
                        .into_iter()
                        .map(|d| {
                            let id = DocumentId::from_bytes(d.id.0).to_string();
                            (id, d.refused.into_iter().map(|r| r.change).collect())
                        })
                        .collect());
                }
            }
            Message::Close(f) => anyhow::bail!("closed: {f:?}"),
            _ => {}
        }
    }
}

/// How many runs a soak test makes: the number in environment variable
/// `var` (hundreds by hand), else `default` (what CI affords).
pub fn runs_from_env(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
