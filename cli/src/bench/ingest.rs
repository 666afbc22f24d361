//! `lianxin bench ingest`: how fast the server acknowledges changes and how
//! much memory it holds as the number of documents grows.
//!
//! It drives the real document service on the configured database (SQLite by
//! default, PostgreSQL with `DATABASE_URL`): every change goes through actor
//! binding, policy, storage and projections, and counts as acknowledged when
//! its transaction has committed. Prints `key=value` lines.

use std::sync::Arc;
use std::time::Instant;

use automerge::ActorId;
use rand::RngCore;
use sync_core::petition::{Location, PetitionAction, PetitionDoc, PetitionHeader};
use sync_core::repo_protocol::DocumentId;
use sync_core::{Author, Category, Channel, HlcClock, HouseholdId, Membership, Principal, Role, UnitId, UserId};

use lianxin_server::clock::{Clock, SystemClock};
use lianxin_server::docs::{DocService, DocSettings};
use lianxin_server::storage::Storage;

/// What to run.
#[derive(Clone, Debug, clap::Args)]
pub struct IngestArgs {
    /// Documents to create.
    #[arg(long, default_value_t = 100_000)]
    pub docs: usize,
    /// Comments appended after creation, spread over the documents.
    #[arg(long, default_value_t = 20_000)]
    pub changes: usize,
    /// Writers running at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Documents kept loaded (the memory bound).
    #[arg(long, default_value_t = lianxin_server::docs::DEFAULT_CACHE_DOCS)]
    pub cache_docs: usize,
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

const BENCH_ORG: &str = r#"{
  "units": [
    {"id": "bench-county", "name": "Bench county", "kind": "county"},
    {"id": "bench-station", "name": "Bench station", "kind": "station", "parent": "bench-county"},
    {"id": "bench-village", "name": "Bench village", "kind": "village", "parent": "bench-station"}
  ],
  "users": []
}"#;

/// Runs the benchmark and returns its `key=value` lines.
pub async fn ingest(storage: Storage, backend: &str, args: &IngestArgs) -> anyhow::Result<Vec<String>> {
    lianxin_server::admin::import_str(&storage, BENCH_ORG, false, SystemClock.now()).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let docs = DocService::new(
        storage,
        clock,
        DocSettings {
            cache_docs: args.cache_docs,
            ..DocSettings::default()
        },
    )
    .await?;
    let mut out = vec![
        format!("backend={backend}"),
        format!("docs={}", args.docs),
        format!("cache_docs={}", args.cache_docs),
        format!("concurrency={}", args.concurrency),
        format!("rss_kib_start={}", rss_kib().unwrap_or(0)),
    ];

    // Residents each file petitions; ids are random like a client's.
    let writers = args.concurrency.max(1);
    let ids: Arc<Vec<String>> = Arc::new(
        (0..args.docs)
            .map(|_| {
                let mut b = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut b);
                DocumentId::from_bytes(b).to_string()
            })
            .collect(),
    );
    let resident = |w: usize| Principal {
        user: UserId::new(format!("bench-resident-{w}")).expect("id"),
        memberships: vec![Membership {
            unit: UnitId::new("bench-village").expect("id"),
            role: Role::Resident,
        }],
        household: Some(HouseholdId::new(format!("bench-hh-{w}")).expect("id")),
    };

    let started = Instant::now();
    let mut peak = 0u64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (docs, ids, who) = (docs.clone(), ids.clone(), resident(w));
        tasks.push(tokio::spawn(async move {
            let mut actor = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut actor);
            let mut author = Author::new(who.user.clone(), HlcClock::new(format!("bench{w}")).expect("node"));
            for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % writers == w) {
                let header = PetitionHeader {
                    id: format!("automerge:{id}"),
                    channel: Channel::ChiefLine,
                    category: Category::Help,
                    title: format!("第{i}号诉求"),
                    body: "水管破裂，请尽快处理。".into(),
                    submitter: who.user.clone(),
                    recorded_by: who.user.clone(),
                    anonymous: false,
                    contact: None,
                    location: Location {
                        unit: UnitId::new("bench-village").expect("id"),
                        lat: None,
                        lon: None,
                    },
                    attachments: vec![],
                    source: None,
                };
                let doc = PetitionDoc::create(
                    ActorId::from(actor.as_slice()),
                    header,
                    UnitId::new("bench-station").expect("id"),
                    &mut author,
                    docs.now(),
                )?;
                let applied = docs.create(&who, id, doc.into_doc()).await?;
                anyhow::ensure!(applied.refused.is_empty(), "refused: {:?}", applied.refused);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
        peak = peak.max(rss_kib().unwrap_or(0));
    }
    let create_secs = started.elapsed().as_secs_f64();
    peak = peak.max(rss_kib().unwrap_or(0));
    out.push(format!("create_seconds={create_secs:.2}"));
    out.push(format!("docs_per_sec={:.0}", args.docs as f64 / create_secs));
    out.push(format!("cached_docs_after_create={}", docs.cached_docs()));
    out.push(format!("rss_kib_after_create={}", rss_kib().unwrap_or(0)));

    // Comments on random documents, acknowledged one by one.
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per_writer = args.changes / writers;
    for w in 0..writers {
        let (docs, ids, who) = (docs.clone(), ids.clone(), resident(w));
        tasks.push(tokio::spawn(async move {
            let mine: Vec<&String> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| i % writers == w)
                .map(|(_, id)| id)
                .collect();
            for n in 0..per_writer {
                let id = mine[(rand::thread_rng().next_u32() as usize) % mine.len()];
                let action = PetitionAction::Comment {
                    text: format!("第{n}条补充：水还是没来"),
                    attachments: vec![],
                    reply_to: None,
                };
                let (_, applied) = docs
                    .act(&who, id, |doc, author, now| {
                        let mut p = PetitionDoc::from_doc(std::mem::take(doc))?;
                        let r = action.apply(&mut p, author, now);
                        *doc = p.into_doc();
                        r
                    })
                    .await?;
                anyhow::ensure!(
                    applied.refused.is_empty() && applied.accepted.len() == 1,
                    "not acknowledged: {applied:?}"
                );
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let acked = per_writer * writers;
    peak = peak.max(rss_kib().unwrap_or(0));
    out.push(format!("changes_acknowledged={acked}"));
    out.push(format!("ingest_seconds={secs:.2}"));
    out.push(format!("changes_per_sec={:.0}", acked as f64 / secs));
    out.push(format!("cached_docs={}", docs.cached_docs()));
    out.push(format!("rss_kib_end={}", rss_kib().unwrap_or(0)));
    out.push(format!("rss_kib_peak_sampled={peak}"));
    Ok(out)
}
