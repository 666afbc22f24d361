//! Document kinds and the pieces they share (entries, messages, limits).
//!
//! Every Lianxin document is an Automerge map whose root carries `type` and
//! `schema`. Containers that grow (timelines, message lists, receipt maps)
//! are created with the document, so concurrent replicas never create the
//! same container twice (which would hide one replica's entries).

pub(crate) mod am;
pub mod cache;
pub mod message;

use std::fmt;
use std::str::FromStr;

use automerge::{ROOT, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::error::SchemaError;

pub use am::has_change;
pub use message::{Mention, Message};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// Which kind of document a root describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Petition,
    Room,
    Notice,
    Directory,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Petition => "petition",
            DocKind::Room => "room",
            DocKind::Notice => "notice",
            DocKind::Directory => "directory",
        }
    }

    /// Reads the kind of a document, `None` for an empty document.
    pub fn of(doc: &impl ReadDoc) -> Result<Option<DocKind>, SchemaError> {
        let Some(kind) = am::opt_str(doc, &ROOT, "type")? else {
            return Ok(None);
        };
        let kind: DocKind = kind.parse()?;
        let version = am::opt_int(doc, &ROOT, "schema")?.ok_or_else(|| SchemaError::Missing("schema".into()))?;
        if version != SCHEMA_VERSION {
            return Err(SchemaError::UnsupportedVersion(version));
        }
        Ok(Some(kind))
    }

    /// Reads the kind and fails unless it is `expected`.
    pub(crate) fn expect(doc: &impl ReadDoc, expected: DocKind) -> Result<(), SchemaError> {
        match DocKind::of(doc)? {
            Some(k) if k == expected => Ok(()),
            Some(k) => Err(SchemaError::WrongKind {
                expected: expected.as_str(),
                found: k.as_str().into(),
            }),
            None => Err(SchemaError::WrongKind {
                expected: expected.as_str(),
                found: "empty document".into(),
            }),
        }
    }
}

impl fmt::Display for DocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DocKind {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, SchemaError> {
        match s {
            "petition" => Ok(DocKind::Petition),
            "room" => Ok(DocKind::Room),
            "notice" => Ok(DocKind::Notice),
            "directory" => Ok(DocKind::Directory),
            other => Err(SchemaError::InvalidValue {
                field: "type".into(),
                reason: format!("unknown document type {other:?}"),
            }),
        }
    }
}

/// Writes the `type`/`schema` root fields of a new document.
pub(crate) fn init_root<T: automerge::transaction::Transactable>(tx: &mut T, kind: DocKind) -> Result<(), SchemaError> {
    tx.put(ROOT, "type", kind.as_str())?;
    tx.put(ROOT, "schema", SCHEMA_VERSION)?;
    Ok(())
}

/// The accessors every typed document wrapper shares: construction with a
/// kind check, owned and borrowed views, and access to the Automerge document.
macro_rules! typed_doc {
    ($name:ident, $kind:expr) => {
        impl $name {
            /// Wraps a document after checking its kind.
            pub fn from_doc(doc: automerge::AutoCommit) -> Result<Self, $crate::error::SchemaError> {
                $crate::doc::DocKind::expect(&doc, $kind)?;
                Ok($name { doc })
            }

            pub fn load(bytes: &[u8]) -> Result<Self, $crate::error::SchemaError> {
                Self::from_doc(automerge::AutoCommit::load(bytes)?)
            }

            pub fn doc_mut(&mut self) -> &mut automerge::AutoCommit {
                &mut self.doc
            }

            pub fn into_doc(self) -> automerge::AutoCommit {
                self.doc
            }
        }

        impl<D: std::borrow::Borrow<automerge::AutoCommit>> $name<D> {
            /// A typed view of `doc` (owned or borrowed) after checking its kind.
            pub fn view(doc: D) -> Result<Self, $crate::error::SchemaError> {
                $crate::doc::DocKind::expect(doc.borrow(), $kind)?;
                Ok($name { doc })
            }

            fn d(&self) -> &automerge::AutoCommit {
                self.doc.borrow()
            }

            pub fn doc(&self) -> &automerge::AutoCommit {
                self.doc.borrow()
            }
        }
    };
}

pub(crate) use typed_doc;

/// Commits a typed write that succeeded, or rolls back one that failed half way.
pub(crate) fn finish(doc: &mut automerge::AutoCommit, result: Result<(), SchemaError>) -> Result<(), SchemaError> {
    match result {
        Ok(()) => {
            doc.commit();
            Ok(())
        }
        Err(e) => {
            doc.rollback();
            Err(e)
        }
    }
}

/// Upper bounds on free text, in characters, so one entry cannot bloat a document.
pub mod limits {
    pub const TITLE: usize = 200;
    pub const BODY: usize = 10_000;
    pub const NOTE: usize = 4_000;
    pub const SHORT: usize = 200;
    pub const LIST: usize = 64;
}

/// Checks that `value` is non-empty (when `required`) and at most `max` characters.
pub(crate) fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), SchemaError> {
    if required && value.trim().is_empty() {
        return Err(SchemaError::InvalidValue {
            field: field.into(),
            reason: "must not be empty".into(),
        });
    }
    let n = value.chars().count();
    if n > max {
        return Err(SchemaError::InvalidValue {
            field: field.into(),
            reason: format!("{n} characters, at most {max} allowed"),
        });
    }
    Ok(())
}

/// Checks an attachment reference: a content hash `sha256:<64 hex digits>`.
pub(crate) fn check_attachment(value: &str) -> Result<(), SchemaError> {
    let ok = value
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    if ok {
        Ok(())
    } else {
        Err(SchemaError::InvalidValue {
            field: "attachments".into(),
            reason: format!("{value:?} is not a content hash of the form sha256:<64 lowercase hex digits>"),
        })
    }
}

/// The document's history re-encoded in a canonical order, so two replicas
/// holding the same changes produce the same bytes whatever order they merged
/// in (Automerge's own `save()` keeps local application order).
///
/// Changes are applied in topological order, ties broken by change hash.
pub fn canonical_bytes(doc: &mut automerge::AutoCommit) -> Vec<u8> {
    use std::collections::{BTreeMap, HashMap};
    let changes = doc.get_changes(&[]);
    let mut waiting: HashMap<automerge::ChangeHash, usize> = HashMap::new();
    let mut dependents: HashMap<automerge::ChangeHash, Vec<automerge::ChangeHash>> = HashMap::new();
    let mut by_hash = HashMap::new();
    for c in changes {
        waiting.insert(c.hash(), c.deps().len());
        for d in c.deps() {
            dependents.entry(*d).or_default().push(c.hash());
        }
        by_hash.insert(c.hash(), c);
    }
    let mut ready: BTreeMap<automerge::ChangeHash, ()> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(h, _)| (*h, ()))
        .collect();
    let mut out = automerge::Automerge::new();
    while let Some((h, ())) = ready.pop_first() {
        let change = by_hash.remove(&h).expect("every ready change is known");
        out.apply_changes([change]).expect("changes of a valid document apply");
        for next in dependents.remove(&h).unwrap_or_default() {
            let n = waiting.get_mut(&next).expect("dependent is known");
            *n -= 1;
            if *n == 0 {
                ready.insert(next, ());
            }
        }
    }
    out.save()
}
