//! How a document's changes travel: an Automerge bundle, raw change chunks, or a whole save.
//!
//! Sent one by one, Automerge changes are large (a 32-byte hash per
//! dependency, no compression across changes): 40 small comments cost
//! 8.6 kB as raw chunks, 2.4 kB deflated. A bundle encodes the same changes
//! column-wise like a saved document: 1.1 kB, 0.7 kB deflated, about the
//! growth of the compressed `save()`. Bundles are experimental in
//! automerge 0.12, so they are used only when the peer lists
//! [`Encoding::Bundle`], whose name carries the Automerge version; every
//! peer reads raw change chunks.

use automerge::{AutoCommit, Change, ChangeHash};
use serde::{Deserialize, Serialize};

use super::BatchError;

/// A document data encoding. The names are stable: they are negotiated on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encoding {
    /// `am-bundle-0.12`: `AutoCommit::bundle` of the changes (automerge 0.12's format).
    #[serde(rename = "am-bundle-0.12")]
    Bundle,
    /// `am-changes`: the changes' raw chunks, concatenated.
    #[serde(rename = "am-changes")]
    Changes,
    /// `am-doc`: a whole `save()`, for a document new to the receiver.
    #[serde(rename = "am-doc")]
    Document,
}

impl Encoding {
    /// Every encoding this build reads, preferred first.
    pub const ALL: [Encoding; 3] = [Encoding::Bundle, Encoding::Changes, Encoding::Document];

    /// The stable wire name.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Bundle => "am-bundle-0.12",
            Encoding::Changes => "am-changes",
            Encoding::Document => "am-doc",
        }
    }

    /// The encoding with this wire name, if this build knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Encodes every change of `doc` after `since` for a peer that reads `supported`.
///
/// A bundle when the peer reads bundles, raw change chunks otherwise; when
/// `since` is empty (the document is new to the peer) and the peer reads
/// whole documents, a `save()` if that is smaller. No changes give empty data.
pub fn encode_since(doc: &mut AutoCommit, since: &[ChangeHash], supported: &[Encoding]) -> (Encoding, Vec<u8>) {
    let changes = doc.get_changes(since);
    if changes.is_empty() {
        return (Encoding::Changes, Vec::new());
    }
    let (encoding, data) = encode_changes(doc, &changes, supported);
    if since.is_empty() && supported.contains(&Encoding::Document) {
        let saved = doc.save();
        if saved.len() < data.len() {
            return (Encoding::Document, saved);
        }
    }
    (encoding, data)
}

/// Encodes `changes` (all held by `doc`, in causal order) as a bundle when
/// the peer reads bundles, as raw change chunks otherwise.
pub fn encode_changes(doc: &AutoCommit, changes: &[Change], supported: &[Encoding]) -> (Encoding, Vec<u8>) {
    if changes.is_empty() {
        return (Encoding::Changes, Vec::new());
    }
    if supported.contains(&Encoding::Bundle) {
        // The bundle API is experimental; should it fail, raw chunks still work.
        if let Ok(bundle) = doc.bundle(changes.iter().map(Change::hash)) {
            return (Encoding::Bundle, bundle.bytes().to_vec());
        }
    }
    let data = changes.iter().flat_map(|c| c.raw_bytes().iter().copied()).collect();
    (Encoding::Changes, data)
}

/// Loads `data` in `encoding` into `doc`. Every encoding is a sequence of
/// Automerge chunks, so all load with `load_incremental`; changes already in
/// `doc` are ignored, and changes whose dependencies are missing wait in
/// Automerge's queue (the caller checks the heads it expected).
pub fn decode_into(doc: &mut AutoCommit, encoding: Encoding, data: &[u8]) -> Result<(), BatchError> {
    if data.is_empty() {
        return Ok(());
    }
    doc.load_incremental(data)
        .map(|_| ())
        .map_err(|e| BatchError::Load(format!("{encoding} data: {e}")))
}

/// The heads of the history made of everything before `base` plus `changes`
/// (whose dependencies lie in that history).
pub fn heads_of(base: &[ChangeHash], changes: &[Change]) -> Vec<ChangeHash> {
    let deps: std::collections::BTreeSet<ChangeHash> = changes.iter().flat_map(|c| c.deps().iter().copied()).collect();
    let mut heads: Vec<ChangeHash> = base
        .iter()
        .copied()
        .chain(changes.iter().map(Change::hash))
        .filter(|h| !deps.contains(h))
        .collect();
    heads.sort();
    heads.dedup();
    heads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Message;
    use crate::petition::{Location, PetitionDoc, PetitionHeader};
    use crate::{Author, Category, Channel, HlcClock, Timestamp, UnitId, UserId};
    use automerge::ActorId;

    /// A petition, its heads after creation, and the same petition after 40 small comments.
    fn forty_comments() -> (AutoCommit, Vec<ChangeHash>, AutoCommit) {
        let r = UserId::new("r1").unwrap();
        let mut author = Author::new(r.clone(), HlcClock::new("r1").unwrap());
        let header = PetitionHeader {
            id: "p".into(),
            channel: Channel::ChiefLine,
            category: Category::Help,
            title: "泉水被截流".into(),
            body: "村里的泉水被引去灌溉，我家已经断水三天。".into(),
            submitter: r.clone(),
            recorded_by: r.clone(),
            anonymous: false,
            contact: None,
            location: Location {
                unit: UnitId::new("v").unwrap(),
                lat: None,
                lon: None,
            },
            attachments: vec![],
            source: None,
        };
        let now = Timestamp(1_750_000_000_000);
        let actor = ActorId::from([7u8; 16].as_slice());
        let mut doc = PetitionDoc::create(actor, header, UnitId::new("s").unwrap(), &mut author, now).unwrap();
        let before = doc.doc().clone();
        let heads = doc.doc_mut().get_heads();
        for i in 0..40 {
            let m = Message {
                by: r.clone(),
                at: "0000000000000.00000.x".parse().unwrap(),
                text: format!("第{i}条：水还是没有来，请尽快派人查看一下"),
                mentions: vec![],
                reply_to: None,
                attachments: vec![],
                tag: None,
                appeal: None,
            };
            doc.post(&mut author, now.plus_minutes(i), m).unwrap();
        }
        (before, heads, doc.into_doc())
    }

    #[test]
    fn names_are_stable() {
        for e in Encoding::ALL {
            assert_eq!(Encoding::from_name(e.name()), Some(e));
        }
        assert_eq!(Encoding::Bundle.name(), "am-bundle-0.12");
        assert_eq!(Encoding::Changes.name(), "am-changes");
        assert_eq!(Encoding::Document.name(), "am-doc");
        assert_eq!(Encoding::from_name("am-bundle-0.13"), None);
    }

    #[test]
    fn each_encoding_round_trips() {
        let (before, heads, mut after) = forty_comments();
        let want = after.get_heads();
        for supported in [&[Encoding::Bundle][..], &[Encoding::Changes][..]] {
            let (enc, data) = encode_since(&mut after, &heads, supported);
            assert_eq!(enc, supported[0]);
            let mut doc = before.clone();
            decode_into(&mut doc, enc, &data).unwrap();
            assert_eq!(doc.get_heads(), want, "{enc}");
        }
        let (enc, data) = encode_since(&mut after, &[], &Encoding::ALL);
        assert_eq!(
            enc,
            Encoding::Document,
            "a whole save beats a bundle of the whole history"
        );
        let mut doc = AutoCommit::new();
        decode_into(&mut doc, enc, &data).unwrap();
        assert_eq!(doc.get_heads(), want);
        // Loading again changes nothing.
        decode_into(&mut doc, enc, &data).unwrap();
        assert_eq!(doc.get_heads(), want);
    }

    #[test]
    fn nothing_new_is_empty_data() {
        let (_, _, mut after) = forty_comments();
        let heads = after.get_heads();
        let (_, data) = encode_since(&mut after, &heads, &Encoding::ALL);
        assert!(data.is_empty());
    }

    #[test]
    fn a_deflated_bundle_is_within_a_tenth_of_the_compressed_save_growth() {
        let (mut before, heads, mut after) = forty_comments();
        let growth = after.save().len() - before.save().len();
        let (enc, data) = encode_since(&mut after, &heads, &Encoding::ALL);
        assert_eq!(enc, Encoding::Bundle);
        let bundle = crate::batch::frame::deflate(&data).len();
        let (_, raw) = encode_since(&mut after, &heads, &[Encoding::Changes]);
        let raw = crate::batch::frame::deflate(&raw).len();
        assert!(
            bundle * 10 <= growth * 11,
            "bundle+deflate {bundle} B vs save growth {growth} B (raw+deflate {raw} B)"
        );
        assert!(raw > 2 * bundle);
    }

    #[test]
    fn heads_of_a_slice() {
        let (_, heads, mut after) = forty_comments();
        let changes = after.get_changes(&heads);
        assert_eq!(heads_of(&heads, &changes), after.get_heads());
        assert_eq!(heads_of(&heads, &changes[..0]), heads);
        assert_eq!(heads_of(&heads, &changes[..1]), vec![changes[0].hash()]);
    }
}
