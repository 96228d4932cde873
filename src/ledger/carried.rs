//! What travels between ledgers: bundles (`rn member export`), the files `apply` takes, and the
//! documents the ledger pins by hash without reading them.
//!
//! The ledger pins a policy document by the SHA-256 of its canonical bytes and carries it
//! beside the updates, but it never parses the rules: a [`PinnedDoc`] is opaque here — a JSON
//! object with the right `kind`, under its size cap, held as canonical bytes. The policy layer
//! reads it. So a change to the rule grammar is not a change to the ledger's wire format.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::canonical::{Document, caps, kind_marker, to_jcs};
use super::error::DecodeError;
use super::types::Sha256Digest;
use super::update::{Proposal, SignedGenesis, SignedUpdate};

kind_marker!(
    /// `rn.bundle.v1`
    BundleKind = "rn.bundle.v1"
);
kind_marker!(
    /// `rn.head.v1`
    HeadKind = "rn.head.v1"
);

/// Where a served or published ledger stands (`rn/v1/head`): a hint for a reader deciding
/// what to fetch, never trusted — what it fetches passes the gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// `rn.head.v1`.
    pub kind: HeadKind,
    /// The network.
    pub network_id: super::types::Id,
    /// The epoch of the last update.
    pub epoch: super::types::Uint,
    /// The state root at that epoch.
    pub root: Sha256Digest,
    /// BLAKE3 of the log line at that epoch (of the signed genesis at 0).
    pub log_head: super::types::Blake3Digest,
}

impl Document for Head {
    const KIND: &'static str = HeadKind::KIND;
    const CAP: usize = 4096;
}

/// A document the ledger pins by hash (today only `rn.policy.v1`), held as its canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedDoc {
    value: Value,
    bytes: Vec<u8>,
}

impl PinnedDoc {
    /// The one kind of pinned document.
    pub const KIND: &'static str = "rn.policy.v1";

    /// Takes a decoded JSON value: an object whose `kind` is [`PinnedDoc::KIND`], at most
    /// [`caps::POLICY`] bytes once canonical.
    pub fn from_value(value: Value) -> Result<PinnedDoc, DecodeError> {
        let kind = match &value {
            Value::Object(m) => m.get("kind"),
            _ => {
                return Err(DecodeError::Malformed {
                    what: Self::KIND,
                    detail: "a pinned document is a JSON object, written {...}".into(),
                });
            }
        };
        match kind {
            Some(Value::String(k)) if k == Self::KIND => {}
            Some(other) => {
                return Err(DecodeError::UnknownKind {
                    expected: Self::KIND,
                    found: other.to_string(),
                });
            }
            None => {
                return Err(DecodeError::Malformed {
                    what: Self::KIND,
                    detail: "no \"kind\"".into(),
                });
            }
        }
        let bytes = to_jcs(&value);
        if bytes.len() > caps::POLICY {
            return Err(DecodeError::Oversize {
                what: Self::KIND,
                size: bytes.len(),
                cap: caps::POLICY,
            });
        }
        Ok(PinnedDoc { value, bytes })
    }

    /// Takes raw bytes (a file): valid JSON, then as [`PinnedDoc::from_value`].
    pub fn from_bytes(bytes: &[u8]) -> Result<PinnedDoc, DecodeError> {
        if bytes.len() > caps::POLICY {
            return Err(DecodeError::Oversize {
                what: Self::KIND,
                size: bytes.len(),
                cap: caps::POLICY,
            });
        }
        let value = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
            what: Self::KIND,
            detail: e.to_string(),
        })?;
        Self::from_value(value)
    }

    /// The canonical bytes: what is hashed and what the reader parses.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `sha256:` of the canonical bytes: what `set_policy` pins.
    pub fn hash(&self) -> Sha256Digest {
        Sha256Digest::of(&self.bytes)
    }
}

impl Serialize for PinnedDoc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PinnedDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PinnedDoc::from_value(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What `rn member export` writes and `rn member apply` takes to catch a ledger up.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// `rn.bundle.v1`.
    pub kind: BundleKind,
    /// The signed genesis, when exported `--with-genesis`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::canonical::present"
    )]
    pub genesis: Option<SignedGenesis>,
    /// Consecutive signed updates.
    pub updates: Vec<SignedUpdate>,
    /// Policy documents the updates pin.
    pub policies: Vec<PinnedDoc>,
}

impl Document for Bundle {
    const KIND: &'static str = BundleKind::KIND;
    const CAP: usize = caps::LOG;
}

/// What a file handed to `apply` (or dropped in a node's inbox) carries: a signed update, a
/// proposal, or a bundle — decoded strictly, one reader for every path.
#[derive(Clone, Debug)]
pub struct Carried {
    /// The signed updates, in order.
    pub updates: Vec<SignedUpdate>,
    /// Pinned documents that came with them (unread: the policy layer reads them).
    pub documents: Vec<PinnedDoc>,
    /// A bundle's genesis root, when it carries the genesis.
    pub genesis_root: Option<Sha256Digest>,
}

impl Carried {
    /// Decodes `rn.signed-update.v1`, `rn.proposal.v1` or `rn.bundle.v1`.
    pub fn decode(bytes: &[u8]) -> Result<Carried, DecodeError> {
        use super::canonical::{decode, peek_kind};
        let kind = peek_kind(bytes)?;
        Ok(match kind.as_str() {
            SignedUpdate::KIND_STR => Carried {
                updates: vec![decode::<SignedUpdate>(bytes)?],
                documents: Vec::new(),
                genesis_root: None,
            },
            Proposal::KIND_STR => {
                let p: Proposal = decode(bytes)?;
                Carried {
                    updates: vec![p.signed_update()],
                    documents: p.policies,
                    genesis_root: None,
                }
            }
            BundleKind::KIND => {
                let b: Bundle = decode(bytes)?;
                Carried {
                    genesis_root: b.genesis.as_ref().map(|g| g.genesis.state.root()),
                    updates: b.updates,
                    documents: b.policies,
                }
            }
            _ => {
                return Err(DecodeError::UnknownKind {
                    expected: SignedUpdate::KIND_STR,
                    found: format!(
                        "{kind} (apply takes rn.signed-update.v1, rn.proposal.v1 or rn.bundle.v1)"
                    ),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_documents_are_objects_of_their_kind_under_the_cap() {
        let ok = PinnedDoc::from_bytes(br#"{ "rules": [], "kind": "rn.policy.v1" }"#).unwrap();
        assert_eq!(ok.bytes(), br#"{"kind":"rn.policy.v1","rules":[]}"#);
        assert_eq!(ok.hash(), Sha256Digest::of(ok.bytes()));
        let cases: [(&[u8], &str); 5] = [
            (br#"["rn.policy.v1"]"#, "Malformed"),
            (br#"{"rules":[]}"#, "Malformed"),
            (br#"{"kind":"rn.bundle.v1","rules":[]}"#, "UnknownKind"),
            (br#"{"kind":"rn.policy.v1","#, "Malformed"),
            (&[b' '; caps::POLICY + 1], "Oversize"),
        ];
        for (input, want) in cases {
            let err = PinnedDoc::from_bytes(input).unwrap_err();
            assert_eq!(err.name(), want, "{}", String::from_utf8_lossy(input));
        }
    }
}
