//! What one write to a busy petition costs to compute, with and without the
//! cache of parsed entries the write path keeps per document.
//!
//! ```sh
//! cargo run --release -p sync-core --example write_cost -- 800
//! ```
//!
//! An officer adds comments and progress notes to one petition until its
//! timeline and conversation hold N entries. At every hundredth entry, the
//! same next write (the officer's edit, policy, projection, notifications)
//! is computed twice: once with an empty cache, as every write was before
//! the cache, and once with the cache the previous writes filled. Prints
//! one line per checkpoint: entries, the median of five runs of each, and
//! their ratio.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use automerge::{ActorId, AutoCommit};
use sync_core::doc::cache::EntryCache;
use sync_core::petition::{Location, PetitionAction, PetitionDoc, PetitionHeader};
use sync_core::policy::PolicyContext;
use sync_core::write::{Facts, Origin, WriteOutcome, propose};
use sync_core::*;

struct Setting {
    org: OrgTree,
    officer: Principal,
    rules: ClockRules,
    cal: Calendar,
}

/// The officer's next edit, then the write path on it.
fn write(
    s: &Setting,
    doc: &AutoCommit,
    author: &mut Author,
    i: usize,
    t: Timestamp,
    cache: &mut EntryCache,
) -> WriteOutcome {
    let action = if i.is_multiple_of(2) {
        PetitionAction::Comment {
            text: format!("民警第{i}条记录：已联系村委会，正在排查管线"),
            attachments: vec![],
            reply_to: None,
        }
    } else {
        PetitionAction::Progress {
            unit: UnitId::new("station-a").expect("id"),
            note: format!("第{i}次进展：水利站已派人抢修"),
        }
    };
    let mut base = doc.clone();
    let heads = base.get_heads();
    let work = base.fork().with_actor(ActorId::from([7u8; 16].as_slice()));
    let mut work = cache.reading(|| {
        let mut p = PetitionDoc::from_doc(work).expect("a petition");
        action.apply(&mut p, author, t).expect("the officer may act");
        p.into_doc()
    });
    let changes = work.get_changes(&heads);
    let ctx = PolicyContext {
        org: &s.org,
        principal: &s.officer,
        now: t,
    };
    let out = propose(&ctx, Origin::Server, "p", doc, changes, &HashMap::new(), cache)
        .finish(&Facts::default(), &s.rules, &s.cal, t, cache)
        .expect("the write computes");
    assert_eq!(out.accepted.len(), 1, "refused: {:?}", out.refused);
    out
}

fn median(mut d: Vec<Duration>) -> f64 {
    d.sort();
    d[d.len() / 2].as_secs_f64() * 1000.0
}

fn main() {
    let entries: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("entries is a number"))
        .unwrap_or(800);
    let unit = |id: &str, kind, parent: Option<&str>| Unit {
        id: UnitId::new(id).expect("id"),
        name: id.into(),
        kind,
        parent: parent.map(|p| UnitId::new(p).expect("id")),
    };
    let s = Setting {
        org: OrgTree::new([
            unit("county", UnitKind::County, None),
            unit("station-a", UnitKind::Station, Some("county")),
            unit("village-a1", UnitKind::Village, Some("station-a")),
        ]),
        officer: Principal {
            user: UserId::new("officer").expect("id"),
            memberships: vec![Membership {
                unit: UnitId::new("station-a").expect("id"),
                role: Role::Officer,
            }],
            household: None,
        },
        rules: ClockRules::default(),
        cal: Calendar::china(),
    };
    let resident = UserId::new("resident").expect("id");
    let mut t = Timestamp(1_750_000_000_000);
    let header = PetitionHeader {
        id: "automerge:p".into(),
        channel: Channel::ChiefLine,
        category: Category::Help,
        title: "灌溉抽水后村里停水".into(),
        body: "水管破裂，请尽快处理。".into(),
        submitter: resident.clone(),
        recorded_by: resident.clone(),
        anonymous: false,
        contact: None,
        location: Location {
            unit: UnitId::new("village-a1").expect("id"),
            lat: None,
            lon: None,
        },
        attachments: vec![],
        source: None,
    };
    let mut filer = Author::new(resident, HlcClock::new("resident").expect("node"));
    let station = UnitId::new("station-a").expect("id");
    let mut doc = PetitionDoc::create(ActorId::random(), header, station, &mut filer, t)
        .expect("a petition")
        .into_doc();
    let mut author = Author::new(s.officer.user.clone(), HlcClock::new("officer").expect("node"));
    let mut cache = EntryCache::default();
    for i in 1..=entries {
        t = Timestamp(t.0 + 60_000);
        if i.is_multiple_of(100) {
            let (mut cold, mut warm) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                let began = Instant::now();
                write(&s, &doc, &mut author.clone(), i, t, &mut EntryCache::default());
                cold.push(began.elapsed());
                let began = Instant::now();
                write(&s, &doc, &mut author.clone(), i, t, &mut cache);
                warm.push(began.elapsed());
            }
            let (cold, warm) = (median(cold), median(warm));
            println!(
                "entries={i} uncached_ms={cold:.2} cached_ms={warm:.2} speedup={:.1}",
                cold / warm
            );
        }
        let out = write(&s, &doc, &mut author, i, t, &mut cache);
        cache.keep_pending();
        doc = out.doc;
    }
}
