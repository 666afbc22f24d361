//! Parsed entries of one document, kept between writes.
//!
//! Reading an entry out of Automerge costs a lookup per field, and one write
//! read the petition in full half a dozen times (policy's facts, the action
//! itself, the projection, the notifications, before and after), so a
//! write's cost grew with every entry the petition ever had (the
//! `write_cost` example measures it with and without this cache). Timeline events,
//! conversation messages and room messages never change once written
//! (policy refuses any edit to an existing entry), and neither does a
//! petition's header, so an entry parsed once can stand for its object id for
//! as long as the document lives.
//!
//! A host keeps one [`EntryCache`] per loaded document and hands it to the
//! write path ([`crate::write::propose`], [`crate::write::Proposal::finish`]),
//! which makes it the active cache of the current thread while it runs:
//! entry reads look there first and record what they parse.
//!
//! What is parsed during a computation is only *pending*: the computation
//! reads states that may never be stored (a change that policy then refuses,
//! a write that loses the race to another node). A refused change could be
//! followed by a different change with the same actor and sequence number,
//! whose entries would have the same object ids, so pending entries are
//! dropped when policy refuses a change and whenever a new write begins, and
//! become kept only when the host says the write was stored
//! ([`EntryCache::keep_pending`]).

use std::cell::RefCell;
use std::collections::HashMap;

use automerge::ObjId;

use crate::doc::Message;
use crate::petition::{PetitionHeader, TimelineEvent};

/// The parsed entries of one document (see the module docs).
#[derive(Debug, Default)]
pub struct EntryCache {
    kept: HashMap<ObjId, Entry>,
    pending: HashMap<ObjId, Entry>,
}

/// A parsed entry.
#[derive(Clone, Debug)]
pub(crate) enum Entry {
    Event(TimelineEvent),
    Message(Message),
    /// A petition's header: written with the petition, never changed
    /// afterwards (policy refuses any edit to it as `immutable`).
    Header(Box<PetitionHeader>),
}

/// An entry type the cache holds.
pub(crate) trait Cached: Sized + Clone {
    fn wrap(self) -> Entry;
    fn unwrap(entry: &Entry) -> Option<&Self>;
}

impl Cached for TimelineEvent {
    fn wrap(self) -> Entry {
        Entry::Event(self)
    }
    fn unwrap(entry: &Entry) -> Option<&Self> {
        match entry {
            Entry::Event(e) => Some(e),
            Entry::Message(_) | Entry::Header(_) => None,
        }
    }
}

impl Cached for Message {
    fn wrap(self) -> Entry {
        Entry::Message(self)
    }
    fn unwrap(entry: &Entry) -> Option<&Self> {
        match entry {
            Entry::Message(m) => Some(m),
            Entry::Event(_) | Entry::Header(_) => None,
        }
    }
}

impl Cached for PetitionHeader {
    fn wrap(self) -> Entry {
        Entry::Header(Box::new(self))
    }
    fn unwrap(entry: &Entry) -> Option<&Self> {
        match entry {
            Entry::Header(h) => Some(h),
            Entry::Event(_) | Entry::Message(_) => None,
        }
    }
}

impl EntryCache {
    /// Keeps what the last computation parsed: call once its write is stored.
    pub fn keep_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.kept.extend(pending);
    }

    /// Runs `f` with this cache active, as a computation of its own: what
    /// `f` parses stays pending (a host's edit that policy has yet to see).
    pub fn reading<R>(&mut self, f: impl FnOnce() -> R) -> R {
        begin(self);
        scope(self, f)
    }

    /// Entries kept and pending.
    pub fn len(&self) -> usize {
        self.kept.len() + self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get<T: Cached>(&self, obj: &ObjId) -> Option<T> {
        self.kept
            .get(obj)
            .or_else(|| self.pending.get(obj))
            .and_then(T::unwrap)
            .cloned()
    }
}

thread_local! {
    static ACTIVE: RefCell<Option<EntryCache>> = const { RefCell::new(None) };
}

/// Runs `f` with `cache` active on this thread. Scopes do not nest: inside
/// one, `f` runs with the outer cache still active.
pub(crate) fn scope<R>(cache: &mut EntryCache, f: impl FnOnce() -> R) -> R {
    /// Puts the cache back even if `f` panics.
    struct Restore<'a>(&'a mut EntryCache);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if let Some(c) = ACTIVE.with(|a| a.borrow_mut().take()) {
                *self.0 = c;
            }
        }
    }
    let nested = ACTIVE.with(|a| a.borrow().is_some());
    if nested {
        return f();
    }
    ACTIVE.with(|a| *a.borrow_mut() = Some(std::mem::take(cache)));
    let _restore = Restore(cache);
    f()
}

/// Starts a new computation: drops what the previous one left pending.
pub(crate) fn begin(cache: &mut EntryCache) {
    cache.pending.clear();
}

/// Drops the pending entries of the active cache (policy refused a change).
pub(crate) fn forget_pending() {
    ACTIVE.with(|a| {
        if let Some(c) = a.borrow_mut().as_mut() {
            c.pending.clear();
        }
    });
}

/// The entry at `obj`, from the active cache or parsed by `read` (and then
/// recorded as pending). Without an active cache, just `read`.
pub(crate) fn entry<T: Cached, E>(obj: &ObjId, read: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let hit = ACTIVE.with(|a| a.borrow().as_ref().and_then(|c| c.get::<T>(obj)));
    if let Some(hit) = hit {
        return Ok(hit);
    }
    let parsed = read()?;
    ACTIVE.with(|a| {
        if let Some(c) = a.borrow_mut().as_mut() {
            c.pending.insert(obj.clone(), parsed.clone().wrap());
        }
    });
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::ids::UserId;
    use crate::petition::EventBody;

    fn event(by: &str) -> TimelineEvent {
        TimelineEvent {
            by: UserId::new(by).unwrap(),
            at: "1750000000000.00000.aaaa".parse::<Hlc>().unwrap(),
            unit: None,
            body: EventBody::Signed,
        }
    }

    #[test]
    fn pending_entries_count_only_once_kept() {
        let mut cache = EntryCache::default();
        let obj = ObjId::Root;
        let first = scope(&mut cache, || entry(&obj, || Ok::<_, ()>(event("a"))).unwrap());
        assert_eq!(first.by.as_str(), "a");
        // Still pending: a new computation drops it and reads again.
        begin(&mut cache);
        let again = scope(&mut cache, || entry(&obj, || Ok::<_, ()>(event("b"))).unwrap());
        assert_eq!(again.by.as_str(), "b");
        cache.keep_pending();
        begin(&mut cache);
        let kept = scope(&mut cache, || entry(&obj, || Ok::<_, ()>(event("c"))).unwrap());
        assert_eq!(kept.by.as_str(), "b", "a kept entry is not read again");
    }

    #[test]
    fn a_refusal_drops_pending_entries() {
        let mut cache = EntryCache::default();
        let obj = ObjId::Root;
        scope(&mut cache, || {
            entry(&obj, || Ok::<_, ()>(event("refused"))).unwrap();
            forget_pending();
            let e = entry(&obj, || Ok::<_, ()>(event("accepted"))).unwrap();
            assert_eq!(e.by.as_str(), "accepted");
        });
        cache.keep_pending();
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn without_a_scope_nothing_is_recorded() {
        let mut cache = EntryCache::default();
        entry(&ObjId::Root, || Ok::<_, ()>(event("a"))).unwrap();
        scope(&mut cache, || {});
        assert!(cache.is_empty());
    }
}
