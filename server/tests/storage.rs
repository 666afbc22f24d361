//! Storage against real databases: documents, the change feed, compaction, actor bindings, restart.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ROOT, ReadDoc};
use lianxin_server::backend_tests;
use lianxin_server::storage::{
    DocFilter, FeedItemKind, NewUser, SessionState, StorageError, StoredChange, UserKind, hook_fn,
};
use lianxin_server::testing::TestDb;
use sync_core::{Principal, Timestamp, UserId};

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid id")
}

/// Officer Zhang, user `o1`, who signs in as `zhang`.
fn zhang() -> NewUser {
    NewUser {
        id: user("o1"),
        login_name: Some("zhang".into()),
        display_name: "张".into(),
        phone: None,
        kind: UserKind::Staff,
        household: None,
    }
}

fn stored(change: &Change, by: &str) -> StoredChange {
    StoredChange {
        hash: change.hash().to_string(),
        actor: change.actor_id().to_hex_string(),
        user: user(by),
        bytes: change.raw_bytes().to_vec(),
        received_at: T0,
    }
}

/// Makes `n` edits to `doc` and returns the new changes.
fn edit(doc: &mut AutoCommit, key: &str, n: usize) -> Vec<Change> {
    let before = doc.get_heads();
    for i in 0..n {
        doc.put(ROOT, key, i as i64).expect("put");
        doc.commit();
    }
    doc.get_changes(&before).into_iter().collect()
}

fn rebuild(stored: &lianxin_server::storage::StoredDoc) -> anyhow::Result<AutoCommit> {
    let mut doc = match &stored.snapshot {
        Some(bytes) => AutoCommit::load(bytes)?,
        None => AutoCommit::new(),
    };
    for change in &stored.changes {
        doc.load_incremental(change)?;
    }
    Ok(doc)
}

async fn append_load_feed_and_compact(db: &mut TestDb) -> anyhow::Result<()> {
    let s = &db.storage;
    let mut doc = AutoCommit::new();
    let first = edit(&mut doc, "title", 3);
    let batch: Vec<_> = first.iter().map(|c| stored(c, "o1")).collect();
    let out = s.documents().append("doc-a", "petition", &batch).await?;
    assert_eq!(out.inserted.len(), 3);
    assert!(out.inserted.windows(2).all(|w| w[0].seq < w[1].seq), "seqs increase");

    let loaded = s.documents().load_document("doc-a").await?.expect("stored");
    assert_eq!(loaded.kind, "petition");
    assert_eq!(loaded.changes.len(), 3);
    assert_eq!(rebuild(&loaded)?.get_heads(), doc.get_heads());
    assert!(s.documents().load_document("nope").await?.is_none());

    // A second document interleaves in the global sequence.
    let mut other = AutoCommit::new();
    let other_changes: Vec<_> = edit(&mut other, "x", 2).iter().map(|c| stored(c, "o2")).collect();
    s.documents().append("doc-b", "room", &other_changes).await?;

    let page = s.documents().changes_since(0, &DocFilter::All, 100).await?;
    assert_eq!(page.items.len(), 5);
    let cursor_after_a = page.items[2].seq;
    let only_b = s
        .documents()
        .changes_since(0, &DocFilter::Docs(vec!["doc-b".into()]), 100)
        .await?;
    assert_eq!(only_b.items.len(), 2);
    assert!(only_b.items.iter().all(|i| i.doc_id == "doc-b"));
    // A scope larger than one statement's bind parameters is split up.
    let mut wide: Vec<String> = (0..9000).map(|i| format!("absent-{i}")).collect();
    wide.push("doc-b".into());
    wide.insert(0, "doc-a".into());
    let wide = s.documents().changes_since(0, &DocFilter::Docs(wide), 4).await?;
    assert_eq!(wide.items.len(), 4);
    assert!(wide.items.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(wide.items, page.items[..4]);
    let paged = s.documents().changes_since(0, &DocFilter::All, 2).await?;
    assert_eq!(paged.items.len(), 2);
    let rest = s
        .documents()
        .changes_since(paged.next_cursor, &DocFilter::All, 100)
        .await?;
    assert_eq!(rest.items.len(), 3);
    assert_eq!(s.documents().docs_changed_since(cursor_after_a, 100).await?.len(), 1);

    // Compact doc-a, then add one more change.
    let up_to = loaded.last_seq;
    let heads: Vec<String> = doc.get_heads().iter().map(ToString::to_string).collect();
    let seqs: Vec<i64> = s
        .documents()
        .uncompacted("doc-a", up_to)
        .await?
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    let folded = s
        .documents()
        .compact("doc-a", &doc.save(), &heads, up_to, &seqs, T0)
        .await?;
    assert_eq!(folded, 3);
    let later: Vec<_> = edit(&mut doc, "body", 1).iter().map(|c| stored(c, "o1")).collect();
    s.documents().append("doc-a", "petition", &later).await?;

    let loaded = s.documents().load_document("doc-a").await?.expect("stored");
    assert!(loaded.snapshot.is_some());
    assert_eq!(loaded.snapshot_heads, heads);
    assert_eq!(loaded.changes.len(), 1);
    assert_eq!(rebuild(&loaded)?.get_heads(), doc.get_heads());

    // A reader whose cursor predates the compaction gets the snapshot in place
    // of the folded changes and still converges.
    let feed = s
        .documents()
        .changes_since(0, &DocFilter::Docs(vec!["doc-a".into()]), 100)
        .await?;
    assert_eq!(
        feed.items.iter().map(|i| i.kind).collect::<Vec<_>>(),
        [FeedItemKind::Snapshot, FeedItemKind::Change]
    );
    let mut replica = AutoCommit::new();
    for item in &feed.items {
        replica.load_incremental(&item.bytes)?;
    }
    assert_eq!(replica.get_heads(), doc.get_heads());
    // A reader past the compaction sees only the new change.
    let feed = s
        .documents()
        .changes_since(up_to, &DocFilter::Docs(vec!["doc-a".into()]), 100)
        .await?;
    assert_eq!(feed.items.len(), 1);
    assert_eq!(feed.items[0].kind, FeedItemKind::Change);

    // Compaction refuses a seq beyond the document's last change.
    assert!(matches!(
        s.documents()
            .compact("doc-a", &doc.save(), &heads, i64::MAX, &seqs, T0)
            .await,
        Err(StorageError::Conflict(_))
    ));
    Ok(())
}

async fn resent_change_is_stored_once(db: &mut TestDb) -> anyhow::Result<()> {
    let s = &db.storage;
    let mut doc = AutoCommit::new();
    let batch: Vec<_> = edit(&mut doc, "k", 2).iter().map(|c| stored(c, "o1")).collect();
    let first = s.documents().append("d", "petition", &batch).await?;
    let again = s.documents().append("d", "petition", &batch).await?;
    assert!(again.inserted.is_empty());
    assert_eq!(again.duplicates.len(), 2);
    assert_eq!(again.last_seq, first.last_seq);
    assert_eq!(s.documents().load_document("d").await?.expect("doc").changes.len(), 2);
    assert_eq!(
        s.documents().changes_since(0, &DocFilter::All, 10).await?.items.len(),
        2
    );
    // A kind can't change under a document.
    assert!(matches!(
        s.documents().append("d", "room", &batch).await,
        Err(StorageError::KindMismatch { .. })
    ));
    Ok(())
}

/// Projections plug in here: a failing hook rolls back the changes too.
async fn hook_runs_in_the_change_transaction(db: &mut TestDb) -> anyhow::Result<()> {
    let s = &db.storage;
    let mut doc = AutoCommit::new();
    let batch: Vec<_> = edit(&mut doc, "k", 1).iter().map(|c| stored(c, "o1")).collect();

    let failing = hook_fn(|tx, outcome| {
        Box::pin(async move {
            assert_eq!(outcome.inserted.len(), 1);
            let bound = tx.bind_actor("aa11", &user("o1"), T0).await?;
            assert!(bound.is_ok());
            Err(StorageError::Conflict("projection refused".into()))
        })
    });
    let result = s.documents().append_changes("d", "petition", &batch, failing).await;
    assert!(matches!(result, Err(StorageError::Conflict(_))));
    assert!(
        s.documents().load_document("d").await?.is_none(),
        "the change was rolled back"
    );
    assert!(
        s.documents().actor_owner("aa11").await?.is_none(),
        "the hook's write was rolled back"
    );

    let mut seen = Vec::new();
    let ok = hook_fn(|tx, outcome| {
        seen.push(outcome.inserted[0].seq);
        Box::pin(async move {
            tx.bind_actor("aa11", &user("o1"), T0)
                .await?
                .map(|_| ())
                .map_err(|e| StorageError::Conflict(e.to_string()))
        })
    });
    let out = s.documents().append_changes("d", "petition", &batch, ok).await?;
    assert_eq!(seen, vec![out.inserted[0].seq]);
    assert_eq!(s.documents().actor_owner("aa11").await?, Some(user("o1")));
    Ok(())
}

async fn an_actor_belongs_to_its_first_user(db: &mut TestDb) -> anyhow::Result<()> {
    let s = &db.storage;
    assert!(s.documents().bind_actor("abcd", &user("u1"), T0).await?.is_ok());
    assert!(
        s.documents().bind_actor("abcd", &user("u1"), T0).await?.is_ok(),
        "rebinding to the owner is a no-op"
    );
    let refused = s
        .documents()
        .bind_actor("abcd", &user("u2"), T0)
        .await?
        .expect_err("taken");
    assert_eq!(refused.owner, user("u1"));

    // Racing binders: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.documents().bind_actor("race", &user(&format!("u{i}")), T0).await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await??.is_ok() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    Ok(())
}

async fn concurrent_appends_keep_cursors_monotonic(db: &mut TestDb) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for d in 0..6 {
        let s = db.storage.clone();
        tasks.push(tokio::spawn(async move {
            let mut doc = AutoCommit::new();
            for round in 0..5 {
                let key = format!("k{round}");
                let batch: Vec<_> = edit(&mut doc, &key, 1).iter().map(|c| stored(c, "o1")).collect();
                s.documents().append(&format!("doc-{d}"), "petition", &batch).await?;
            }
            Ok::<_, StorageError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let page = db.storage.documents().changes_since(0, &DocFilter::All, 1000).await?;
    assert_eq!(page.items.len(), 30);
    assert!(page.items.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(db.storage.documents().head_seq().await?, page.next_cursor);
    Ok(())
}

async fn nothing_is_lost_across_a_restart(db: &mut TestDb) -> anyhow::Result<()> {
    let mut doc = AutoCommit::new();
    let batch: Vec<_> = edit(&mut doc, "k", 4).iter().map(|c| stored(c, "o1")).collect();
    db.storage.documents().append("d", "petition", &batch).await?;
    db.storage
        .documents()
        .bind_actor("feed", &user("o1"), T0)
        .await?
        .map_err(anyhow::Error::msg)?;
    db.storage.auth().create_user(&zhang(), T0).await?;

    let s = db.reopen().await?;
    let loaded = s.documents().load_document("d").await?.expect("still there");
    assert_eq!(rebuild(&loaded)?.get_heads(), doc.get_heads());
    assert_eq!(
        rebuild(&loaded)?.get(ROOT, "k")?.map(|(v, _)| v.to_string()),
        Some("3".into())
    );
    assert_eq!(s.documents().actor_owner("feed").await?, Some(user("o1")));
    assert!(s.auth().find_user_by_login("zhang").await?.is_some());
    // The sequence continues after the restart.
    let more: Vec<_> = edit(&mut doc, "k", 1).iter().map(|c| stored(c, "o1")).collect();
    let out = s.documents().append("d", "petition", &more).await?;
    assert!(out.inserted[0].seq > loaded.last_seq);
    Ok(())
}

/// One statement pair tells a node which of its watched tokens ended, and it
/// agrees with the one-token check.
async fn watched_tokens_are_checked_together(db: &mut TestDb) -> anyhow::Result<()> {
    let s = &db.storage;
    s.auth().create_user(&zhang(), T0).await?;
    let later = T0.plus_millis(60_000);
    for sid in ["active", "revoked", "expiring", "token-revoked"] {
        s.auth().create_session(sid, &user("o1"), "test", T0, later).await?;
    }
    s.auth().revoke_session("revoked", T0).await?;
    s.auth().revoke_jti("jti-revoked", &user("o1"), later, T0).await?;
    let watched: Vec<(&str, &str)> = vec![
        ("active", "jti-active"),
        ("revoked", "jti-2"),
        ("expiring", "jti-3"),
        ("gone", "jti-4"),
        ("token-revoked", "jti-revoked"),
    ];
    let sids: Vec<String> = watched.iter().map(|(s, _)| s.to_string()).collect();
    let jtis: Vec<String> = watched.iter().map(|(_, j)| j.to_string()).collect();

    let (ended, revoked) = s.auth().ended_tokens(&sids, &jtis, T0).await?;
    assert_eq!(ended, ["revoked", "gone"]);
    assert_eq!(revoked, ["jti-revoked"]);
    for (sid, jti) in &watched {
        let one = s.auth().token_state(sid, jti, T0).await?;
        let together = ended.iter().any(|e| e == sid) || revoked.iter().any(|r| r == jti);
        assert_eq!(one != SessionState::Active, together, "{sid}/{jti}: {one:?}");
    }
    // At the sessions' expiry every one has ended.
    let (ended, _) = s.auth().ended_tokens(&sids, &jtis, later).await?;
    assert_eq!(ended, sids);
    assert_eq!(s.auth().token_state("gone", "jti-4", T0).await?, SessionState::Unknown);
    assert_eq!(s.auth().ended_tokens(&[], &[], T0).await?, (vec![], vec![]));
    Ok(())
}

/// What authentication loads per request: the user and every membership, in one read.
async fn a_user_reads_with_their_memberships(db: &mut TestDb) -> anyhow::Result<()> {
    use sync_core::{Membership, Role, Unit, UnitId, UnitKind};
    let s = &db.storage;
    let person = |id: &str| NewUser {
        id: user(id),
        login_name: None,
        display_name: id.into(),
        phone: None,
        kind: UserKind::Staff,
        household: None,
    };
    let mut tx = s.begin().await?;
    for (id, parent) in [("county", None), ("station-1", Some("county"))] {
        tx.upsert_unit(
            &Unit {
                id: UnitId::new(id)?,
                name: id.into(),
                kind: if parent.is_some() {
                    UnitKind::Station
                } else {
                    UnitKind::County
                },
                parent: parent.map(UnitId::new).transpose()?,
            },
            T0,
        )
        .await?;
    }
    tx.insert_user(&person("o1"), T0).await?;
    tx.insert_user(&person("o2"), T0).await?;
    let memberships = vec![
        Membership {
            unit: UnitId::new("county")?,
            role: Role::Leader,
        },
        Membership {
            unit: UnitId::new("station-1")?,
            role: Role::Officer,
        },
    ];
    tx.set_memberships(&user("o1"), &memberships).await?;
    tx.commit().await?;

    let (record, read) = s.auth().user_with_memberships(&user("o1")).await?.expect("o1 exists");
    assert_eq!(record.id, user("o1"));
    assert_eq!(read, memberships);
    let (record, read) = s.auth().user_with_memberships(&user("o2")).await?.expect("o2 exists");
    assert_eq!((record.id, read), (user("o2"), vec![]));
    assert!(s.auth().user_with_memberships(&user("nobody")).await?.is_none());
    Ok(())
}

/// Fan-out puts one notification in many inboxes with one statement; rows
/// come back in the order given, a pair already stored is skipped, and the
/// outbox gets one job per new row and channel.
async fn inbox_rows_follow_the_fanout_order_once(db: &mut TestDb) -> anyhow::Result<()> {
    use lianxin_server::storage::NotificationRow;
    use lianxin_server::write::fanout::{self, FanoutSettings};
    use sync_core::notify::{Notification, NotificationKind, Recipient};

    let s = &db.storage;
    let note = |key: &str, recipient: Recipient, urgent: bool| Notification {
        key: key.into(),
        recipient,
        kind: NotificationKind::Mention,
        doc: "room-1".into(),
        entry: None,
        urgent,
        at: T0,
        text: key.into(),
    };
    let everyone: Vec<UserId> = (0..300).map(|i| user(&format!("r{i:03}"))).collect();
    let notes = [
        note("room-1/m1/mention/all", Recipient::Members(everyone.clone()), false),
        note("room-1/m2/mention/user:r007", Recipient::User(user("r007")), true),
        // A second @all in the same write, from a room state with one member.
        note("room-1/m3/mention/all", Recipient::Members(vec![user("r001")]), false),
    ];
    let settings = FanoutSettings {
        push: true,
        sms: true,
        push_delay_ms: 0,
    };
    let cal = sync_core::Calendar::china();
    let mut tx = s.begin().await?;
    let items = fanout::write(&mut tx, "doc-1", &notes, T0, &cal, &settings).await?;
    tx.commit().await?;
    assert_eq!(items.len(), 302);
    assert!(items.windows(2).all(|w| w[0].cursor < w[1].cursor), "in cursor order");
    let got: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i.user.as_str(), i.notification.key.as_str()))
        .collect();
    let mut want: Vec<(&str, &str)> = everyone.iter().map(|u| (u.as_str(), "room-1/m1/mention/all")).collect();
    want.push(("r007", "room-1/m2/mention/user:r007"));
    want.push(("r001", "room-1/m3/mention/all"));
    assert_eq!(got, want, "the order fan-out gave, each @all to its own members");
    for item in items.iter().step_by(37) {
        let stored = s.inbox().after(&user(&item.user), item.cursor - 1, 1).await?;
        assert_eq!(
            stored.first().map(|i| (i.cursor, i.notification.key.as_str())),
            Some((item.cursor, item.notification.key.as_str())),
            "the cursor handed out is the stored one"
        );
    }

    // Deriving again delivers nothing; a hand-over to people who have some of
    // the items adds only the missing ones, after everything before.
    let mut tx = s.begin().await?;
    assert!(
        fanout::write(&mut tx, "doc-1", &notes, T0, &cal, &settings)
            .await?
            .is_empty()
    );
    let rows: Vec<_> = notes.iter().map(|n| fanout::row("doc-1", n)).collect();
    // The first notification's 301 recipients go in as one list, the
    // second's two as bound rows.
    let mut again: Vec<(String, &NotificationRow)> = everyone.iter().map(|u| (u.to_string(), &rows[0])).collect();
    again.push(("late".to_owned(), &rows[0]));
    again.push(("r007".to_owned(), &rows[1]));
    again.push(("late".to_owned(), &rows[1]));
    let added = fanout::deliver(&mut tx, &again, T0, &settings).await?;
    tx.commit().await?;
    let added: Vec<(i64, &str, &str)> = added
        .iter()
        .map(|i| (i.cursor, i.user.as_str(), i.notification.key.as_str()))
        .collect();
    let last = items.last().expect("items").cursor;
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(added[0].0 > last && added[1].0 > added[0].0, "{added:?}");
    assert_eq!((added[0].1, added[0].2), ("late", "room-1/m1/mention/all"));
    assert_eq!((added[1].1, added[1].2), ("late", "room-1/m2/mention/user:r007"));

    let r007 = s.inbox().after(&user("r007"), 0, 10).await?;
    let keys: Vec<&str> = r007.iter().map(|i| i.notification.key.as_str()).collect();
    assert_eq!(keys, ["room-1/m1/mention/all", "room-1/m2/mention/user:r007"]);
    assert_eq!(r007[0].notification.recipient, "all");

    let jobs = s.outbox().rows("pending", 1000).await?;
    let push = jobs.iter().filter(|j| j.channel == "push").count();
    let sms: Vec<&str> = jobs
        .iter()
        .filter(|j| j.channel == "sms")
        .map(|j| j.user_id.as_str())
        .collect();
    assert_eq!(push, 304, "one push per new inbox row");
    assert_eq!(sms, ["r007", "late"], "text messages for the urgent item only");
    Ok(())
}

/// Household mail reaches the household's enabled accounts and its
/// representative, many households read together.
async fn household_people_are_read_together(db: &mut TestDb) -> anyhow::Result<()> {
    use lianxin_server::storage::HouseholdRow;

    let s = &db.storage;
    for (id, household) in [("a1", "h1"), ("a2", "h1"), ("b1", "h2")] {
        let resident = NewUser {
            id: user(id),
            login_name: None,
            display_name: id.into(),
            phone: None,
            kind: UserKind::Resident,
            household: Some(sync_core::HouseholdId::new(household)?),
        };
        s.auth().create_user(&resident, T0).await?;
    }
    let household = |id: &str, representative: Option<&str>| HouseholdRow {
        household_id: id.into(),
        village_unit: "village-a".into(),
        name: id.into(),
        representative: representative.map(str::to_owned),
        moved_out: false,
    };
    let mut tx = s.begin().await?;
    tx.set_user_disabled(&user("a2"), true, T0).await?;
    let rows = [
        household("h1", Some("rep-1")),
        household("h3", Some("a1")),
        household("h4", None),
    ];
    tx.upsert_households("directory-1", &rows).await?;
    let people = tx.household_users(&["h1", "h2", "h3", "h4", "h5"]).await?;
    tx.commit().await?;
    let mut got: Vec<_> = people.into_iter().collect();
    got.sort();
    let want = |h: &str, users: &[&str]| (h.to_owned(), users.iter().map(|u| u.to_string()).collect::<Vec<_>>());
    assert_eq!(
        got,
        [want("h1", &["a1", "rep-1"]), want("h2", &["b1"]), want("h3", &["a1"])],
        "no disabled account, no household without anyone"
    );
    Ok(())
}

/// A station `s1` with village `v1`, officer `o1` of the station and the
/// given residents of the village, and a document service over them; returns
/// it with o1's principal.
async fn village_docs(
    db: &mut TestDb,
    residents: &[&str],
) -> anyhow::Result<(
    lianxin_server::docs::DocService,
    lianxin_server::auth::AuthService,
    Principal,
)> {
    use lianxin_server::docs::{DocService, DocSettings};
    use sync_core::{Membership, Role, UnitId};

    let org = serde_json::json!({
        "units": [
            {"id": "s1", "name": "Station", "kind": "station"},
            {"id": "v1", "name": "Village", "kind": "village", "parent": "s1"}
        ],
        "users": []
    });
    lianxin_server::admin::import_str(&db.storage, &org.to_string(), false, T0).await?;
    let mut tx = db.storage.begin().await?;
    tx.insert_user(&zhang(), T0).await?;
    tx.set_memberships(
        &user("o1"),
        &[Membership {
            unit: UnitId::new("s1")?,
            role: Role::Officer,
        }],
    )
    .await?;
    for id in residents {
        let resident = NewUser {
            id: user(id),
            login_name: None,
            display_name: (*id).into(),
            phone: None,
            kind: UserKind::Resident,
            household: None,
        };
        tx.insert_user(&resident, T0).await?;
        let home = Membership {
            unit: UnitId::new("v1")?,
            role: Role::Resident,
        };
        tx.set_memberships(&user(id), &[home]).await?;
    }
    tx.commit().await?;
    let clock: std::sync::Arc<dyn lianxin_server::clock::Clock> = lianxin_server::clock::ManualClock::starting_now();
    let docs = DocService::new(db.storage.clone(), clock.clone(), DocSettings::default()).await?;
    let auth = lianxin_server::auth::AuthService::new(
        db.storage.clone(),
        clock,
        lianxin_server::testing::TEST_SECRET,
        lianxin_server::auth::SmsSender::DevLog,
        Default::default(),
    );
    let who = auth.principal(&user("o1")).await?;
    Ok((docs, auth, who))
}

/// A room in `v1` by `o1` with `members`, stored through `docs` under the id `[n; 16]`.
async fn create_room(
    docs: &lianxin_server::docs::DocService,
    who: &Principal,
    n: u8,
    members: impl IntoIterator<Item = UserId>,
) -> anyhow::Result<(String, AutoCommit)> {
    use sync_core::repo_protocol::DocumentId;
    use sync_core::room::{MemberRole, RoomDoc, RoomInfo, RoomKind};

    let id = DocumentId::from_bytes([n; 16]);
    let info = RoomInfo {
        id: id.to_url(),
        kind: RoomKind::VillageRoom,
        name: format!("room {n}"),
        unit: sync_core::UnitId::new("v1")?,
        household: None,
        created_by: user("o1"),
    };
    let members = members.into_iter().map(|u| (u, MemberRole::Member));
    let room = RoomDoc::create(docs.server_actor(&user("o1")), info, members)?.into_doc();
    let applied = docs.create(who, &id.to_string(), room.clone()).await?;
    anyhow::ensure!(applied.refused.is_empty(), "{:?}", applied.refused);
    Ok((id.to_string(), room))
}

/// A document whose changes since its snapshot outweigh `COMPACT_AFTER_BYTES`
/// is compacted at once: a village room created with thousands of members is
/// stored (and later loaded) as a snapshot, a room of a few as its change.
async fn a_large_change_is_compacted_at_once(db: &mut TestDb) -> anyhow::Result<()> {
    use lianxin_server::docs::COMPACT_AFTER_BYTES;

    let (docs, _auth, who) = village_docs(db, &[]).await?;
    let mut created = Vec::new();
    for (n, members) in [(1u8, 5usize), (2, 5_000)] {
        let members = (0..members).map(|i| user(&format!("resident-{i:05}")));
        let (id, mut room) = create_room(&docs, &who, n, members).await?;
        let bytes: usize = room.get_changes(&[]).iter().map(|c| c.raw_bytes().len()).sum();
        created.push((id, bytes, room.get_heads()));
    }
    let (small, small_bytes, _) = &created[0];
    let (large, large_bytes, large_heads) = &created[1];
    anyhow::ensure!(*small_bytes < COMPACT_AFTER_BYTES && *large_bytes > COMPACT_AFTER_BYTES);
    docs.compactions_done().await;
    let stored = db.storage.documents().load_document(small).await?.expect("stored");
    anyhow::ensure!(
        stored.snapshot.is_none() && stored.changes.len() == 1,
        "the small room stays a change"
    );
    let stored = db.storage.documents().load_document(large).await?.expect("stored");
    let snapshot = stored.snapshot.as_ref().expect("the large room was compacted");
    anyhow::ensure!(stored.changes.is_empty(), "its change is folded into the snapshot");
    anyhow::ensure!(
        snapshot.len() < *large_bytes / 2,
        "{} bytes as a snapshot",
        snapshot.len()
    );
    anyhow::ensure!(rebuild(&stored)?.get_heads() == *large_heads);
    Ok(())
}

/// Edits `room` as `who` through the room's typed writes; fails on a refusal.
async fn room_act(
    docs: &lianxin_server::docs::DocService,
    who: &Principal,
    room: &str,
    f: impl FnOnce(&mut sync_core::room::RoomDoc, &mut sync_core::Author, Timestamp) -> Result<(), sync_core::SchemaError>,
) -> anyhow::Result<()> {
    let ((), applied) = docs
        .act(who, room, |doc, author, now| {
            let mut r = sync_core::room::RoomDoc::from_doc(std::mem::take(doc))?;
            let out = f(&mut r, author, now);
            *doc = r.into_doc();
            out
        })
        .await?;
    anyhow::ensure!(applied.refused.is_empty(), "{:?}", applied.refused);
    Ok(())
}

/// Who may read a room follows its members: a message leaves its readers as
/// they were (without reading the members again), a member removed can no
/// longer read it and one added can.
async fn room_readers_follow_membership_edits(db: &mut TestDb) -> anyhow::Result<()> {
    use sync_core::doc::Message;
    use sync_core::room::MemberRole;

    let (docs, auth, who) = village_docs(db, &["r1", "r2", "r3"]).await?;
    let (room, _) = create_room(&docs, &who, 7, [user("r1"), user("r2")]).await?;
    let readers = async || -> anyhow::Result<Vec<bool>> {
        let mut out = Vec::new();
        for id in ["r1", "r2", "r3"] {
            out.push(docs.may_read(&auth.principal(&user(id)).await?, &room).await?);
        }
        Ok(out)
    };
    anyhow::ensure!(readers().await? == [true, true, false]);
    room_act(&docs, &who, &room, |r, author, now| {
        r.post(author, now, Message::draft("明天开会".to_owned())).map(|_| ())
    })
    .await?;
    anyhow::ensure!(readers().await? == [true, true, false], "a message changes no reader");
    room_act(&docs, &who, &room, |r, _, _| r.set_member(&user("r1"), None)).await?;
    anyhow::ensure!(readers().await? == [false, true, false], "r1 left");
    room_act(&docs, &who, &room, |r, _, _| {
        r.set_member(&user("r3"), Some(MemberRole::Member))
    })
    .await?;
    anyhow::ensure!(readers().await? == [false, true, true], "r3 joined");
    Ok(())
}

backend_tests!(
    room_readers_follow_membership_edits,
    a_large_change_is_compacted_at_once,
    append_load_feed_and_compact,
    resent_change_is_stored_once,
    hook_runs_in_the_change_transaction,
    an_actor_belongs_to_its_first_user,
    concurrent_appends_keep_cursors_monotonic,
    nothing_is_lost_across_a_restart,
    watched_tokens_are_checked_together,
    a_user_reads_with_their_memberships,
    inbox_rows_follow_the_fanout_order_once,
    household_people_are_read_together,
);

/// A backend's migrations up to `version`: the schema as an older server left it.
async fn migrations_up_to(backend: &str, version: i64) -> anyhow::Result<sqlx::migrate::Migrator> {
    let dir = format!("src/storage/migrations/{backend}");
    let mut migrator = sqlx::migrate::Migrator::new(std::path::Path::new(&dir)).await?;
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    Ok(migrator)
}

/// Migration 5 rebuilds the SQLite inbox with its uniqueness key first: the
/// rows and the AUTOINCREMENT counter survive, so a seq is never handed out
/// twice, not even the one of a row deleted before the upgrade.
#[tokio::test]
async fn the_inbox_rebuild_keeps_rows_and_never_reuses_a_seq() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("old.sqlite").display());
    let pool = sqlx::SqlitePool::connect(&url).await?;
    migrations_up_to("sqlite", 4).await?.run(&pool).await?;
    sqlx::query(
        "INSERT INTO notifications (key, doc_id, doc, kind, recipient, entry, urgent, at_ms, text, created_at) \
         VALUES ('k', 'd', 'd', 'mention', 'all', NULL, 0, 1, 't', 1)",
    )
    .execute(&pool)
    .await?;
    for user in ["a", "b", "c"] {
        sqlx::query("INSERT INTO inbox (user_id, key, created_at) VALUES ($1, 'k', 1)")
            .bind(user)
            .execute(&pool)
            .await?;
    }
    sqlx::query("DELETE FROM inbox WHERE user_id = 'c'")
        .execute(&pool)
        .await?;
    pool.close().await;

    let storage = lianxin_server::storage::Storage::open(&url).await?;
    let mut tx = storage.begin().await?;
    // Enough people to go in as one list statement, whose seqs are counted
    // from the counter (3, the deleted row's), not from the highest row (2).
    let many: Vec<(String, String)> = (0..70).map(|i| (format!("u{i:02}"), "k".to_owned())).collect();
    let listed = tx.insert_inbox(&many, T0).await?;
    let added = tx.insert_inbox(&[("d".into(), "k".into())], T0).await?;
    let again = tx.insert_inbox(&[("b".into(), "k".into())], T0).await?;
    tx.commit().await?;
    let want: Vec<(i64, String, String)> = (4..).zip(many).map(|(seq, (u, k))| (seq, u, k)).collect();
    assert_eq!(listed, want);
    for (seq, u, _) in [&listed[0], &listed[69]] {
        let stored = storage.inbox().after(&user(u), 0, 10).await?;
        assert_eq!(stored.iter().map(|i| i.cursor).collect::<Vec<_>>(), vec![*seq], "{u}");
    }
    // d comes after them; b already had the item.
    assert_eq!(added, vec![(74, "d".to_owned(), "k".to_owned())]);
    assert!(again.is_empty(), "{again:?}");
    let items = storage.inbox().after(&user("a"), 0, 10).await?;
    assert_eq!(items.iter().map(|i| i.cursor).collect::<Vec<_>>(), vec![1]);
    storage.close().await;
    Ok(())
}

/// Migration 6 on PostgreSQL: inbox rows stored with their notification's key
/// are read, and added to, by the notification's number afterwards.
#[tokio::test]
async fn postgres_inbox_rows_keep_their_notification_across_migration_6() -> anyhow::Result<()> {
    use std::str::FromStr;
    let Ok(url) = std::env::var(lianxin_server::testing::POSTGRES_URL_VAR) else {
        lianxin_server::testing::postgres_skipped("postgres_inbox_rows_keep_their_notification_across_migration_6");
        return Ok(());
    };
    let schema = format!("lianxin_migrate6_{}", rand::random::<u32>());
    lianxin_server::storage::create_pg_schema(&url, &schema).await?;
    let options = sqlx::postgres::PgConnectOptions::from_str(&url)?.options([("search_path", schema.as_str())]);
    let result = async {
        let pool = sqlx::PgPool::connect_with(options.clone()).await?;
        migrations_up_to("postgres", 5).await?.run(&pool).await?;
        for key in ["k1", "k2"] {
            sqlx::query(
                "INSERT INTO notifications (key, doc_id, doc, kind, recipient, entry, urgent, at_ms, text, created_at) \
                 VALUES ($1, 'd', 'd', 'mention', 'all', NULL, 0, 1, $1, 1)",
            )
            .bind(key)
            .execute(&pool)
            .await?;
        }
        for (user, key) in [("a", "k1"), ("b", "k1"), ("a", "k2")] {
            sqlx::query("INSERT INTO inbox (user_id, key, created_at) VALUES ($1, $2, 1)")
                .bind(user)
                .bind(key)
                .execute(&pool)
                .await?;
        }
        pool.close().await;

        let storage = lianxin_server::storage::Storage::open_postgres(options).await?;
        let items = storage.inbox().after(&user("a"), 0, 10).await?;
        let read: Vec<(i64, &str)> = items.iter().map(|i| (i.cursor, i.notification.text.as_str())).collect();
        assert_eq!(read, [(1, "k1"), (3, "k2")]);
        let mut tx = storage.begin().await?;
        let added = tx
            .insert_inbox(&[("b".into(), "k1".into()), ("b".into(), "k2".into())], T0)
            .await?;
        tx.commit().await?;
        // b had k1 already (the attempt may still use up a seq on PostgreSQL).
        let added: Vec<(&str, &str)> = added.iter().map(|(_, u, k)| (u.as_str(), k.as_str())).collect();
        assert_eq!(added, [("b", "k2")]);
        let b: Vec<(i64, String)> = storage
            .inbox()
            .after(&user("b"), 0, 10)
            .await?
            .into_iter()
            .map(|i| (i.cursor, i.notification.text.clone()))
            .collect();
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!(b[0], (2, "k1".to_owned()));
        assert!(b[1].0 > 3 && b[1].1 == "k2", "{b:?}");
        storage.close().await;
        anyhow::Ok(())
    }
    .await;
    lianxin_server::storage::drop_pg_schema(&url, &schema).await?;
    result
}

/// A commit does not copy the write-ahead log into the database file itself;
/// the storage's own task does, soon after.
#[tokio::test]
async fn the_log_reaches_the_database_file_after_a_commit() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ckpt.sqlite");
    let storage = lianxin_server::storage::Storage::open_sqlite(&path).await?;
    let before = std::fs::metadata(&path)?.len();
    // Incompressible text, so the change is as large in the file as here.
    let text: String = (0..400_000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect();
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "big", text)?;
    let change = doc.get_last_local_change().expect("a change").clone();
    storage
        .documents()
        .append("doc-big", "room", &[stored(&change, "alice")])
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = std::fs::metadata(&path)?.len();
        if now > before + 300_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {now} bytes (from {before}): no checkpoint ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    storage.close().await;
    Ok(())
}
