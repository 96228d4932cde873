//! The quorum check (spec §4.5.1) — the one copy, used by the gate, `verify`, `sign` and the
//! fork classifier — and genesis signature verification (§4.6).

use std::collections::HashSet;

use super::error::Rejection;
use super::model::{ApproverStatus, State};
use super::types::{ApproverKey, Id};
use super::update::{Genesis, Op, Signature, Update};

/// What a set of valid signatures amounts to under one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Active approvers whose signature verified, in id order.
    pub counted: Vec<Id>,
    /// The state's threshold.
    pub threshold: u64,
    /// Whether the update needs an owner's signature.
    pub owner_required: bool,
    /// Whether an active owner is among `counted`.
    pub owner_signed: bool,
    /// Active owners (for the "who can sign" hint).
    pub owners: Vec<Id>,
    /// Active approvers who have not signed.
    pub can_still_sign: Vec<Id>,
    /// Approvers whose new key (from `add_approver`/`rotate_approver_key`) has not signed.
    pub missing_proofs: Vec<Id>,
}

impl Tally {
    /// The quorum decision: threshold, then owner, then proofs of possession.
    pub fn check(&self) -> Result<(), Rejection> {
        if (self.counted.len() as u64) < self.threshold {
            return Err(Rejection::BelowThreshold {
                have: self.counted.len(),
                need: self.threshold,
                missing: self.can_still_sign.clone(),
            });
        }
        if self.owner_required && !self.owner_signed {
            return Err(Rejection::MissingOwner {
                owners: self.owners.clone(),
            });
        }
        if let Some(id) = self.missing_proofs.first() {
            return Err(Rejection::MissingProofOfPossession {
                approver: id.clone(),
            });
        }
        Ok(())
    }

    /// Human list of what is still needed, empty when the quorum is met.
    pub fn missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        let have = self.counted.len() as u64;
        if have < self.threshold {
            out.push(format!(
                "{} more signature(s) from: {}",
                self.threshold - have,
                join(&self.can_still_sign)
            ));
        }
        if self.owner_required && !self.owner_signed {
            out.push(format!("an owner must sign ({})", join(&self.owners)));
        }
        for id in &self.missing_proofs {
            out.push(format!(
                "the new key of {id} must sign (proof of possession)"
            ));
        }
        out
    }
}

fn join(ids: &[Id]) -> String {
    ids.iter().map(Id::as_str).collect::<Vec<_>>().join(", ")
}

fn verify(key: &ApproverKey, message: &[u8], sig: &Signature) -> Result<(), Rejection> {
    key.verifying_key()
        .verify_strict(message, &sig.sig.to_dalek())
        .map_err(|_| Rejection::BadSignature {
            approver: sig.approver.clone(),
        })
}

fn check_duplicates(signatures: &[Signature]) -> Result<(), Rejection> {
    let mut seen = HashSet::new();
    for s in signatures {
        if !seen.insert((&s.approver, s.new_key)) {
            return Err(Rejection::DuplicateSigner {
                approver: s.approver.clone(),
            });
        }
    }
    Ok(())
}

/// Signature checks already made, off the critical path (e.g. on other cores while a ledger
/// loads): each entry says that `verify_strict` accepted one signature of one exact update
/// under one key. [`tally_with`] consults it instead of verifying again; a miss is verified
/// as usual, so it can only save work, never admit anything.
pub struct PreVerified {
    update: Update,
    message: Vec<u8>,
    valid: Vec<(usize, [u8; 64], [u8; 32])>,
}

impl PreVerified {
    /// Verifies each signature of `update` against the `candidates` keys for its approver
    /// (for instance every key that approver has had), recording those that verify.
    pub fn compute(
        update: &Update,
        signatures: &[Signature],
        candidates: impl Fn(&Signature) -> Vec<ApproverKey>,
    ) -> PreVerified {
        Self::compute_over(update, update.message(), signatures, candidates)
    }

    /// [`compute`](Self::compute) with the signed message already at hand: `message` must be
    /// `JCS(update)` — for a log line, the update's own bytes within the canonical line.
    pub fn compute_over(
        update: &Update,
        message: Vec<u8>,
        signatures: &[Signature],
        candidates: impl Fn(&Signature) -> Vec<ApproverKey>,
    ) -> PreVerified {
        let mut valid = Vec::new();
        for (i, s) in signatures.iter().enumerate() {
            for key in candidates(s) {
                if verify(&key, &message, s).is_ok() {
                    valid.push((i, s.sig.to_bytes(), *key.as_bytes()));
                    break;
                }
            }
        }
        PreVerified {
            update: update.clone(),
            message,
            valid,
        }
    }

    /// The signed message, `JCS(update)`.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// True when these checks were made on exactly this update.
    pub fn is_for(&self, update: &Update) -> bool {
        self.update == *update
    }

    fn known(&self, index: usize, key: &ApproverKey, sig: &Signature) -> bool {
        self.valid
            .iter()
            .any(|(i, s, k)| *i == index && *s == sig.sig.to_bytes() && k == key.as_bytes())
    }
}

/// Verifies every signature of `update` under `state` and tallies them. Any duplicate,
/// unknown, revoked, unexpected or invalid signature rejects the whole update.
/// `message` must be `update.message()` (passed in so callers hash it once).
pub fn tally(
    state: &State,
    update: &Update,
    message: &[u8],
    signatures: &[Signature],
) -> Result<Tally, Rejection> {
    tally_with(state, update, message, signatures, None)
}

/// [`tally`], reusing signature checks already made for this exact update.
pub fn tally_with(
    state: &State,
    update: &Update,
    message: &[u8],
    signatures: &[Signature],
    pre: Option<&PreVerified>,
) -> Result<Tally, Rejection> {
    let pre = pre.filter(|p| p.is_for(update));
    let check = |i: usize, key: &ApproverKey, s: &Signature| {
        if pre.is_some_and(|p| p.known(i, key, s)) {
            Ok(())
        } else {
            verify(key, message, s)
        }
    };
    check_duplicates(signatures)?;
    let mut counted = Vec::new();
    let mut proven: HashSet<&Id> = HashSet::new();
    let new_keys: Vec<(&Id, &ApproverKey)> =
        update.ops.iter().filter_map(Op::new_approver_key).collect();
    for (i, s) in signatures.iter().enumerate() {
        if s.new_key {
            let (_, key) = new_keys
                .iter()
                .find(|(id, _)| **id == s.approver)
                .ok_or_else(|| Rejection::UnexpectedProof {
                    approver: s.approver.clone(),
                })?;
            check(i, key, s)?;
            proven.insert(&s.approver);
            continue;
        }
        let approver = state
            .approver(&s.approver)
            .ok_or_else(|| Rejection::UnknownSigner {
                approver: s.approver.clone(),
            })?;
        if approver.status != ApproverStatus::Active {
            return Err(Rejection::RevokedSigner {
                approver: s.approver.clone(),
            });
        }
        check(i, &approver.pubkey, s)?;
        counted.push(s.approver.clone());
    }
    counted.sort();
    let active: Vec<_> = state
        .approvers()
        .filter(|a| a.status == ApproverStatus::Active)
        .collect();
    let owners: Vec<Id> = active
        .iter()
        .filter(|a| a.is_active_owner())
        .map(|a| a.id.clone())
        .collect();
    let can_still_sign = active
        .iter()
        .filter(|a| counted.binary_search(&a.id).is_err())
        .map(|a| a.id.clone())
        .collect();
    let mut missing_proofs: Vec<Id> = new_keys
        .iter()
        .filter(|(id, _)| !proven.contains(id))
        .map(|(id, _)| (*id).clone())
        .collect();
    missing_proofs.dedup();
    Ok(Tally {
        owner_required: update.ops.iter().any(Op::is_governance),
        owner_signed: counted.iter().any(|id| owners.contains(id)),
        threshold: state.threshold().get(),
        owners,
        can_still_sign,
        counted,
        missing_proofs,
    })
}

/// Verifies genesis signatures and returns the listed approvers who have not signed yet.
/// Duplicate, unknown, proof-of-possession or invalid signatures reject the genesis.
pub fn genesis_missing(genesis: &Genesis, signatures: &[Signature]) -> Result<Vec<Id>, Rejection> {
    check_duplicates(signatures)?;
    let message = genesis.message();
    let state = &genesis.state;
    for s in signatures {
        if s.new_key {
            return Err(Rejection::UnexpectedProof {
                approver: s.approver.clone(),
            });
        }
        let approver = state
            .approver(&s.approver)
            .ok_or_else(|| Rejection::UnknownSigner {
                approver: s.approver.clone(),
            })?;
        verify(&approver.pubkey, &message, s)?;
    }
    Ok(state
        .approvers()
        .filter(|a| !signatures.iter().any(|s| s.approver == a.id))
        .map(|a| a.id.clone())
        .collect())
}
