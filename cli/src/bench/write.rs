//! `lianxin bench write`: concurrent writers through the write path.
//!
//! Officers of one station post comments and progress notes, each writer
//! waiting for its acknowledgement before the next, to one hot petition and
//! to many petitions; through one node, and (on PostgreSQL) through two nodes
//! on one database, each with its own document service and connection pool
//! as two `lianxin serve` processes would have. Every write goes through
//! policy, projections, fan-out and the group committer, and counts once its
//! transaction has committed.
//!
//! The baseline is the same load as raw inserts: the very changes the run
//! acknowledged, read back from the documents, inserted by as many writers
//! into the same tables of a fresh database, one transaction per change, with
//! no policy, projections or fan-out. `ratio_vs_raw` is the write path's
//! acknowledged changes per second over the raw inserts'.
//!
//! Each scenario runs on a fresh database: a temporary SQLite file, or a new
//! PostgreSQL schema dropped afterwards. Prints one line of `key=value`
//! pairs per scenario; progress goes to stderr.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::ActorId;
use lianxin_server::clock::{Clock, SystemClock};
use lianxin_server::config::Config;
use lianxin_server::docs::{DocService, DocSettings, WriteStats};
use lianxin_server::storage::{Storage, StoredChange};
use sqlx::postgres::PgConnectOptions;
use sync_core::petition::{Location, PetitionAction, PetitionDoc, PetitionHeader};
use sync_core::repo_protocol::DocumentId;
use sync_core::{Author, Category, Channel, HlcClock, HouseholdId, Membership, Principal, Role, UnitId, UserId};

/// What to run.
#[derive(Clone, Debug, clap::Args)]
pub struct WriteArgs {
    /// Writers running at once in each scenario (officers of one station).
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Changes acknowledged in each scenario (the hot scenario's petition
    /// takes them all, and a petition holds at most 1,000 entries).
    #[arg(long, default_value_t = 800)]
    pub changes: usize,
    /// Petitions of the many-documents scenario.
    #[arg(long, default_value_t = 400)]
    pub docs: usize,
    /// PostgreSQL server for the one-node and two-node scenarios (each gets a
    /// fresh schema, dropped afterwards). Defaults to `DATABASE_URL` when that
    /// names PostgreSQL; without either only SQLite runs.
    #[arg(long, env = "LIANXIN_BENCH_POSTGRES_URL")]
    pub postgres: Option<String>,
    /// Leave SQLite out.
    #[arg(long)]
    pub no_sqlite: bool,
}

const ORG: &str = r#"{
  "units": [
    {"id": "bench-county", "name": "压测县", "kind": "county"},
    {"id": "bench-station", "name": "压测派出所", "kind": "station", "parent": "bench-county"},
    {"id": "bench-village", "name": "压测村", "kind": "village", "parent": "bench-station"}
  ],
  "users": []
}"#;

/// Where a scenario's database lives.
#[derive(Clone, Debug)]
enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// A fresh database; dropped (file or schema) by [`Fresh::drop_all`].
struct Fresh {
    backend: Backend,
    dir: tempfile::TempDir,
    schema: Option<String>,
}

impl Fresh {
    async fn new(backend: &Backend) -> anyhow::Result<Fresh> {
        let dir = tempfile::tempdir()?;
        let schema = match backend {
            Backend::Sqlite => None,
            Backend::Postgres(url) => {
                let name = format!("lx_bench_write_{}_{}", std::process::id(), rand::random::<u32>());
                lianxin_server::storage::create_pg_schema(url, &name).await?;
                Some(name)
            }
        };
        Ok(Fresh {
            backend: backend.clone(),
            dir,
            schema,
        })
    }

    /// A new pool on the database: each node gets its own.
    async fn open(&self) -> anyhow::Result<Storage> {
        Ok(match (&self.backend, &self.schema) {
            (Backend::Postgres(url), Some(schema)) => {
                Storage::open_postgres(PgConnectOptions::from_str(url)?.options([("search_path", schema.as_str())]))
                    .await?
            }
            _ => Storage::open_sqlite(&self.dir.path().join("bench.sqlite")).await?,
        })
    }

    async fn drop_all(self) -> anyhow::Result<()> {
        if let (Backend::Postgres(url), Some(schema)) = (&self.backend, &self.schema) {
            lianxin_server::storage::drop_pg_schema(url, schema).await?;
        }
        Ok(())
    }
}

fn officer(n: usize) -> Principal {
    Principal {
        user: UserId::new(format!("bench-officer-{n}")).expect("id"),
        memberships: vec![Membership {
            unit: UnitId::new("bench-station").expect("id"),
            role: Role::Officer,
        }],
        household: None,
    }
}

fn resident() -> Principal {
    Principal {
        user: UserId::new("bench-resident").expect("id"),
        memberships: vec![Membership {
            unit: UnitId::new("bench-village").expect("id"),
            role: Role::Resident,
        }],
        household: Some(HouseholdId::new("bench-hh").expect("id")),
    }
}

/// One scenario's figures.
struct Run {
    acknowledged: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    stats: WriteStats,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.acknowledged as f64 / self.seconds
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1000.0
    }
}

fn add_stats(a: WriteStats, b: &WriteStats) -> WriteStats {
    WriteStats {
        retries: a.retries + b.retries,
        busy: a.busy + b.busy,
        reloads: a.reloads + b.reloads,
        compactions: a.compactions + b.compactions,
        compaction_failures: a.compaction_failures + b.compaction_failures,
        groups: a.groups + b.groups,
        grouped_writes: a.grouped_writes + b.grouped_writes,
        exclusive: a.exclusive + b.exclusive,
    }
}

/// Creates `count` petitions routed to the station, through `docs`.
async fn petitions(docs: &DocService, count: usize) -> anyhow::Result<Vec<String>> {
    let who = resident();
    let (actor, mut author) = (
        ActorId::random(),
        Author::new(who.user.clone(), HlcClock::new("benchres")?),
    );
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let id = DocumentId::from_bytes(rand::random()).to_string();
        let header = PetitionHeader {
            id: format!("automerge:{id}"),
            channel: Channel::ChiefLine,
            category: Category::Help,
            title: format!("第{i}号诉求：灌溉抽水后村里停水"),
            body: "水管破裂，请尽快处理。".into(),
            submitter: who.user.clone(),
            recorded_by: who.user.clone(),
            anonymous: false,
            contact: None,
            location: Location {
                unit: UnitId::new("bench-village")?,
                lat: None,
                lon: None,
            },
            attachments: vec![],
            source: None,
        };
        let doc = PetitionDoc::create(
            actor.clone(),
            header,
            UnitId::new("bench-station")?,
            &mut author,
            docs.now(),
        )?;
        let applied = docs.create(&who, &id, doc.into_doc()).await?;
        anyhow::ensure!(applied.refused.is_empty(), "petition refused: {:?}", applied.refused);
        ids.push(id);
    }
    Ok(ids)
}

/// `writers` officers post `changes` comments and progress notes in all,
/// writer `w` through node `w % nodes.len()` to the petitions it picks.
async fn drive(nodes: &[DocService], ids: &Arc<Vec<String>>, writers: usize, changes: usize) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let docs = nodes[w % nodes.len()].clone();
        let ids = ids.clone();
        let who = officer(w);
        let mine = changes / writers + usize::from(w < changes % writers);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(mine);
            for n in 0..mine {
                let id = &ids[(w + n * writers) % ids.len()];
                let action = if n % 2 == 0 {
                    PetitionAction::Comment {
                        text: format!("民警{w}第{n}条记录：已联系村委会，正在排查管线"),
                        attachments: vec![],
                        reply_to: None,
                    }
                } else {
                    PetitionAction::Progress {
                        unit: UnitId::new("bench-station")?,
                        note: format!("民警{w}第{n}次进展：水利站已派人抢修"),
                    }
                };
                let began = Instant::now();
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
                latencies.push(began.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(changes);
    for t in tasks {
        latencies.extend(t.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = nodes
        .iter()
        .fold(WriteStats::default(), |acc, n| add_stats(acc, &n.write_stats()));
    Ok(Run {
        acknowledged: latencies.len(),
        seconds,
        latencies,
        stats,
    })
}

async fn node(storage: Storage) -> anyhow::Result<DocService> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ok(DocService::new(storage, clock, DocSettings::default()).await?)
}

/// Every change of `ids` as stored, with its document, read back through `docs`.
async fn acknowledged_changes(docs: &DocService, ids: &[String]) -> anyhow::Result<Vec<(String, StoredChange)>> {
    let reader = officer(0);
    let now = docs.now();
    let mut out = Vec::new();
    for id in ids {
        let mut doc = docs.read(&reader, id).await?;
        for change in doc.get_changes(&[]) {
            out.push((
                id.clone(),
                StoredChange {
                    hash: change.hash().to_string(),
                    actor: change.actor_id().to_hex_string(),
                    user: reader.user.clone(),
                    bytes: change.raw_bytes().to_vec(),
                    received_at: now,
                },
            ));
        }
    }
    Ok(out)
}

/// Inserts `changes` into a fresh database, `writers` at once, one
/// transaction per change; returns changes per second.
async fn raw(backend: &Backend, changes: Vec<(String, StoredChange)>, writers: usize) -> anyhow::Result<f64> {
    let fresh = Fresh::new(backend).await?;
    let storage = fresh.open().await?;
    let changes = Arc::new(changes);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let (storage, changes) = (storage.clone(), changes.clone());
        tasks.push(tokio::spawn(async move {
            for (doc, change) in changes.iter().skip(w).step_by(writers) {
                storage
                    .documents()
                    .append(doc, "petition", std::slice::from_ref(change))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let per_sec = changes.len() as f64 / started.elapsed().as_secs_f64();
    storage.close().await;
    fresh.drop_all().await?;
    Ok(per_sec)
}

/// One scenario: `docs_count` petitions, `nodes` nodes, then its raw
/// baseline. Returns the line and the changes per second.
async fn scenario(
    backend: &Backend,
    name: &str,
    docs_count: usize,
    nodes: usize,
    args: &WriteArgs,
    baseline: Option<f64>,
) -> anyhow::Result<(String, f64, f64)> {
    eprintln!(
        "bench write: {} {name}, {nodes} node(s), {} writers, {} changes…",
        backend.name(),
        args.writers,
        args.changes
    );
    let fresh = Fresh::new(backend).await?;
    let first = fresh.open().await?;
    lianxin_server::admin::import_str(&first, ORG, false, SystemClock.now()).await?;
    let mut services = vec![node(first).await?];
    for _ in 1..nodes {
        services.push(node(fresh.open().await?).await?);
    }
    let ids = Arc::new(petitions(&services[0], docs_count).await?);
    let run = drive(&services, &ids, args.writers.max(1), args.changes).await?;
    for s in &services {
        s.compactions_done().await;
    }
    let raw_per_sec = match baseline {
        Some(b) => b,
        None => {
            let changes = acknowledged_changes(&services[0], &ids).await?;
            raw(backend, changes, args.writers.max(1)).await?
        }
    };
    for s in services {
        s.storage().close().await;
    }
    fresh.drop_all().await?;
    let s = &run.stats;
    let line = format!(
        "backend={} scenario={name} nodes={nodes} writers={} docs={docs_count} acknowledged={} seconds={:.2} \
         changes_per_sec={:.0} p50_ms={:.1} p99_ms={:.1} retries={} exclusive={} busy={} reloads={} compactions={} \
         compaction_failures={} groups={} avg_group={:.2} raw_changes_per_sec={:.0} ratio_vs_raw={:.2}",
        backend.name(),
        args.writers,
        run.acknowledged,
        run.seconds,
        run.per_sec(),
        run.percentile_ms(0.50),
        run.percentile_ms(0.99),
        s.retries,
        s.exclusive,
        s.busy,
        s.reloads,
        s.compactions,
        s.compaction_failures,
        s.groups,
        s.grouped_writes as f64 / s.groups.max(1) as f64,
        raw_per_sec,
        run.per_sec() / raw_per_sec,
    );
    Ok((line, run.per_sec(), raw_per_sec))
}

/// Runs the benchmark and returns its lines.
pub async fn write(config: &Config, args: &WriteArgs) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        args.changes > 0 && args.docs > 0,
        "--changes and --docs must be positive"
    );
    let postgres = args.postgres.clone().or_else(|| {
        config
            .database_url
            .clone()
            .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    });
    let mut backends = Vec::new();
    if !args.no_sqlite {
        backends.push(Backend::Sqlite);
    }
    match postgres {
        Some(url) => backends.push(Backend::Postgres(url)),
        None => eprintln!(
            "bench write: no PostgreSQL URL (--postgres or DATABASE_URL): the two-node scenarios are left out"
        ),
    }
    let mut out = Vec::new();
    for backend in &backends {
        for (name, docs) in [("hot", 1), ("many", args.docs)] {
            let (line, one, raw) = scenario(backend, name, docs, 1, args, None).await?;
            out.push(line);
            if let Backend::Postgres(_) = backend {
                let (line, two, _) = scenario(backend, name, docs, 2, args, Some(raw)).await?;
                out.push(format!("{line} two_node_vs_one_node={:.2}", two / one));
            }
        }
    }
    Ok(out)
}
