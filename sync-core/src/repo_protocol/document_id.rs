//! automerge-repo document ids (16 bytes, bs58check text) and `automerge:` URLs.
//!
//! automerge-repo names a document by 16 random bytes (a UUID v4 in the npm package) and writes
//! them as bs58check: Bitcoin-alphabet base58 of the bytes followed by the first 4 bytes of
//! SHA-256(SHA-256(bytes)). A URL is `automerge:<id>`, optionally followed by `#` and a `|`-separated
//! list of heads, each a bs58check-encoded 32-byte change hash, which names the document as of
//! those heads.

use std::fmt;
use std::str::FromStr;

use automerge::ChangeHash;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The scheme every automerge-repo URL starts with.
pub const URL_PREFIX: &str = "automerge:";

/// Why a document id or automerge URL could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DocumentIdError {
    #[error("not base58: {0}")]
    NotBase58(String),
    #[error("too short to hold a bs58check checksum")]
    TooShort,
    #[error("bs58check checksum does not match")]
    BadChecksum,
    #[error("document id is {0} bytes long, expected 16")]
    WrongLength(usize),
    #[error("not an automerge URL: it must start with \"automerge:\"")]
    NotAutomergeUrl,
    #[error("automerge URL has more than one '#' heads section")]
    MultipleHeadsSections,
    #[error("invalid head {index} in automerge URL: {reason}")]
    InvalidHead { index: usize, reason: String },
}

/// The id of an automerge-repo document: 16 bytes, shown as bs58check.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentId([u8; 16]);

impl DocumentId {
    /// Wraps 16 bytes. sync-core has no randomness of its own: to create a new document the
    /// host passes 16 bytes from a secure random source (the npm package uses a UUID v4).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The document's URL without heads: `automerge:<id>`.
    pub fn to_url(&self) -> String {
        format!("{URL_PREFIX}{self}")
    }

    /// Reads the document id out of an automerge URL. A heads section, if any, is checked but
    /// dropped; use [`AutomergeUrl`] to keep it.
    pub fn from_url(url: &str) -> Result<Self, DocumentIdError> {
        url.parse::<AutomergeUrl>().map(|u| u.document_id)
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58check_encode(&self.0))
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

impl FromStr for DocumentId {
    type Err = DocumentIdError;

    /// Parses the bs58check text form (not a URL).
    fn from_str(s: &str) -> Result<Self, DocumentIdError> {
        let payload = bs58check_decode(s)?;
        let bytes: [u8; 16] = payload
            .as_slice()
            .try_into()
            .map_err(|_| DocumentIdError::WrongLength(payload.len()))?;
        Ok(Self(bytes))
    }
}

impl Serialize for DocumentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DocumentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An automerge URL: a document id and optionally the heads of the version it names.
///
/// `heads` is `None` for `automerge:<id>` and `Some(vec![])` for `automerge:<id>#`, as in the
/// npm package.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AutomergeUrl {
    pub document_id: DocumentId,
    pub heads: Option<Vec<ChangeHash>>,
}

impl From<DocumentId> for AutomergeUrl {
    fn from(document_id: DocumentId) -> Self {
        Self {
            document_id,
            heads: None,
        }
    }
}

impl fmt::Display for AutomergeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{URL_PREFIX}{}", self.document_id)?;
        if let Some(heads) = &self.heads {
            f.write_str("#")?;
            for (i, head) in heads.iter().enumerate() {
                if i > 0 {
                    f.write_str("|")?;
                }
                f.write_str(&bs58check_encode(&head.0))?;
            }
        }
        Ok(())
    }
}

impl FromStr for AutomergeUrl {
    type Err = DocumentIdError;

    fn from_str(url: &str) -> Result<Self, DocumentIdError> {
        let rest = url.strip_prefix(URL_PREFIX).ok_or(DocumentIdError::NotAutomergeUrl)?;
        let (id, heads) = match rest.split_once('#') {
            None => (rest, None),
            Some((_, heads)) if heads.contains('#') => {
                return Err(DocumentIdError::MultipleHeadsSections);
            }
            Some((id, "")) => (id, Some(Vec::new())),
            Some((id, heads)) => (id, Some(parse_heads(heads)?)),
        };
        Ok(Self {
            document_id: id.parse()?,
            heads,
        })
    }
}

fn parse_heads(section: &str) -> Result<Vec<ChangeHash>, DocumentIdError> {
    section
        .split('|')
        .enumerate()
        .map(|(index, head)| {
            let invalid = |reason: String| DocumentIdError::InvalidHead { index, reason };
            let bytes = bs58check_decode(head).map_err(|e| invalid(e.to_string()))?;
            let hash: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| invalid(format!("{} bytes long, expected 32", bytes.len())))?;
            Ok(ChangeHash(hash))
        })
        .collect()
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let twice = Sha256::digest(Sha256::digest(payload));
    [twice[0], twice[1], twice[2], twice[3]]
}

fn bs58check_encode(payload: &[u8]) -> String {
    let mut with_check = Vec::with_capacity(payload.len() + 4);
    with_check.extend_from_slice(payload);
    with_check.extend_from_slice(&checksum(payload));
    bs58::encode(with_check).into_string()
}

fn bs58check_decode(text: &str) -> Result<Vec<u8>, DocumentIdError> {
    let mut bytes = bs58::decode(text)
        .into_vec()
        .map_err(|e| DocumentIdError::NotBase58(e.to_string()))?;
    if bytes.len() < 4 {
        return Err(DocumentIdError::TooShort);
    }
    let payload_len = bytes.len() - 4;
    if bytes[payload_len..] != checksum(&bytes[..payload_len]) {
        return Err(DocumentIdError::BadChecksum);
    }
    bytes.truncate(payload_len);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by @automerge/automerge-repo 2.5.6 (generateAutomergeUrl / stringifyAutomergeUrl);
    // more are in tests/vectors/automerge-repo-v1.json.
    const NPM_ID: &str = "EzSPCzksms3McAxtknHrHvKYsWX";
    const NPM_BYTES: [u8; 16] = [
        0x11, 0x50, 0x5d, 0xaf, 0x58, 0xa9, 0x4b, 0x9d, 0x89, 0x81, 0xba, 0x6f, 0xa2, 0x74, 0x03, 0x95,
    ];
    const NPM_ZERO_ID: &str = "11111111111111114Ki9Gx";

    #[test]
    fn encodes_and_parses_like_the_npm_package() {
        let id = DocumentId::from_bytes(NPM_BYTES);
        assert_eq!(id.to_string(), NPM_ID);
        assert_eq!(NPM_ID.parse::<DocumentId>(), Ok(id));
        assert_eq!(id.to_url(), format!("automerge:{NPM_ID}"));
        assert_eq!(DocumentId::from_url(&id.to_url()), Ok(id));
    }

    #[test]
    fn leading_zero_bytes_become_ones() {
        let zero = DocumentId::from_bytes([0; 16]);
        assert_eq!(zero.to_string(), NPM_ZERO_ID);
        assert_eq!(NPM_ZERO_ID.parse(), Ok(zero));
    }

    #[test]
    fn rejects_a_changed_character() {
        // Swap one character for another valid base58 character.
        let mut tampered = NPM_ID.to_string();
        tampered.replace_range(5..6, if &NPM_ID[5..6] == "2" { "3" } else { "2" });
        assert_eq!(tampered.parse::<DocumentId>(), Err(DocumentIdError::BadChecksum));
    }

    #[test]
    fn rejects_non_base58_and_wrong_lengths() {
        assert!(matches!(
            "0OIl".parse::<DocumentId>(),
            Err(DocumentIdError::NotBase58(_))
        ));
        assert_eq!("".parse::<DocumentId>(), Err(DocumentIdError::TooShort));
        // A valid bs58check string of 15 bytes and one of 17.
        assert_eq!(
            bs58check_encode(&[7; 15]).parse::<DocumentId>(),
            Err(DocumentIdError::WrongLength(15))
        );
        assert_eq!(
            bs58check_encode(&[7; 17]).parse::<DocumentId>(),
            Err(DocumentIdError::WrongLength(17))
        );
    }

    #[test]
    fn urls_with_heads_round_trip() {
        let id = DocumentId::from_bytes(NPM_BYTES);
        let heads = vec![ChangeHash([1; 32]), ChangeHash([2; 32])];
        let url = AutomergeUrl {
            document_id: id,
            heads: Some(heads),
        };
        let text = url.to_string();
        assert!(text.starts_with(&format!("automerge:{NPM_ID}#")));
        assert_eq!(text.parse(), Ok(url));

        let empty = format!("automerge:{NPM_ID}#");
        assert_eq!(
            empty.parse(),
            Ok(AutomergeUrl {
                document_id: id,
                heads: Some(vec![])
            })
        );
        assert_eq!(DocumentId::from_url(&text), Ok(id));
    }

    #[test]
    fn rejects_malformed_urls() {
        assert_eq!(DocumentId::from_url(NPM_ID), Err(DocumentIdError::NotAutomergeUrl));
        assert_eq!(
            format!("automerge:{NPM_ID}#a#b").parse::<AutomergeUrl>(),
            Err(DocumentIdError::MultipleHeadsSections)
        );
        let short_head = bs58check_encode(&[1; 31]);
        assert_eq!(
            format!("automerge:{NPM_ID}#{short_head}").parse::<AutomergeUrl>(),
            Err(DocumentIdError::InvalidHead {
                index: 0,
                reason: "31 bytes long, expected 32".into()
            })
        );
    }

    #[test]
    fn serializes_as_its_text_form() {
        let id = DocumentId::from_bytes(NPM_BYTES);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{NPM_ID}\""));
        assert_eq!(serde_json::from_str::<DocumentId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<DocumentId>("\"nope\"").is_err());
    }
}
