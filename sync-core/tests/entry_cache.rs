//! The write path reads entries through a cache of parsed entries: it must
//! read exactly what the document holds, even when a refused change and a
//! later one share an actor and sequence number (and so object ids).

mod common;

use std::collections::HashMap;

use automerge::{AutoCommit, Change};
use common::*;
use sync_core::doc::Message;
use sync_core::doc::cache::EntryCache;
use sync_core::petition::{EventBody, PetitionDoc};
use sync_core::policy::{PolicyContext, Rule};
use sync_core::write::{Facts, Origin, WriteOutcome, propose};
use sync_core::{Calendar, ClockRules, Principal};

/// The change a device with actor 5 makes posting `text` to `base`'s
/// conversation, signed as `signer` (which may not be the writer).
fn post(base: &AutoCommit, signer: &Principal, text: &str) -> (AutoCommit, Change) {
    let mut base = base.clone();
    let mut fork = PetitionDoc::from_doc(base.fork().with_actor(actor(5))).unwrap();
    fork.post(&mut author(signer), T0.plus_minutes(1), Message::draft(text))
        .unwrap();
    let mut changes = changes_since(&mut base, fork.doc_mut());
    assert_eq!(changes.len(), 1);
    (fork.into_doc(), changes.remove(0))
}

fn write(who: &Principal, base: &AutoCommit, changes: Vec<Change>, cache: &mut EntryCache) -> WriteOutcome {
    let org = org();
    let ctx = PolicyContext {
        org: &org,
        principal: who,
        now: T0.plus_minutes(60),
    };
    let now = T0.plus_minutes(60);
    propose(&ctx, Origin::Client, "p-1", base, changes, &HashMap::new(), cache)
        .finish(
            &Facts::default(),
            &ClockRules::default(),
            &Calendar::china(),
            now,
            cache,
        )
        .unwrap()
}

fn texts(doc: &AutoCommit, cache: &mut EntryCache) -> Vec<String> {
    let cached: Vec<String> = cache
        .reading(|| PetitionDoc::view(doc).and_then(|p| p.messages()))
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    let fresh: Vec<String> = PetitionDoc::view(doc)
        .and_then(|p| p.messages())
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(cached, fresh, "the cache reads what the document holds");
    cached
}

#[test]
fn a_change_reusing_a_refused_changes_ids_is_read_as_itself() {
    let base = petition().into_doc();
    let (forged_doc, forged) = post(&base, &neighbour(), "假的：冒名留言");
    let (_, honest) = post(&base, &resident(), "真的：本人留言");
    assert_ne!(forged.hash(), honest.hash());
    let mut cache = EntryCache::default();
    // A host edit that read its own (later refused) entry.
    texts(&forged_doc, &mut cache);
    let refused = write(&resident(), &base, vec![forged], &mut cache);
    assert!(refused.accepted.is_empty());
    assert_eq!(refused.refused[0].rule, Rule::ForgedAuthor);
    let out = write(&resident(), &base, vec![honest], &mut cache);
    assert_eq!(out.accepted.len(), 1, "{:?}", out.refused);
    cache.keep_pending();
    assert_eq!(texts(&out.doc, &mut cache), ["真的：本人留言"]);
}

#[test]
fn in_one_batch_a_refused_change_leaves_nothing_for_its_successor() {
    let base = petition().into_doc();
    let (_, forged) = post(&base, &neighbour(), "假的：冒名留言");
    let (_, honest) = post(&base, &resident(), "真的：本人留言");
    let mut cache = EntryCache::default();
    let out = write(&resident(), &base, vec![forged, honest], &mut cache);
    assert_eq!(out.accepted.len(), 1, "{:?}", out.refused);
    cache.keep_pending();
    assert_eq!(texts(&out.doc, &mut cache), ["真的：本人留言"]);
    let summary = out.projection.petition.expect("a petition row");
    let fresh = PetitionDoc::view(&out.doc)
        .unwrap()
        .summary(&ClockRules::default(), &Calendar::china(), T0.plus_minutes(60))
        .unwrap();
    assert_eq!(summary, fresh);
}

#[test]
fn many_writes_through_the_cache_project_what_a_fresh_read_does() {
    let mut doc = petition().into_doc();
    let mut cache = EntryCache::default();
    let officer = officer_a();
    let mut clock = author(&officer);
    for i in 0..40 {
        let mut base = doc.clone();
        let mut fork = PetitionDoc::from_doc(base.fork().with_actor(actor(7))).unwrap();
        let at = T0.plus_minutes(2 + i);
        cache
            .reading(|| -> Result<(), sync_core::SchemaError> {
                if i == 0 {
                    fork.record(&mut clock, at, Some(unit("station-a")), EventBody::Signed)?;
                } else if i % 2 == 0 {
                    fork.post(&mut clock, at, Message::draft(format!("第{i}条回复")))?;
                } else {
                    let note = format!("第{i}次进展");
                    fork.record(&mut clock, at, Some(unit("station-a")), EventBody::Progress { note })?;
                }
                Ok(())
            })
            .unwrap();
        let changes = changes_since(&mut base, fork.doc_mut());
        let org = org();
        let ctx = PolicyContext {
            org: &org,
            principal: &officer,
            now: at,
        };
        let out = propose(&ctx, Origin::Client, "p-1", &doc, changes, &HashMap::new(), &mut cache)
            .finish(
                &Facts::default(),
                &ClockRules::default(),
                &Calendar::china(),
                at,
                &mut cache,
            )
            .unwrap();
        assert_eq!(out.accepted.len(), 1, "write {i}: {:?}", out.refused);
        cache.keep_pending();
        let fresh = PetitionDoc::view(&out.doc)
            .unwrap()
            .summary(&ClockRules::default(), &Calendar::china(), at)
            .unwrap();
        assert_eq!(out.projection.petition.as_ref(), Some(&fresh), "write {i}");
        doc = out.doc;
    }
    assert!(cache.len() >= 40, "entries are kept between writes: {}", cache.len());
    let state = cache
        .reading(|| PetitionDoc::view(&doc).and_then(|p| p.state()))
        .unwrap();
    assert_eq!(state, PetitionDoc::view(&doc).unwrap().state().unwrap());
}

#[test]
fn what_an_abandoned_computation_parsed_is_not_kept() {
    let base = petition().into_doc();
    let (forged_doc, _) = post(&base, &neighbour(), "假的：冒名留言");
    let (_, honest) = post(&base, &resident(), "真的：本人留言");
    let mut cache = EntryCache::default();
    // An edit that read its own entry and was then given up (never proposed).
    texts(&forged_doc, &mut cache);
    let out = write(&resident(), &base, vec![honest], &mut cache);
    assert_eq!(out.accepted.len(), 1, "{:?}", out.refused);
    cache.keep_pending();
    assert_eq!(texts(&out.doc, &mut cache), ["真的：本人留言"]);
}

#[test]
fn a_refused_creation_leaves_nothing_for_the_next_one() {
    let r = resident();
    // Refused: a resident files in a neighbour's name (routed to station B)…
    let forged = PetitionDoc::create(
        actor(5),
        header(&neighbour(), &r),
        unit("station-b"),
        &mut author(&r),
        T0,
    )
    .unwrap()
    .into_doc()
    .get_changes(&[]);
    // …then files in their own name with the same device actor and sequence
    // number, so its objects have the same ids (routed to station A).
    let honest = PetitionDoc::create(actor(5), header(&r, &r), unit("station-a"), &mut author(&r), T0)
        .unwrap()
        .into_doc()
        .get_changes(&[]);
    let mut cache = EntryCache::default();
    let changes: Vec<Change> = forged.into_iter().chain(honest).collect();
    let out = write(&r, &AutoCommit::new(), changes, &mut cache);
    assert_eq!(out.accepted.len(), 1, "{:?}", out.refused);
    assert_eq!(out.refused[0].rule, Rule::NotSubmitter);
    cache.keep_pending();
    let summary = out.projection.petition.expect("a petition row");
    assert_eq!(summary.lead.as_ref().map(|u| u.as_str()), Some("station-a"));
    let state = cache
        .reading(|| PetitionDoc::view(&out.doc).and_then(|p| p.state()))
        .unwrap();
    assert_eq!(state, PetitionDoc::view(&out.doc).unwrap().state().unwrap());
}
