//! The policy a ledger pins, read from what the ledger carries and holds.
//!
//! The ledger carries and stores pinned documents unread ([`PinnedDoc`]); this is where they
//! are read: whatever a file brings in is parsed here before the store keeps it, and the
//! document a ledger pins is parsed here before anything evaluates with it.

use super::evaluate::PolicyView;
use super::model::{Policy, PolicyError};
use crate::ledger::DecodeError;
use crate::ledger::carried::{BundleKind, Carried, PinnedDoc};
use crate::ledger::store::{Store, StoreError};
use crate::ledger::types::Sha256Digest;

impl Policy {
    /// Reads a pinned document.
    pub fn from_pinned(doc: &PinnedDoc) -> Result<Policy, PolicyError> {
        Policy::parse(doc.bytes()).map(|(p, _)| p)
    }

    /// This document as the ledger carries it.
    pub fn pinned(&self) -> PinnedDoc {
        PinnedDoc::from_bytes(&crate::ledger::canonical::to_jcs(self))
            .expect("a parsed policy is an rn.policy.v1 object under its cap")
    }
}

/// Decodes what a file handed to `apply` carries ([`Carried::decode`]) and reads every policy
/// document in it: a document that is not a valid policy makes the whole file malformed, so
/// nothing of it is committed or stored.
pub fn read_carried(bytes: &[u8]) -> Result<Carried, DecodeError> {
    let carried = Carried::decode(bytes)?;
    read_documents(BundleKind::KIND, &carried.documents)?;
    Ok(carried)
}

/// Reads the policy documents a proposal or bundle (`what`) carries; one that is not a valid
/// policy makes the carrier malformed.
pub fn read_documents(what: &'static str, docs: &[PinnedDoc]) -> Result<Vec<Policy>, DecodeError> {
    docs.iter()
        .enumerate()
        .map(|(i, doc)| {
            Policy::from_pinned(doc).map_err(|e| DecodeError::Malformed {
                what,
                detail: format!("policies[{i}]: {e}"),
            })
        })
        .collect()
}

/// The policy a ledger pins and whether this node holds it.
#[derive(Clone, Debug)]
pub struct PinnedPolicy {
    hash: Option<Sha256Digest>,
    held: Option<Policy>,
}

impl PinnedPolicy {
    /// Reads the pinned document from the store (a held document that does not parse counts
    /// as not held).
    pub fn load(store: &Store) -> Result<PinnedPolicy, StoreError> {
        let hash = store.state().policy().copied();
        let held = match &hash {
            Some(h) => store
                .pinned_document(h)?
                .and_then(|d| Policy::from_pinned(&d).ok()),
            None => None,
        };
        Ok(PinnedPolicy { hash, held })
    }

    /// The pinned document, when held.
    pub fn held(&self) -> Option<&Policy> {
        self.held.as_ref()
    }

    /// The policy to evaluate with: none pinned, pinned but not held, or held.
    pub fn view(&self) -> PolicyView<'_> {
        match (&self.hash, &self.held) {
            (None, _) => PolicyView::None,
            (Some(_), Some(p)) => PolicyView::Held(p),
            (Some(h), None) => PolicyView::Missing(h),
        }
    }
}
